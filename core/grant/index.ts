export * as Grant from "./index.ts";

import * as Documents from "../access/documents.ts";
import type { Audit } from "../audit/index.ts";
import type { Config } from "../policy/index.ts";
import * as Request from "../request/index.ts";
import type { Info } from "../request/schema.ts";
import type { RequestStore } from "../request/store.ts";
import { ID_PATTERN, requestIdOf } from "../util/id.ts";
import { log } from "../util/log.ts";

/**
 * What happens outside the table when a grant changes state: its one-time expiry schedule, and in IAM grant
 * mode the time-boxed inline policy on the requester's own AWS identity. The lifecycle stays pure; these
 * run after the transition committed (Request.Hooks), are idempotent, and are healed by the sweeper (expiry)
 * and the reconciler (IAM policies) when a crash or an AWS failure interrupts them.
 */

/** Port: one-time schedules that settle a grant at its end (EventBridge Scheduler in AWS). */
export interface Scheduler {
  /** Creates the grant's schedule for `at`, or moves it there. Idempotent. */
  upsert(grantId: string, at: Date): Promise<void>;
  /** Deletes the grant's schedule; one that does not exist (fired, or never made) is fine. */
  remove(grantId: string): Promise<void>;
}

/** Locally the sweeper's timer settles grants on time, so there is nothing to schedule. */
export const noScheduler: Scheduler = {
  upsert: async () => {},
  remove: async () => {},
};

/** Port: inline policies on IAM roles and users (the principal's account is in its ARN). */
export interface IamPolicies {
  put(principalArn: string, policyName: string, document: string): Promise<void>;
  /** False when there was no such policy. */
  remove(principalArn: string, policyName: string): Promise<boolean>;
  /** Names of the principal's inline policies. */
  list(principalArn: string): Promise<string[]>;
}

export const iamNotConfigured: IamPolicies = {
  put: () => Promise.reject(new Error("IAM grant mode needs AWS access, and this broker has none")),
  remove: () => Promise.reject(new Error("IAM grant mode needs AWS access, and this broker has none")),
  list: async () => [],
};

export interface Deps {
  config: Config;
  requests: RequestStore;
  iam: IamPolicies;
  scheduler: Scheduler;
  clock?: () => Date;
}

const now = (deps: Pick<Deps, "clock">) => (deps.clock ? deps.clock() : new Date());

export const POLICY_PREFIX = "access-broker-grant-";

/** `access-broker-grant-<grant id>`: how the reconciler recognises the broker's policies. */
export function policyName(grantId: string): string {
  return `${POLICY_PREFIX}${grantId}`;
}

export type Effect =
  | { kind: "schedule.upsert"; at: string }
  | { kind: "schedule.remove" }
  | { kind: "iam.put" }
  | { kind: "iam.remove"; reason: "expired" | "revoked" };

/**
 * The side effects a committed transition calls for (pure). A grant that became active, or whose end moved,
 * gets its schedule (and IAM policy) put; one that ended loses its IAM policy, and a revoked one its schedule
 * (an expired one's schedule has fired and deletes itself).
 */
export function effectsOf(previous: Info | undefined, next: Info): Effect[] {
  const effects: Effect[] = [];
  const iam = next.grantMode === "iam";
  const wasActive = previous?.status === "active";
  if (next.status === "active" && next.endsAt && (!wasActive || previous?.endsAt !== next.endsAt)) {
    effects.push({ kind: "schedule.upsert", at: next.endsAt });
    if (iam) effects.push({ kind: "iam.put" });
  }
  if (previous && (previous.status === "active" || previous.status === "approved")) {
    if (next.status === "revoked") effects.push({ kind: "schedule.remove" });
    if (iam && wasActive && (next.status === "revoked" || next.status === "expired"))
      effects.push({ kind: "iam.remove", reason: next.status });
  }
  return effects;
}

function partitionFor(config: Config, account: string): string {
  const role = config.settings.aws.accounts[account]?.brokerRoleArn;
  return role ? Documents.partitionOf(role) : "aws";
}

