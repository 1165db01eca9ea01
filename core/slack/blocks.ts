import * as Identity from "../identity/index.ts";
import type { Config, Rule } from "../policy/schema.ts";
import { connectCommand } from "../request/connect.ts";
import type { Info } from "../request/schema.ts";
import { formatDuration } from "../util/duration.ts";
import type { Draft, Field, FieldError } from "./command.ts";
import {
  accessText,
  type Block,
  code,
  escapeText,
  type Message,
  MODAL_BLOCKS,
  MODAL_CALLBACK,
  mrkdwn,
  plain,
  section,
  type View,
  when,
} from "./kit.ts";
import type { DmKind } from "./schema.ts";

/**
 * Block Kit for every message the broker sends to Slack. Pure functions of the stored request (and the
 * rule), so a message can be rendered again at any time from the table — which is what keeps approval
 * messages right when approvers race (see notify.ts). The basics they are built from, and what the Slack
 * endpoint answers with, are in kit.ts (re-exported here): the endpoint loads that, not these renderers.
 */

export {
  accessText,
  type Block,
  type Ephemeral,
  ephemeral,
  escapeText,
  type Message,
  MODAL_BLOCKS,
  MODAL_CALLBACK,
  submittedView,
  type View,
  when,
} from "./kit.ts";

/** Kept here too: Slack's callers import it with the rest of the message helpers. */
export { connectCommand };

/** Action ids: what a button asks for. The value carries the id it applies to. */
export const ACTIONS = {
  approve: "request.approve",
  deny: "request.deny",
  approveExtension: "extension.approve",
  denyExtension: "extension.deny",
  extend: "grant.extend",
  end: "grant.end",
  review: "breakglass.review",
} as const;

/** How much one Extend click asks for (capped by what the rule still allows). */
export const EXTEND_STEP_SECONDS = 30 * 60;

const context = (text: string): Block => ({ type: "context", elements: [mrkdwn(text)] });

/** How people are named: a Slack mention when the directory binds their id, else their email. */
export type Namer = (email: string) => string;

export function namer(config: Config): Namer {
  return (email) => {
    const id = Identity.slackUserIdOf(email, config);
    return id ? `<@${id}>` : escapeText(email);
  };
}

function connectHint(item: Info): string {
  const command = `\`\`\`${connectCommand(item)}\`\`\``;
  if (item.method === "rdp") return `${command}\nthen point your RDP client at \`127.0.0.1:13389\`.`;
  if (item.method === "tunnel" && (item.port ?? 22) === 22)
    return `${command}\nthen \`ssh -p 2222 <user>@127.0.0.1\` (each connection gets its own tunnel).`;
  return command;
}

const RISK = { low: "🟢 low", medium: "🟡 medium", high: "🔴 high" } as const;

function approvers(item: Info, names: Namer): string {
  const emails = [...new Set(item.approvals.map((approval) => approval.by))];
  return emails.map(names).join(", ");
}

function summaryFields(item: Info, rule: Rule | undefined): string[] {
  return [
    `*Target*\n${code(item.target)} · ${item.account} · ${item.region}`,
    `*Rule*\n${code(item.ruleId)}${rule?.description ? ` — ${escapeText(rule.description)}` : ""}`,
    `*Risk*\n${rule ? RISK[rule.risk] : "unknown (rule removed)"}`,
    `*Ticket*\n${item.ticket ? escapeText(item.ticket) : "—"}`,
    `*Request*\n${code(item.id)}`,
  ];
}

function quoted(text: string): string {
  return escapeText(text)
    .split("\n")
    .map((line) => `> ${line}`)
    .join("\n");
}

function historyLine(item: Info, names: Namer): string {
  const outcome =
    item.status === "denied"
      ? `denied by ${item.decision ? names(item.decision.by) : "?"}`
      : item.approvals.length > 0
        ? `${item.status}, approved by ${approvers(item, names)}`
        : item.breakGlass
          ? `${item.status}, break-glass`
          : item.status;
  return `• ${when(item.createdAt)} ${accessText(item)} on ${code(item.instanceId)} for ${formatDuration(item.durationSeconds)} — ${outcome}`;
}

