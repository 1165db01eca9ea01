import type { Audit } from "../audit/index.ts";
import { ConflictError, ForbiddenError } from "../error.ts";
import type { Actor } from "../identity/index.ts";
import { Policy, type Rule } from "../policy/index.ts";
import { formatDuration } from "../util/duration.ts";
import type { Info } from "./schema.ts";

/**
 * The lifecycle of design §3 as pure functions: each takes the current item and returns the next one
 * plus the audit events that describe the change, or throws. The store writes both in one transaction.
 */
export interface Transition {
  next: Info;
  events: Audit.Input[];
}

export interface Context {
  actor: Actor;
  /** The rule the request was made under, as the current policy defines it (undefined if removed). */
  rule: Rule | undefined;
  /** Admins may approve, deny and revoke anything — except their own requests. */
  admin: boolean;
  /** Auditors (with admins) review break-glass access after the fact. */
  auditor?: boolean;
  now: Date;
}

export const SYSTEM = "system";

function event(
  state: Info,
  type: Audit.EventType,
  actor: string,
  at: Date,
  data: Record<string, unknown> = {},
) {
  // Whose request and which instance, on every record: `GET /audit/events?user=&instance=` finds a grant's
  // whole history (approvals, expiry, revocation by others) by them.
  return {
    type,
    at: at.toISOString(),
    actor,
    subject: state.id,
    data: { requester: state.requester, instanceId: state.instanceId, ...data },
  };
}

function bump(state: Info, changes: Partial<Info>): Info {
  return { ...state, ...changes, version: state.version + 1 };
}

function lastDecider(state: Info): string[] {
  if (state.decision) return [state.decision.by];
  return state.approvals.map((approval) => approval.by);
}

function notPending(state: Info, what: string): ConflictError {
  const by = lastDecider(state);
  return new ConflictError(
    "request.not_pending",
    `Cannot ${what}: the request is ${state.status}${by.length ? ` (decided by ${by.join(", ")})` : ""}`,
    { status: state.status, decidedBy: by },
  );
}

function assertMayDecide(state: Info, ctx: Context): void {
  if (ctx.actor.email === state.requester)
    throw new ForbiddenError("request.self_approval", "You cannot approve or deny your own request");
  if (!ctx.admin && !Policy.canApprove(ctx.actor, ctx.rule, state.requester))
    throw new ForbiddenError("request.not_an_approver", "You are not an approver for this request");
}

/** Starts the window; `activatedBy` is who (or what) caused it, for the audit trail. */
export function activate(state: Info, at: Date, actor: string): Transition {
  const endsAt = new Date(at.getTime() + state.durationSeconds * 1000);
  const next = bump(state, { status: "active", startsAt: at.toISOString(), endsAt: endsAt.toISOString() });
  return {
    next,
    events: [
      event(next, "grant.activated", actor, at, {
        grantId: state.grantId,
        startsAt: next.startsAt,
        endsAt: next.endsAt,
        instanceId: state.instanceId,
        method: state.method,
        osUser: state.osUser,
        port: state.port,
      }),
    ],
  };
}

/** After the last needed approval: active now, or approved until the requested start time. */
function grant(state: Info, ctx: Context, events: Audit.Input[]): Transition {
  const approved = { ...state, status: "approved" as const };
  events.push(
    event(approved, "request.approved", ctx.actor.email, ctx.now, {
      approvers: state.approvals.map((approval) => approval.by),
    }),
  );
  if (state.startAt && Date.parse(state.startAt) > ctx.now.getTime()) {
    return { next: bump(state, { status: "approved" }), events };
  }
  const activated = activate(approved, ctx.now, ctx.actor.email);
  return { next: activated.next, events: [...events, ...activated.events] };
}

/** Rules that need no approval: approved by the policy itself, audited like any other approval. */
export function approveByPolicy(state: Info, now: Date): Transition {
  const ctx: Context = { actor: { email: SYSTEM, groups: [] }, rule: undefined, admin: false, now };
  const events = [
    event(state, "request.approval_recorded", SYSTEM, now, { count: 0, required: 0, auto: true }),
  ];
  return grant(state, ctx, events);
}

