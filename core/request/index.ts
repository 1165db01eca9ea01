export * as Request from "./index.ts";

import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import * as z from "zod";
import type { Audit } from "../audit/index.ts";
import { AppError, ConflictError, ForbiddenError, InputError, NotFoundError } from "../error.ts";
import { type Actor, Identity } from "../identity/index.ts";
import { type Config, Policy } from "../policy/index.ts";
import * as Target from "../target/index.ts";
import { parse as parseInput } from "../util/fn.ts";
import { createId, grantIdOf, ID_PATTERN, requestIdOf } from "../util/id.ts";
import { log } from "../util/log.ts";
import * as Lifecycle from "./lifecycle.ts";
import {
  CreateInput,
  DecisionInput,
  ExtendInput,
  GRANT_STATUSES,
  type Grant,
  GrantListQuery,
  type Info,
  ListQuery,
  RevokeInput,
  type Status,
  toGrant,
} from "./schema.ts";
import { type Page, type RequestStore, VersionConflictError } from "./store.ts";

export * from "./schema.ts";
export type { Page, RequestStore } from "./store.ts";

/**
 * Side effects of a committed transition outside the table (per-grant schedules, IAM grant policies). They
 * run after the write, never inside the pure lifecycle, and must be idempotent: a crash between the write
 * and the effect is healed by the sweeper and the reconciler, which apply the same effects again.
 */
export interface Hooks {
  /** `events` are the audit events the transition wrote (who decided, what changed). */
  afterCommit(previous: Info | undefined, next: Info, events: readonly Audit.Input[]): Promise<void>;
}

/**
 * Several hooks as one: each runs whatever the others did (a failed IAM call must not swallow the
 * requester's notification); the first failure is rethrown after all ran.
 */
export function combineHooks(...hooks: (Hooks | undefined)[]): Hooks {
  const present = hooks.filter((hook): hook is Hooks => hook !== undefined);
  return {
    afterCommit: async (previous, next, events) => {
      const failures: unknown[] = [];
      for (const hook of present) {
        try {
          await hook.afterCommit(previous, next, events);
        } catch (error) {
          failures.push(error);
        }
      }
      if (failures.length > 0) throw failures[0];
    },
  };
}

export interface Deps {
  config: Config;
  requests: RequestStore;
  targets: Target.Resolver;
  hooks?: Hooks;
  clock?: () => Date;
}

export const now = (deps: Pick<Deps, "clock">) => (deps.clock ? deps.clock() : new Date());

/** Runs the hooks of a committed transition; a failure is logged, never undoes or fails the transition. */
async function afterCommit(
  deps: Deps,
  previous: Info | undefined,
  next: Info,
  events: readonly Audit.Input[],
): Promise<void> {
  if (!deps.hooks) return;
  try {
    await deps.hooks.afterCommit(previous, next, events);
  } catch (error) {
    log.error("transition side effects failed; the sweeper retries them", {
      requestId: next.id,
      status: next.status,
      error,
    });
  }
}

/** The directory's AWS identity of `email` in `account` (IAM grant mode), if any. */
function awsPrincipalIn(config: Config, email: string, account: string): string | undefined {
  const user = config.directory.users.find((entry) => entry.email === email);
  return user?.awsPrincipals.find((arn) => arn.split(":")[4] === account);
}

/** How far ahead a start may be scheduled, and how much clock skew a "now" start may carry. */
const MAX_START_AHEAD_MS = 30 * 86_400_000;
const START_SKEW_MS = 5 * 60_000;

function isAdmin(actor: Actor, config: Config): boolean {
  return Identity.matchesAny(actor, config.settings.admins);
}

/** Requesters see their own, approvers what they may approve, auditors and admins everything. */
export function canSee(deps: Deps, actor: Actor, item: Info): boolean {
  if (item.requester === actor.email) return true;
  if (Identity.isAuditor(actor, deps.config) || isAdmin(actor, deps.config)) return true;
  return Policy.canApprove(actor, Policy.ruleById(deps.config, item.ruleId), item.requester);
}

function fingerprintOf(input: unknown): string {
  return createHash("sha256")
    .update(canonicalize(input) ?? "")
    .digest("hex");
}