export interface ApprovalContext {
  request: Info;
  rule: Rule | undefined;
  names: Namer;
  /** The requester's requests before this one, newest first (at most 5 are shown). */
  history: Info[];
}

function outcomeLine(item: Info, names: Namer, rule: Rule | undefined): string {
  switch (item.status) {
    case "pending":
      return "";
    case "denied":
      return `❌ *Denied* by ${item.decision ? names(item.decision.by) : "?"}${item.decision?.reason ? `: ${escapeText(item.decision.reason)}` : ""}`;
    case "timed-out":
      return `⌛ *Timed out*: nobody decided within ${rule ? formatDuration(rule.pendingTimeout) : "the rule's timeout"}`;
    case "cancelled":
      return "🚫 *Cancelled* by the requester";
    default: {
      const by = approvers(item, names);
      const head = by ? `✅ *Approved* by ${by}` : "✅ *Approved*";
      if (item.status === "active") return `${head} · active until ${when(item.endsAt)}`;
      if (item.status === "approved") return `${head} · starts ${when(item.startAt)}`;
      return `${head} · ${item.status} ${when(item.endedAt)}`;
    }
  }
}

/**
 * The approval request posted to the rule's channel: who, what, why, ticket, rule, risk, history, and while
 * pending the Approve / Deny buttons carrying the request id. Once decided the buttons are gone and the
 * message names the decider(s).
 */
export function approvalMessage({ request: item, rule, names, history }: ApprovalContext): Message {
  const what = `${accessText(item)} on ${code(item.instanceId)} for *${formatDuration(item.durationSeconds)}*`;
  const blocks: Block[] = [
    { type: "header", text: plain(`Access request: ${item.method} on ${item.instanceId}`) },
    section(`${names(item.requester)} asks for ${what}`, summaryFields(item, rule)),
    section(`*Reason*\n${quoted(item.reason || "(none given)")}`),
  ];
  const earlier = history.filter((entry) => entry.id !== item.id).slice(0, 5);
  blocks.push(
    context(
      earlier.length
        ? `*Recent requests by ${names(item.requester)}*\n${earlier.map((entry) => historyLine(entry, names)).join("\n")}`
        : `No earlier requests by ${names(item.requester)}`,
    ),
  );
  const progress = `${item.approvals.length} of ${item.approvalsRequired} approvals`;
  if (item.status === "pending") {
    blocks.push(
      context(
        item.approvals.length > 0
          ? `*${progress}:* ${approvers(item, names)} · from ${item.approvalsFrom.map(code).join(", ")}`
          : `Needs ${item.approvalsRequired} approval${item.approvalsRequired === 1 ? "" : "s"} from ${item.approvalsFrom.map(code).join(", ")} · never the requester · times out ${when(item.pendingUntil)}`,
      ),
    );
    blocks.push({
      type: "actions",
      block_id: "decision",
      elements: [
        {
          type: "button",
          action_id: ACTIONS.approve,
          text: plain("Approve"),
          style: "primary",
          value: item.id,
        },
        {
          type: "button",
          action_id: ACTIONS.deny,
          text: plain("Deny"),
          style: "danger",
          value: item.id,
          confirm: {
            title: plain("Deny this request?"),
            text: mrkdwn(`${names(item.requester)} will be told it was denied by you.`),
            confirm: plain("Deny"),
            deny: plain("Cancel"),
          },
        },
      ],
    });
  } else {
    blocks.push(section(outcomeLine(item, names, rule)));
  }
  const state = item.status === "pending" ? `pending (${progress})` : outcomeLine(item, (e) => e, rule);
  return {
    text: `Access request ${item.id}: ${item.requester} asks for ${item.method} on ${item.instanceId} — ${state.replace(/[*✅❌⌛🚫]/gu, "").trim()}`,
    blocks,
  };
}

