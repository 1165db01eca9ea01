import type { Audit } from "../audit/index.ts";
import type { Request } from "../request/index.ts";
import type { Info } from "../request/schema.ts";
import type { NotifyDeps, SlackJobs } from "./ports.ts";
import type { Notice } from "./schema.ts";

/**
 * What a committed transition means for Slack (pure `noticesOf`), and the Request.Hooks that act on it.
 * The domain never knows about Slack: these run after the write, either handed to the worker as a job (API
 * and the Slack endpoints, which must answer fast) or carried out in the process (worker, sweeper, expire).
 * Kept apart from the renderers, so a function that only hands notifications off does not load them.
 */

function extensionOutcome(
  previous: Info,
  next: Info,
  events: readonly Audit.Input[],
): Extract<Notice, { kind: "extension.final" }>["decision"] {
  if (next.status === "active" && next.endsAt !== previous.endsAt) return "approved";
  if (next.status === "active" || events.some((event) => event.type === "grant.extension_denied"))
    return "denied";
  return "ended";
}

function extensionDeciders(events: readonly Audit.Input[]): string[] {
  const extended = events.find((event) => event.type === "grant.extended");
  if (extended && Array.isArray(extended.data.approvers)) return extended.data.approvers.map(String);
  const denied = events.find((event) => event.type === "grant.extension_denied");
  return denied ? [denied.actor] : [];
}

/** What Slack should hear about the transition `previous` → `next` (pure; `events` name who did it). */
export function noticesOf(
  previous: Info | undefined,
  next: Info,
  events: readonly Audit.Input[] = [],
): Notice[] {
  const notices: Notice[] = [];
  const dm = (kind: Extract<Notice, { kind: "dm" }>["dm"]) => notices.push({ kind: "dm", dm: kind });
  if (!previous) {
    if (next.breakGlass) {
      notices.push({ kind: "alert.post" });
      dm("break-glass");
    } else if (next.status === "pending") notices.push({ kind: "approval.post" });
    else if (next.status === "active" || next.status === "approved") dm("approved");
    return notices;
  }
  if (previous.status === "pending") {
    if (next.status !== "pending" || next.approvals.length !== previous.approvals.length)
      notices.push({ kind: "approval.sync" });
    if (next.status === "active" || next.status === "approved") dm("approved");
    else if (next.status === "denied") dm("denied");
    else if (next.status === "timed-out") dm("timed-out");
    return notices;
  }
  if (previous.review?.status === "pending" && next.review?.status === "done")
    notices.push({ kind: "alert.sync" });
  if (previous.status === "approved" && next.status === "active") dm("started");
  if (next.status === "revoked" && previous.status !== "revoked") dm("revoked");
  if (next.status === "expired" && previous.status === "active") dm("expired");

  const before = previous.pendingExtension;
  const after = next.pendingExtension;
  if (after && after.requestedAt !== before?.requestedAt) {
    notices.push({ kind: "extension.post", requestedAt: after.requestedAt });
    dm("extension-requested");
  }
  if (before && after?.requestedAt !== before.requestedAt) {
    const decision = extensionOutcome(previous, next, events);
    notices.push({
      kind: "extension.final",
      requestedAt: before.requestedAt,
      decision,
      by: decision === "ended" ? [] : extensionDeciders(events),
    });
    if (decision === "denied") dm("extension-denied");
  }
  if (next.status === "active" && previous.status === "active" && next.endsAt !== previous.endsAt)
    dm("extended");
  return notices;
}

/** Request.Hooks that hand notifications to the worker (the API and the acknowledging handler answer fast). */
export function deferredHooks(jobs: SlackJobs): Request.Hooks {
  return {
    afterCommit: async (previous, next, events) => {
      const notices = noticesOf(previous, next, events);
      if (notices.length > 0) await jobs.enqueue({ kind: "notify", next, notices });
    },
  };
}

/**
 * Request.Hooks that notify in this process (worker, sweeper, expire), loading the renderers on the first
 * transition that needs them: sweeper and expire mostly have nothing to say, and should not pay for Block
 * Kit at cold start.
 */
export function hooks(deps: NotifyDeps): Request.Hooks {
  let notify: Promise<typeof import("./notify.ts")> | undefined;
  return {
    afterCommit: async (previous, next, events) => {
      const notices = noticesOf(previous, next, events);
      if (notices.length === 0) return;
      notify ??= import("./notify.ts");
      await (await notify).apply(deps, next, notices);
    },
  };
}