export function approve(state: Info, ctx: Context, comment?: string): Transition {
  assertMayDecide(state, ctx);
  const approval = { by: ctx.actor.email, at: ctx.now.toISOString(), comment };
  if (state.status === "active" && state.pendingExtension) {
    const pending = state.pendingExtension;
    if (pending.approvals.some((existing) => existing.by === ctx.actor.email))
      throw new ConflictError("request.already_approved", "You already approved this extension");
    const approvals = [...pending.approvals, approval];
    const events = [
      event(state, "request.approval_recorded", ctx.actor.email, ctx.now, {
        extension: true,
        count: approvals.length,
        required: state.approvalsRequired,
        comment,
      }),
    ];
    if (approvals.length < state.approvalsRequired) {
      return { next: bump(state, { pendingExtension: { ...pending, approvals } }), events };
    }
    return extendNow(
      state,
      ctx,
      pending.durationSeconds,
      approvals.map((a) => a.by),
      events,
    );
  }
  if (state.status !== "pending") throw notPending(state, "approve");
  if (state.approvals.some((existing) => existing.by === ctx.actor.email))
    throw new ConflictError("request.already_approved", "You already approved this request");
  const approvals = [...state.approvals, approval];
  const withApproval = { ...state, approvals };
  const events = [
    event(state, "request.approval_recorded", ctx.actor.email, ctx.now, {
      count: approvals.length,
      required: state.approvalsRequired,
      comment,
    }),
  ];
  if (approvals.length < state.approvalsRequired) return { next: bump(state, { approvals }), events };
  return grant(withApproval, ctx, events);
}

export function deny(state: Info, ctx: Context, comment?: string): Transition {
  assertMayDecide(state, ctx);
  if (state.status === "active" && state.pendingExtension) {
    const next = bump(state, { pendingExtension: undefined });
    return {
      next,
      events: [event(state, "grant.extension_denied", ctx.actor.email, ctx.now, { comment })],
    };
  }
  if (state.status !== "pending") throw notPending(state, "deny");
  const decision = { by: ctx.actor.email, at: ctx.now.toISOString(), reason: comment };
  const next = bump(state, { status: "denied", decision });
  return { next, events: [event(next, "request.denied", ctx.actor.email, ctx.now, { comment })] };
}

export function cancel(state: Info, ctx: Context): Transition {
  if (ctx.actor.email !== state.requester)
    throw new ForbiddenError("request.not_requester", "Only the requester can cancel a request");
  if (state.status !== "pending" && state.status !== "approved") throw notPending(state, "cancel");
  const decision = { by: ctx.actor.email, at: ctx.now.toISOString() };
  const next = bump(state, { status: "cancelled", decision });
  return { next, events: [event(next, "request.cancelled", ctx.actor.email, ctx.now)] };
}

export function revoke(state: Info, ctx: Context, reason?: string): Transition {
  const mayRevoke =
    ctx.actor.email === state.requester ||
    ctx.admin ||
    Policy.canApprove(ctx.actor, ctx.rule, state.requester);
  if (!mayRevoke)
    throw new ForbiddenError("grant.not_allowed", "Only the requester or an approver can revoke");
  if (state.status !== "active" && state.status !== "approved") {
    throw new ConflictError("grant.not_active", `Cannot revoke: the grant is ${state.status}`, {
      status: state.status,
    });
  }
  const at = ctx.now.toISOString();
  const next = bump(state, {
    status: "revoked",
    decision: { by: ctx.actor.email, at, reason },
    endedAt: at,
    pendingExtension: undefined,
  });
  return {
    next,
    events: [event(next, "grant.revoked", ctx.actor.email, ctx.now, { reason, grantId: state.grantId })],
  };
}

function extendNow(state: Info, ctx: Context, seconds: number, approvers: string[], events: Audit.Input[]) {
  const endsAt = new Date(Date.parse(state.endsAt ?? ctx.now.toISOString()) + seconds * 1000).toISOString();
  const next = bump(state, {
    endsAt,
    extendedSeconds: state.extendedSeconds + seconds,
    pendingExtension: undefined,
  });
  events.push(event(next, "grant.extended", ctx.actor.email, ctx.now, { seconds, endsAt, approvers }));
  return { next, events };
}

