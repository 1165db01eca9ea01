export * as Access from "./index.ts";

import { ConflictError, ForbiddenError } from "../error.ts";
import type { Actor } from "../identity/index.ts";
import { RDP_PORT } from "../policy/index.ts";
import * as Request from "../request/index.ts";
import * as Target from "../target/index.ts";
import { parse } from "../util/fn.ts";
import { createId } from "../util/id.ts";
import { log } from "../util/log.ts";
import * as Documents from "./documents.ts";
import {
  type ConnectRoute,
  type Push,
  PushKeyInput,
  type PushResult,
  TunnelInput,
  type TunnelResult,
} from "./schema.ts";
import { parsePublicKey } from "./ssh-key.ts";
import type { PushStore } from "./store.ts";

export * from "./schema.ts";
export { type PublicKey, parsePublicKey } from "./ssh-key.ts";
export type { PushStore } from "./store.ts";
export { Documents };

/** Port: EC2 Instance Connect `SendSSHPublicKey` as the broker role of the instance's account. */
export interface KeyPusher {
  send(input: {
    account: string;
    region: string;
    instanceId: string;
    osUser: string;
    publicKey: string;
  }): Promise<{ requestId: string }>;
}

export interface TunnelRequest {
  account: string;
  region: string;
  /** The per-grant signer session: who the OpenTunnel call is attributed to in CloudTrail. */
  session: { sessionName: string; sourceIdentity: string; policy: string; durationSeconds: number };
  endpointId: string;
  dnsName: string;
  remotePort: number;
  privateIp: string;
  maxTunnelDuration: number;
  signingDate: Date;
}

export interface SignedTunnel {
  url: string;
  expiresAt: Date;
  /** The signer session's access key id (ASIA…): what CloudTrail's userIdentity.accessKeyId shows. */
  accessKeyId: string;
  sessionExpiresAt?: Date;
}

/** Port: assume the per-grant signer session and presign the OpenTunnel URL with it. */
export interface TunnelSigner {
  sign(input: TunnelRequest): Promise<SignedTunnel>;
}

export interface Deps extends Request.Deps {
  pushes: PushStore;
  keys: KeyPusher;
  tunnels: TunnelSigner;
}

/** Adapters for a broker without AWS access (tests of the request lifecycle alone). */
export const notConfigured: KeyPusher & TunnelSigner = {
  send: () => Promise.reject(unconfigured()),
  sign: () => Promise.reject(unconfigured()),
};

export const notConfiguredStore: PushStore = {
  beginPush: () => Promise.reject(unconfigured()),
  completePush: () => Promise.reject(unconfigured()),
  failPush: () => Promise.reject(unconfigured()),
  listPushes: async () => [],
};

function unconfigured() {
  return new ConflictError("access.not_configured", "This broker has no AWS access configured");
}

/** How long a pushed key stays in instance metadata (protocols.md §2.1). */
export const KEY_LIFETIME_SECONDS = 60;
/** The CLI's presigned URL lifetime (protocols.md §1.2). */
export const URL_LIFETIME_SECONDS = 60;
/** The shortest STS session; the session policy's aws:CurrentTime bound cuts shorter grants. */
export const SIGNER_SESSION_SECONDS = 900;
/** STS RoleSessionName / SourceIdentity: 2–64 of `[\w+=,.@-]` (protocols.md §4.4). */
const STS_NAME = /^[\w+=,.@-]{2,64}$/;

/**
 * The grant the caller may use right now: theirs, active, inside its window, delivered by the broker.
 * Read strongly consistent, so a revoke is effective for the very next call.
 */
async function usableGrant(deps: Deps, actor: Actor, grantId: string, at: Date): Promise<Request.Info> {
  const item = await Request.loadByGrantId(deps, actor, grantId);
  if (item.requester !== actor.email)
    throw new ForbiddenError("grant.not_requester", "Only the requester can use this grant");
  if (item.status !== "active") {
    const what = Request.toGrant(item) ? "grant" : "request";
    const when = item.status === "approved" && item.startAt ? `; it starts at ${item.startAt}` : "";
    throw new ConflictError("grant.not_active", `The ${what} is ${item.status}${when}`, {
      status: item.status,
    });
  }
  const startsAt = Date.parse(item.startsAt ?? "");
  const endsAt = Date.parse(item.endsAt ?? "");
  if (!(at.getTime() >= startsAt && at.getTime() < endsAt))
    throw new ConflictError(
      "grant.outside_window",
      `The grant's window is ${item.startsAt} to ${item.endsAt}`,
      {
        startsAt: item.startsAt,
        endsAt: item.endsAt,
      },
    );
  if (item.grantMode === "iam")
    throw new ConflictError(
      "grant.iam_mode",
      `This grant is delivered through your own AWS identity (${item.awsPrincipal}): use the AWS CLI with your credentials`,
    );
  return item;
}