/**
 * The IAM grant policy of an active grant: SendSSHPublicKey for ssh (instance ARN + `ec2:osuser`), and
 * OpenTunnel (endpoint, port, IP, duration) for tunnels, rdp and ssh through EICE; all until the grant's end.
 * The policy is static, so a tunnel opened near the end may outlive it by up to min(3600 s, grant length).
 */
export function grantPolicy(config: Config, item: Info): string {
  if (!item.endsAt) throw new Error(`grant ${item.grantId} has no end`);
  const partition = partitionFor(config, item.account);
  const route = item.network?.route;
  const total = item.durationSeconds + item.extendedSeconds;
  const tunnel =
    route?.type === "eice"
      ? {
          endpointArn:
            route.endpointArn ??
            Documents.endpointArn(partition, item.region, item.account, route.endpointId),
          remotePort: item.method === "ssh" ? 22 : (item.port ?? 22),
          ip: route.ip,
          maxTunnelDuration: Math.min(Documents.MAX_TUNNEL_SECONDS, total),
        }
      : undefined;
  if (item.method !== "ssh" && !tunnel)
    throw new Error(`grant ${item.grantId} has no EICE route to put in an OpenTunnel statement`);
  return Documents.iamGrantPolicy({
    sendKey:
      item.method === "ssh" && item.osUser
        ? {
            instanceArn: Documents.instanceArn(partition, item.region, item.account, item.instanceId),
            osUser: item.osUser,
          }
        : undefined,
    tunnel,
    notAfter: new Date(item.endsAt),
  });
}

/** `about`: the request, when known, whose requester and instance every record names (as lifecycle records do). */
function event(
  type: Audit.EventType,
  subject: string,
  at: Date,
  about: Pick<Info, "requester" | "instanceId"> | undefined,
  data: Record<string, unknown>,
): Audit.Input {
  const names = about ? { requester: about.requester, instanceId: about.instanceId } : {};
  return { type, at: at.toISOString(), actor: "system", subject, data: { ...names, ...data } };
}

async function putPolicy(deps: Deps, item: Info, reconciled: boolean): Promise<void> {
  if (!item.awsPrincipal) throw new Error(`IAM grant ${item.grantId} names no AWS principal`);
  const name = policyName(item.grantId);
  await deps.iam.put(item.awsPrincipal, name, grantPolicy(deps.config, item));
  await deps.requests.append([
    event("grant.iam_policy_attached", item.id, now(deps), item, {
      grantId: item.grantId,
      principalArn: item.awsPrincipal,
      policyName: name,
      endsAt: item.endsAt,
      ...(reconciled ? { reconciled: true } : {}),
    }),
  ]);
}

async function removePolicy(
  deps: Deps,
  principalArn: string,
  grantId: string,
  subject: string,
  about: Info | undefined,
  reason: string,
): Promise<boolean> {
  const name = policyName(grantId);
  const removed = await deps.iam.remove(principalArn, name);
  // Audited only when a policy was actually deleted, so a retry or a race with the reconciler adds nothing.
  if (removed)
    await deps.requests.append([
      event("grant.iam_policy_removed", subject, now(deps), about, {
        grantId,
        principalArn,
        policyName: name,
        reason,
      }),
    ]);
  return removed;
}

/** Runs `effects` for `item`; every effect is tried, and the first failure is rethrown after the rest. */
export async function apply(deps: Deps, item: Info, effects: readonly Effect[]): Promise<void> {
  const failures: unknown[] = [];
  for (const effect of effects) {
    try {
      if (effect.kind === "schedule.upsert") await deps.scheduler.upsert(item.grantId, new Date(effect.at));
      else if (effect.kind === "schedule.remove") await deps.scheduler.remove(item.grantId);
      else if (effect.kind === "iam.put") await putPolicy(deps, item, false);
      else if (item.awsPrincipal)
        await removePolicy(deps, item.awsPrincipal, item.grantId, item.id, item, effect.reason);
    } catch (error) {
      log.error("grant side effect failed", { grantId: item.grantId, effect: effect.kind, error });
      failures.push(error);
    }
  }
  if (failures.length > 0) throw failures[0];
}

