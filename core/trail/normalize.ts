import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import * as z from "zod";
import { EIC_EVENT_SOURCE, type Identity, type TrailEvent } from "./schema.ts";

/**
 * Tolerant reading of CloudTrail records of EC2 Instance Connect (protocols.md §3): the current field names
 * and the older ones (`osUser`, `SSHKey.publicKey`), `maxTunnelDuration`/`remotePort` as strings or numbers
 * or absent, every userIdentity type, denied calls. Anything that cannot be understood becomes `unparsed`
 * with a reason; nothing here throws.
 */

const Text = z.string().trim().min(1).max(2_048);
const optionalText = Text.optional().catch(undefined);

/** What every record needs; everything else is looked at field by field. */
const Envelope = z.looseObject({
  eventID: Text,
  eventTime: z.string().refine((value) => !Number.isNaN(Date.parse(value)), "not a time"),
  eventSource: Text,
  eventName: Text,
  awsRegion: Text,
  recipientAccountId: optionalText,
  sourceIPAddress: optionalText,
  userAgent: z.string().max(2_048).optional().catch(undefined),
  requestID: optionalText,
  errorCode: optionalText,
  errorMessage: z.string().max(4_096).optional().catch(undefined),
  userIdentity: z.looseObject({}).optional().catch(undefined),
  requestParameters: z.looseObject({}).nullable().optional().catch(undefined),
});

const UserIdentity = z.looseObject({
  type: optionalText,
  arn: optionalText,
  principalId: optionalText,
  accountId: optionalText,
  accessKeyId: optionalText,
  userName: optionalText,
  invokedBy: optionalText,
  sessionContext: z
    .looseObject({
      sourceIdentity: optionalText,
      sessionIssuer: z.looseObject({ arn: optionalText, userName: optionalText }).optional().catch(undefined),
    })
    .optional()
    .catch(undefined),
});

/** `arn:aws:sts::111122223333:assumed-role/Role/session` → role name and session name. */
const ASSUMED_ROLE = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([^/]+)\/(.+)$/;

export function identityOf(raw: unknown): Identity {
  const parsed = UserIdentity.safeParse(raw ?? {});
  if (!parsed.success) return { type: "Unknown" };
  const user = parsed.data;
  const type = user.type ?? "Unknown";
  const identity: Identity = {
    type,
    arn: user.arn,
    principalId: user.principalId,
    accountId: user.accountId,
    accessKeyId: user.accessKeyId,
    userName: user.userName,
    invokedBy: user.invokedBy,
    sourceIdentity: user.sessionContext?.sourceIdentity,
  };
  const issuer = user.sessionContext?.sessionIssuer?.arn;
  if (type === "AssumedRole") {
    const match = user.arn ? ASSUMED_ROLE.exec(user.arn) : null;
    identity.sessionName =
      match?.[4] ??
      (user.principalId?.includes(":") ? user.principalId.split(":").slice(1).join(":") : undefined);
    // The issuer ARN keeps the role's path; the assumed-role ARN does not.
    identity.principalArn =
      issuer ?? (match ? `arn:${match[1]}:iam::${match[2]}:role/${match[3]}` : undefined);
  } else if (type === "FederatedUser") {
    identity.principalArn = issuer ?? user.arn;
  } else if (type === "IAMUser" || type === "Root") {
    identity.principalArn = user.arn;
  }
  for (const key of Object.keys(identity) as (keyof Identity)[])
    if (identity[key] === undefined) delete identity[key];
  return identity;
}

/** `SHA256:<unpadded base64>` of an OpenSSH public key line's blob (as `ssh-keygen -l` and core/access). */
export function keyFingerprint(line: string | undefined): { fingerprint?: string; keyType?: string } {
  if (!line) return {};
  const [type, base64] = line.trim().split(/\s+/);
  if (!type || !base64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) return type ? { keyType: type } : {};
  const blob = Buffer.from(base64, "base64");
  if (blob.length < 8) return { keyType: type };
  return {
    keyType: type,
    fingerprint: `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`,
  };
}

function text(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}

/** "22", 22, " 22 " → 22; anything else → undefined. */
function integer(value: unknown): number | undefined {
  const number =
    typeof value === "number" ? value : typeof value === "string" ? Number(value.trim()) : Number.NaN;
  return Number.isInteger(number) ? number : undefined;
}

/** The logged public key: `sSHPublicKey` (current), `SSHKey.publicKey` (2018 docs), or lookalikes. */
function publicKeyOf(parameters: Record<string, unknown>): string | undefined {
  const nested = parameters.SSHKey ?? parameters.sshKey;
  return (
    text(parameters.sSHPublicKey) ??
    text(parameters.sshPublicKey) ??
    text(parameters.SSHPublicKey) ??
    text(parameters["SSHKey.publicKey"]) ??
    (typeof nested === "object" && nested !== null
      ? text((nested as Record<string, unknown>).publicKey)
      : undefined)
  );
}

