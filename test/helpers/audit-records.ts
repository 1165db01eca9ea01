import type { Audit } from "../../core/audit/index.ts";

export const ALICE = "alice@example.com";
export const BOB = "bob@example.com";
export const CAROL = "carol@example.com";
export const DAVE = "dave@example.com";
/** Alice's own AWS identity in the demo directory (IAM grant mode). */
export const ALICE_ROLE = "arn:aws:iam::111122223333:role/alice";
export const MALLORY = "arn:aws:iam::111122223333:user/mallory";
export const INSTANCE_A = "i-0a1b2c3d4e5f60718";
export const INSTANCE_B = "i-0c0ffee0c0ffee0ee";
const SIGNER_ROLE = "arn:aws:iam::111122223333:role/access-broker-signer";
const REQ_A = "req_01hzx3k4m5n6p7q8r9s0t1v2a1";
const REQ_B = "req_01hzx3k4m5n6p7q8r9s0t1v2b1";
const REQ_D = "req_01hzx3k4m5n6p7q8r9s0t1v2d1";
const REQ_OLD = "req_01hzx3k4m5n6p7q8r9s0t1v2o1";

/**
 * Ten kinds of audit record, each naming people and instances in a different way: alice's request (actor and
 * requester), bob's approval of it and its expiry (requester only), a tunnel as her by SourceIdentity and a
 * call with her own role (principalArn), none of which name her as actor; mallory's call imported by carol
 * (carol is the actor), dave's request, an approval written before records named their requester, an alert,
 * and bob's revocation of alice's grant on the other instance.
 */
export const KINDS = [
  "alice-created",
  "bob-approved",
  "expired",
  "signer-tunnel",
  "alice-role",
  "imported-mallory",
  "dave-created",
  "old-approval",
  "alert",
  "bob-revoked",
] as const;
export type Kind = (typeof KINDS)[number];

function record(kind: Kind, at: string, n: number): Audit.Input {
  const base = { at };
  switch (kind) {
    case "alice-created":
      return {
        ...base,
        type: "request.created",
        actor: ALICE,
        subject: REQ_A,
        data: { requester: ALICE, instanceId: INSTANCE_A, method: "ssh", n },
      };
    case "bob-approved":
      return {
        ...base,
        type: "request.approved",
        actor: BOB,
        subject: REQ_A,
        data: { requester: ALICE, instanceId: INSTANCE_A, approvers: [BOB], n },
      };
    case "expired":
      return {
        ...base,
        type: "grant.expired",
        actor: "system",
        subject: REQ_A,
        data: { requester: ALICE, instanceId: INSTANCE_A, n },
      };
    case "signer-tunnel":
      return {
        ...base,
        type: "trail.observed",
        actor: "system",
        subject: "endpoint:eice-0demo00000000001",
        data: {
          principal: "arn:aws:sts::111122223333:assumed-role/access-broker-signer/grant-x",
          principalArn: SIGNER_ROLE,
          sourceIdentity: ALICE,
          instanceId: INSTANCE_B,
          classification: "outside-window",
          n,
        },
      };
    case "alice-role":
      return {
        ...base,
        type: "trail.observed",
        actor: "system",
        subject: `instance:${INSTANCE_B}`,
        data: {
          principal: "arn:aws:sts::111122223333:assumed-role/alice/laptop",
          principalArn: ALICE_ROLE,
          instanceId: INSTANCE_B,
          classification: "unbrokered",
          n,
        },
      };
    case "imported-mallory":
      return {
        ...base,
        type: "trail.observed",
        actor: CAROL,
        subject: `instance:${INSTANCE_A}`,
        data: { principal: MALLORY, principalArn: MALLORY, instanceId: INSTANCE_A, source: "import", n },
      };
    case "dave-created":
      return {
        ...base,
        type: "request.created",
        actor: DAVE,
        subject: REQ_D,
        data: { requester: DAVE, instanceId: INSTANCE_B, method: "tunnel", n },
      };
    case "old-approval":
      return {
        ...base,
        type: "request.approved",
        actor: BOB,
        subject: REQ_OLD,
        data: { approvers: [BOB], n },
      };
    case "alert":
      return {
        ...base,
        type: "trail.alert_sent",
        actor: "system",
        subject: "alerts:unbrokered",
        data: { classification: "unbrokered", count: 1, n },
      };
    case "bob-revoked":
      return {
        ...base,
        type: "grant.revoked",
        actor: BOB,
        subject: REQ_B,
        data: { requester: ALICE, instanceId: INSTANCE_B, reason: "done", n },
      };
  }
}

/** `n` records cycling through KINDS, one second apart from `start`, in chain order. */
export function auditWorld(n: number, start = Date.parse("2024-05-01T10:00:00Z")) {
  return Array.from({ length: n }, (_, index) => {
    const kind = KINDS[index % KINDS.length] as Kind;
    return { kind, input: record(kind, new Date(start + index * 1_000).toISOString(), index) };
  });
}

/** `GET /audit/events` filters and the kinds each finds: the one table both adapters' tests check. */
export const FILTER_CASES: [string, Record<string, string>, Kind[]][] = [
  [
    "a person: actor, requester, SourceIdentity or directory principal",
    { user: ALICE },
    ["alice-created", "bob-approved", "expired", "signer-tunnel", "alice-role", "bob-revoked"],
  ],
  [
    "a person typed in capitals",
    { user: "Alice@Example.COM" },
    ["alice-created", "bob-approved", "expired", "signer-tunnel", "alice-role", "bob-revoked"],
  ],
  ["an approver: what they did", { user: BOB }, ["bob-approved", "old-approval", "bob-revoked"]],
  ["an importer: the records of their imports", { user: CAROL }, ["imported-mallory"]],
  ["an email nobody's records name", { user: "nobody@example.com" }, []],
  ["an instance", { instance: INSTANCE_A }, ["alice-created", "bob-approved", "expired", "imported-mallory"]],
  [
    "another instance",
    { instance: INSTANCE_B },
    ["signer-tunnel", "alice-role", "dave-created", "bob-revoked"],
  ],
  [
    "a person and an instance",
    { user: ALICE, instance: INSTANCE_B },
    ["signer-tunnel", "alice-role", "bob-revoked"],
  ],
  ["an instance nothing names", { instance: "i-00000000000000000" }, []],
];

/** The sequence numbers (1-based chain positions) of `kinds` among `world`, oldest first. */
export const seqsOf = (world: { kind: Kind }[], kinds: readonly Kind[], offset = 0) =>
  world.flatMap((entry, index) => (kinds.includes(entry.kind) ? [offset + index + 1] : []));
