import type { Info } from "../request/schema.ts";
import { formatDuration } from "../util/duration.ts";
import type { Field } from "./command.ts";

/**
 * The Block Kit basics every message is built from, and what the acknowledging handler answers with
 * (ephemeral replies, the modal's field errors and its "requested" view). Apart from blocks.ts, which
 * renders the messages and DMs: the Slack endpoint loads only this, the renderers load with the worker.
 *
 * Everything a user typed is escaped before it reaches mrkdwn (`&`, `<`, `>`), so a reason cannot
 * mention `@channel`, fake a link or ping anyone.
 */

export type Block = { type: string; block_id?: string; [key: string]: unknown };

export interface Message {
  /** Fallback for notifications and clients without Block Kit; Slack recommends it alongside blocks. */
  text: string;
  blocks: Block[];
}

export interface View {
  type: "modal";
  callback_id: string;
  title: { type: "plain_text"; text: string };
  submit?: { type: "plain_text"; text: string };
  close?: { type: "plain_text"; text: string };
  blocks: Block[];
}

export const MODAL_CALLBACK = "access_request";

/** Block ids of the request modal, per draft field (errors are reported against these). */
export const MODAL_BLOCKS: Record<Field | "breakGlass", string> = {
  instanceId: "instance",
  method: "method",
  osUser: "target",
  port: "target",
  durationSeconds: "duration",
  reason: "reason",
  ticket: "ticket",
  breakGlass: "break_glass",
};

/** Slack's mrkdwn control characters (docs: "Escaping text"). */
export function escapeText(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export const plain = (text: string) => ({
  type: "plain_text" as const,
  text: text.slice(0, 150),
  emoji: true,
});
export const mrkdwn = (text: string) => ({ type: "mrkdwn", text: text.slice(0, 3_000) });
export const section = (text: string, fields?: string[]): Block => ({
  type: "section",
  text: mrkdwn(text),
  ...(fields?.length ? { fields: fields.slice(0, 10).map((field) => mrkdwn(field)) } : {}),
});
export const code = (text: string) => `\`${text.replace(/`/g, "ˋ")}\``;

/** A time every reader sees in their own zone (Slack date formatting), with a UTC fallback. */
export function when(iso: string | undefined): string {
  if (!iso) return "—";
  const date = new Date(iso);
  const fallback = `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  return `<!date^${Math.floor(date.getTime() / 1000)}^{date_short_pretty} {time}|${fallback}>`;
}

/** "ssh as `ec2-user`", "a tunnel to port 22", "rdp". */
export function accessText(item: Pick<Info, "method" | "osUser" | "port">): string {
  if (item.method === "ssh") return `ssh${item.osUser ? ` as ${code(item.osUser)}` : ""}`;
  if (item.method === "tunnel") return `a tunnel to port ${item.port ?? 22}`;
  return "rdp";
}

/** What the modal turns into once the request exists. */
export function submittedView(item: Info, channel: string | undefined): View {
  const status =
    item.status === "pending"
      ? `Waiting for ${item.approvalsRequired} approval${item.approvalsRequired === 1 ? "" : "s"}${channel ? ` in ${escapeText(channel)}` : ""}. You will get a DM when it is decided.`
      : `Active until ${when(item.endsAt)}. Your DM has the command to connect.`;
  return {
    type: "modal",
    callback_id: `${MODAL_CALLBACK}_done`,
    title: plain("Access requested") as View["title"],
    close: plain("Done") as View["close"],
    blocks: [
      section(
        `${accessText(item)} on ${code(item.instanceId)} for *${formatDuration(item.durationSeconds)}* — ${code(item.id)}\n${status}`,
      ),
    ],
  };
}

/** A reply only the person who typed the command (or clicked) sees. */
export function ephemeral(text: string, blocks?: Block[]) {
  return {
    response_type: "ephemeral" as const,
    replace_original: false,
    text,
    ...(blocks ? { blocks } : {}),
  };
}
export type Ephemeral = ReturnType<typeof ephemeral>;
