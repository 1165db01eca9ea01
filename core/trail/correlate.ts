import type { Push } from "../access/schema.ts";
import type { Config } from "../policy/index.ts";
import type { Info } from "../request/schema.ts";
import { requestIdOf } from "../util/id.ts";
import type { ParsedEvent, TrailEvent, Verdict } from "./schema.ts";

/**
 * Correlation (design §5): most exact key first — (a) a key push → the broker's push record with the same
 * key fingerprint, instance and OS user, nearest in time; (b) a tunnel → the grant named by the signer
 * session (`grant-<id>`) or, failing that, by `SourceIdentity`; (c) IAM grant mode → the caller's own
 * principal, the instance or endpoint/IP, and the event time inside the window. Then the event is judged
 * against what it matched: window, constraints, caller. Pure but for the lookups.
 */

/** What correlation reads: the broker's own records. */
export interface Lookup {
  /** Every push (intent, pushed, failed) of a key fingerprint, under any grant. */
  pushesByFingerprint(fingerprint: string): Promise<Push[]>;
  request(requestId: string): Promise<Info | undefined>;
  /** Requests of a requester created in [from, to] (ISO times). */
  requestsOf(email: string, from: string, to: string): Promise<Info[]>;
  /**
   * The pushes of a fingerprint created inside `nearWindow(at)`, in `pushesByFingerprint` order, when the
   * caller knows them all (a bulk import primed them with one range read); undefined otherwise.
   */
  pushesNear?(fingerprint: string, at: number): Promise<Push[] | undefined>;
}

export interface Deps {
  config: Config;
  lookup: Lookup;
}

/** CloudTrail times are whole seconds and AWS's clock is not the broker's: window edges get this slack. */
export const WINDOW_SKEW_MS = 5_000;
/** A push record this close to the event (either side) is the push that made it. */
export const PUSH_MATCH_MS = 5 * 60_000;
/**
 * A push is created (intent) before its AWS call and completed (`pushedAt`) in the same API invocation,
 * which Lambda ends after 15 minutes at the latest.
 */
export const MAX_PUSH_MS = 15 * 60_000;

/**
 * The `createdAt` range that holds every push within PUSH_MATCH_MS of an event at `at`: whatever the
 * full fingerprint lookup would match, a read of this range finds too.
 */
export function nearWindow(at: number): { from: number; to: number } {
  return { from: at - PUSH_MATCH_MS - MAX_PUSH_MS, to: at + PUSH_MATCH_MS };
}
/** The order `pushesByFingerprint` lists pushes in: DynamoDB's index sort key, `<createdAt>#<id>`. */
export function pushOrder(a: Push, b: Push): number {
  const left = `${a.createdAt}#${a.id}`;
  const right = `${b.createdAt}#${b.id}`;
  return left < right ? -1 : left > right ? 1 : 0;
}

/** A grant may start up to 30 days after its request and last 12 hours (plus extensions). */
const REQUEST_LOOKBACK_MS = 32 * 86_400_000;
/** The EICE default and maximum tunnel duration (protocols.md §1.8, §3.2). */
export const DEFAULT_TUNNEL_SECONDS = 3_600;
/** How long a presigned URL is usable after the broker authorized it (protocols.md §1.2). */
const URL_SLACK_MS = 60_000;

const GRANT_SESSION = /^grant-(gr_[0-9a-z]{26})$/;

/** The request a tunnel's signer session (`grant-<id>`) names, if it is one. */
export function sessionRequestId(event: TrailEvent): string | undefined {
  if (event.kind !== "tunnel") return undefined;
  const grantId = GRANT_SESSION.exec(event.identity.sessionName ?? "")?.[1];
  return grantId ? requestIdOf(grantId) : undefined;
}

interface Match {
  request: Info;
  push?: Push;
  matchedBy: NonNullable<Verdict["matchedBy"]>;
  /** Found while matching: the key was pushed for another instance, or at another time… */
  notes: string[];
}

const ms = (time: string | undefined) => (time ? Date.parse(time) : Number.NaN);

