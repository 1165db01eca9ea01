/** Human views: compact tables and `key: value` lines. `--json` bypasses all of this. */
import type { Audit } from "../core/audit/index.ts";
import type { Request } from "../core/request/index.ts";
import { formatDuration } from "../core/util/duration-text.ts";

/**
 * Text from the API (reasons, comments, emails) reaches an approver's terminal: strip control characters
 * and bidi overrides so a request cannot carry escape sequences or disguise itself.
 */
export function clean(text: string): string {
  return text.replace(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/gu, " ");
}

function truncate(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

/** A whole-unit span: seconds under 2 minutes, minutes under a day, hours beyond. */
export function span(seconds: number): string {
  const abs = Math.abs(Math.round(seconds));
  if (abs < 120) return formatDuration(abs);
  if (abs < 86_400) return formatDuration(Math.round(abs / 60) * 60);
  return formatDuration(Math.round(abs / 3_600) * 3_600);
}

export function relative(iso: string, now: Date): string {
  if (Number.isNaN(Date.parse(iso))) return "-";
  const seconds = Math.round((Date.parse(iso) - now.getTime()) / 1000);
  if (Math.abs(seconds) < 5) return "now";
  return seconds > 0 ? `in ${span(seconds)}` : `${span(seconds)} ago`;
}

/** `2025-06-01 12:00:00Z (in 29m)`: exact UTC for the record, relative for the reader. */
export function when(iso: string | undefined, now: Date): string {
  if (!iso) return "-";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return clean(iso);
  return `${date.toISOString().slice(0, 19).replace("T", " ")}Z (${relative(iso, now)})`;
}

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** `key: value` lines aligned on the colon; undefined values are left out. */
export function fields(pairs: readonly (readonly [string, string | undefined])[]): string {
  const present = pairs.filter((pair): pair is readonly [string, string] => pair[1] !== undefined);
  const width = Math.max(0, ...present.map(([key]) => key.length + 1));
  return present.map(([key, value]) => `${`${key}:`.padEnd(width)} ${value}`).join("\n");
}

type Access = Pick<Request.Info, "method" | "osUser" | "port">;

export function access(item: Access): string {
  if (item.method === "ssh") return item.osUser ? `ssh as ${clean(item.osUser)}` : "ssh";
  return item.port ? `${item.method} to port ${item.port}` : item.method;
}

function shortAccess(item: Access): string {
  if (item.method === "ssh") return item.osUser ? `ssh ${clean(item.osUser)}` : "ssh";
  return item.port ? `${item.method} :${item.port}` : item.method;
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

/** The one line that says what happens next for a request in its current state. */
function nextStep(request: Request.Info, now: Date): [string, string | undefined][] {
  switch (request.status) {
    case "pending": {
      const missing = Math.max(0, request.approvalsRequired - request.approvals.length);
      return [
        [
          "approvals",
          `${request.approvals.length} of ${request.approvalsRequired} (waiting for ${plural(missing, "more approval")} from ${request.approvalsFrom.length ? request.approvalsFrom.map(clean).join(", ") : `the approvers of rule ${clean(request.ruleId)}`})`,
        ],
        ["pending until", when(request.pendingUntil, now)],
        ["requested start", request.startAt ? when(request.startAt, now) : undefined],
      ];
    }
    case "approved":
      return [
        ["grant", request.grantId],
        ["starts", when(request.startsAt ?? request.startAt, now)],
        ["ends", when(request.endsAt, now)],
      ];
    case "active":
      return [
        ["grant", request.grantId],
        ["ends", when(request.endsAt, now)],
      ];
    case "denied":
      return [
        [
          "denied by",
          request.decision
            ? `${clean(request.decision.by)}${request.decision.reason ? `: ${clean(request.decision.reason)}` : ""}`
            : "-",
        ],
      ];
    default:
      return [
        ["grant", request.startsAt ? request.grantId : undefined],
        ["ended", request.endedAt ? when(request.endedAt, now) : undefined],
      ];
  }
}

function breakGlassLine(item: { breakGlass: boolean }, review?: Request.Info["review"]): string | undefined {
  if (!item.breakGlass) return undefined;
  if (review?.status === "done") return `yes (reviewed by ${clean(review.by ?? "?")})`;
  return "yes — security was alerted; this access will be reviewed";
}

/** What `access request`, `approve`, `deny` and `cancel` print: the id, the status and what comes next. */
export function requestSummary(request: Request.Info, now: Date): string {
  return fields([
    ["request", request.id],
    ["status", request.status],
    ...nextStep(request, now),
    ["break-glass", breakGlassLine(request, request.review)],
  ]);
}

/** `access show <request>`: everything a requester or an approver needs to decide. */
export function requestDetail(request: Request.Info, now: Date): string {
  const lines = [
    fields([
      ["request", request.id],
      ["status", request.status],
      ["requester", clean(request.requester)],
      ["instance", `${request.instanceId} (${clean(request.target)}, ${request.account}/${request.region})`],
      ["access", access(request)],
      [
        "duration",
        `${formatDuration(request.durationSeconds)}${request.extendedSeconds ? ` (+${formatDuration(request.extendedSeconds)} extended)` : ""}`,
      ],
      ["reason", clean(request.reason) || "-"],
      ["ticket", request.ticket ? clean(request.ticket) : undefined],
      ["rule", clean(request.ruleId)],
      ["break-glass", breakGlassLine(request, request.review)],
      ["created", when(request.createdAt, now)],
      ...nextStep(request, now),
      ["starts", request.status !== "approved" && request.startsAt ? when(request.startsAt, now) : undefined],
      [
        "ends",
        request.status !== "approved" && request.status !== "active" && request.endsAt
          ? when(request.endsAt, now)
          : undefined,
      ],
      ["extension", extensionLine(request.pendingExtension, now)],
    ]),
  ];
  if (request.approvals.length > 0) {
    lines.push("approved by:");
    for (const approval of request.approvals) {
      lines.push(
        `  ${clean(approval.by)}  ${when(approval.at, now)}${approval.comment ? `  "${clean(approval.comment)}"` : ""}`,
      );
    }
  }
  return lines.join("\n");
}

function extensionLine(extension: Request.Info["pendingExtension"], now: Date): string | undefined {
  if (!extension) return undefined;
  return `+${formatDuration(extension.durationSeconds)} requested ${relative(extension.requestedAt, now)}, awaiting approval (${extension.approvals.length} so far): ${clean(extension.reason)}`;
}

export function requestTable(items: readonly Request.Info[], now: Date): string {
  if (items.length === 0) return "(no requests)";
  return table(
    ["ID", "STATUS", "REQUESTER", "INSTANCE", "ACCESS", "FOR", "CREATED", "REASON"],
    items.map((request) => [
      request.id,
      request.status,
      clean(request.requester),
      request.instanceId,
      shortAccess(request),
      formatDuration(request.durationSeconds + request.extendedSeconds),
      relative(request.createdAt, now),
      truncate(clean(request.reason), 40),
    ]),
  );
}

export function grantDetail(grant: Request.Grant, now: Date): string {
  return fields([
    ["grant", grant.id],
    ["status", grant.status],
    ["request", grant.requestId],
    ["requester", clean(grant.requester)],
    ["instance", `${grant.instanceId} (${grant.account}/${grant.region})`],
    ["access", access(grant)],
    ["rule", clean(grant.ruleId)],
    ["approved by", grant.approvers.length ? grant.approvers.map(clean).join(", ") : "(auto-approved)"],
    ["break-glass", breakGlassLine(grant)],
    ["starts", when(grant.startsAt, now)],
    [grant.endedAt ? "planned end" : "ends", when(grant.endsAt, now)],
    ["ended", grant.endedAt ? when(grant.endedAt, now) : undefined],
    ["extension", extensionLine(grant.pendingExtension, now)],
  ]);
}

export function grantTable(items: readonly Request.Grant[], now: Date): string {
  if (items.length === 0) return "(no grants)";
  return table(
    ["GRANT", "STATUS", "REQUESTER", "INSTANCE", "ACCESS", "STARTS", "ENDS"],
    items.map((grant) => [
      grant.id,
      [grant.status, grant.breakGlass ? "break-glass" : "", grant.pendingExtension ? "extension asked" : ""]
        .filter(Boolean)
        .join(", "),
      clean(grant.requester),
      grant.instanceId,
      shortAccess(grant),
      grant.startsAt ? relative(grant.startsAt, now) : "-",
      relative(grant.endedAt ?? grant.endsAt ?? "", now),
    ]),
  );
}

export function auditTable(items: readonly Audit.Info[]): string {
  if (items.length === 0) return "(no audit records)";
  return table(
    ["SEQ", "AT", "TYPE", "ACTOR", "SUBJECT", "DATA"],
    items.map((record) => [
      String(record.seq),
      `${record.at.slice(0, 19).replace("T", " ")}Z`,
      record.type,
      clean(record.actor),
      clean(record.subject),
      truncate(clean(JSON.stringify(record.data)), 60),
    ]),
  );
}

export function verification(
  result: Audit.Verification & { anchor?: { ok: boolean; seq: number; at: string; location: string } },
): string {
  const anchor = result.anchor
    ? `\nanchor ${result.anchor.ok ? "matches" : "DOES NOT MATCH"}: record #${result.anchor.seq} anchored ${clean(result.anchor.at)} in ${clean(result.anchor.location)}`
    : "";
  if (result.ok) {
    return `audit chain intact: ${plural(result.records, "record")}, head #${result.head.seq} ${result.head.hash}${anchor}`;
  }
  return `audit chain BROKEN at record #${result.brokenAt.seq}: ${clean(result.brokenAt.reason)} (${plural(result.records, "record")} checked)${anchor}`;
}

function detailLines(details: unknown): string[] {
  if (details === undefined || details === null) return [];
  if (Array.isArray(details)) {
    return details.map((item) => {
      // Validation issues name a `path`; policy violations name a `field`.
      const issue = item as { path?: unknown; field?: unknown; message?: unknown };
      if (item && typeof item === "object" && typeof issue.message === "string") {
        const where =
          typeof issue.path === "string"
            ? issue.path
            : typeof issue.field === "string"
              ? issue.field
              : "(root)";
        return `  ${clean(where)}: ${clean(issue.message)}`;
      }
      return `  - ${clean(typeof item === "string" ? item : JSON.stringify(item))}`;
    });
  }
  if (typeof details === "object") {
    return Object.entries(details).map(
      ([key, value]) => `  ${key}: ${clean(typeof value === "string" ? value : JSON.stringify(value))}`,
    );
  }
  return [`  ${clean(String(details))}`];
}

/** `error: <message> [<code>]`, then one line per detail, then the hint. */
export function errorText(error: {
  message: string;
  code?: string;
  details?: unknown;
  hint?: string;
}): string {
  const lines = [`error: ${clean(error.message)}${error.code ? ` [${clean(error.code)}]` : ""}`];
  lines.push(...detailLines(error.details));
  if (error.hint) lines.push(`hint: ${error.hint}`);
  return `${lines.join("\n")}\n`;
}
