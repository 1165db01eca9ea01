import { createHash } from "node:crypto";
import type { Push } from "../access/schema.ts";
import type { Audit } from "../audit/index.ts";
import type { Config } from "../policy/index.ts";
import { log } from "../util/log.ts";
import { correlate, type Lookup, nearWindow, pushOrder, sessionRequestId } from "./correlate.ts";
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

/** Pushes are read by creation time in aligned slots of this length; a push window spans at most three. */
export const PUSH_SLOT_MS = 15 * 60_000;
/** A slot read costs about as much as this many single fingerprint reads (one query per push status). */
const SLOT_READ_COST = 3;
/** A batch spread over more time than this reads fingerprint by fingerprint instead of by slot. */
const MAX_PRIMED_SPAN_MS = 6 * 3_600_000;
/** Pushes kept in read slots at most; the least recently used slots go first. */
const MAX_SLOT_PUSHES = 50_000;
/** Slots kept at most, pushes or not: 20,000 is 208 days of history read without a single push. */
const MAX_SLOTS = 20_000;

const slotOf = (time: number) => Math.floor(time / PUSH_SLOT_MS);

/** The pushes a slot holds. */
function countOf(byFingerprint: Map<string, Push[]> | undefined): number {
  let count = 0;
  for (const list of byFingerprint?.values() ?? []) count += list.length;
  return count;
}

/**
 * Memoized lookups: a bulk import asks about the same grants and keys again and again. `prime` reads what
 * a batch of events will ask about in a few bulk reads (the pushes created around their times, then the
 * requests those pushes and tunnel sessions name), so that correlation does not make one round trip per event.
 * Pushes are kept by time slot, so consecutive batches whose windows overlap read each slot once.
 */
export class LookupCache {
  private entries = new Map<string, Promise<unknown>>();
  /** Slot number → the pushes created in it, by fingerprint; Map order is least recently used first. */
  private slots = new Map<number, Map<string, Push[]>>();
  private slotPushes = 0;

  constructor(private readonly options: { maxSlotPushes?: number; maxSlots?: number } = {}) {}

  private memo<T>(key: string, load: () => Promise<T>): Promise<T> {
    let hit = this.entries.get(key) as Promise<T> | undefined;
    if (!hit) {
      if (this.entries.size >= CACHE_LIMIT) this.entries.clear();
      hit = load();
      this.entries.set(key, hit);
      hit.catch(() => this.entries.delete(key));
    }
    return hit;
  }

  /** The pushes of a fingerprint created in [from, to] when every slot of it has been read; else undefined. */
  private pushesIn(fingerprint: string, from: number, to: number): Push[] | undefined {
    const found: Push[] = [];
    for (let slot = slotOf(from); slot <= slotOf(to); slot++) {
      const pushes = this.slots.get(slot);
      if (!pushes) return undefined;
      this.slots.delete(slot);
      this.slots.set(slot, pushes);
      for (const push of pushes.get(fingerprint) ?? []) {
        const created = Date.parse(push.createdAt);
        if (created >= from && created <= to) found.push(push);
      }
    }
    return found.sort(pushOrder);
  }

  private keepSlot(slot: number, byFingerprint: Map<string, Push[]>): void {
    // Batches in flight share the cache: another one may have read this slot meanwhile.
    this.slotPushes -= countOf(this.slots.get(slot));
    this.slots.delete(slot);
    this.slots.set(slot, byFingerprint);
    this.slotPushes += countOf(byFingerprint);
    for (const [oldest, kept] of this.slots) {
      const full =
        this.slotPushes > (this.options.maxSlotPushes ?? MAX_SLOT_PUSHES) ||
        this.slots.size > (this.options.maxSlots ?? MAX_SLOTS);
      if (!full || oldest === slot) break;
      this.slots.delete(oldest);
      this.slotPushes -= countOf(kept);
    }
  }

  wrap(lookup: Lookup): Lookup {
    return {
      pushesByFingerprint: (fingerprint) =>
        this.memo(`k|${fingerprint}`, () => lookup.pushesByFingerprint(fingerprint)),
      request: (id) => this.memo(`r|${id}`, () => lookup.request(id)),
      // Day-aligned bounds so that events of one day share an entry.
      requestsOf: (email, from, to) => {
        const day = (time: string, up: boolean) =>
          new Date(Math.floor(Date.parse(time) / 86_400_000 + (up ? 1 : 0)) * 86_400_000).toISOString();
        const start = day(from, false);
        const end = day(to, true);
        return this.memo(`u|${email}|${start}|${end}`, () => lookup.requestsOf(email, start, end));
      },
      pushesNear: async (fingerprint, at) => {
        const window = nearWindow(at);
        return this.pushesIn(fingerprint, window.from, window.to);
      },
    };
  }