/** The window a grant allowed access in, or undefined for requests that never became active. */
export function windowOf(request: Info): { start: number; end: number } | undefined {
  if (!request.startsAt || !request.endsAt) return undefined;
  const endsAt = ms(request.endsAt);
  const endedAt = request.endedAt ? ms(request.endedAt) : endsAt;
  return { start: ms(request.startsAt), end: Math.min(endsAt, endedAt) };
}

function inWindow(request: Info, at: number): boolean {
  const window = windowOf(request);
  return window !== undefined && at >= window.start - WINDOW_SKEW_MS && at <= window.end + WINDOW_SKEW_MS;
}

/** How far `at` is from a request's window (0 inside it); requests without a window are furthest. */
function distance(request: Info, at: number): number {
  const window = windowOf(request);
  if (!window) return Number.POSITIVE_INFINITY;
  if (at < window.start) return window.start - at;
  if (at > window.end) return at - window.end;
  return 0;
}

function nearest(requests: readonly Info[], at: number): Info | undefined {
  let best: Info | undefined;
  for (const request of requests) if (!best || distance(request, at) < distance(best, at)) best = request;
  return best;
}

/** Same IAM role or user: ARNs equal, or same account, kind and name (a role's path is not in session ARNs). */
export function samePrincipal(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  if (a === b) return true;
  const parse = (arn: string) => /^arn:aws[a-z-]*:iam::(\d{12}):(role|user)\/(?:.*\/)?([^/]+)$/.exec(arn);
  const left = parse(a);
  const right = parse(b);
  return !!left && !!right && left[1] === right[1] && left[2] === right[2] && left[3] === right[3];
}

/** The directory users whose own AWS identity (IAM grant mode) made the call. */
function usersWithPrincipal(config: Config, principalArn: string | undefined): string[] {
  if (!principalArn) return [];
  return config.directory.users
    .filter((user) => user.awsPrincipals.some((arn) => samePrincipal(arn, principalArn)))
    .map((user) => user.email);
}

async function requestsAround(deps: Deps, emails: readonly string[], at: number): Promise<Info[]> {
  const from = new Date(at - REQUEST_LOOKBACK_MS).toISOString();
  const to = new Date(at + WINDOW_SKEW_MS).toISOString();
  const lists = await Promise.all(emails.map((email) => deps.lookup.requestsOf(email, from, to)));
  return lists.flat();
}

/** Prefer a request whose window holds the event; else the nearest one. */
function choose(requests: readonly Info[], at: number): Info | undefined {
  return requests.find((request) => inWindow(request, at)) ?? nearest(requests, at);
}

async function matchKeyPush(
  deps: Deps,
  event: Extract<ParsedEvent, { kind: "key-push" }>,
): Promise<Match | undefined> {
  const at = ms(event.eventTime);
  const gap = (push: Push) => Math.abs(ms(push.pushedAt ?? push.createdAt) - at);
  const closest = (list: Push[]) =>
    list.reduce<Push | undefined>((best, push) => (!best || gap(push) < gap(best) ? push : best), undefined);
  const closestExact = (list: Push[]) =>
    closest(list.filter((push) => push.instanceId === event.instanceId && push.osUser === event.osUser));
  const byPush = async (push: Push | undefined): Promise<Match | undefined> => {
    const request = push ? await deps.lookup.request(push.requestId) : undefined;
    if (!push || !request) return undefined;
    const notes: string[] = [];
    // Outside the window the verdict says so; inside it, a push the broker has no record of is a mismatch.
    if (gap(push) > PUSH_MATCH_MS && inWindow(request, at))
      notes.push(
        `the broker pushed this key at ${push.pushedAt ?? push.createdAt}, not at ${event.eventTime}`,
      );
    return { request, push, matchedBy: "push", notes };
  };
  // (a) the broker's own push: same key, instance and OS user, at that time. The pushes near the event
  // hold that push and every one as close (nearWindow), so when they have it the full list is not needed.
  const near = event.fingerprint ? await deps.lookup.pushesNear?.(event.fingerprint, at) : undefined;
  const nearExact = near && closestExact(near);
  if (nearExact && gap(nearExact) <= PUSH_MATCH_MS) return byPush(nearExact);
  const pushes = event.fingerprint ? await deps.lookup.pushesByFingerprint(event.fingerprint) : [];
  const exact = closestExact(pushes);
  if (exact && gap(exact) <= PUSH_MATCH_MS) return byPush(exact);
  // (c) IAM grant mode: the caller's own principal, granted this instance.
  const emails = usersWithPrincipal(deps.config, event.identity.principalArn);
  const requests = (await requestsAround(deps, emails, at)).filter(
    (request) =>
      request.grantMode === "iam" &&
      request.instanceId === event.instanceId &&
      samePrincipal(request.awsPrincipal, event.identity.principalArn),
  );
  // A grant that allows key pushes as this OS user explains the event best; any other grant of the
  // principal on this instance (a tunnel grant) still says whose access it was.
  const ssh = requests.filter((candidate) => candidate.method === "ssh" && candidate.osUser === event.osUser);
  const request = choose(ssh, at) ?? choose(requests, at);
  if (request) return { request, matchedBy: "iam-principal", notes: [] };
  // A key the broker pushed, used at another time or for another instance or OS user: evidence, not a grant.
  return byPush(exact ?? closest(pushes));
}