/** The route stored with the request; resolved now for grants made before the broker had AWS access. */
async function routeOf(deps: Deps, item: Request.Info, at: Date): Promise<Target.Route> {
  if (item.network) return item.network.route;
  const instance = await deps.targets.describe(item.instanceId);
  const network = instance ? await Target.snapshot(deps.targets, instance, item.method, at) : undefined;
  if (!network)
    throw new ConflictError("grant.no_route", `The broker does not know how to reach ${item.instanceId}`);
  return network.route;
}

function partitionFor(deps: Deps, account: string): string {
  const role = deps.config.settings.aws.accounts[account]?.brokerRoleArn;
  return role ? Documents.partitionOf(role) : "aws";
}

/**
 * Pushes the caller's public key to the grant's instance for the grant's OS user (`POST /grants/{id}/ssh-key`).
 * Exactly one `grant.key_pushed` audit record per push AWS accepted; a failed push leaves none.
 */
export async function pushKey(
  deps: Deps,
  actor: Actor,
  grantId: string,
  input: unknown,
): Promise<PushResult> {
  const { publicKey } = parse(PushKeyInput, input);
  const key = parsePublicKey(publicKey);
  const at = Request.now(deps);
  const item = await usableGrant(deps, actor, grantId, at);
  if (item.method !== "ssh" || !item.osUser)
    throw new ConflictError(
      "grant.not_ssh",
      `This is a ${item.method} grant; keys are pushed for ssh grants only`,
    );
  const route = await routeOf(deps, item, at);

  const push: Push = {
    id: createId("push", at.getTime()),
    grantId: item.grantId,
    requestId: item.id,
    status: "intent",
    requestedBy: actor.email,
    instanceId: item.instanceId,
    osUser: item.osUser,
    account: item.account,
    region: item.region,
    keyType: key.type,
    fingerprint: key.fingerprint,
    createdAt: at.toISOString(),
  };
  await deps.pushes.beginPush(push);
  let awsRequestId: string;
  try {
    ({ requestId: awsRequestId } = await deps.keys.send({
      account: item.account,
      region: item.region,
      instanceId: item.instanceId,
      osUser: item.osUser,
      publicKey: key.line,
    }));
  } catch (error) {
    const code = (error as { code?: string }).code ?? (error as Error).name ?? "unknown";
    await deps.pushes
      .failPush({ ...push, status: "failed", error: code })
      .catch((failure: unknown) =>
        log.error("could not mark a push failed", { pushId: push.id, error: failure }),
      );
    throw error;
  }
  const pushedAt = Request.now(deps);
  const keyExpiresAt = new Date(pushedAt.getTime() + KEY_LIFETIME_SECONDS * 1000);
  await deps.pushes.completePush(
    { ...push, status: "pushed", pushedAt: pushedAt.toISOString(), awsRequestId },
    {
      type: "grant.key_pushed",
      at: pushedAt.toISOString(),
      actor: actor.email,
      subject: item.id,
      data: {
        grantId: item.grantId,
        requester: item.requester,
        pushId: push.id,
        fingerprint: key.fingerprint,
        keyType: key.type,
        instanceId: item.instanceId,
        osUser: item.osUser,
        account: item.account,
        region: item.region,
        awsRequestId,
        pushedAt: pushedAt.toISOString(),
        keyExpiresAt: keyExpiresAt.toISOString(),
      },
    },
  );
  const connect: ConnectRoute =
    route.type === "direct"
      ? { type: "direct", host: route.host, port: 22 }
      : { type: "eice", endpointId: route.endpointId, privateIp: route.ip, port: 22 };
  return {
    grantId: item.grantId,
    instanceId: item.instanceId,
    osUser: item.osUser,
    fingerprint: key.fingerprint,
    requestId: awsRequestId,
    pushedAt: pushedAt.toISOString(),
    keyExpiresAt: keyExpiresAt.toISOString(),
    route: connect,
  };
}

