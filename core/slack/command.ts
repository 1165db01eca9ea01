import { type Config, InstanceId, type Method, OsUser, RDP_PORT } from "../policy/schema.ts";
import { parseDuration } from "../util/duration.ts";

/**
 * The `/access` one-liner (README § Slack):
 *
 *     /access <instance> [ssh|tunnel|rdp] [os-user|port] [for <duration>] [--break-glass] [--ticket X] <reason…>
 *
 * - `<instance>` comes first; `ec2-user@i-…` names the OS user too.
 * - The method defaults to ssh; a port alone (`i-… 22 …`) means a tunnel (3389: rdp).
 * - The OS user slot is taken only by a name some rule allows (`ec2-user`, `ubuntu`…) or by any valid name
 *   followed by `for <duration>`, so a reason that starts with an ordinary word stays a reason.
 * - `for 30m` is the duration only right after those slots; later it is part of the reason ("need it for
 *   the deploy"). Missing → the rule's default (see worker).
 * - The ticket is `--ticket X`, or else the first issue key in the reason (`INC-42`, `CHG-7`, `OPS-123`),
 *   which stays in the reason too (rules may require the reason to start with it).
 * - `--break-glass` may appear anywhere. `help` prints the usage.
 *
 * Pure: errors are returned per field (the modal shows them inline), never thrown.
 */

export type Field = "instanceId" | "method" | "osUser" | "port" | "durationSeconds" | "reason" | "ticket";

export interface FieldError {
  field: Field;
  message: string;
}

export interface Draft {
  instanceId?: string;
  method: Method;
  /** Whether the method was typed (else ssh by default). */
  methodGiven: boolean;
  osUser?: string;
  port?: number;
  /** Absent when not given: the worker applies the rule's default. */
  durationSeconds?: number;
  reason: string;
  ticket?: string;
  breakGlass: boolean;
}

export interface Parsed {
  draft: Draft;
  errors: FieldError[];
  /** `help` (or `?`): answer with the usage, do nothing else. */
  help: boolean;
}

/** Longest `/access` text handled at all; longer is refused before parsing (README § Slack). */
export const MAX_TEXT = 1_500;
export const MAX_REASON = 1_000;
const TICKET_KEY = /^[A-Z][A-Z0-9]{1,9}-\d{1,9}$/;
const METHODS = new Set<string>(["ssh", "tunnel", "rdp"]);

/** Every OS user some rule allows: the names the OS-user slot recognises without a following `for`. */
export function osUserHints(config: Config): Set<string> {
  return new Set(config.rules.flatMap((rule) => rule.methods.ssh?.osUsers ?? []));
}

function durationAt(tokens: readonly string[], index: number): number | "invalid" | undefined {
  if (tokens[index]?.toLowerCase() !== "for") return undefined;
  const value = tokens[index + 1];
  if (value === undefined) return undefined;
  const seconds = parseDuration(value.toLowerCase());
  if (seconds !== undefined) return seconds;
  // "for 30x" or "for 90" was meant as a duration; "for the deploy" is prose.
  return /^\d/.test(value) ? "invalid" : undefined;
}

export function parseCommand(text: string, hints: ReadonlySet<string> = new Set()): Parsed {
  const errors: FieldError[] = [];
  const draft: Draft = { method: "ssh", methodGiven: false, reason: "", breakGlass: false };
  const all = text.trim().split(/\s+/).filter(Boolean);
  if (all.length === 1 && /^(help|\?|-h|--help)$/i.test(all[0] ?? "")) return { draft, errors, help: true };

  // Flags first, from anywhere; unknown --words stay in the reason untouched.
  const tokens: string[] = [];
  for (let index = 0; index < all.length; index++) {
    const token = all[index] ?? "";
    const lower = token.toLowerCase();
    if (lower === "--break-glass" || lower === "--breakglass") draft.breakGlass = true;
    else if (lower === "--ticket" && all[index + 1] !== undefined) draft.ticket = all[++index];
    else if (lower.startsWith("--ticket=")) draft.ticket = token.slice("--ticket=".length);
    else tokens.push(token);
  }

  let at = 0;
  const first = tokens[0];
  const withUser = first ? /^([^@\s]+)@(i-\S+)$/i.exec(first) : null;
  const instanceText = withUser ? withUser[2] : first;
  if (instanceText && /^i-/i.test(instanceText)) {
    at = 1;
    const id = instanceText.toLowerCase();
    if (InstanceId.safeParse(id).success) draft.instanceId = id;
    else
      errors.push({
        field: "instanceId",
        message: `"${instanceText.slice(0, 40)}" is not an instance id (i- and 8 or 17 hex digits)`,
      });
    if (withUser?.[1]) draft.osUser = withUser[1];
  } else {
    errors.push({
      field: "instanceId",
      message: "Which instance? Start with its id, e.g. i-0123456789abcdef0",
    });
  }

  const method = tokens[at]?.toLowerCase();
  if (at > 0 && method && METHODS.has(method)) {
    draft.method = method as Method;
    draft.methodGiven = true;
    at++;
  }

  const slot = tokens[at];
  if (at > 0 && slot !== undefined && draft.osUser === undefined) {
    const beforeFor = durationAt(tokens, at + 1) !== undefined;
    const numeric = /^\d{1,6}$/.test(slot);
    if (numeric && draft.method === "ssh" && draft.methodGiven) {
      errors.push({ field: "port", message: `ssh takes no port; for a tunnel say "tunnel ${slot}"` });
      at++;
    } else if (numeric) {
      const port = Number(slot);
      if (!draft.methodGiven) draft.method = port === RDP_PORT ? "rdp" : "tunnel";
      if (port >= 1 && port <= 65_535) draft.port = port;
      else errors.push({ field: "port", message: `${slot} is not a port (1-65535)` });
      at++;
    } else if (draft.method === "ssh" && (hints.has(slot) || beforeFor) && slot.toLowerCase() !== "for") {
      if (OsUser.safeParse(slot).success) draft.osUser = slot;
      else errors.push({ field: "osUser", message: `"${slot.slice(0, 40)}" is not a valid OS user name` });
      at++;
    }
  }

  const duration = at > 0 ? durationAt(tokens, at) : undefined;
  if (duration !== undefined) {
    if (duration === "invalid")
      errors.push({
        field: "durationSeconds",
        message: `"${tokens[at + 1]}" is not a duration like 30m, 1h or 1h30m`,
      });
    else draft.durationSeconds = duration;
    at += 2;
  }

  draft.reason = tokens.slice(at).join(" ");
  if (draft.reason === "") errors.push({ field: "reason", message: "Say why you need access" });
  else if (draft.reason.length > MAX_REASON)
    errors.push({
      field: "reason",
      message: `The reason is ${draft.reason.length} characters; at most ${MAX_REASON}`,
    });
  if (draft.ticket === undefined) {
    draft.ticket = tokens
      .slice(at)
      .map((word) => word.replace(/[,.;:)]+$/, "").replace(/^\(/, ""))
      .find((word) => TICKET_KEY.test(word));
  }
  return { draft, errors, help: false };
}