function assertIdempotencyKey(key: string): void {
  if (!/^[\x21-\x7e]{1,255}$/.test(key))
    throw new InputError(
      "idempotency.invalid_key",
      "Idempotency-Key must be 1-255 printable ASCII characters",
    );
}

/** Creates a request; auto-approved and break-glass requests come back already active. */
export async function create(
  deps: Deps,
  actor: Actor,
  rawInput: unknown,
  idempotencyKey?: string,
): Promise<{ request: Info; created: boolean }> {
  if (idempotencyKey !== undefined) assertIdempotencyKey(idempotencyKey);
  const input = parseInput(CreateInput, rawInput);
  const at = now(deps);
  const described = await deps.targets.describe(input.instanceId);
  const instance = described ?? { instanceId: input.instanceId };
  const evaluation = Policy.evaluate(deps.config, { actor, instance, ...input });
  if (evaluation.outcome === "denied") throw new ForbiddenError(evaluation.code, evaluation.message);
  if (evaluation.outcome === "invalid") {
    throw new InputError(
      "request.violates_rule",
      `The request does not fit rule "${evaluation.rule.id}": ${evaluation.violations.map((v) => v.message).join("; ")}`,
      evaluation.violations.map((violation) => ({ path: violation.field, message: violation.message })),
    );
  }
  if (input.startAt) {
    const startAt = Date.parse(input.startAt);
    if (startAt < at.getTime() - START_SKEW_MS || startAt > at.getTime() + MAX_START_AHEAD_MS)
      throw new InputError("request.invalid_start", "startAt must be between now and 30 days ahead");
  }
  const { rule, target } = evaluation;
  const awsPrincipal =
    rule.grantMode === "iam" ? awsPrincipalIn(deps.config, actor.email, target.account) : undefined;
  if (rule.grantMode === "iam" && !awsPrincipal)
    throw new ForbiddenError(
      "request.no_aws_principal",
      `Rule "${rule.id}" grants access through your own AWS identity, but the directory lists none for you in account ${target.account}`,
    );
  const network = described ? await Target.snapshot(deps.targets, described, input.method, at) : undefined;
  const id = createId("request", at.getTime());
  const base: Info = {
    id,
    grantId: grantIdOf(id),
    status: "pending",
    version: 1,
    requester: actor.email,
    instanceId: input.instanceId,
    account: target.account,
    region: target.region,
    target: target.name,
    method: input.method,
    osUser: evaluation.osUser,
    port: evaluation.port,
    durationSeconds: input.durationSeconds,
    reason: input.reason,
    ticket: input.ticket,
    ruleId: rule.id,
    grantMode: rule.grantMode,
    awsPrincipal,
    network,
    breakGlass: input.breakGlass,
    review: input.breakGlass ? { status: "pending" } : undefined,
    approvalsRequired: input.breakGlass ? 0 : rule.approvals.count,
    approvalsFrom: input.breakGlass ? [] : rule.approvals.from,
    approvals: [],
    createdAt: at.toISOString(),
    pendingUntil: new Date(at.getTime() + rule.pendingTimeout * 1000).toISOString(),
    startAt: input.startAt,
    extendedSeconds: 0,
  };
  const events: Audit.Input[] = [
    {
      type: "request.created",
      at: base.createdAt,
      actor: actor.email,
      subject: id,
      data: {
        requester: base.requester,
        instanceId: base.instanceId,
        account: base.account,
        region: base.region,
        method: base.method,
        osUser: base.osUser,
        port: base.port,
        durationSeconds: base.durationSeconds,
        reason: base.reason,
        ticket: base.ticket,
        rule: rule.id,
        breakGlass: base.breakGlass,
        approvalsRequired: base.approvalsRequired,
        grantMode: base.grantMode,
        awsPrincipal: base.awsPrincipal,
        ...(network
          ? {
              privateIp: network.privateIp,
              publicIp: network.publicIp,
              route: network.route.type,
              endpointId: network.route.type === "eice" ? network.route.endpointId : undefined,
            }
          : {}),
      },
    },
  ];
  let item = base;
  if (input.breakGlass) {
    events.push({
      type: "breakglass.used",
      at: base.createdAt,
      actor: actor.email,
      subject: id,
      data: { requester: base.requester, instanceId: base.instanceId },
    });
    const activated = Lifecycle.activate(base, at, actor.email);
    item = { ...activated.next, version: 1 };
    events.push(...activated.events);
  } else if (rule.approvals.count === 0) {
    const approved = Lifecycle.approveByPolicy(base, at);
    item = { ...approved.next, version: 1 };
    events.push(...approved.events);
  }
  const claim = idempotencyKey
    ? { owner: actor.email, key: idempotencyKey, fingerprint: fingerprintOf(rawInput) }
    : undefined;
  const result = await deps.requests.create(item, events, claim);
  if (result.created) {
    await afterCommit(deps, undefined, item, events);
    return { request: item, created: true };
  }
  if (result.fingerprint !== claim?.fingerprint)
    throw new ConflictError(
      "idempotency.mismatch",
      "This Idempotency-Key was already used with a different body",
    );
  const existing = await deps.requests.get(result.existingId);
  if (!existing)
    throw new ConflictError("idempotency.in_flight", "A request with this Idempotency-Key is in flight");
  return { request: existing, created: false };
}