function routeMatches(request: Info, event: Extract<ParsedEvent, { kind: "tunnel" }>): boolean {
  const route = request.network?.route;
  return route?.type === "eice" && route.endpointId === event.endpointId && route.ip === event.privateIp;
}

async function matchTunnel(
  deps: Deps,
  event: Extract<ParsedEvent, { kind: "tunnel" }>,
): Promise<Match | undefined> {
  const at = ms(event.eventTime);
  const sessionRequest = sessionRequestId(event);
  if (sessionRequest) {
    const request = await deps.lookup.request(sessionRequest);
    if (request) return { request, matchedBy: "session", notes: [] };
  }
  if (event.identity.sourceIdentity) {
    const requests = (await requestsAround(deps, [event.identity.sourceIdentity], at)).filter(
      (request) => request.grantMode !== "iam" && routeMatches(request, event),
    );
    const request = choose(requests, at);
    if (request) return { request, matchedBy: "source-identity", notes: [] };
  }
  // IAM grant mode: the caller's own principal through the granted endpoint; a grant for this very IP is
  // preferred, one for another IP behind the same endpoint makes the event a constraint mismatch.
  const requests = (
    await requestsAround(deps, usersWithPrincipal(deps.config, event.identity.principalArn), at)
  ).filter(
    (request) =>
      request.grantMode === "iam" &&
      samePrincipal(request.awsPrincipal, event.identity.principalArn) &&
      request.network?.route.type === "eice" &&
      request.network.route.endpointId === event.endpointId,
  );
  const request =
    choose(
      requests.filter((candidate) => routeMatches(candidate, event)),
      at,
    ) ?? choose(requests, at);
  return request ? { request, matchedBy: "iam-principal", notes: [] } : undefined;
}

/** The remote port a grant allows through EICE: 22 for ssh, its port for tunnels, 3389 for rdp. */
function portOf(request: Info): number | undefined {
  if (request.method === "ssh") return 22;
  if (request.method === "rdp") return request.port ?? 3389;
  return request.port;
}