/** The usage text `/access help` answers with. */
export function usage(command = "/access"): string {
  return [
    `*${command} <instance> [ssh|tunnel|rdp] [os-user|port] [for <duration>] <reason…>*`,
    `• \`${command} i-0123456789abcdef0 for 30m look at the logs\` — ssh as the rule's OS user`,
    `• \`${command} i-0123456789abcdef0 ssh ubuntu for 1h INC-42 restart nginx\` — OS user, ticket INC-42`,
    `• \`${command} i-0123456789abcdef0 tunnel 22 for 2h db migration\` — an EC2 Instance Connect Endpoint tunnel`,
    `• \`${command} i-0123456789abcdef0 rdp for 1h windows update\``,
    `• \`${command} i-0123456789abcdef0 ssh for 30m --break-glass prod is down\` — emergency: active at once, security alerted, reviewed later`,
    `• \`${command}\` alone opens a form. Add \`--ticket X\`, or write an issue key (INC-42) in the reason.`,
  ].join("\n");
}

/** One input's state in a submitted modal (Slack's `view.state.values[block][action]`). */
export interface ModalInput {
  value?: string | null;
  selected_option?: { value: string } | null;
  selected_options?: { value: string }[];
}

/** The request modal's submitted values as a draft, with per-field errors (shown with response_action). */
export function parseModal(values: Record<string, Record<string, ModalInput>>): Parsed {
  const read = (block: string) => values[block]?.value;
  const text = (block: string) => read(block)?.value?.trim() ?? "";
  const errors: FieldError[] = [];
  const draft: Draft = { method: "ssh", methodGiven: true, reason: "", breakGlass: false };

  const instance = text("instance").toLowerCase();
  if (InstanceId.safeParse(instance).success) draft.instanceId = instance;
  else errors.push({ field: "instanceId", message: "An instance id: i- and 8 or 17 hex digits" });

  const method = read("method")?.selected_option?.value ?? "ssh";
  if (METHODS.has(method)) draft.method = method as Method;
  else errors.push({ field: "method", message: "Choose ssh, tunnel or rdp" });

  const target = text("target");
  if (target !== "") {
    if (draft.method === "ssh") {
      if (OsUser.safeParse(target).success) draft.osUser = target;
      else errors.push({ field: "osUser", message: `"${target.slice(0, 40)}" is not a valid OS user name` });
    } else if (/^\d{1,5}$/.test(target) && Number(target) >= 1 && Number(target) <= 65_535) {
      draft.port = Number(target);
    } else errors.push({ field: "port", message: "A port number, 1-65535" });
  }

  const duration = text("duration");
  const seconds = parseDuration(duration.toLowerCase());
  if (seconds === undefined)
    errors.push({ field: "durationSeconds", message: "A duration like 30m, 1h or 1h30m" });
  else draft.durationSeconds = seconds;

  draft.reason = text("reason");
  if (draft.reason === "") errors.push({ field: "reason", message: "Say why you need access" });
  else if (draft.reason.length > MAX_REASON)
    errors.push({ field: "reason", message: `At most ${MAX_REASON} characters` });

  const ticket = text("ticket");
  if (ticket !== "") draft.ticket = ticket;
  draft.breakGlass = (read("break_glass")?.selected_options ?? []).some((choice) => choice.value === "yes");
  return { draft, errors, help: false };
}
