import * as Request from "../core/request/index.ts";
import { depsFromEnv } from "./deps.ts";

/**
 * Target of a grant's one-time EventBridge schedule (`{"grantId": "gr_…"}`, validated in core): applies what
 * is due for that grant, normally its end. Idempotent: a late, repeated or already-swept delivery is a no-op.
 */
export async function handler(event: unknown): Promise<{ grantId: string; status?: string }> {
  const item = await Request.settleGrant(depsFromEnv(), event as { grantId: string });
  return { grantId: (event as { grantId?: string })?.grantId ?? "", status: item?.status };
}