/** An extension waiting for approval, or (decided) what became of it; posted to the approvals channel. */
export function extensionMessage(
  item: Info,
  requestedAt: string,
  names: Namer,
  outcome?: { decision: "approved" | "denied" | "ended"; by: string[] },
): Message {
  const pending = item.pendingExtension?.requestedAt === requestedAt ? item.pendingExtension : undefined;
  const seconds = pending?.durationSeconds;
  const blocks: Block[] = [
    { type: "header", text: plain(`Extension request: ${item.method} on ${item.instanceId}`) },
    section(
      `${names(item.requester)} asks to extend ${accessText(item)} on ${code(item.instanceId)}${seconds ? ` by *${formatDuration(seconds)}*` : ""} (now until ${when(item.endsAt)})`,
      summaryFields(item, undefined).filter((field) => !field.startsWith("*Risk*")),
    ),
  ];
  if (pending) {
    blocks.push(section(`*Reason*\n${quoted(pending.reason)}`));
    blocks.push({
      type: "actions",
      block_id: "extension",
      elements: [
        {
          type: "button",
          action_id: ACTIONS.approveExtension,
          text: plain("Approve"),
          style: "primary",
          value: `${item.id}|${requestedAt}`,
        },
        {
          type: "button",
          action_id: ACTIONS.denyExtension,
          text: plain("Deny"),
          style: "danger",
          value: `${item.id}|${requestedAt}`,
        },
      ],
    });
  } else {
    const by = outcome?.by.length ? ` by ${outcome.by.map(names).join(", ")}` : "";
    blocks.push(
      section(
        outcome?.decision === "approved"
          ? `✅ *Extended*${by} · now until ${when(item.endsAt)}`
          : outcome?.decision === "denied"
            ? `❌ *Extension denied*${by}`
            : `⏹️ The grant is ${item.status}; nothing left to extend`,
      ),
    );
  }
  return {
    text: `Extension request for ${item.grantId} (${item.requester}, ${item.instanceId})${pending ? "" : `: ${outcome?.decision ?? item.status}`}`,
    blocks,
  };
}

function grantButtons(item: Info, rule: Rule | undefined): Block | undefined {
  if (item.status !== "active" && item.status !== "approved") return undefined;
  const elements: Record<string, unknown>[] = [];
  const seconds = extendStep(item, rule);
  if (item.status === "active" && seconds > 0 && !item.pendingExtension) {
    elements.push({
      type: "button",
      action_id: ACTIONS.extend,
      text: plain(`Extend ${formatDuration(seconds)}`),
      value: `${item.grantId}|${seconds}|${item.endsAt ?? ""}`,
    });
  }
  elements.push({
    type: "button",
    action_id: ACTIONS.end,
    text: plain("End now"),
    style: "danger",
    value: item.grantId,
    confirm: {
      title: plain("End your access now?"),
      text: mrkdwn(`Access to ${code(item.instanceId)} ends at once; you would have to ask again.`),
      confirm: plain("End now"),
      deny: plain("Keep it"),
    },
  });
  return { type: "actions", block_id: "grant", elements };
}

/** What one Extend click asks for: 30m, or what the rule's `extend.maxTotal` still allows; 0 = no button. */
export function extendStep(item: Info, rule: Rule | undefined): number {
  if (!rule?.extend.allowed) return 0;
  const maxTotal = rule.extend.maxTotal ?? rule.maxDuration;
  const left = maxTotal - item.durationSeconds - item.extendedSeconds;
  return Math.max(0, Math.min(EXTEND_STEP_SECONDS, left));
}

export type { DmKind };

export interface DmContext {
  request: Info;
  rule: Rule | undefined;
  names: Namer;
  /** Where approvers are asked (for "waiting for approval in #…"). */
  channel?: string;
  /** For "ends in N minutes". */
  now?: Date;
}

