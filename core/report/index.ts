export * as Report from "./index.ts";

import type * as z from "zod";
import { type AnchorStore, verifyAnchored } from "../audit/anchor.ts";
import type { AuditStore } from "../audit/store.ts";
import { NotFoundError } from "../error.ts";
import type { Actor } from "../identity/index.ts";
import { type Config, Policy } from "../policy/index.ts";
import type { Info } from "../request/schema.ts";
import type { RequestStore } from "../request/store.ts";
import { windowOf } from "../trail/correlate.ts";
import { isAuditor } from "../trail/read.ts";
import type { Classification, Observation } from "../trail/schema.ts";
import type { TrailStore } from "../trail/store.ts";
import { parse } from "../util/fn.ts";
import { renderCsv, renderHtml } from "./render.ts";
import { type AccessReport, type ControlRow, type EventRow, type GrantRow, Query } from "./schema.ts";

export * from "./schema.ts";

/**
 * The access report for a period (design §5): every grant with who asked, who approved, under which rule,
 * why, what for, the window asked for and the one used, and the trail events it explains; unused grants;
 * events no grant explains; break-glass uses and their review; approval latency; and per-control evidence
 * that access was approved, least-privilege, time-boxed and logged. Auditors and admins only.
 */

export interface Deps {
  config: Config;
  requests: RequestStore;
  audit: AuditStore;
  trail?: TrailStore;
  anchors?: AnchorStore;
  clock?: () => Date;
}

/** Reports cover at most this long: one response holds the whole period. */
/** A grant may start up to 30 days after it was requested, and last up to 12 hours plus extensions. */
const REQUEST_LOOKBACK_MS = 32 * 86_400_000;
/** The sweeper runs every minute: a grant that ended within this of its end time ended on time. */
const END_SLACK_MS = 5 * 60_000;

export type Rendered =
  | { format: "json"; report: AccessReport }
  | { format: "csv" | "html"; contentType: string; filename: string; body: string; report: AccessReport };

const ms = (time: string | undefined) => (time ? Date.parse(time) : Number.NaN);
const seconds = (a: number, b: number) => Math.round((b - a) / 1000);