  /** Reads in bulk what correlating `events` will look up; anything it leaves out is read one by one. */
  async prime(store: TrailStore, events: readonly TrailEvent[]): Promise<void> {
    const pushes = events.filter(
      (event): event is Extract<TrailEvent, { kind: "key-push" }> =>
        event.kind === "key-push" && !!event.fingerprint && Number.isFinite(Date.parse(event.eventTime)),
    );
    const wanted = new Set<number>();
    for (const event of pushes) {
      const window = nearWindow(Date.parse(event.eventTime));
      for (let slot = slotOf(window.from); slot <= slotOf(window.to); slot++)
        if (!this.slots.has(slot)) wanted.add(slot);
    }
    // Runs of consecutive unread slots: one read each.
    const runs: { first: number; last: number }[] = [];
    for (const slot of [...wanted].sort((a, b) => a - b)) {
      const run = runs.at(-1);
      if (run && run.last === slot - 1) run.last = slot;
      else runs.push({ first: slot, last: slot });
    }
    const fingerprints = new Set(pushes.map((event) => event.fingerprint));
    if (
      runs.length * SLOT_READ_COST < fingerprints.size &&
      wanted.size * PUSH_SLOT_MS <= MAX_PRIMED_SPAN_MS
    ) {
      const read = await Promise.all(
        runs.map(async ({ first, last }) => ({
          first,
          last,
          found: await store.pushesCreatedBetween(
            new Date(first * PUSH_SLOT_MS).toISOString(),
            new Date((last + 1) * PUSH_SLOT_MS - 1).toISOString(),
          ),
        })),
      );
      for (const { first, last, found } of read) {
        // Every slot of the run is kept, the empty ones too: they were read.
        const bySlot = new Map<number, Map<string, Push[]>>();
        for (let slot = first; slot <= last; slot++) bySlot.set(slot, new Map());
        for (const push of found) {
          const byFingerprint = bySlot.get(slotOf(Date.parse(push.createdAt)));
          const list = byFingerprint?.get(push.fingerprint) ?? [];
          list.push(push);
          byFingerprint?.set(push.fingerprint, list);
        }
        for (const [slot, byFingerprint] of bySlot) this.keepSlot(slot, byFingerprint);
      }
    }
    const ids = new Set<string>();
    for (const event of events) {
      const session = sessionRequestId(event);
      if (session) ids.add(session);
    }
    for (const event of pushes) {
      const window = nearWindow(Date.parse(event.eventTime));
      for (const push of this.pushesIn(event.fingerprint ?? "", window.from, window.to) ?? [])
        ids.add(push.requestId);
    }
    const missing = [...ids].filter((id) => !this.entries.has(`r|${id}`));
    if (missing.length === 0) return;
    const found = new Map((await store.requests(missing)).map((request) => [request.id, request]));
    if (this.entries.size + missing.length >= CACHE_LIMIT) this.entries.clear();
    for (const id of missing) this.entries.set(`r|${id}`, Promise.resolve(found.get(id)));
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
            // A tunnel names only an endpoint and IP: the instance is its grant's, when it matched one.
            instanceId: verdict.instanceId,
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
    principalArn: event.kind === "unparsed" ? undefined : event.identity.principalArn,
    sourceIdentity: event.kind === "unparsed" ? undefined : event.identity.sourceIdentity,
    errorCode: event.kind === "unparsed" ? undefined : event.errorCode,
    ...details,
    classification: verdict.classification,
    requestId: verdict.requestId,
    grantId: verdict.grantId,
    pushId: verdict.pushId,
    // Whose grant it matched: `GET /audit/events?user=` finds the broker's own calls for them by it.
    requester: verdict.requester,
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
  const cache = options.cache ?? new LookupCache();
  await cache.prime(
    deps.trail,
    fresh.map(({ event }) => event),
  );
  const lookup = cache.wrap(deps.trail);
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
  // The store splits them into as few transactions as its limits allow.
  const written = entries.length > 0 ? await deps.trail.record(entries) : { recorded: [], duplicates: [] };
  result.recorded += written.recorded.length;
  result.duplicates += written.duplicates.length;
  const recorded = new Set(written.recorded);
  for (const { observation } of entries) {
    if (!recorded.has(observation.eventId)) continue;
    const name = observation.verdict.classification;
    result.classifications[name] = (result.classifications[name] ?? 0) + 1;
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
  const cache = new LookupCache();
  await cache.prime(
    deps.trail,
    candidates.map((observation) => observation.event),
  );
  const lookup = cache.wrap(deps.trail);
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
        requester: verdict.requester,
        instanceId: "instanceId" in observation.event ? observation.event.instanceId : verdict.instanceId,
        matchedBy: verdict.matchedBy,
        reasons: verdict.reasons,
      },
    };
    if (await deps.trail.replace(next, observation.version, [audit])) reclassified++;
  }
  return { checked: candidates.length, reclassified };
}
