import type { Push } from "../access/schema.ts";
import * as Audit from "../audit/index.ts";
import { InputError } from "../error.ts";
import type { Info } from "../request/schema.ts";
import type { Page } from "../util/page.ts";
import { pushOrder } from "./correlate.ts";
import type { Observation } from "./schema.ts";
import {
  type Checkpoint,
  matches,
  type ObservationFilter,
  type RecordResult,
  type TrailStore,
} from "./store.ts";

const clone = <T>(value: T): T => structuredClone(value);
/** `<eventTime>#<eventId>`, the DynamoDB adapter's index sort key. */
const orderKey = (o: Observation) => `${o.event.eventTime ?? o.observedAt}#${o.eventId}`;

const encodeCursor = (key: string) => Buffer.from(JSON.stringify({ after: key })).toString("base64url");

function decodeCursor(cursor: string): string {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as { after?: unknown };
    if (typeof parsed.after === "string" && parsed.after.includes("#")) return parsed.after;
  } catch {
    // fall through
  }
  throw new InputError("input.invalid_cursor", "The cursor is not one this list returned");
}
const byTime = (a: Observation, b: Observation) =>
  (a.event.eventTime ?? a.observedAt).localeCompare(b.event.eventTime ?? b.observedAt) ||
  a.eventId.localeCompare(b.eventId);

/**
 * The TrailStore port in memory, with the same semantics as the DynamoDB adapter (conditional writes, the
 * audit chain linked in write order). For unit tests and the ingest benchmark's store-independent figure.
 */
export class MemoryTrailStore implements TrailStore {
  readonly observations = new Map<string, Observation>();
  private readonly byId = new Map<string, Info>();
  readonly pushes: Push[] = [];
  readonly audit: Audit.Info[] = [];
  private readonly checkpoints = new Map<string, Checkpoint>();
  private readonly claims = new Set<string>();
  private readonly byFingerprint = new Map<string, Push[]>();

  putRequest(request: Info): void {
    this.byId.set(request.id, clone(request));
  }

  putPush(push: Push): void {
    this.pushes.push(clone(push));
    const list = this.byFingerprint.get(push.fingerprint) ?? [];
    list.push(clone(push));
    this.byFingerprint.set(push.fingerprint, list);
  }

  private append(events: readonly Audit.Input[]): void {
    const last = this.audit.at(-1);
    this.audit.push(...Audit.link(last ? { seq: last.seq, hash: last.hash } : Audit.GENESIS, events));
  }

  /** In creation order, as DynamoDB's index sorts them (`<createdAt>#<id>`). */
  async pushesByFingerprint(fingerprint: string): Promise<Push[]> {
    return clone(this.byFingerprint.get(fingerprint) ?? []).sort(pushOrder);
  }

  async pushesCreatedBetween(from: string, to: string): Promise<Push[]> {
    return this.pushes
      .filter((push) => push.createdAt >= from && push.createdAt <= `${to}~`)
      .map(clone)
      .sort(pushOrder);
  }

  async requests(ids: readonly string[]): Promise<Info[]> {
    return ids.flatMap((id) => {
      const found = this.byId.get(id);
      return found ? [clone(found)] : [];
    });
  }

  async request(requestId: string): Promise<Info | undefined> {
    const found = this.byId.get(requestId);
    return found ? clone(found) : undefined;
  }

  async requestsOf(email: string, from: string, to: string): Promise<Info[]> {
    return [...this.byId.values()]
      .filter(
        (request) => request.requester === email && request.createdAt >= from && request.createdAt <= to,
      )
      .map(clone);
  }

  async record(entries: readonly { observation: Observation; audit: Audit.Input }[]): Promise<RecordResult> {
    const result: RecordResult = { recorded: [], duplicates: [] };
    const seen = new Set<string>();
    const fresh = entries.filter(({ observation }) => {
      if (this.observations.has(observation.eventId) || seen.has(observation.eventId)) {
        result.duplicates.push(observation.eventId);
        return false;
      }
      seen.add(observation.eventId);
      return true;
    });
    for (const { observation } of fresh) {
      this.observations.set(observation.eventId, clone(observation));
      result.recorded.push(observation.eventId);
    }
    this.append(fresh.map(({ audit }) => audit));
    return result;
  }

  async appendAudit(events: readonly Audit.Input[]): Promise<void> {
    this.append(events);
  }

  async get(eventId: string): Promise<Observation | undefined> {
    const found = this.observations.get(eventId);
    return found ? clone(found) : undefined;
  }

  async replace(
    observation: Observation,
    expectedVersion: number,
    audit: readonly Audit.Input[],
  ): Promise<boolean> {
    const stored = this.observations.get(observation.eventId);
    if (!stored || stored.version !== expectedVersion) return false;
    this.observations.set(observation.eventId, clone(observation));
    this.append(audit);
    return true;
  }

  async uncorrelated(since: string, limit: number): Promise<Observation[]> {
    return [...this.observations.values()]
      .filter((o) => o.verdict.classification === "unbrokered" && (o.event.eventTime ?? "") >= since)
      .sort(byTime)
      .slice(0, limit)
      .map(clone);
  }

  async pendingAlerts(limit: number): Promise<Observation[]> {
    return [...this.observations.values()]
      .filter((o) => o.alert === "pending")
      .sort(byTime)
      .slice(0, limit)
      .map(clone);
  }

  async list(
    filter: ObservationFilter,
    page: { limit: number; cursor?: string },
  ): Promise<Page<Observation>> {
    // The cursor is the last key returned, as in DynamoDB: writes between pages do not shift it.
    const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
    const all = [...this.observations.values()]
      .filter((o) => matches(o, filter) && (after === undefined || orderKey(o) > after))
      .sort((a, b) => (orderKey(a) < orderKey(b) ? -1 : 1));
    const items = all.slice(0, page.limit);
    const last = items.at(-1);
    return all.length > page.limit && last
      ? { items: items.map(clone), nextCursor: encodeCursor(orderKey(last)) }
      : { items: items.map(clone) };
  }

  async ofRequest(requestId: string): Promise<Observation[]> {
    return [...this.observations.values()]
      .filter((o) => o.verdict.requestId === requestId)
      .sort(byTime)
      .map(clone);
  }

  async getCheckpoint(key: string): Promise<Checkpoint | undefined> {
    const found = this.checkpoints.get(key);
    return found ? clone(found) : undefined;
  }

  async putCheckpoint(key: string, checkpoint: Checkpoint, expectedVersion: number): Promise<boolean> {
    if ((this.checkpoints.get(key)?.version ?? 0) !== expectedVersion) return false;
    this.checkpoints.set(key, clone(checkpoint));
    return true;
  }

  async claim(key: string): Promise<boolean> {
    if (this.claims.has(key)) return false;
    this.claims.add(key);
    return true;
  }
}
