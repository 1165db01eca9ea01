import * as z from "zod";
import { InstanceId } from "../policy/schema.ts";
import { InputTime } from "../request/schema.ts";

/** Every trail event lands in exactly one of these (design §5). */
export const Classification = z.enum([
  /** Matched a grant, inside its window, within its constraints. */
  "brokered",
  /** Matched a grant, but happened before it started or after it ended. */
  "outside-window",
  /** Matched a grant, but instance, OS user, endpoint, IP, port, duration or caller differ from it. */
  "constraint-mismatch",
  /** AWS refused the call (`errorCode`): someone tried. */
  "denied-attempt",
  /** No grant allowed it: someone went around the broker. */
  "unbrokered",
  /** The record could not be understood; kept raw. */
  "unparsed",
]);
export type Classification = z.infer<typeof Classification>;

export const EIC_EVENT_SOURCE = "ec2-instance-connect.amazonaws.com";

export const Source = z.enum(["eventbridge", "lookup", "import"]);
export type Source = z.infer<typeof Source>;

/** CloudTrail's userIdentity, flattened to what correlation needs (protocols.md §3.3). */
export const Identity = z.object({
  /** IAMUser, AssumedRole, FederatedUser, AWSService, Root, Unknown… (kept as CloudTrail says). */
  type: z.string(),
  arn: z.string().optional(),
  principalId: z.string().optional(),
  accountId: z.string().optional(),
  accessKeyId: z.string().optional(),
  userName: z.string().optional(),
  /** AssumedRole: the role session name (last segment of the assumed-role ARN). */
  sessionName: z.string().optional(),
  /** AssumedRole: `sessionContext.sourceIdentity`, when one was set. */
  sourceIdentity: z.string().optional(),
  /** The IAM identity behind the call: the role of a session, the user, the root. */
  principalArn: z.string().optional(),
  /** AWSService: the service that made the call. */
  invokedBy: z.string().optional(),
});
export type Identity = z.infer<typeof Identity>;

const Time = z.iso.datetime();

const Common = {
  /** CloudTrail's eventID (a GUID): the dedupe key. Unparsed records without one get a content hash. */
  eventId: z.string(),
  /** When AWS says the call happened (UTC, to the second): what windows are compared with. */
  eventTime: Time,
  eventName: z.string(),
  /** `recipientAccountId`: the account the call was made in. */
  account: z.string(),
  region: z.string(),
  identity: Identity,
  sourceIp: z.string().optional(),
  userAgent: z.string().optional(),
  requestId: z.string().optional(),
  errorCode: z.string().optional(),
  errorMessage: z.string().optional(),
};

/** SendSSHPublicKey. */
export const KeyPush = z.object({
  kind: z.literal("key-push"),
  ...Common,
  instanceId: z.string(),
  osUser: z.string().optional(),
  /** `SHA256:…` of the logged public key, as core/access computes it for the pushes it makes. */
  fingerprint: z.string().optional(),
  keyType: z.string().optional(),
});

/** SendSerialConsoleSSHPublicKey: the broker never makes it. */
export const SerialPush = z.object({
  kind: z.literal("serial-push"),
  ...Common,
  instanceId: z.string(),
  serialPort: z.number().int().optional(),
  fingerprint: z.string().optional(),
  keyType: z.string().optional(),
});

/** OpenTunnel (EICE): names an endpoint and a private IP, never an instance. */
export const Tunnel = z.object({
  kind: z.literal("tunnel"),
  ...Common,
  endpointId: z.string(),
  privateIp: z.string().optional(),
  remotePort: z.number().int().optional(),
  /** Absent when the client did not send it: the service default (3600 s) applies. */
  maxTunnelDuration: z.number().int().optional(),
});

/** A record that mentions EC2 Instance Connect but could not be understood; the raw record is kept. */
export const Unparsed = z.object({
  kind: z.literal("unparsed"),
  eventId: z.string(),
  eventTime: Time.optional(),
  eventName: z.string().optional(),
  account: z.string().optional(),
  region: z.string().optional(),
  reason: z.string(),
});