/** A direct message to the requester about their request or grant; with Extend / End now while it lasts. */
export function requesterDm(kind: DmKind, { request: item, rule, names, channel, now }: DmContext): Message {
  const on = `${accessText(item)} on ${code(item.instanceId)} (${code(item.target)})`;
  const lines: string[] = [];
  let buttons = false;
  switch (kind) {
    case "approved":
    case "started": {
      const by = approvers(item, names);
      if (item.status === "approved") {
        lines.push(
          `✅ Your request for ${on} was approved${by ? ` by ${by}` : ""}. It starts ${when(item.startAt)}.`,
        );
      } else {
        lines.push(
          kind === "started"
            ? `▶️ Your access to ${on} started; it lasts until ${when(item.endsAt)}.`
            : `✅ Your request for ${on} was approved${by ? ` by ${by}` : " by the policy (no approval needed)"}. Access lasts until ${when(item.endsAt)} (${formatDuration(item.durationSeconds + item.extendedSeconds)}).`,
        );
      }
      lines.push(`Connect with:\n${connectHint(item)}`);
      buttons = true;
      break;
    }
    case "break-glass":
      lines.push(
        `🚨 Break-glass: your access to ${on} is active until ${when(item.endsAt)}, without approval. Security has been alerted and will review it.`,
      );
      lines.push(`Connect with:\n${connectHint(item)}`);
      buttons = true;
      break;
    case "denied":
      lines.push(
        `❌ Your request for ${on} was denied by ${item.decision ? names(item.decision.by) : "an approver"}${item.decision?.reason ? `: ${escapeText(item.decision.reason)}` : "."}`,
      );
      break;
    case "timed-out":
      lines.push(
        `⌛ Nobody decided on your request for ${on} in time (${rule ? formatDuration(rule.pendingTimeout) : "the rule's timeout"}), so it timed out. Ask again with \`/access\`.`,
      );
      break;
    case "revoked":
      lines.push(
        item.decision?.by === item.requester
          ? `⏹️ You ended your access to ${on}.`
          : `🛑 Your access to ${on} was revoked by ${item.decision ? names(item.decision.by) : "an approver"}${item.decision?.reason ? `: ${escapeText(item.decision.reason)}` : "."}`,
      );
      break;
    case "expired":
      lines.push(
        `⏹️ Your access to ${on} has ended (${when(item.endedAt ?? item.endsAt)}). Need more? Ask again with \`/access\`.`,
      );
      break;
    case "expiring":
      {
        const minutes = Math.max(
          1,
          Math.round((Date.parse(item.endsAt ?? "") - (now ?? new Date()).getTime()) / 60_000),
        );
        lines.push(
          `⏰ Your access to ${on} ends ${when(item.endsAt)} — in about ${minutes} minute${minutes === 1 ? "" : "s"}.`,
        );
      }
      lines.push(`Still connecting with:\n${connectHint(item)}`);
      buttons = true;
      break;
    case "extended":
      lines.push(`➕ Extended: your access to ${on} now lasts until ${when(item.endsAt)}.`);
      buttons = true;
      break;
    case "extension-requested":
      lines.push(
        `⏳ Your extension of ${on} by ${formatDuration(item.pendingExtension?.durationSeconds ?? 0)} waits for approval${channel ? ` in ${escapeText(channel)}` : ""}. Your access still ends ${when(item.endsAt)} unless it is approved.`,
      );
      break;
    case "extension-denied":
      lines.push(`❌ Your extension of ${on} was denied. Access still ends ${when(item.endsAt)}.`);
      buttons = true;
      break;
  }
  const blocks: Block[] = lines.map((line) => section(line));
  blocks.push(context(`Request ${code(item.id)} · grant ${code(item.grantId)} · rule ${code(item.ruleId)}`));
  const actions = buttons ? grantButtons(item, rule) : undefined;
  if (actions) blocks.push(actions);
  const text = lines[0]?.replace(/<!date\^\d+\^[^|]+\|([^>]+)>/g, "$1").replace(/[`*]/g, "") ?? kind;
  return { text: text.slice(0, 500), blocks };
}

/** The security channel's alert for break-glass access, with the review task (Mark reviewed) until done. */
export function breakGlassAlert(item: Info, rule: Rule | undefined, names: Namer): Message {
  const blocks: Block[] = [
    { type: "header", text: plain(`🚨 Break-glass access on ${item.instanceId}`) },
    section(
      `${names(item.requester)} broke the glass: ${accessText(item)} on ${code(item.instanceId)} for *${formatDuration(item.durationSeconds)}*, active at once without approval (until ${when(item.endsAt)}).`,
      summaryFields(item, rule),
    ),
    section(`*Reason*\n${quoted(item.reason || "(none given)")}`),
  ];
  if (item.review?.status === "done") {
    blocks.push(
      section(
        `✔️ *Reviewed* by ${item.review.by ? names(item.review.by) : "?"} ${when(item.review.at)}${item.review.comment ? `: ${escapeText(item.review.comment)}` : ""}`,
      ),
    );
  } else {
    blocks.push(context("Review pending: an auditor or admin confirms this use was justified."));
    blocks.push({
      type: "actions",
      block_id: "review",
      elements: [
        {
          type: "button",
          action_id: ACTIONS.review,
          text: plain("Mark reviewed"),
          style: "primary",
          value: item.id,
        },
      ],
    });
  }
  return {
    text: `Break-glass: ${item.requester} took ${item.method} on ${item.instanceId} (${item.id})${item.review?.status === "done" ? ` — reviewed by ${item.review.by}` : " — review pending"}`,
    blocks,
  };
}

export interface ModalContext {
  draft: Partial<Draft>;
  errors: FieldError[];
  /** Offer the break-glass checkbox: some rule lets this user break glass. */
  breakGlassAllowed: boolean;
}

const option = (value: string, label = value) => ({ text: plain(label), value });

function input(
  blockId: string,
  label: string,
  element: Record<string, unknown>,
  options: { optional?: boolean; hint?: string; error?: string } = {},
): Block {
  const hint = options.error ? `⚠️ ${options.error}` : options.hint;
  return {
    type: "input",
    block_id: blockId,
    label: plain(label),
    optional: options.optional ?? false,
    element: { action_id: "value", ...element },
    ...(hint ? { hint: plain(hint) } : {}),
  };
}

/**
 * The request form, pre-filled with what the one-liner said; each problem is shown on its field (as the
 * field's hint) and listed at the top, since `views.open` cannot mark fields invalid by itself.
 */
export function requestModal({ draft, errors, breakGlassAllowed }: ModalContext): View {
  const errorOf = (field: Field) =>
    errors
      .filter((error) => MODAL_BLOCKS[error.field] === MODAL_BLOCKS[field])
      .map((error) => error.message)
      .join("; ") || undefined;
  const text = (value: string | number | undefined, placeholder: string, multiline = false) => ({
    type: "plain_text_input",
    placeholder: plain(placeholder),
    ...(multiline ? { multiline: true, max_length: 1_000 } : { max_length: 200 }),
    ...(value !== undefined && value !== "" ? { initial_value: String(value) } : {}),
  });
  const method = draft.method ?? "ssh";
  const blocks: Block[] = [];
  if (errors.length > 0)
    blocks.push(
      section(`*Please check:*\n${errors.map((error) => `• ${escapeText(error.message)}`).join("\n")}`),
    );
  blocks.push(
    input("instance", "Instance", text(draft.instanceId, "i-0123456789abcdef0"), {
      error: errorOf("instanceId"),
    }),
    input(
      "method",
      "Access",
      {
        type: "static_select",
        options: [
          option("ssh", "ssh — log in as an OS user"),
          option("tunnel", "tunnel — TCP port"),
          option("rdp"),
        ],
        initial_option:
          method === "ssh"
            ? option("ssh", "ssh — log in as an OS user")
            : method === "tunnel"
              ? option("tunnel", "tunnel — TCP port")
              : option("rdp"),
      },
      { error: errorOf("method") },
    ),
    input(
      "target",
      "OS user (ssh) or port (tunnel)",
      text(draft.osUser ?? draft.port, "default: the rule's only one"),
      {
        optional: true,
        error: errorOf("osUser"),
      },
    ),
    input(
      "duration",
      "For how long",
      text(draft.durationSeconds ? formatDuration(draft.durationSeconds) : "30m", "30m, 1h, 1h30m"),
      {
        error: errorOf("durationSeconds"),
      },
    ),
    input("reason", "Reason", text(draft.reason, "what you will do, and why now", true), {
      error: errorOf("reason"),
    }),
    input("ticket", "Ticket", text(draft.ticket, "INC-42"), { optional: true, error: errorOf("ticket") }),
  );
  if (breakGlassAllowed) {
    const choice = option("yes", "Break glass: active at once, security alerted, reviewed afterwards");
    blocks.push(
      input(
        "break_glass",
        "Emergency",
        { type: "checkboxes", options: [choice], ...(draft.breakGlass ? { initial_options: [choice] } : {}) },
        { optional: true },
      ),
    );
  }
  return {
    type: "modal",
    callback_id: MODAL_CALLBACK,
    title: plain("Request access") as View["title"],
    submit: plain("Request") as View["submit"],
    close: plain("Cancel") as View["close"],
    blocks,
  };
}
