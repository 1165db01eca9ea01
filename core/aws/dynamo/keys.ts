/**
 * Single-table key design (documented with its access patterns in docs/architecture.md):
 *
 * | item            | pk                 | sk           | gsi1 (by owner/subject)   | gsi2 (by status)      | gsi3 (due)          | gsi4 (by time)        |
 * | request / grant | REQ#<id>           | REQ          | USER#<email>, created#id  | STATUS#<s>, created#id| DUE, dueAt#id       | REQ, created#id       |
 * | key push        | REQ#<requestId>    | PUSH#<id>    |                           | PUSH#<s>, created#id  |                     |                       |
 * | idempotency key | IDEM#<owner>#<key> | IDEM         |                           |                       |                     |                       |
 * | audit head      | AUDIT              | HEAD         |                           |                       |                     |                       |
 * | audit record    | AUDIT              | SEQ#<seq>    | SUBJ#<requestId>, seq     |                       |                     | AUDIT, at#seq         |
 * | Slack message   | REQ#<requestId>    | SLACK#msg#<key>   |                      |                       |                     |                       |
 * | Slack claim     | REQ#<requestId>    | SLACK#claim#<marker> |                   |                       |                     |                       |
 * | key push (also) |                    |              | KEY#<fingerprint>, created#id (trail correlation)                                      |
 * | trail event     | TRAIL#<eventId>    | TRAIL        | TRAIL#<requestId>, t#id   | ALERT#pending, t#id   | TRAIL#UNBROKERED, t#id | TRAIL, t#id (t: eventTime) |
 * | trail checkpoint| TRAILCP#<acct>#<region> | CP      |                           |                       |                     |                       |
 * | claim           | CLAIM#<key>        | CLAIM        | (TTL: expiresAt; alert rate-limit slots)                                                |
 */
export const SEQ_WIDTH = 12;

export const pad = (seq: number) => String(seq).padStart(SEQ_WIDTH, "0");

export const Keys = {
  request: (id: string) => ({ pk: `REQ#${id}`, sk: "REQ" }),
  /** Pushes live in their request's item collection: one Query lists a grant's pushes. */
  push: (requestId: string, pushId: string) => ({ pk: `REQ#${requestId}`, sk: `PUSH#${pushId}` }),
  idempotency: (owner: string, key: string) => ({ pk: `IDEM#${owner}#${key}`, sk: "IDEM" }),
  /** A Slack message the broker posted about a request (approval, alert, extension), for chat.update. */
  slackMessage: (requestId: string, key: string) => ({ pk: `REQ#${requestId}`, sk: `SLACK#msg#${key}` }),
  /** A once-only Slack notification (expiry warning, one Extend click per end time). */
  slackClaim: (requestId: string, marker: string) => ({
    pk: `REQ#${requestId}`,
    sk: `SLACK#claim#${marker}`,
  }),
  /** A CloudTrail event the broker observed; the key is its eventID, so a second delivery cannot be written. */
  trail: (eventId: string) => ({ pk: `TRAIL#${eventId}`, sk: "TRAIL" }),
  trailCheckpoint: (key: string) => ({ pk: `TRAILCP#${key}`, sk: "CP" }),
  claim: (key: string) => ({ pk: `CLAIM#${key}`, sk: "CLAIM" }),
  auditHead: { pk: "AUDIT", sk: "HEAD" },
  audit: (seq: number) => ({ pk: "AUDIT", sk: `SEQ#${pad(seq)}` }),
} as const;

export const INDEX = { byOwner: "gsi1", byStatus: "gsi2", byDue: "gsi3", byTime: "gsi4" } as const;

/** Every key attribute an item may carry; stripped before items leave the adapter. */
export const KEY_ATTRIBUTES = [
  "pk",
  "sk",
  "gsi1pk",
  "gsi1sk",
  "gsi2pk",
  "gsi2sk",
  "gsi3pk",
  "gsi3sk",
  "gsi4pk",
  "gsi4sk",
];

/** An item without its table keys and index keys: what leaves an adapter. */
export function withoutKeys<T>(item: Record<string, unknown>): T {
  const copy = { ...item };
  for (const key of KEY_ATTRIBUTES) delete copy[key];
  return copy as T;
}