/** The remote port a grant may tunnel to: its port (tunnel), 3389 (rdp), 22 (ssh through EICE). */
function remotePortOf(item: Request.Info): number {
  if (item.method === "ssh") return 22;
  if (item.method === "rdp") return item.port ?? RDP_PORT;
  if (item.port === undefined) throw new ConflictError("grant.no_port", "This tunnel grant names no port");
  return item.port;
}

/**
 * Authorizes one EICE tunnel under the grant (`POST /grants/{id}/tunnel`): a per-grant signer session
 * (`grant-<id>`, SourceIdentity = the requester) whose session policy allows only this endpoint, IP, port
 * and duration before the grant's end, and a URL presigned with it, valid 60 s.
 */
export async function authorizeTunnel(
  deps: Deps,
  actor: Actor,
  grantId: string,
  input: unknown = {},
): Promise<TunnelResult> {
  const requested = parse(TunnelInput, input ?? {});
  const at = Request.now(deps);
  const item = await usableGrant(deps, actor, grantId, at);
  const route = await routeOf(deps, item, at);
  if (route.type !== "eice")
    throw new ConflictError(
      "grant.direct_route",
      `${item.instanceId} is reached directly at ${route.host}; there is no tunnel to open`,
    );
  const remotePort = remotePortOf(item);
  const secondsLeft = Math.floor((Date.parse(item.endsAt ?? "") - at.getTime()) / 1000);
  if (secondsLeft < 1)
    throw new ConflictError("grant.outside_window", `The grant ends at ${item.endsAt}`, {
      endsAt: item.endsAt,
    });
  const cap = Math.min(Documents.MAX_TUNNEL_SECONDS, secondsLeft);
  const maxTunnelDuration = Math.min(requested.maxTunnelDuration ?? cap, cap);
  const sessionName = `grant-${item.grantId}`;
  if (!STS_NAME.test(sessionName)) throw new Error(`grant id ${item.grantId} makes an invalid session name`);
  if (!STS_NAME.test(item.requester) || item.requester.startsWith("aws:"))
    throw new ForbiddenError(
      "tunnel.unattributable",
      "Your email cannot be carried as the STS SourceIdentity (2-64 letters, digits and + = , . @ - _)",
    );
  const endpointArn =
    route.endpointArn ??
    Documents.endpointArn(partitionFor(deps, item.account), item.region, item.account, route.endpointId);
  const endsAt = new Date(item.endsAt ?? at.toISOString());
  const policy = Documents.tunnelSessionPolicy({
    endpointArn,
    remotePort,
    ip: route.ip,
    maxTunnelDuration: cap,
    notAfter: endsAt,
  });
  const signed = await deps.tunnels.sign({
    account: item.account,
    region: item.region,
    session: { sessionName, sourceIdentity: item.requester, policy, durationSeconds: SIGNER_SESSION_SECONDS },
    endpointId: route.endpointId,
    dnsName: route.dnsName,
    remotePort,
    privateIp: route.ip,
    maxTunnelDuration,
    signingDate: at,
  });
  // The audit record is written before the URL leaves the broker: no tunnel is authorized unrecorded.
  await deps.requests.append([
    {
      type: "grant.tunnel_authorized",
      at: at.toISOString(),
      actor: actor.email,
      subject: item.id,
      data: {
        grantId: item.grantId,
        requester: item.requester,
        instanceId: item.instanceId,
        endpointId: route.endpointId,
        privateIp: route.ip,
        remotePort,
        maxTunnelDuration,
        sessionName,
        sourceIdentity: item.requester,
        accessKeyId: signed.accessKeyId,
        urlExpiresAt: signed.expiresAt.toISOString(),
        sessionExpiresAt: signed.sessionExpiresAt?.toISOString(),
      },
    },
  ]);
  return {
    grantId: item.grantId,
    url: signed.url,
    expiresAt: signed.expiresAt.toISOString(),
    endpointId: route.endpointId,
    privateIp: route.ip,
    remotePort,
    maxTunnelDuration,
  };
}