/** What differs between the event and the grant it matched; empty when it stayed within the grant. */
function mismatches(deps: Deps, event: ParsedEvent, match: Match): string[] {
  const { request } = match;
  const found: string[] = [...match.notes];
  const accounts = deps.config.settings.aws.accounts[request.account];
  if (event.account !== request.account)
    found.push(`made in account ${event.account}, the grant is for ${request.account}`);
  if (event.kind === "key-push") {
    if (request.method !== "ssh") found.push(`a key push under a ${request.method} grant`);
    if (event.instanceId !== request.instanceId)
      found.push(`instance ${event.instanceId}, the grant is for ${request.instanceId}`);
    if (event.osUser !== request.osUser)
      found.push(`OS user ${event.osUser ?? "(none)"}, the grant is for ${request.osUser ?? "(none)"}`);
    if (
      match.matchedBy === "push" &&
      accounts &&
      !samePrincipal(event.identity.principalArn, accounts.brokerRoleArn)
    )
      found.push(
        `the key was pushed by ${event.identity.arn ?? event.identity.type}, not the broker role ${accounts.brokerRoleArn}`,
      );
  } else if (event.kind === "tunnel") {
    const route = request.network?.route;
    if (route?.type !== "eice") found.push(`the grant has no EICE route`);
    else {
      if (event.endpointId !== route.endpointId)
        found.push(`endpoint ${event.endpointId}, the grant is for ${route.endpointId}`);
      if (event.privateIp !== route.ip)
        found.push(
          `private IP ${event.privateIp ?? "(none)"}, the grant is for ${route.ip} (${request.instanceId})`,
        );
    }
    const port = portOf(request);
    if (event.remotePort !== port)
      found.push(`port ${event.remotePort ?? "(none)"}, the grant allows ${port ?? "none"}`);
    const duration = event.maxTunnelDuration ?? DEFAULT_TUNNEL_SECONDS;
    const window = windowOf(request);
    if (window && request.grantMode !== "iam") {
      // The signer's session policy caps maxTunnelDuration at what is left of the window when it signs.
      const left = Math.max(0, window.end - ms(event.eventTime)) + URL_SLACK_MS + WINDOW_SKEW_MS;
      if (duration * 1000 > left)
        found.push(
          `maxTunnelDuration ${duration} s outlasts the grant, which ends at ${new Date(window.end).toISOString()}`,
        );
    }
    if (match.matchedBy === "session") {
      if (request.grantMode === "iam") found.push("a signer session for an IAM-mode grant");
      if (accounts && !samePrincipal(event.identity.principalArn, accounts.signerRoleArn))
        found.push(
          `session ${event.identity.sessionName} is not of the signer role ${accounts.signerRoleArn}`,
        );
      if (event.identity.sourceIdentity !== request.requester)
        found.push(
          `SourceIdentity ${event.identity.sourceIdentity ?? "(none)"}, the grant is ${request.requester}'s`,
        );
    }
  }
  return found;
}

function ids(
  match: Match | undefined,
): Pick<Verdict, "requestId" | "grantId" | "pushId" | "requester" | "instanceId" | "matchedBy"> {
  if (!match) return {};
  return {
    requestId: match.request.id,
    grantId: match.request.grantId,
    // Kept on the verdict so the trail can be filtered by person and instance without reading requests.
    requester: match.request.requester,
    instanceId: match.request.instanceId,
    ...(match.push ? { pushId: match.push.id } : {}),
    matchedBy: match.matchedBy,
  };
}

function unbrokeredReason(event: ParsedEvent): string {
  const who = event.identity.arn ?? event.identity.type;
  if (event.kind === "serial-push")
    return `serial console key pushed by ${who}: the broker never grants serial console access`;
  if (event.kind === "key-push")
    return `${who} pushed a key for ${event.osUser ?? "?"}@${event.instanceId} that no grant accounts for`;
  return `${who} opened a tunnel to ${event.privateIp ?? "?"}:${event.remotePort ?? "?"} through ${event.endpointId} that no grant accounts for`;
}

/** Classifies one event against the broker's records. */
export async function correlate(deps: Deps, event: TrailEvent): Promise<Verdict> {
  if (event.kind === "unparsed") return { classification: "unparsed", reasons: [event.reason] };
  const match =
    event.kind === "key-push"
      ? await matchKeyPush(deps, event)
      : event.kind === "tunnel"
        ? await matchTunnel(deps, event)
        : undefined;
  if (event.errorCode) {
    return {
      classification: "denied-attempt",
      ...ids(match),
      reasons: [
        `AWS refused ${event.eventName} by ${event.identity.arn ?? event.identity.type}: ${event.errorCode}`,
      ],
    };
  }
  if (!match) return { classification: "unbrokered", reasons: [unbrokeredReason(event)] };
  const found = mismatches(deps, event, match);
  if (found.length > 0) return { classification: "constraint-mismatch", ...ids(match), reasons: found };
  if (!inWindow(match.request, ms(event.eventTime))) {
    const window = windowOf(match.request);
    return {
      classification: "outside-window",
      ...ids(match),
      reasons: [
        window
          ? `at ${event.eventTime}, outside the grant's window ${new Date(window.start).toISOString()} to ${new Date(window.end).toISOString()}`
          : `request ${match.request.id} is ${match.request.status}: it never became an active grant`,
      ],
    };
  }
  return {
    classification: "brokered",
    ...ids(match),
    reasons: [`matched by ${match.matchedBy} to grant ${match.request.grantId}`],
  };
}
