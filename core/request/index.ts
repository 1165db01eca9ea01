export * as Request from "./index.ts";

import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import type { Audit } from "../audit/index.ts";
import { AppError, ConflictError, ForbiddenError, InputError, NotFoundError } from "../error.ts";
import { type Actor, Identity } from "../identity/index.ts";
import { type Config, Policy } from "../policy/index.ts";
import type { Target } from "../target/index.ts";
import { parse as parseInput } from "../util/fn.ts";
import { createId, grantIdOf, ID_PATTERN, requestIdOf } from "../util/id.ts";
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

export interface Deps {
  config: Config;
  requests: RequestStore;
  targets: Target.Resolver;
  clock?: () => Date;
}

const now = (deps: Deps) => (deps.clock ? deps.clock() : new Date());

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
  const instance = (await deps.targets.describe(input.instanceId)) ?? { instanceId: input.instanceId };
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
      },
    },
  ];
  let item = base;
  if (input.breakGlass) {
    events.push({ type: "breakglass.used", at: base.createdAt, actor: actor.email, subject: id, data: {} });
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
  if (result.created) return { request: item, created: true };
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
      now: now(deps),
    };
    const { next, events } = decide(state, ctx);
    try {
      await deps.requests.update(next, state.version, events);
      return next;
    } catch (error) {
      if (!(error instanceof VersionConflictError)) throw error;
      if (attempt >= MAX_ATTEMPTS)
        throw new AppError("throttled", "request.busy", "The request is changing too fast; retry shortly");
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
    }
  }
}

export async function approve(deps: Deps, actor: Actor, id: string, input: unknown = {}): Promise<Info> {
  const { comment } = parseInput(DecisionInput, input);
  return mutate(deps, actor, id, (state, ctx) => Lifecycle.approve(state, ctx, comment));
}

export async function deny(deps: Deps, actor: Actor, id: string, input: unknown = {}): Promise<Info> {
  const { comment } = parseInput(DecisionInput, input);
  return mutate(deps, actor, id, (state, ctx) => Lifecycle.deny(state, ctx, comment));
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
    const mayDecide = (item: Info) =>
      item.requester !== actor.email &&
      (admin || Policy.canApprove(actor, Policy.ruleById(deps.config, item.ruleId), item.requester));
    return deps.requests.listByStatus("pending", { limit, cursor: query.cursor, filter: mayDecide });
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

/** Applies every due time-based transition; safe to run concurrently and repeatedly. */
export async function sweep(deps: Deps, batch = 100): Promise<SweepResult> {
  const result: SweepResult = { timedOut: 0, activated: 0, expired: 0 };
  const at = now(deps);
  for (const due of await deps.requests.listDue(at, batch)) {
    let state: Info | undefined = due;
    for (let attempt = 0; state && attempt < MAX_ATTEMPTS; attempt++) {
      const transition = Lifecycle.sweep(state, at);
      if (!transition) break;
      try {
        await deps.requests.update(transition.next, state.version, transition.events);
        const kind = transition.next.status;
        if (kind === "timed-out") result.timedOut++;
        else if (kind === "active") result.activated++;
        else result.expired++;
        break;
      } catch (error) {
        if (!(error instanceof VersionConflictError)) throw error;
        state = await deps.requests.get(due.id);
      }
    }
  }
  return result;
}