/** A stable id for a record that has no usable eventID: the SHA-256 of its canonical JSON. */
export function contentId(raw: unknown): string {
  return `sha256-${createHash("sha256")
    .update(canonicalize(raw) ?? String(raw))
    .digest("hex")}`;
}

/** True when the record is one EC2 Instance Connect logged (or claims to be, malformed or not). */
export function isInstanceConnect(raw: unknown): boolean {
  if (typeof raw !== "object" || raw === null) return false;
  const source = (raw as { eventSource?: unknown }).eventSource;
  return typeof source !== "string" || source.trim() === EIC_EVENT_SOURCE;
}

/** Normalizes one raw CloudTrail record of EC2 Instance Connect; never throws. */
export function normalize(raw: unknown): TrailEvent {
  const envelope = Envelope.safeParse(raw);
  const loose = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
  const unparsed = (reason: string): TrailEvent => {
    const time = text(loose.eventTime);
    return {
      kind: "unparsed",
      eventId: text(loose.eventID) ?? contentId(raw),
      ...(time && !Number.isNaN(Date.parse(time)) ? { eventTime: new Date(time).toISOString() } : {}),
      ...(text(loose.eventName) ? { eventName: text(loose.eventName) } : {}),
      ...(text(loose.recipientAccountId) ? { account: text(loose.recipientAccountId) } : {}),
      ...(text(loose.awsRegion) ? { region: text(loose.awsRegion) } : {}),
      reason,
    };
  };
  if (!envelope.success) {
    const issue = envelope.error.issues[0];
    return unparsed(`${issue?.path.join(".") || "record"}: ${issue?.message ?? "not a CloudTrail record"}`);
  }
  const record = envelope.data;
  if (record.eventSource !== EIC_EVENT_SOURCE) return unparsed(`eventSource is ${record.eventSource}`);
  const identity = identityOf(record.userIdentity);
  const account = record.recipientAccountId ?? identity.accountId;
  if (!account) return unparsed("no recipientAccountId");
  const common = {
    eventId: record.eventID,
    eventTime: new Date(record.eventTime).toISOString(),
    // The 2018 documentation example has "SendSSHPublicKey " with a trailing space.
    eventName: record.eventName,
    account,
    region: record.awsRegion,
    identity,
    ...(record.sourceIPAddress ? { sourceIp: record.sourceIPAddress } : {}),
    ...(record.userAgent ? { userAgent: record.userAgent } : {}),
    ...(record.requestID ? { requestId: record.requestID } : {}),
    ...(record.errorCode ? { errorCode: record.errorCode } : {}),
    ...(record.errorMessage ? { errorMessage: record.errorMessage } : {}),
  };
  const parameters = (record.requestParameters ?? {}) as Record<string, unknown>;
  switch (record.eventName) {
    case "SendSSHPublicKey": {
      const instanceId = text(parameters.instanceId);
      if (!instanceId) return unparsed("SendSSHPublicKey without requestParameters.instanceId");
      const osUser = text(parameters.instanceOSUser) ?? text(parameters.osUser);
      return {
        kind: "key-push",
        ...common,
        instanceId,
        ...(osUser ? { osUser } : {}),
        ...keyFingerprint(publicKeyOf(parameters)),
      };
    }
    case "SendSerialConsoleSSHPublicKey": {
      const instanceId = text(parameters.instanceId);
      if (!instanceId) return unparsed("SendSerialConsoleSSHPublicKey without requestParameters.instanceId");
      const serialPort = integer(parameters.serialPort);
      return {
        kind: "serial-push",
        ...common,
        instanceId,
        ...(serialPort === undefined ? {} : { serialPort }),
        ...keyFingerprint(publicKeyOf(parameters)),
      };
    }
    case "OpenTunnel": {
      const endpointId = text(parameters.instanceConnectEndpointId);
      if (!endpointId) return unparsed("OpenTunnel without requestParameters.instanceConnectEndpointId");
      const privateIp = text(parameters.privateIpAddress);
      const remotePort = integer(parameters.remotePort);
      const maxTunnelDuration = integer(parameters.maxTunnelDuration);
      return {
        kind: "tunnel",
        ...common,
        endpointId,
        ...(privateIp ? { privateIp } : {}),
        ...(remotePort === undefined ? {} : { remotePort }),
        ...(maxTunnelDuration === undefined ? {} : { maxTunnelDuration }),
      };
    }
    default:
      return unparsed(`${record.eventName} is not an event the broker correlates`);
  }
}