async function load(deps: Deps, actor: Actor, id: string): Promise<Info> {
  const item = ID_PATTERN.request.test(id) ? await deps.requests.get(id) : undefined;
  if (!item || !canSee(deps, actor, item)) throw new NotFoundError("request.not_found", `No request ${id}`);
  return item;
}

export async function get(deps: Deps, actor: Actor, id: string): Promise<Info> {
  return load(deps, actor, id);
}

const MAX_ATTEMPTS = 12;

/**
 * Read, decide, write on condition of the version read; on a lost race, decide again on fresh state.
 * Decisions are pure, so a retry can never double-apply: the loser sees the winner's result.
 */
async function mutate(
  deps: Deps,
  actor: Actor,
  id: string,
  decide: (state: Info, ctx: Lifecycle.Context) => Lifecycle.Transition,
): Promise<Info> {
  for (let attempt = 1; ; attempt++) {
    const state = await load(deps, actor, id);
    const ctx = {
      actor,
      rule: Policy.ruleById(deps.config, state.ruleId),
      admin: isAdmin(actor, deps.config),
      auditor: Identity.isAuditor(actor, deps.config),
      now: now(deps),
    };
    const { next, events } = decide(state, ctx);
    try {
      await deps.requests.update(next, state.version, events);
      await afterCommit(deps, state, next, events);
      return next;
    } catch (error) {
      if (!(error instanceof VersionConflictError)) throw error;
      if (attempt >= MAX_ATTEMPTS)
        throw new AppError("throttled", "request.busy", "The request is changing too fast; retry shortly");
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
    }
  }
}

/**
 * What a decision is meant for. Approve/deny decide whatever waits (the request, or a pending extension of
 * its grant); a caller acting on a specific prompt (a Slack button on an approval or an extension message)
 * names it, so a stale click can never decide something else that came up since.
 */
export type DecisionScope =
  | { kind: "request" }
  | { kind: "extension"; requestedAt: string }
  | { kind: "any" };

function assertScope(state: Info, scope: DecisionScope, verb: string): void {
  if (scope.kind === "request" && state.status !== "pending") {
    const by = state.decision ? [state.decision.by] : state.approvals.map((approval) => approval.by);
    throw new ConflictError(
      "request.not_pending",
      `Cannot ${verb}: the request is ${state.status}${by.length ? ` (decided by ${by.join(", ")})` : ""}`,
      { status: state.status, decidedBy: by },
    );
  }
  if (scope.kind === "extension" && state.pendingExtension?.requestedAt !== scope.requestedAt)
    throw new ConflictError("grant.extension_decided", `Cannot ${verb}: that extension was already decided`, {
      status: state.status,
      endsAt: state.endsAt,
    });
}

export async function approve(
  deps: Deps,
  actor: Actor,
  id: string,
  input: unknown = {},
  scope: DecisionScope = { kind: "any" },
): Promise<Info> {
  const { comment } = parseInput(DecisionInput, input);
  return mutate(deps, actor, id, (state, ctx) => {
    assertScope(state, scope, "approve");
    return Lifecycle.approve(state, ctx, comment);
  });
}

