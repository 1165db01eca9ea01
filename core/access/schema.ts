import * as z from "zod";
import { InstanceId, OsUser } from "../policy/schema.ts";
import { MAX_TUNNEL_SECONDS } from "./documents.ts";

const Time = z.iso.datetime();

/** Body of `POST /grants/{id}/ssh-key`: only the key; instance and OS user come from the grant. */
export const PushKeyInput = z.strictObject({
  // Generous bound for the transport; the key itself is checked (80–4096 chars) without echoing it back.
  publicKey: z.string().max(16_384),
});
export type PushKeyInput = z.input<typeof PushKeyInput>;

/** Where to point `ssh` after a push: the instance's public address, or an EICE tunnel to its private IP. */
export const ConnectRoute = z.discriminatedUnion("type", [
  z.object({ type: z.literal("direct"), host: z.string(), port: z.literal(22) }),
  z.object({ type: z.literal("eice"), endpointId: z.string(), privateIp: z.string(), port: z.literal(22) }),
]);
export type ConnectRoute = z.infer<typeof ConnectRoute>;

export const PushResult = z.object({
  grantId: z.string(),
  instanceId: InstanceId,
  osUser: OsUser,
  fingerprint: z.string(),
  /** SendSSHPublicKey's RequestId (also CloudTrail's requestID and the instance's syslog request-id). */
  requestId: z.string(),
  pushedAt: Time,
  /** The key is served by instance metadata for 60 s: connect before this. */
  keyExpiresAt: Time,
  route: ConnectRoute,
});
export type PushResult = z.infer<typeof PushResult>;

/** Body of `POST /grants/{id}/tunnel`. */
export const TunnelInput = z.strictObject({
  /** Seconds; capped at what is left of the grant's window (and 3600). */
  maxTunnelDuration: z.number().int().min(1).max(MAX_TUNNEL_SECONDS).optional(),
});
export type TunnelInput = z.input<typeof TunnelInput>;

export const TunnelResult = z.object({
  grantId: z.string(),
  /** SigV4-presigned `wss://…/openTunnel?…`: a bearer token for 60 s. Never log it. */
  url: z.string(),
  expiresAt: Time,
  endpointId: z.string(),
  privateIp: z.string(),
  remotePort: z.number().int(),
  maxTunnelDuration: z.number().int(),
});
export type TunnelResult = z.infer<typeof TunnelResult>;

/**
 * One SendSSHPublicKey the broker made or is making. Written as `intent` before the AWS call and completed
 * in one transaction with its audit record after success, so a crash in between leaves evidence that trail
 * correlation can match against the CloudTrail event (by fingerprint, instance, OS user and time).
 */
export const Push = z.object({
  id: z.string(),
  grantId: z.string(),
  requestId: z.string(),
  status: z.enum(["intent", "pushed", "failed"]),
  requestedBy: z.string(),
  instanceId: InstanceId,
  osUser: OsUser,
  account: z.string(),
  region: z.string(),
  keyType: z.string(),
  fingerprint: z.string(),
  createdAt: Time,
  pushedAt: Time.optional(),
  awsRequestId: z.string().optional(),
  /** The AWS or broker error code of a failed push (never the message, which may quote input). */
  error: z.string().optional(),
});
export type Push = z.infer<typeof Push>;
