import { createHash } from "node:crypto";
import { AppError } from "../error.ts";
import { type Actor, Identity } from "../identity/index.ts";
import { type Config, Policy } from "../policy/index.ts";
import { connectCommand } from "../request/connect.ts";
import type { CreateInput, Info } from "../request/schema.ts";
import { formatDuration } from "../util/duration.ts";
import type { Namer } from "./blocks.ts";
import type { Draft, Field, FieldError } from "./command.ts";
import { accessText, escapeText, when } from "./kit.ts";

/**
 * Between Slack and `Request.create`: who the Slack user is, what they asked for as a CreateInput (with the
 * rule's defaults, like the API), what went wrong per field, and the short replies they see.
 */

/** When `/access` names no duration: 30 minutes, or less if the rule allows less. */
export const DEFAULT_DURATION_SECONDS = 30 * 60;

/**
 * The directory user behind a Slack user id (never a name). Undefined for strangers, and for every user of
 * another workspace when `settings.slack.teamId` pins one (a workspace `T…`, or an Enterprise Grid org `E…`:
 * `teams` holds the payload's team id and, on Grid, its enterprise id).
 */
export function actorFor(
  config: Config,
  teams: readonly (string | null | undefined)[],
  userId: string,
): Actor | undefined {
  const pinned = config.settings.slack.teamId;
  if (pinned && !teams.includes(pinned)) return undefined;
  return Identity.fromSlackUser(userId, config);
}

/**
 * The Idempotency-Key for a request made from Slack: derived from Slack's own ids for the interaction (the
 * slash command's trigger id, the form's view id), so a retried or replayed delivery maps to the same key.
 * Hashed: Slack's ids are opaque and unbounded, keys are at most 255 printable characters.
 */
export function idempotencyKey(kind: "cmd" | "view", ...ids: (string | undefined)[]): string {
  return `slack:${kind}:${createHash("sha256").update(ids.join("|")).digest("hex").slice(0, 48)}`;
}

export function notRegistered(userId: string): string {
  return (
    `You are not registered with the access broker: your Slack account (\`${userId}\`) is not in its directory, ` +
    "so nothing was requested. Ask a platform admin to add `slackUserId: " +
    userId +
    "` to your entry in the access policy."
  );
}

/** Whether the modal offers the break-glass checkbox: some rule lets `actor` break glass. */
export function mayBreakGlass(config: Config, actor: Actor, instanceId?: string): boolean {
  const covering = instanceId
    ? new Set(Policy.targetsOf(config, { instanceId }).map((target) => target.name))
    : undefined;
  return config.rules.some(
    (rule) =>
      rule.breakGlass.allowed &&
      Identity.matchesAny(actor, rule.breakGlass.by) &&
      (!covering || covering.size === 0 || rule.targets.some((name) => covering.has(name))),
  );
}

/** The CreateInput for a complete draft; the duration defaults to 30m capped at the matching rule's maximum. */
export function toCreateInput(
  config: Config,
  actor: Actor,
  draft: Draft & { instanceId: string },
): CreateInput {
  let durationSeconds = draft.durationSeconds;
  if (durationSeconds === undefined) {
    const evaluation = Policy.evaluate(config, {
      actor,
      instance: { instanceId: draft.instanceId },
      method: draft.method,
      osUser: draft.osUser,
      port: draft.port,
      breakGlass: draft.breakGlass,
    });
    const max = evaluation.outcome === "denied" ? DEFAULT_DURATION_SECONDS : evaluation.rule.maxDuration;
    durationSeconds = Math.min(DEFAULT_DURATION_SECONDS, max);
  }
  return {
    instanceId: draft.instanceId,
    method: draft.method,
    ...(draft.osUser !== undefined ? { osUser: draft.osUser } : {}),
    ...(draft.port !== undefined ? { port: draft.port } : {}),
    durationSeconds,
    reason: draft.reason,
    ...(draft.ticket !== undefined ? { ticket: draft.ticket } : {}),
    breakGlass: draft.breakGlass,
  };
}

const FIELDS = new Set<string>([
  "instanceId",
  "method",
  "osUser",
  "port",
  "durationSeconds",
  "reason",
  "ticket",
]);

/**
 * Problems the create call reported, per field where it named one (input validation and rule violations
 * carry `{path, message}` details); the rest are about the request as a whole (policy denials, conflicts).
 */
export function fieldErrorsOf(error: unknown): { fields: FieldError[]; general?: string } {
  if (!(error instanceof AppError)) return { fields: [], general: undefined };
  const details = Array.isArray(error.details)
    ? (error.details as { path?: unknown; message?: unknown }[])
    : [];
  const fields = details
    .filter((detail) => typeof detail.path === "string" && FIELDS.has(detail.path.split(".")[0] ?? ""))
    .map((detail) => ({
      field: String(detail.path).split(".")[0] as Field,
      message: String(detail.message),
    }));
  return fields.length > 0 ? { fields } : { fields, general: error.message };
}

/** What the requester is told once the request exists (response_url after a slash command). */
export function requestedText(item: Info, channel: string, names: Namer): string {
  const what = `${accessText(item)} on \`${item.instanceId}\` for ${formatDuration(item.durationSeconds)} — \`${item.id}\``;
  if (item.status === "pending") {
    return (
      `📨 Requested ${what}.\nWaiting for ${item.approvalsRequired} approval${item.approvalsRequired === 1 ? "" : "s"} ` +
      `from ${item.approvalsFrom.map((from) => `\`${from}\``).join(", ")} in ${escapeText(channel)}; I'll DM you when it is decided.`
    );
  }
  if (item.status === "active" || item.status === "approved") {
    const how = item.breakGlass
      ? "🚨 Break-glass: active now, without approval; security has been alerted."
      : `✅ Approved${item.approvals.length ? ` by ${item.approvals.map((a) => names(a.by)).join(", ")}` : " by the policy"}.`;
    return `${how} ${what}, until ${when(item.endsAt)}.\nConnect with:\n\`\`\`${connectCommand(item)}\`\`\``;
  }
  return `Request ${what} is ${item.status}.`;
}

/** A decided, denied or refused action explained to the person who clicked, in their words. */
export function explain(error: unknown, names: Namer): string {
  if (!(error instanceof AppError))
    return "Something went wrong on our side; nothing was changed. Try again shortly.";
  const details = (error.details ?? {}) as { status?: string; decidedBy?: string[]; reviewedBy?: string };
  switch (error.code) {
    case "request.not_pending": {
      const by = details.decidedBy?.length ? ` by ${details.decidedBy.map(names).join(", ")}` : "";
      return details.status === "timed-out" || details.status === "cancelled"
        ? `Nothing to decide: this request is ${details.status}.`
        : `Already decided${by}: this request is ${details.status ?? "no longer pending"}.`;
    }
    case "request.already_approved":
      return "You already approved this; each approver counts once.";
    case "request.self_approval":
      return "You can't approve or deny your own request; another approver has to.";
    case "request.not_an_approver":
      return "You are not an approver for this request, so your click changed nothing.";
    case "request.not_found":
    case "grant.not_found":
      return "That request no longer exists, or you can't see it.";
    case "request.already_reviewed":
      return `Already reviewed${details.reviewedBy ? ` by ${names(details.reviewedBy)}` : ""}.`;
    default:
      return `${escapeText(error.message)}.`.replace(/\.\.$/, ".");
  }
}