export async function deny(
  deps: Deps,
  actor: Actor,
  id: string,
  input: unknown = {},
  scope: DecisionScope = { kind: "any" },
): Promise<Info> {
  const { comment } = parseInput(DecisionInput, input);
  return mutate(deps, actor, id, (state, ctx) => {
    assertScope(state, scope, "deny");
    return Lifecycle.deny(state, ctx, comment);
  });
}

/** Marks a break-glass request reviewed (auditors and admins; never its requester). */
export async function review(deps: Deps, actor: Actor, id: string, input: unknown = {}): Promise<Info> {
  const { comment } = parseInput(DecisionInput, input);
  return mutate(deps, actor, id, (state, ctx) => Lifecycle.review(state, ctx, comment));
}

export async function cancel(deps: Deps, actor: Actor, id: string, input: unknown = {}): Promise<Info> {
  parseInput(DecisionInput, input);
  return mutate(deps, actor, id, (state, ctx) => Lifecycle.cancel(state, ctx));
}

function requestIdFromGrant(grantId: string): string {
  if (!ID_PATTERN.grant.test(grantId)) throw new NotFoundError("grant.not_found", `No grant ${grantId}`);
  return requestIdOf(grantId);
}

async function asGrant(grantId: string, run: () => Promise<Info>): Promise<Grant> {
  try {
    const item = await run();
    const grant = toGrant(item);
    if (!grant) throw new NotFoundError("grant.not_found", `No grant ${grantId}`);
    return grant;
  } catch (error) {
    if (error instanceof NotFoundError) throw new NotFoundError("grant.not_found", `No grant ${grantId}`);
    throw error;
  }
}

/**
 * The request behind a grant id, if the caller can see it, read strongly consistent (a revoke that committed
 * a moment ago is seen), whatever its status: callers decide what a pending or denied request means to them.
 * 404 for unknown ids and for requests the caller cannot see.
 */
export async function loadByGrantId(deps: Deps, actor: Actor, grantId: string): Promise<Info> {
  const item = await deps.requests.get(requestIdFromGrant(grantId));
  if (!item || !canSee(deps, actor, item)) throw new NotFoundError("grant.not_found", `No grant ${grantId}`);
  return item;
}

export async function getGrant(deps: Deps, actor: Actor, grantId: string): Promise<Grant> {
  return asGrant(grantId, () => load(deps, actor, requestIdFromGrant(grantId)));
}

export async function revoke(deps: Deps, actor: Actor, grantId: string, input: unknown = {}): Promise<Grant> {
  const { reason } = parseInput(RevokeInput, input);
  const id = requestIdFromGrant(grantId);
  return asGrant(grantId, () =>
    mutate(deps, actor, id, (state, ctx) => {
      if (!toGrant(state)) throw new NotFoundError("grant.not_found", `No grant ${grantId}`);
      return Lifecycle.revoke(state, ctx, reason);
    }),
  );
}

export async function extend(deps: Deps, actor: Actor, grantId: string, input: unknown): Promise<Grant> {
  const { durationSeconds, reason } = parseInput(ExtendInput, input);
  const id = requestIdFromGrant(grantId);
  return asGrant(grantId, () =>
    mutate(deps, actor, id, (state, ctx) => {
      if (!toGrant(state)) throw new NotFoundError("grant.not_found", `No grant ${grantId}`);
      return Lifecycle.extend(state, ctx, durationSeconds, reason);
    }),
  );
}