export const TrailEvent = z.discriminatedUnion("kind", [KeyPush, SerialPush, Tunnel, Unparsed]);
export type TrailEvent = z.infer<typeof TrailEvent>;
export type ParsedEvent = Exclude<TrailEvent, { kind: "unparsed" }>;

/** What correlation decided about one event. */
export const Verdict = z.object({
  classification: Classification,
  requestId: z.string().optional(),
  grantId: z.string().optional(),
  pushId: z.string().optional(),
  /** The matched request's requester: the broker user the event is attributed to (`?user=` finds it). */
  requester: z.string().optional(),
  /** The matched request's instance (a tunnel names only an endpoint and IP; `?instance=` finds it). */
  instanceId: z.string().optional(),
  /** How it was matched: `push`, `session`, `source-identity`, `iam-principal`. */
  matchedBy: z.enum(["push", "session", "source-identity", "iam-principal"]).optional(),
  /** Why it is not brokered (or how it was matched), in words for the audit log and alerts. */
  reasons: z.array(z.string()),
});
export type Verdict = z.infer<typeof Verdict>;

/** One ingested trail event as stored: the normalized event, the verdict, and the raw record. */
export const Observation = z.object({
  eventId: z.string(),
  event: TrailEvent,
  verdict: Verdict,
  source: Source,
  /** When the broker first recorded it. */
  observedAt: Time,
  /** When it was last re-correlated (its push or grant record appeared after it). */
  correlatedAt: Time.optional(),
  /** The raw CloudTrail record as JSON text (cut at 64 KB, with its SHA-256, for oversized records). */
  raw: z.string(),
  rawSha256: z.string().optional(),
  /** Alert state: `pending` until the security channel was told, `sent`, or `none` (not alerted). */
  alert: z.enum(["pending", "sent", "none"]),
  alertedAt: Time.optional(),
  version: z.number().int().positive(),
});
export type Observation = z.infer<typeof Observation>;

/** The event time of any event, for ordering and windows (unparsed records may have none). */
export function timeOf(event: TrailEvent, fallback: string): string {
  return event.eventTime ?? fallback;
}

/** At most this many records per `POST /audit/trail` (the CLI sends batches well under the 64 KB body limit). */
export const MAX_IMPORT_RECORDS = 200;

export const ImportInput = z.strictObject({
  records: z.array(z.unknown()).min(1).max(MAX_IMPORT_RECORDS),
});

export const IngestSummary = z.object({
  received: z.number(),
  skipped: z.number(),
  recorded: z.number(),
  duplicates: z.number(),
  classifications: z.partialRecord(Classification, z.number()),
});

/** Whom `?user=` names: an IAM/STS principal (any session of a role, an IAM user, the root)… */
const PRINCIPAL_ARN =
  /^arn:aws[a-z-]*:(?:iam|sts)::\d{12}:(?:root|(?:role|user|assumed-role|federated-user)\/[\w+=,.@/-]{1,512})$/;
const EMAIL = z.email();

/** …or a person by email (lowercased, as the directory and requests hold them). */
export const UserFilter = z
  .string()
  .max(1_100)
  .refine(
    (value) => PRINCIPAL_ARN.test(value) || EMAIL.safeParse(value).success,
    "must be an email address or an IAM/STS principal ARN",
  )
  .transform((value) => (PRINCIPAL_ARN.test(value) ? { principal: value } : { email: value.toLowerCase() }));

export const ListQuery = z.strictObject({
  from: InputTime.optional(),
  to: InputTime.optional(),
  classification: Classification.optional(),
  user: UserFilter.optional().describe(
    "An email: events correlated to that person's grants, or made with their SourceIdentity, session name, " +
      "IAM user name or directory AWS principals. An ARN: events whose caller ARN or principal ARN is exactly it.",
  ),
  instance: InstanceId.optional().describe(
    "Events naming this instance, or correlated to a grant for it (tunnels name only an endpoint and IP).",
  ),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(2_048).optional(),
});
