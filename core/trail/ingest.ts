import { createHash } from "node:crypto";
import type { Audit } from "../audit/index.ts";
import type { Config } from "../policy/index.ts";
import { log } from "../util/log.ts";
import { correlate, type Lookup } from "./correlate.ts";
import { isInstanceConnect, normalize } from "./normalize.ts";
import type { Classification, Observation, Source, TrailEvent, Verdict } from "./schema.ts";
import type { TrailStore } from "./store.ts";

export interface Deps {
  config: Config;
  trail: TrailStore;
  clock?: () => Date;
}

export const now = (deps: Pick<Deps, "clock">) => (deps.clock ? deps.clock() : new Date());

/** Raw records above this are kept cut, with the SHA-256 of the whole (DynamoDB items are ≤ 400 KB). */
export const MAX_RAW_CHARS = 64 * 1024;
/** Observations per store write: each is two items of one transaction (≤ 100 items with the head). */
export const WRITE_BATCH = 45;
const CORRELATE_CONCURRENCY = 16;
const CACHE_LIMIT = 50_000;

export interface IngestOptions {
  source: Source;
  /** Who is recorded as the actor of the audit records: `system`, or the person who imported files. */
  actor?: string;
  /** Lookups shared across calls of one import run (cleared when large). */
  cache?: LookupCache;
}

export interface IngestResult {
  /** Records handed in. */
  received: number;
  /** Not EC2 Instance Connect events (other services): ignored. */
  skipped: number;
  /** New observations written (each with its audit record). */
  recorded: number;
  /** Already stored: duplicates of earlier deliveries, nothing written. */
  duplicates: number;
  classifications: Partial<Record<Classification, number>>;
}

export function emptyResult(): IngestResult {
  return { received: 0, skipped: 0, recorded: 0, duplicates: 0, classifications: {} };
}

export function addResults(total: IngestResult, part: IngestResult): IngestResult {
  total.received += part.received;
  total.skipped += part.skipped;
  total.recorded += part.recorded;
  total.duplicates += part.duplicates;
  for (const [name, count] of Object.entries(part.classifications) as [Classification, number][])
    total.classifications[name] = (total.classifications[name] ?? 0) + count;
  return total;
}

/** Memoized lookups: a bulk import asks about the same grants and keys again and again. */
export class LookupCache {
  private entries = new Map<string, Promise<unknown>>();
  wrap(lookup: Lookup): Lookup {
    const memo = <T>(key: string, load: () => Promise<T>): Promise<T> => {
      let hit = this.entries.get(key) as Promise<T> | undefined;
      if (!hit) {
        if (this.entries.size >= CACHE_LIMIT) this.entries.clear();
        hit = load();
        this.entries.set(key, hit);
        hit.catch(() => this.entries.delete(key));
      }
      return hit;
    };
    return {
      pushesByFingerprint: (fingerprint) =>
        memo(`k|${fingerprint}`, () => lookup.pushesByFingerprint(fingerprint)),
      request: (id) => memo(`r|${id}`, () => lookup.request(id)),
      // Day-aligned bounds so that events of one day share an entry.
      requestsOf: (email, from, to) => {
        const day = (time: string, up: boolean) =>
          new Date(Math.floor(Date.parse(time) / 86_400_000 + (up ? 1 : 0)) * 86_400_000).toISOString();
        const start = day(from, false);
        const end = day(to, true);
        return memo(`u|${email}|${start}|${end}`, () => lookup.requestsOf(email, start, end));
      },
    };
  }
}

/** The request an observation is about, or the resource it names when no grant matched. */
export function subjectOf(event: TrailEvent, verdict: Verdict): string {
  if (verdict.requestId) return verdict.requestId;
  if (event.kind === "key-push" || event.kind === "serial-push") return `instance:${event.instanceId}`;
  if (event.kind === "tunnel") return `endpoint:${event.endpointId}`;
  return `account:${event.account ?? "unknown"}`;
}

/** What the audit record says about an observation: enough to stand on its own, and the raw record's hash. */
export function auditData(observation: Observation): Record<string, unknown> {
  const { event, verdict } = observation;
  const details =
    event.kind === "key-push" || event.kind === "serial-push"
      ? {
          instanceId: event.instanceId,
          osUser: "osUser" in event ? event.osUser : undefined,
          fingerprint: event.fingerprint,
        }
      : event.kind === "tunnel"
        ? {
            endpointId: event.endpointId,
            privateIp: event.privateIp,
            remotePort: event.remotePort,
            maxTunnelDuration: event.maxTunnelDuration,
          }
        : { reason: event.reason };
  return {
    eventId: event.eventId,
    eventTime: event.eventTime,
    eventName: event.eventName,
    account: event.account,
    region: event.region,
    principal: event.kind === "unparsed" ? undefined : (event.identity.arn ?? event.identity.type),
    sourceIdentity: event.kind === "unparsed" ? undefined : event.identity.sourceIdentity,
    errorCode: event.kind === "unparsed" ? undefined : event.errorCode,
    ...details,
    classification: verdict.classification,
    requestId: verdict.requestId,
    grantId: verdict.grantId,
    pushId: verdict.pushId,
    matchedBy: verdict.matchedBy,
    reasons: verdict.reasons,
    source: observation.source,
    rawSha256: observation.rawSha256,
  };
}

export function alertStateFor(config: Config, classification: Classification): Observation["alert"] {
  return (config.settings.alerts.on as readonly string[]).includes(classification) ? "pending" : "none";
}