export function extend(state: Info, ctx: Context, seconds: number, reason: string): Transition {
  if (ctx.actor.email !== state.requester)
    throw new ForbiddenError("grant.not_requester", "Only the requester can extend a grant");
  if (state.status !== "active")
    throw new ConflictError("grant.not_active", `Cannot extend: the grant is ${state.status}`);
  const rule = ctx.rule;
  if (!rule?.extend.allowed)
    throw new ForbiddenError("grant.extend_not_allowed", "This rule does not allow extensions");
  if (state.pendingExtension)
    throw new ConflictError("grant.extension_pending", "An extension is already waiting for approval");
  const maxTotal = rule.extend.maxTotal ?? rule.maxDuration;
  const total = state.durationSeconds + state.extendedSeconds + seconds;
  if (total > maxTotal) {
    throw new ForbiddenError(
      "grant.extend_too_long",
      `The grant would last ${formatDuration(total)}; the rule allows at most ${formatDuration(maxTotal)} in total`,
    );
  }
  // Break-glass grants skip approval when they start, but extending one is a fresh decision.
  if (rule.approvals.count === 0) return extendNow(state, ctx, seconds, [], []);
  const pendingExtension = {
    durationSeconds: seconds,
    reason,
    requestedAt: ctx.now.toISOString(),
    approvals: [],
  };
  const next = bump(state, { pendingExtension, approvalsRequired: rule.approvals.count });
  return {
    next,
    events: [event(next, "grant.extension_requested", ctx.actor.email, ctx.now, { seconds, reason })],
  };
}

/**
 * Marks a break-glass grant reviewed (design §3: "flagged for review"): auditors and admins only, never the
 * person who broke the glass, once. The status is untouched; only `review` changes.
 */
export function review(state: Info, ctx: Context, comment?: string): Transition {
  if (!state.breakGlass || !state.review)
    throw new ConflictError("request.not_break_glass", "Only break-glass access is reviewed");
  if (ctx.actor.email === state.requester)
    throw new ForbiddenError("request.self_review", "You cannot review your own break-glass access");
  if (!ctx.admin && !ctx.auditor)
    throw new ForbiddenError(
      "request.not_a_reviewer",
      "Only auditors and admins can mark break-glass access reviewed",
    );
  if (state.review.status === "done")
    throw new ConflictError(
      "request.already_reviewed",
      `Already reviewed${state.review.by ? ` by ${state.review.by}` : ""}`,
      { reviewedBy: state.review.by, reviewedAt: state.review.at },
    );
  const next = bump(state, {
    review: { status: "done", by: ctx.actor.email, at: ctx.now.toISOString(), comment },
  });
  return {
    next,
    events: [
      event(next, "breakglass.reviewed", ctx.actor.email, ctx.now, {
        grantId: state.grantId,
        status: state.status,
        comment,
      }),
    ],
  };
}

/** The time-based transition due for this item, if any: pending timeout, scheduled start, or end. */
export function dueAt(state: Info): string | undefined {
  if (state.status === "pending") return state.pendingUntil;
  if (state.status === "approved") return state.startAt;
  if (state.status === "active") return state.endsAt;
  return undefined;
}

export function sweep(state: Info, now: Date): Transition | undefined {
  const due = dueAt(state);
  if (!due || Date.parse(due) > now.getTime()) return undefined;
  if (state.status === "pending") {
    const next = bump(state, { status: "timed-out" });
    return {
      next,
      events: [event(next, "request.timed_out", SYSTEM, now, { pendingUntil: state.pendingUntil })],
    };
  }
  if (state.status === "approved") return activate(state, now, SYSTEM);
  const next = bump(state, { status: "expired", endedAt: now.toISOString(), pendingExtension: undefined });
  return {
    next,
    events: [event(next, "grant.expired", SYSTEM, now, { endsAt: state.endsAt, grantId: state.grantId })],
  };
}
