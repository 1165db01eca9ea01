import type { AccessReport } from "../../core/report/schema.ts";
import type { Bucket, Series } from "./chart-types.ts";

/*
 * The report's JSON turned into chart series. Pure functions of the API's report, so what a chart shows is
 * what the CSV and the JSON download say.
 */

/** Local calendar days from `from` (inclusive) to `to` (exclusive), as YYYY-MM-DD. */
export function days(from: string, to: string): string[] {
  const out: string[] = [];
  const cursor = new Date(from);
  cursor.setHours(0, 0, 0, 0);
  const end = Date.parse(to);
  while (cursor.getTime() < end && out.length < 400) {
    out.push(dayOf(cursor.toISOString()));
    cursor.setDate(cursor.getDate() + 1);
  }
  return out;
}

export function dayOf(iso: string): string {
  const date = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

const short = (day: string) => day.slice(5);

export const METHOD_SERIES: Series[] = [
  { label: "ssh", color: "#0b5cad" },
  { label: "tunnel", color: "#8250df" },
  { label: "rdp", color: "#bf3989" },
];

/** Grants per day (by when access started, else when it was asked for), stacked by method. */
export function grantsPerDay(report: AccessReport): Bucket[] {
  const counts = new Map(days(report.period.from, report.period.to).map((day) => [day, [0, 0, 0]]));
  for (const grant of report.grants) {
    const values = counts.get(dayOf(grant.startsAt ?? grant.requestedAt));
    const index = METHOD_SERIES.findIndex((series) => series.label === grant.method);
    if (values && index >= 0) values[index] = (values[index] ?? 0) + 1;
  }
  return [...counts].map(([day, values]) => ({ label: short(day), values }));
}

const LATENCY_BUCKETS: Array<[string, number]> = [
  ["< 1m", 60],
  ["1–5m", 300],
  ["5–15m", 900],
  ["15–60m", 3600],
  ["1–4h", 14_400],
  ["> 4h", Number.POSITIVE_INFINITY],
];

/** How long approvals took: grants per latency band (auto-approved and break-glass grants have none). */
export function latencyDistribution(report: AccessReport): Bucket[] {
  const counts = LATENCY_BUCKETS.map(() => 0);
  for (const grant of report.grants) {
    const latency = grant.approvalLatencySeconds;
    if (latency === undefined) continue;
    const index = LATENCY_BUCKETS.findIndex(([, limit]) => latency < limit);
    counts[index] = (counts[index] ?? 0) + 1;
  }
  return LATENCY_BUCKETS.map(([label], index) => ({ label, values: [counts[index] ?? 0] }));
}

export const CLASSIFICATION_SERIES: Series[] = [
  { label: "unbrokered", color: "#b42318" },
  { label: "outside-window", color: "#d97706" },
  { label: "constraint-mismatch", color: "#9a6700" },
  { label: "denied-attempt", color: "#8250df" },
  { label: "unparsed", color: "#57606a" },
];

/** Trail events no grant fully explains, per day, stacked by classification. */
export function nonBrokeredPerDay(report: AccessReport): Bucket[] {
  const counts = new Map(
    days(report.period.from, report.period.to).map((day) => [day, CLASSIFICATION_SERIES.map(() => 0)]),
  );
  for (const event of report.nonBrokeredEvents) {
    const values = event.eventTime ? counts.get(dayOf(event.eventTime)) : undefined;
    const index = CLASSIFICATION_SERIES.findIndex((series) => series.label === event.classification);
    if (values && index >= 0) values[index] = (values[index] ?? 0) + 1;
  }
  return [...counts].map(([day, values]) => ({ label: short(day), values }));
}

export const USAGE_SERIES: Series[] = [
  { label: "granted (h)", color: "#8c959f" },
  { label: "open (h)", color: "#1a7f37" },
];

/** Hours granted (asked + extended) vs hours access was actually open, per day the grant started. */
export function usedVsGranted(report: AccessReport): Bucket[] {
  const hours = new Map(days(report.period.from, report.period.to).map((day) => [day, [0, 0]]));
  for (const grant of report.grants) {
    if (!grant.startsAt) continue;
    const values = hours.get(dayOf(grant.startsAt));
    if (!values) continue;
    values[0] = (values[0] ?? 0) + (grant.requestedSeconds + grant.extendedSeconds) / 3600;
    values[1] = (values[1] ?? 0) + (grant.usedWindowSeconds ?? 0) / 3600;
  }
  return [...hours].map(([day, values]) => ({ label: short(day), values }));
}