function rawOf(record: unknown): { raw: string; rawSha256: string } {
  const text = typeof record === "string" ? record : JSON.stringify(record);
  const rawSha256 = createHash("sha256").update(text).digest("hex");
  return { raw: text.length > MAX_RAW_CHARS ? text.slice(0, MAX_RAW_CHARS) : text, rawSha256 };
}

async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await work(items[index] as T);
      }
    }),
  );
  return results;
}

/**
 * The one ingest of every source (EventBridge, LookupEvents, log files): keeps EC2 Instance Connect records,
 * normalizes, correlates and classifies them, and records each new one with its `trail.observed` audit
 * record. Idempotent: an event id already stored is skipped by the store's conditional write, so
 * duplicates, retries and overlapping sources record nothing twice. Order of arrival does not matter:
 * windows are compared with the event time, and events whose push or grant record comes later are
 * re-correlated by `recorrelate`.
 */
export async function ingest(
  deps: Deps,
  records: readonly unknown[],
  options: IngestOptions,
): Promise<IngestResult> {
  const result = emptyResult();
  result.received = records.length;
  const seen = new Set<string>();
  const fresh: { event: TrailEvent; record: unknown }[] = [];
  for (const record of records) {
    // LookupEvents hands the record as JSON text (CloudTrailEvent).
    let parsed = record;
    if (typeof record === "string") {
      try {
        parsed = JSON.parse(record);
      } catch {
        parsed = { unparsable: record.slice(0, 1_000) };
      }
    }
    if (!isInstanceConnect(parsed)) {
      result.skipped++;
      continue;
    }
    const event = normalize(parsed);
    if (seen.has(event.eventId)) {
      result.duplicates++;
      continue;
    }
    seen.add(event.eventId);
    fresh.push({ event, record });
  }
  const lookup = (options.cache ?? new LookupCache()).wrap(deps.trail);
  const at = now(deps).toISOString();
  const entries = await mapLimit(fresh, CORRELATE_CONCURRENCY, async ({ event, record }) => {
    const verdict = await correlate({ config: deps.config, lookup }, event);
    const observation: Observation = {
      eventId: event.eventId,
      event,
      verdict,
      source: options.source,
      observedAt: at,
      ...rawOf(record),
      alert: alertStateFor(deps.config, verdict.classification),
      version: 1,
    };
    const audit: Audit.Input = {
      type: "trail.observed",
      at,
      actor: options.actor ?? "system",
      subject: subjectOf(event, verdict),
      data: auditData(observation),
    };
    return { observation, audit };
  });
  for (let start = 0; start < entries.length; start += WRITE_BATCH) {
    const batch = entries.slice(start, start + WRITE_BATCH);
    const written = await deps.trail.record(batch);
    result.recorded += written.recorded.length;
    result.duplicates += written.duplicates.length;
    const recorded = new Set(written.recorded);
    for (const { observation } of batch) {
      if (!recorded.has(observation.eventId)) continue;
      const name = observation.verdict.classification;
      result.classifications[name] = (result.classifications[name] ?? 0) + 1;
    }
  }
  if (result.recorded > 0 && result.recorded !== result.received - result.skipped - result.duplicates)
    log.warn("trail ingest: some observations were neither recorded nor duplicates", { ...result });
  return result;
}

export interface RecorrelateResult {
  checked: number;
  reclassified: number;
}

/** How far back re-correlation looks for unbrokered events whose push or grant record may still appear. */
export const RECORRELATE_LOOKBACK_MS = 24 * 3_600_000;

/**
 * Re-correlates recent unbrokered observations (run by the sweeper, and after imports): an event that
 * arrived before its push or grant record gets its real classification once that record exists, with a
 * `trail.reclassified` audit record; its pending alert is dropped when it turns out brokered.
 */
export async function recorrelate(
  deps: Deps,
  options: { lookbackMs?: number; limit?: number } = {},
): Promise<RecorrelateResult> {
  const at = now(deps);
  const since = new Date(at.getTime() - (options.lookbackMs ?? RECORRELATE_LOOKBACK_MS)).toISOString();
  const candidates = await deps.trail.uncorrelated(since, options.limit ?? 500);
  const lookup = new LookupCache().wrap(deps.trail);
  let reclassified = 0;
  for (const observation of candidates) {
    const verdict = await correlate({ config: deps.config, lookup }, observation.event);
    if (
      verdict.classification === observation.verdict.classification &&
      verdict.requestId === observation.verdict.requestId
    )
      continue;
    const alert = observation.alert === "sent" ? "sent" : alertStateFor(deps.config, verdict.classification);
    const next: Observation = {
      ...observation,
      verdict,
      correlatedAt: at.toISOString(),
      alert,
      version: observation.version + 1,
    };
    const audit: Audit.Input = {
      type: "trail.reclassified",
      at: at.toISOString(),
      actor: "system",
      subject: subjectOf(observation.event, verdict),
      data: {
        eventId: observation.eventId,
        eventTime: observation.event.eventTime,
        from: observation.verdict.classification,
        to: verdict.classification,
        requestId: verdict.requestId,
        grantId: verdict.grantId,
        pushId: verdict.pushId,
        matchedBy: verdict.matchedBy,
        reasons: verdict.reasons,
      },
    };
    if (await deps.trail.replace(next, observation.version, [audit])) reclassified++;
  }
  return { checked: candidates.length, reclassified };
}
