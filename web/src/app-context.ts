import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { PolicyView, Profile } from "./api.ts";

export interface AppState {
  profile: Profile;
  policy: PolicyView;
  /** Approvers and admins see the inbox. */
  approver: boolean;
  /** Auditors and admins see the audit explorer and reports. */
  auditor: boolean;
  /** Anyone some rule lets ask for access. */
  requester: boolean;
}

export const AppContext = createContext<AppState | undefined>(undefined);

export function useApp(): AppState {
  const state = useContext(AppContext);
  if (!state) throw new Error("useApp outside a signed-in page");
  return state;
}

export function appState(profile: Profile, policy: PolicyView): AppState {
  return {
    profile,
    policy,
    approver: policy.approver || profile.admin,
    auditor: profile.auditor || profile.admin,
    requester: policy.rules.some((rule) => rule.mayRequest || rule.mayBreakGlass),
  };
}
