import type { AccessReport, ControlRow, EventRow, GrantRow } from "./index.ts";

/**
 * CSV that opens cleanly in a spreadsheet: RFC 4180 (CRLF, quotes doubled, fields with `,` `"` CR LF
 * quoted), UTF-8 with a byte-order mark (Excel reads UTF-8 only with it), ISO 8601 UTC times, and text
 * that a spreadsheet would evaluate (`=`, `+`, `-`, `@`, tab, CR first) prefixed with `'` (OWASP CSV
 * injection): reasons, tickets and OS users are user input.
 */
const BOM = "\uFEFF";
const FORMULA = /^[=+\-@\t\r]/;

export function csvCell(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  let text = Array.isArray(value) ? value.join("; ") : String(value);
  if (FORMULA.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function csv(header: readonly string[], rows: readonly unknown[][]): string {
  return `${BOM}${[header, ...rows].map((row) => row.map(csvCell).join(",")).join("\r\n")}\r\n`;
}

const classificationsOf = (row: GrantRow) =>
  Object.entries(row.events)
    .map(([name, n]) => `${name}:${n}`)
    .join(" ");

export function renderCsv(report: AccessReport, section: "grants" | "events" | "controls"): string {
  if (section === "events")
    return csv(
      [
        "event_id",
        "event_time",
        "event_name",
        "classification",
        "account",
        "region",
        "principal",
        "target",
        "request_id",
        "grant_id",
        "error_code",
        "reasons",
      ],
      report.nonBrokeredEvents.map((row: EventRow) => [
        row.eventId,
        row.eventTime,
        row.eventName,
        row.classification,
        row.account,
        row.region,
        row.principal,
        row.target,
        row.requestId,
        row.grantId,
        row.errorCode,
        row.reasons,
      ]),
    );
  if (section === "controls")
    return csv(
      ["control", "status", "evidence"],
      report.controls.map((row: ControlRow) => [row.control, row.status, row.evidence]),
    );
  return csv(
    [
      "grant_id",
      "request_id",
      "status",
      "requester",
      "approvers",
      "rule",
      "reason",
      "ticket",
      "target",
      "instance_id",
      "account",
      "region",
      "method",
      "os_user",
      "port",
      "grant_mode",
      "break_glass",
      "review_status",
      "requested_at",
      "requested_start",
      "requested_seconds",
      "extended_seconds",
      "starts_at",
      "ends_at",
      "ended_at",
      "used_window_seconds",
      "approval_latency_seconds",
      "brokered_events",
      "events",
      "first_use",
      "last_use",
      "unused",
    ],
    report.grants.map((row) => [
      row.grantId,
      row.requestId,
      row.status,
      row.requester,
      row.approvers,
      row.rule,
      row.reason,
      row.ticket,
      row.target,
      row.instanceId,
      row.account,
      row.region,
      row.method,
      row.osUser,
      row.port,
      row.grantMode,
      row.breakGlass,
      row.reviewStatus,
      row.requestedAt,
      row.requestedStart,
      row.requestedSeconds,
      row.extendedSeconds,
      row.startsAt,
      row.endsAt,
      row.endedAt,
      row.usedWindowSeconds,
      row.approvalLatencySeconds,
      row.events.brokered ?? 0,
      classificationsOf(row),
      row.firstUse,
      row.lastUse,
      row.unused,
    ]),
  );
}

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: unknown): string {
  if (value === undefined || value === null) return "";
  return String(Array.isArray(value) ? value.join("; ") : value)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

function table(header: readonly string[], rows: readonly unknown[][], empty: string): string {
  if (rows.length === 0) return `<p class="empty">${escapeHtml(empty)}</p>`;
  const head = header.map((cell) => `<th>${escapeHtml(cell)}</th>`).join("");
  const body = rows
    .map((row) => `<tr>${row.map((cell) => `<td>${escapeHtml(cell)}</td>`).join("")}</tr>`)
    .join("\n");
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

const STYLE = `
body{font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#111}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:24px 0 8px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin-bottom:8px}th,td{border:1px solid #ccc;padding:3px 5px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td{word-break:break-word}.meta{color:#555}.empty{color:#555;font-style:italic}
.pass{color:#0a6b2b;font-weight:600}.attention{color:#8a5a00;font-weight:600}.fail{color:#b00020;font-weight:700}
@media print{body{margin:0}h2{break-after:avoid}tr{break-inside:avoid}}`;

/** A self-contained, printable page: no scripts, no external resources, every value escaped. */
export function renderHtml(report: AccessReport): string {
  const s = report.summary;
  const latency = s.approvalLatencySeconds;
  const controls = report.controls
    .map(
      (row) =>
        `<tr><td>${escapeHtml(row.control)}</td><td class="${escapeHtml(row.status)}">${escapeHtml(row.status)}</td><td>${escapeHtml(row.evidence)}</td></tr>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Access report ${escapeHtml(report.period.from)} to ${escapeHtml(report.period.to)}</title>
<style>${STYLE}</style></head><body>
<h1>EC2 access report</h1>
<p class="meta">Period ${escapeHtml(report.period.from)} to ${escapeHtml(report.period.to)} · generated ${escapeHtml(report.generatedAt)} by ${escapeHtml(report.generatedBy)}</p>
<h2>Controls</h2>
<table><thead><tr><th>Control</th><th>Status</th><th>Evidence</th></tr></thead><tbody>
${controls}
</tbody></table>
<h2>Summary</h2>
${table(
  [
    "grants",
    "used",
    "unused",
    "break-glass",
    "awaiting review",
    "events",
    "approval latency (median / p95 / max, s)",
  ],
  [
    [
      s.grants,
      s.used,
      s.unused,
      s.breakGlass,
      s.breakGlassAwaitingReview,
      Object.entries(s.events)
        .map(([name, n]) => `${name}: ${n}`)
        .join(", ") || "none",
      latency.count ? `${latency.median} / ${latency.p95} / ${latency.max}` : "n/a",
    ],
  ],
  "",
)}
<h2>Grants</h2>
${table(
  [
    "grant",
    "requester",
    "approvers",
    "rule",
    "reason / ticket",
    "target",
    "method",
    "requested",
    "window used",
    "events",
    "first / last use",
  ],
  report.grants.map((row) => [
    `${row.grantId} (${row.status}${row.breakGlass ? ", break-glass" : ""})`,
    row.requester,
    row.approvers,
    row.rule,
    `${row.reason}${row.ticket ? ` [${row.ticket}]` : ""}`,
    `${row.target}: ${row.instanceId} (${row.account}/${row.region})`,
    `${row.method}${row.osUser ? ` as ${row.osUser}` : ""}${row.port ? ` port ${row.port}` : ""}${row.grantMode === "iam" ? " (IAM)" : ""}`,
    `${row.requestedSeconds + row.extendedSeconds} s from ${row.requestedStart}`,
    row.startsAt
      ? `${row.startsAt} to ${row.endedAt ?? row.endsAt} (${row.usedWindowSeconds ?? 0} s)`
      : "never active",
    classificationsOf(row) || "none",
    row.firstUse ? `${row.firstUse} / ${row.lastUse}` : "unused",
  ]),
  "No grants in this period.",
)}
<h2>Unused grants</h2>
${table(
  ["grant"],
  report.unusedGrants.map((id) => [id]),
  "Every grant was used.",
)}
<h2>Events no grant explains, or outside their grant</h2>
${table(
  ["time", "event", "classification", "principal", "target", "grant", "reasons"],
  report.nonBrokeredEvents.map((row) => [
    row.eventTime,
    row.eventName,
    row.classification,
    row.principal,
    row.target,
    row.grantId,
    row.reasons,
  ]),
  report.trail ? "None." : "No trail events were available to this report.",
)}
<h2>Break-glass</h2>
${table(
  ["grant", "requester", "at", "reason / ticket", "review"],
  report.breakGlass.map((row) => [
    row.grantId,
    row.requester,
    row.at,
    `${row.reason}${row.ticket ? ` [${row.ticket}]` : ""}`,
    `${row.review.status}${row.review.by ? ` by ${row.review.by} at ${row.review.at}` : ""}${row.review.comment ? `: ${row.review.comment}` : ""}`,
  ]),
  "No break-glass use.",
)}
<h2>Audit chain</h2>
<p>${escapeHtml(
    report.chain.ok
      ? `Verified: ${report.chain.records} records.`
      : `BROKEN at record ${report.chain.brokenAt?.seq}: ${report.chain.brokenAt?.reason}`,
  )}${escapeHtml(
    report.chain.anchor
      ? ` Anchor ${report.chain.anchor.ok ? "matches" : "DOES NOT MATCH"} (record ${report.chain.anchor.seq}, ${report.chain.anchor.at}, ${report.chain.anchor.location}).`
      : " No anchor configured.",
  )}</p>
</body></html>
`;
}
