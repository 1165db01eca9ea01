import type { Audit } from "../audit/index.ts";
import type { Push } from "./schema.ts";

/** Port: push intents and their completion (with the audit record, in one transaction). */
export interface PushStore {
  /** Records the intent before the AWS call; fails if the push id exists. */
  beginPush(push: Push): Promise<void>;
  /** `intent` → `pushed` and the `grant.key_pushed` audit record, atomically. */
  completePush(push: Push, event: Audit.Input): Promise<void>;
  /** `intent` → `failed`; no audit record (nothing reached the instance). */
  failPush(push: Push): Promise<void>;
  /** Every push of a request, oldest first. */
  listPushes(requestId: string): Promise<Push[]>;
}
