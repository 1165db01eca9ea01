import type { Push } from "../access/schema.ts";
import type { Audit } from "../audit/index.ts";
import type { Info } from "../request/schema.ts";
import type { Page } from "../util/page.ts";
import type { Lookup } from "./correlate.ts";
import type { Classification, Observation } from "./schema.ts";

export interface ObservationFilter {
  /** Event time range, inclusive (ISO). */
  from?: string;
  to?: string;
  classification?: Classification;
  /**
   * A person; an observation matches when any part does. `email`: the verdict's requester, or the caller's
   * SourceIdentity, role session name or IAM user name. `principals`: the caller's ARN or principal ARN.
   */
  user?: { email?: string; principals: readonly string[] };
  /** The event's instance, or the matched grant's (a tunnel names none). */
  instance?: string;
}

/** Whether an observation passes a filter: the one definition both adapters implement. */
export function matches(observation: Observation, filter: ObservationFilter): boolean {
  const time = observation.event.eventTime ?? observation.observedAt;
  const { event, verdict } = observation;
  const identity = event.kind === "unparsed" ? undefined : event.identity;
  const { user, instance } = filter;
  return (
    (!filter.from || time >= filter.from) &&
    (!filter.to || time <= filter.to) &&
    (!filter.classification || verdict.classification === filter.classification) &&
    (!user ||
      (user.email !== undefined &&
        [verdict.requester, identity?.sourceIdentity, identity?.sessionName, identity?.userName].includes(
          user.email,
        )) ||
      user.principals.some((arn) => arn === identity?.arn || arn === identity?.principalArn)) &&
    (!instance || ("instanceId" in event && event.instanceId === instance) || verdict.instanceId === instance)
  );
}

/** Where a LookupEvents backfill of one account and region stands (saved after every page). */
export interface Checkpoint {
  /** Everything up to here has been read. */
  completedUntil?: string;
  /** The run in progress: its fixed time range (NextToken is only valid with identical parameters). */
  run?: { start: string; end: string; nextToken?: string; pages: number };
  updatedAt: string;
  version: number;
}

export interface RecordResult {
  /** Event ids written now (with their audit records). */
  recorded: string[];
  /** Event ids that were already stored: a duplicate delivery, nothing written. */
  duplicates: string[];
}

/**
 * Port: trail observations next to the audit chain. `record` writes each new observation together with its
 * audit record (same transaction as the chain head), on condition that its event id is new: that
 * conditional put is the dedupe, so duplicates, retries and concurrent deliveries write nothing twice.
 */
export interface TrailStore extends Lookup {
  /** Several requests by id in as few reads as the store allows (a bulk import primes its lookups). */
  requests(ids: readonly string[]): Promise<Info[]>;
  /** Every push, whatever its status, created in [from, to] (ISO), in `pushesByFingerprint` order. */
  pushesCreatedBetween(from: string, to: string): Promise<Push[]>;
  record(entries: readonly { observation: Observation; audit: Audit.Input }[]): Promise<RecordResult>;
  get(eventId: string): Promise<Observation | undefined>;
  /** Audit records about trail handling that change no observation (alerts sent). */
  appendAudit(events: readonly Audit.Input[]): Promise<void>;
  /** Replaces an observation if its version is still `expectedVersion`, with `audit` (may be empty). */
  replace(observation: Observation, expectedVersion: number, audit: readonly Audit.Input[]): Promise<boolean>;
  /** Unbrokered observations whose event time is at or after `since`, oldest first (re-correlation). */
  uncorrelated(since: string, limit: number): Promise<Observation[]>;
  /** Observations whose alert is pending, oldest first. */
  pendingAlerts(limit: number): Promise<Observation[]>;
  /** By event time, oldest first. */
  list(filter: ObservationFilter, page: { limit: number; cursor?: string }): Promise<Page<Observation>>;
  /** Every observation correlated to a request, oldest first. */
  ofRequest(requestId: string): Promise<Observation[]>;
  getCheckpoint(key: string): Promise<Checkpoint | undefined>;
  /** Saves a checkpoint on condition that the stored one still has `expectedVersion` (0: none stored). */
  putCheckpoint(key: string, checkpoint: Checkpoint, expectedVersion: number): Promise<boolean>;
  /** True once per key, whoever asks: a conditional put (alert rate limiting). */
  claim(key: string, ttlSeconds: number): Promise<boolean>;
}