/** Requests whose window (or creation, for ones never active) overlaps [from, to]. */
async function requestsIn(deps: Deps, from: number, to: number): Promise<Info[]> {
  const found: Info[] = [];
  const oldest = new Date(from - REQUEST_LOOKBACK_MS).toISOString();
  let cursor: string | undefined;
  // Newest first by creation; anything created before `from` minus the longest lead time cannot overlap.
  for (;;) {
    const page = await deps.requests.listAll({ limit: 100, cursor });
    let done = false;
    for (const item of page.items) {
      if (item.createdAt < oldest) {
        done = true;
        break;
      }
      const window = windowOf(item);
      const overlaps = window
        ? window.start <= to && window.end >= from
        : ms(item.createdAt) >= from && ms(item.createdAt) <= to;
      if (overlaps) found.push(item);
    }
    if (done || !page.nextCursor) break;
    cursor = page.nextCursor;
  }
  return found.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

async function observationsIn(trail: TrailStore, from: string, to: string): Promise<Observation[]> {
  const all: Observation[] = [];
  let cursor: string | undefined;
  do {
    const page = await trail.list({ from, to }, { limit: 200, cursor });
    all.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return all;
}

/** When the request got the approvals it needed (the last counted approval). */
function approvedAt(item: Info): number | undefined {
  if (item.breakGlass || item.approvalsRequired === 0) return undefined;
  const times = item.approvals.map((approval) => ms(approval.at)).sort((a, b) => a - b);
  return times[item.approvalsRequired - 1];
}

function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function targetOf(observation: Observation): string | undefined {
  const event = observation.event;
  if (event.kind === "key-push") return `${event.osUser ?? "?"}@${event.instanceId}`;
  if (event.kind === "serial-push") return `serial:${event.instanceId}`;
  if (event.kind === "tunnel")
    return `${event.endpointId} → ${event.privateIp ?? "?"}:${event.remotePort ?? "?"}`;
  return undefined;
}

function eventRow(observation: Observation): EventRow {
  const event = observation.event;
  return {
    eventId: observation.eventId,
    eventTime: event.eventTime,
    eventName: event.eventName,
    classification: observation.verdict.classification,
    account: event.account,
    region: event.region,
    principal: event.kind === "unparsed" ? undefined : (event.identity.arn ?? event.identity.type),
    target: targetOf(observation),
    requestId: observation.verdict.requestId,
    grantId: observation.verdict.grantId,
    errorCode: event.kind === "unparsed" ? undefined : event.errorCode,
    reasons: observation.verdict.reasons,
  };
}

function count(observations: readonly Observation[]): Partial<Record<Classification, number>> {
  const counts: Partial<Record<Classification, number>> = {};
  for (const observation of observations) {
    const name = observation.verdict.classification;
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

function controls(
  config: Config,
  rows: readonly GrantRow[],
  items: readonly Info[],
  events: Partial<Record<Classification, number>>,
  chain: AccessReport["chain"],
  trail: boolean,
): ControlRow[] {
  const granted = items.filter((item) => item.startsAt);
  const approvedOk = granted.filter((item) => {
    if (item.breakGlass) return true;
    const approvers = new Set(item.approvals.map((approval) => approval.by));
    return !approvers.has(item.requester) && approvers.size >= item.approvalsRequired;
  });
  const auto = granted.filter((item) => !item.breakGlass && item.approvalsRequired === 0).length;
  const breakGlass = granted.filter((item) => item.breakGlass);
  const unreviewed = breakGlass.filter((item) => item.review?.status !== "done").length;
  const approvedStatus = approvedOk.length < granted.length ? "fail" : unreviewed > 0 ? "attention" : "pass";

  const late = granted.filter((item) => {
    const end = ms(item.endsAt);
    return item.endedAt ? ms(item.endedAt) > end + END_SLACK_MS : false;
  });
  const overLimit = granted.filter((item) => {
    const rule = Policy.ruleById(config, item.ruleId);
    if (!rule) return false;
    const total = item.durationSeconds + item.extendedSeconds;
    return total > Math.max(rule.maxDuration, rule.extend.maxTotal ?? rule.maxDuration);
  });
  const outside = events["outside-window"] ?? 0;
  const mismatched = events["constraint-mismatch"] ?? 0;
  const unbrokered = events.unbrokered ?? 0;
  const unparsed = events.unparsed ?? 0;
  const denied = events["denied-attempt"] ?? 0;
  const noTrail = trail ? "" : " No trail events were available, so use was not checked.";
  return [
    {
      control: "access approved",
      status: approvedStatus,
      evidence:
        `${plural(granted.length, "grant")}: ${approvedOk.length - breakGlass.length - auto} approved by someone other than the requester as their rule requires, ` +
        `${auto} auto-approved by a rule with no approvers, ${breakGlass.length} break-glass (${unreviewed} awaiting review); ` +
        `${granted.length - approvedOk.length} without the approvals their rule required.`,
    },
    {
      control: "least privilege",
      status: mismatched > 0 || overLimit.length > 0 ? "fail" : "pass",
      evidence:
        `Every grant names one instance, one method and one OS user or port, checked against its rule at request time; ` +
        `${plural(overLimit.length, "grant")} longer than its rule allows now; ` +
        `${plural(mismatched, "event")} outside a grant's constraints (another instance, user, IP, port, duration or caller).${noTrail}`,
    },
    {
      control: "time-boxed",
      status: outside > 0 || late.length > 0 ? "fail" : "pass",
      evidence:
        `${plural(rows.filter((row) => row.endsAt).length, "grant")} with an end time enforced by AWS (key lifetime, session and IAM policy conditions); ` +
        `${plural(late.length, "grant")} ended more than 5 minutes after its end time; ` +
        `${plural(outside, "event")} outside a grant's window.${noTrail}`,
    },
    {
      control: "logged",
      status:
        !chain.ok || chain.anchor?.ok === false || unbrokered > 0
          ? "fail"
          : unparsed > 0 || denied > 0
            ? "attention"
            : "pass",
      evidence:
        `Audit chain ${chain.ok ? "verified" : `BROKEN at ${chain.brokenAt?.seq}: ${chain.brokenAt?.reason}`} (${plural(chain.records, "record")})` +
        `${chain.anchor ? `, ${chain.anchor.ok ? "matching" : "NOT matching"} its anchor of ${chain.anchor.at} in ${chain.anchor.location}` : ", no anchor configured"}; ` +
        `${plural(unbrokered, "event")} that no grant explains, ${plural(unparsed, "record")} not understood, ${plural(denied, "denied attempt")}.${noTrail}`,
    },
  ];
}

/** Builds the report for [from, to]. */
export async function build(deps: Deps, actor: Actor, query: z.output<typeof Query>): Promise<AccessReport> {
  const from = ms(query.from);
  const to = ms(query.to);
  const items = await requestsIn(deps, from, to);
  const trail = deps.trail;
  // Events of the period, plus the events of its grants that fall outside it (a grant used after `to`).
  const observations = trail ? await observationsIn(trail, query.from, query.to) : [];
  const byRequest = new Map<string, Observation[]>();
  if (trail) {
    // One query per request, a few at a time.
    for (let start = 0; start < items.length; start += 16) {
      const chunk = items.slice(start, start + 16);
      const found = await Promise.all(chunk.map((item) => trail.ofRequest(item.id)));
      chunk.forEach((item, index) => {
        const own = found[index] ?? [];
        if (own.length > 0) byRequest.set(item.id, own);
      });
    }
  }
  const now = (deps.clock?.() ?? new Date()).getTime();
  const rows: GrantRow[] = items
    .filter((item) => item.startsAt || item.status === "approved")
    .map((item) => {
      const own = byRequest.get(item.id) ?? [];
      const used = own
        .filter((observation) => observation.verdict.classification === "brokered")
        .map((observation) => observation.event.eventTime ?? observation.observedAt)
        .sort();
      const window = windowOf(item);
      const approved = approvedAt(item);
      return {
        requestId: item.id,
        grantId: item.grantId,
        status: item.status,
        requester: item.requester,
        approvers: item.approvals.map((approval) => approval.by),
        rule: item.ruleId,
        reason: item.reason,
        ticket: item.ticket,
        target: item.target,
        instanceId: item.instanceId,
        account: item.account,
        region: item.region,
        method: item.method,
        osUser: item.osUser,
        port: item.port,
        grantMode: item.grantMode ?? "broker",
        breakGlass: item.breakGlass,
        reviewStatus: item.review?.status,
        requestedAt: item.createdAt,
        requestedStart: item.startAt ?? item.createdAt,
        requestedSeconds: item.durationSeconds,
        extendedSeconds: item.extendedSeconds,
        startsAt: item.startsAt,
        endsAt: item.endsAt,
        endedAt: item.endedAt,
        usedWindowSeconds: window ? Math.max(0, seconds(window.start, Math.min(window.end, now))) : undefined,
        approvalLatencySeconds: approved === undefined ? undefined : seconds(ms(item.createdAt), approved),
        events: count(own),
        firstUse: used[0],
        lastUse: used.at(-1),
        unused: used.length === 0,
      };
    });
  const latencies = rows.flatMap((row) =>
    row.approvalLatencySeconds === undefined ? [] : [row.approvalLatencySeconds],
  );
  const events = count(observations);
  const verification = await verifyAnchored(
    deps.audit.walk(),
    await deps.audit.head(),
    await (async () => {
      const anchor = await deps.anchors?.latest();
      return anchor && deps.anchors ? { ...anchor, location: deps.anchors.location } : undefined;
    })(),
  );
  const chain: AccessReport["chain"] = {
    ok: verification.ok,
    records: verification.records,
    ...(verification.ok ? {} : { brokenAt: verification.brokenAt }),
    ...(verification.anchor
      ? {
          anchor: {
            ok: verification.anchor.ok,
            seq: verification.anchor.seq,
            at: verification.anchor.at,
            location: verification.anchor.location,
          },
        }
      : {}),
  };
  const breakGlass = items.filter((item) => item.breakGlass);
  return {
    period: { from: query.from, to: query.to },
    generatedAt: (deps.clock?.() ?? new Date()).toISOString(),
    generatedBy: actor.email,
    summary: {
      grants: rows.length,
      used: rows.filter((row) => !row.unused).length,
      unused: rows.filter((row) => row.unused).length,
      breakGlass: breakGlass.length,
      breakGlassAwaitingReview: breakGlass.filter((item) => item.review?.status !== "done").length,
      events,
      approvalLatencySeconds: {
        count: latencies.length,
        median: percentile(latencies, 50),
        p95: percentile(latencies, 95),
        max: latencies.length ? Math.max(...latencies) : undefined,
      },
    },
    grants: rows,
    unusedGrants: rows.filter((row) => row.unused && row.startsAt).map((row) => row.grantId),
    nonBrokeredEvents: observations
      .filter((observation) => observation.verdict.classification !== "brokered")
      .map(eventRow),
    breakGlass: breakGlass.map((item) => ({
      requestId: item.id,
      grantId: item.grantId,
      requester: item.requester,
      at: item.createdAt,
      reason: item.reason,
      ticket: item.ticket,
      review: {
        status: item.review?.status ?? "pending",
        by: item.review?.by,
        at: item.review?.at,
        comment: item.review?.comment,
      },
    })),
    controls: controls(deps.config, rows, items, events, chain, trail !== undefined),
    chain,
    trail: trail !== undefined,
  };
}

/** `GET /reports/access`: the report in the asked format (auditors and admins; 404 for anyone else). */
export async function access(deps: Deps, actor: Actor, rawQuery: unknown): Promise<Rendered> {
  if (!isAuditor(actor, deps.config)) throw new NotFoundError("report.not_found", "No such resource");
  const query = parse(Query, rawQuery);
  const report = await build(deps, actor, query);
  const stem = `access-report_${query.from.slice(0, 10)}_${query.to.slice(0, 10)}`;
  if (query.format === "json") return { format: "json", report };
  if (query.format === "csv")
    return {
      format: "csv",
      contentType: "text/csv; charset=utf-8; header=present",
      filename: `${stem}_${query.section}.csv`,
      body: renderCsv(report, query.section),
      report,
    };
  return {
    format: "html",
    contentType: "text/html; charset=utf-8",
    filename: `${stem}.html`,
    body: renderHtml(report),
    report,
  };
}