/** Lists what the caller can see, optionally only their own, or only what waits for their decision. */
export async function list(deps: Deps, actor: Actor, rawQuery: unknown = {}): Promise<Page<Info>> {
  const query = parseInput(ListQuery, rawQuery);
  const limit = query.limit;
  const visible = (item: Info) => canSee(deps, actor, item);
  const admin = isAdmin(actor, deps.config);
  if (query.pendingForMe) {
    if (query.status && query.status !== "pending")
      throw new InputError("request.invalid_filter", "pendingForMe lists pending requests only");
    if (query.requester !== undefined)
      throw new InputError("request.invalid_filter", "pendingForMe and requester exclude each other");
    const mayDecide = (item: Info) =>
      item.requester !== actor.email &&
      (admin || Policy.canApprove(actor, Policy.ruleById(deps.config, item.ruleId), item.requester));
    return deps.requests.listByStatus("pending", { limit, cursor: query.cursor, filter: mayDecide });
  }
  if (query.requester !== undefined) {
    if (query.mine && query.requester !== actor.email)
      throw new InputError("request.invalid_filter", "mine and another requester exclude each other");
    const requester = query.requester;
    const status = query.status;
    return deps.requests.listByRequester(requester, {
      limit,
      cursor: query.cursor,
      filter: (item) => (!status || item.status === status) && visible(item),
    });
  }
  if (query.mine) {
    const filter = query.status ? (item: Info) => item.status === query.status : undefined;
    return deps.requests.listByRequester(actor.email, { limit, cursor: query.cursor, filter });
  }
  if (query.status)
    return deps.requests.listByStatus(query.status, { limit, cursor: query.cursor, filter: visible });
  return deps.requests.listAll({ limit, cursor: query.cursor, filter: visible });
}

export async function listGrants(deps: Deps, actor: Actor, rawQuery: unknown = {}): Promise<Page<Grant>> {
  const query = parseInput(GrantListQuery, rawQuery);
  const limit = query.limit;
  const isGrant = (item: Info) => (GRANT_STATUSES as readonly Status[]).includes(item.status);
  const filter = (item: Info) => isGrant(item) && canSee(deps, actor, item);
  const page = query.active
    ? query.mine
      ? await deps.requests.listByRequester(actor.email, {
          limit,
          cursor: query.cursor,
          filter: (item) => item.status === "active",
        })
      : await deps.requests.listByStatus("active", { limit, cursor: query.cursor, filter })
    : query.mine
      ? await deps.requests.listByRequester(actor.email, { limit, cursor: query.cursor, filter: isGrant })
      : await deps.requests.listAll({ limit, cursor: query.cursor, filter });
  return { items: page.items.map((item) => toGrant(item) as Grant), nextCursor: page.nextCursor };
}

export interface SweepResult {
  timedOut: number;
  activated: number;
  expired: number;
}

/**
 * Applies the time-based transition due for `item` at `at`, if any, re-reading on a lost race; returns the
 * item as it now is. Idempotent: an item with nothing due (or already settled by someone else) is a no-op.
 */
async function settle(deps: Deps, item: Info, at: Date): Promise<{ item: Info; applied?: Status }> {
  let state: Info | undefined = item;
  for (let attempt = 0; state && attempt < MAX_ATTEMPTS; attempt++) {
    const transition = Lifecycle.sweep(state, at);
    if (!transition) return { item: state };
    try {
      await deps.requests.update(transition.next, state.version, transition.events);
      await afterCommit(deps, state, transition.next, transition.events);
      return { item: transition.next, applied: transition.next.status };
    } catch (error) {
      if (!(error instanceof VersionConflictError)) throw error;
      state = await deps.requests.get(item.id);
    }
  }
  return { item: state ?? item };
}

/** Applies every due time-based transition; safe to run concurrently and repeatedly. */
export async function sweep(deps: Deps, batch = 100): Promise<SweepResult> {
  const result: SweepResult = { timedOut: 0, activated: 0, expired: 0 };
  const at = now(deps);
  for (const due of await deps.requests.listDue(at, batch)) {
    const { applied } = await settle(deps, due, at);
    if (applied === "timed-out") result.timedOut++;
    else if (applied === "active") result.activated++;
    else if (applied) result.expired++;
  }
  return result;
}

export const ExpireInput = z.strictObject({
  grantId: z.string().regex(ID_PATTERN.grant, "must be a grant id"),
});

/**
 * The per-grant schedule's target: applies whatever is due for that grant now (normally its end). Safe to
 * deliver twice, late, or after the sweeper got there first.
 */
export async function settleGrant(deps: Deps, input: z.input<typeof ExpireInput>): Promise<Info | undefined> {
  const { grantId } = parseInput(ExpireInput, input);
  const item = await deps.requests.get(requestIdOf(grantId));
  if (!item) return undefined;
  return (await settle(deps, item, now(deps))).item;
}