/** The Request.Hooks that carry out effectsOf() after every committed transition. */
export function hooks(deps: Deps) {
  return {
    afterCommit: (previous: Info | undefined, next: Info) => apply(deps, next, effectsOf(previous, next)),
  };
}

export interface ReconcileResult {
  removed: number;
  attached: number;
  failed: number;
}

function isLive(item: Info | undefined, principal: string, at: number): boolean {
  return (
    item?.status === "active" &&
    item.grantMode === "iam" &&
    item.awsPrincipal === principal &&
    Date.parse(item.endsAt ?? "") > at
  );
}

async function activeIamGrants(deps: Deps): Promise<Info[]> {
  const items: Info[] = [];
  let cursor: string | undefined;
  do {
    const page = await deps.requests.listByStatus("active", {
      limit: 100,
      cursor,
      filter: (item) => item.grantMode === "iam",
    });
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}

/**
 * Makes IAM match the grants (run by the sweeper): deletes every `access-broker-grant-*` policy on the
 * directory's principals (and those of live grants) that no live IAM grant of that principal accounts for,
 * and puts the policy of every live IAM grant that lacks it. Idempotent; failures are counted and retried
 * on the next run.
 */
export async function reconcile(deps: Deps): Promise<ReconcileResult> {
  const result: ReconcileResult = { removed: 0, attached: 0, failed: 0 };
  const at = now(deps).getTime();
  const accounts = new Set(Object.keys(deps.config.settings.aws.accounts));
  // The status index is eventually consistent: it only nominates; every decision re-reads the item.
  const live = (await activeIamGrants(deps)).filter((item) => isLive(item, item.awsPrincipal ?? "", at));
  const principals = new Set<string>(
    deps.config.directory.users
      .flatMap((user) => user.awsPrincipals)
      .filter((arn) => accounts.has(arn.split(":")[4] ?? "")),
  );
  for (const item of live) if (item.awsPrincipal) principals.add(item.awsPrincipal);

  for (const principal of principals) {
    let names: string[];
    try {
      names = (await deps.iam.list(principal)).filter((name) => name.startsWith(POLICY_PREFIX));
    } catch (error) {
      log.warn("reconcile: cannot list policies", { principal, error });
      result.failed++;
      continue;
    }
    for (const name of names) {
      const grantId = name.slice(POLICY_PREFIX.length);
      if (live.some((item) => item.grantId === grantId && item.awsPrincipal === principal)) continue;
      const known = ID_PATTERN.grant.test(grantId);
      const item = known ? await deps.requests.get(requestIdOf(grantId)) : undefined;
      // Activated since the index was read: its policy is no stray.
      if (isLive(item, principal, at)) continue;
      const subject = item?.id ?? (known ? requestIdOf(grantId) : `iam:${principal}`);
      const reason = item
        ? `grant is ${item.status === "active" ? "past its end" : item.status}`
        : "no such grant";
      try {
        if (await removePolicy(deps, principal, grantId, subject, item, `reconciler: ${reason}`))
          result.removed++;
      } catch (error) {
        log.warn("reconcile: cannot remove a stray policy", { principal, policyName: name, error });
        result.failed++;
      }
    }
    for (const item of live) {
      if (item.awsPrincipal !== principal || names.includes(policyName(item.grantId))) continue;
      try {
        // Ended or revoked since the index was read: putting its policy back would only make a stray.
        const fresh = await deps.requests.get(item.id);
        if (!fresh || !isLive(fresh, principal, at)) continue;
        await putPolicy(deps, fresh, true);
        result.attached++;
      } catch (error) {
        log.warn("reconcile: cannot attach a missing policy", { grantId: item.grantId, error });
        result.failed++;
      }
    }
  }
  return result;
}

export interface SweepAllResult extends Request.SweepResult {
  iam: ReconcileResult;
}

/** The sweeper's run: due transitions (and their side effects) first, then IAM reconciliation. */
export async function sweepAll(deps: Deps & Request.Deps): Promise<SweepAllResult> {
  const result = await Request.sweep(deps);
  return { ...result, iam: await reconcile(deps) };
}
