import type { Audit } from "../../core/audit/index.ts";
import type { Observation } from "../../core/trail/schema.ts";

export const ALICE = "alice@example.com";
/** Alice's own AWS identity in the demo directory (IAM grant mode). */
export const ALICE_ROLE = "arn:aws:iam::111122223333:role/alice";
export const MALLORY = "arn:aws:iam::111122223333:user/mallory";
export const INSTANCE_A = "i-0a1b2c3d4e5f60718";
export const INSTANCE_B = "i-0c0ffee0c0ffee0ee";
const BROKER_ROLE = "arn:aws:iam::111122223333:role/access-broker";
const SIGNER_ROLE = "arn:aws:iam::111122223333:role/access-broker-signer";

const common = (eventId: string, eventTime: string) => ({
  eventId,
  eventTime,
  account: "111122223333",
  region: "us-east-1",
});

/**
 * Five kinds of observation, each attributable to a person in a different way: the broker's push for alice
 * (only the verdict names her), her signer-session tunnel (SourceIdentity; the grant names the instance),
 * a call with her own role, mallory's unbrokered push, and an unparsed record.
 */
export const KINDS = ["alice-push", "alice-tunnel", "alice-role", "mallory", "unparsed"] as const;
export type Kind = (typeof KINDS)[number];

export function observation(kind: Kind, eventId: string, eventTime: string): Observation {
  const base = {
    source: "import" as const,
    observedAt: eventTime,
    raw: "{}",
    alert: "none" as const,
    version: 1,
  };
  const brokered = (instanceId: string) => ({
    classification: "brokered" as const,
    requestId: "req_01hzx3k4m5n6p7q8r9s0t1v2w3",
    grantId: "gr_01hzx3k4m5n6p7q8r9s0t1v2w3",
    requester: ALICE,
    instanceId,
    reasons: ["matched"],
  });
  switch (kind) {
    case "alice-push":
      return {
        ...base,
        eventId,
        event: {
          kind: "key-push",
          ...common(eventId, eventTime),
          eventName: "SendSSHPublicKey",
          identity: {
            type: "AssumedRole",
            arn: "arn:aws:sts::111122223333:assumed-role/access-broker/broker",
            principalArn: BROKER_ROLE,
            sessionName: "broker",
          },
          instanceId: INSTANCE_A,
          osUser: "ec2-user",
        },
        verdict: { ...brokered(INSTANCE_A), matchedBy: "push" },
      };
    case "alice-tunnel":
      return {
        ...base,
        eventId,
        event: {
          kind: "tunnel",
          ...common(eventId, eventTime),
          eventName: "OpenTunnel",
          identity: {
            type: "AssumedRole",
            principalArn: SIGNER_ROLE,
            sessionName: "grant-gr_01hzx3k4m5n6p7q8r9s0t1v2w3",
            sourceIdentity: ALICE,
          },
          endpointId: "eice-0demo00000000001",
          privateIp: "10.0.2.20",
          remotePort: 22,
        },
        verdict: { ...brokered(INSTANCE_B), matchedBy: "session" },
      };
    case "alice-role":
      return {
        ...base,
        eventId,
        event: {
          kind: "key-push",
          ...common(eventId, eventTime),
          eventName: "SendSSHPublicKey",
          identity: { type: "AssumedRole", principalArn: ALICE_ROLE, sessionName: "laptop" },
          instanceId: INSTANCE_B,
        },
        verdict: { classification: "unbrokered", reasons: ["no grant"] },
      };
    case "mallory":
      return {
        ...base,
        eventId,
        event: {
          kind: "key-push",
          ...common(eventId, eventTime),
          eventName: "SendSSHPublicKey",
          identity: { type: "IAMUser", arn: MALLORY, principalArn: MALLORY, userName: "mallory" },
          instanceId: INSTANCE_A,
        },
        verdict: { classification: "unbrokered", reasons: ["no grant"] },
      };
    case "unparsed":
      return {
        ...base,
        eventId,
        event: { kind: "unparsed", eventId, eventTime, reason: "odd" },
        verdict: { classification: "unparsed", reasons: ["odd"] },
      };
  }
}

/** `n` observations cycling through KINDS, one second apart from `start`, with their audit records. */
export function world(n: number, start = Date.parse("2024-05-01T10:00:00Z"), prefix = "ev") {
  return Array.from({ length: n }, (_, index) => {
    const kind = KINDS[index % KINDS.length] as Kind;
    const eventTime = new Date(start + index * 1_000).toISOString().replace(".000", "");
    const eventId = `${prefix}-${String(index).padStart(5, "0")}`;
    const audit: Audit.Input = {
      type: "trail.observed",
      at: eventTime,
      actor: "system",
      subject: eventId,
      data: { eventId },
    };
    return { kind, observation: observation(kind, eventId, eventTime), audit };
  });
}
