import type { Config } from "../policy/index.ts";
import { log } from "../util/log.ts";
import { addResults, type Deps, emptyResult, type IngestResult, ingest, LookupCache, now } from "./ingest.ts";
import type { Checkpoint } from "./store.ts";

/**
 * The LookupEvents backfill (design §5, source 2): per account and region, every EC2 Instance Connect event
 * of a fixed time range, page by page, at most 2 calls a second, with a checkpoint saved after each page.
 * NextToken is only valid with identical parameters, so a run's range is fixed when it starts and kept in
 * the checkpoint: a crash resumes from the last saved token with the same range. Pages replayed after a
 * crash (ingested, checkpoint not yet saved) are harmless: ingest dedupes by event id.
 */

export interface Scope {
  account: string;
  region: string;
}

export interface LookupPage {
  /** `CloudTrailEvent` of each event: the full record as JSON text. */
  events: string[];
  nextToken?: string;
}

/** Port: one LookupEvents call (EventSource = ec2-instance-connect.amazonaws.com) as the broker role. */
export interface LookupEventsApi {
  page(
    scope: Scope,
    input: { start: Date; end: Date; nextToken?: string; maxResults?: number },
  ): Promise<LookupPage>;
}

/** Thrown (or recognised by name) when CloudTrail throttles: "two per second, per account, per Region". */
export function isThrottle(error: unknown): boolean {
  const name = (error as { name?: string })?.name ?? "";
  return name === "ThrottlingException" || name === "TooManyRequestsException" || name === "Throttling";
}

function isInvalidToken(error: unknown): boolean {
  return (error as { name?: string })?.name === "InvalidNextTokenException";
}

export interface BackfillDeps extends Deps {
  lookupEvents: LookupEventsApi;
  /** Waits (tests make it instant or count it). */
  sleep?: (ms: number) => Promise<void>;
}

export interface BackfillOptions {
  /** A scope's first run reads this far back (LookupEvents keeps 90 days). Default 24 h. */
  initialLookbackMs?: number;
  /** Each run re-reads this much before the last one's end: CloudTrail delivers late (~5 min, not guaranteed). */
  overlapMs?: number;
  /** Stop (and leave the checkpoint to resume) after this many pages, or at this time (epoch ms). */
  maxPages?: number;
  deadline?: number;
  /** Minimum gap between calls: 500 ms keeps one account and region at 2 TPS. */
  minIntervalMs?: number;
  maxResults?: number;
  /** Consecutive throttles before giving up until the next run. */
  maxThrottles?: number;
}

export interface BackfillResult {
  scope: Scope;
  pages: number;
  events: number;
  throttled: number;
  /** True when the run reached the end of its range; false when it stopped early and will resume. */
  complete: boolean;
  result: IngestResult;
}

const DAY = 86_400_000;

export function checkpointKey(scope: Scope): string {
  return `${scope.account}#${scope.region}`;
}

/** The account/region pairs the policy's targets live in (and the broker has roles for). */
export function scopesOf(config: Config): Scope[] {
  const seen = new Map<string, Scope>();
  for (const target of config.targets) {
    if (!config.settings.aws.accounts[target.account]) continue;
    const scope = { account: target.account, region: target.region };
    seen.set(checkpointKey(scope), scope);
  }
  return [...seen.values()];
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** When this process last called LookupEvents per scope: pacing holds across runs, not just within one. */
const lastCalls = new Map<string, number>();

/** Backfills one account and region; resumable, idempotent, within the LookupEvents rate limit. */
export async function backfill(
  deps: BackfillDeps,
  scope: Scope,
  options: BackfillOptions = {},
): Promise<BackfillResult> {
  const sleep = deps.sleep ?? defaultSleep;
  const key = checkpointKey(scope);
  const interval = options.minIntervalMs ?? 500;
  const outcome: BackfillResult = {
    scope,
    pages: 0,
    events: 0,
    throttled: 0,
    complete: false,
    result: emptyResult(),
  };
  const cache = new LookupCache();
  let stored = await deps.trail.getCheckpoint(key);
  let version = stored?.version ?? 0;
  const save = async (next: Omit<Checkpoint, "updatedAt" | "version">): Promise<boolean> => {
    const checkpoint: Checkpoint = { ...next, updatedAt: now(deps).toISOString(), version: version + 1 };
    if (!(await deps.trail.putCheckpoint(key, checkpoint, version))) {
      log.warn("trail backfill: another run owns this checkpoint; stopping", { scope: key });
      return false;
    }
    version = checkpoint.version;
    stored = checkpoint;
    return true;
  };
  const fresh = (): NonNullable<Checkpoint["run"]> => {
    const end = now(deps).getTime();
    const from = stored?.completedUntil
      ? Date.parse(stored.completedUntil) - (options.overlapMs ?? 15 * 60_000)
      : end - (options.initialLookbackMs ?? DAY);
    return {
      start: new Date(Math.max(from, end - 90 * DAY)).toISOString(),
      end: new Date(end).toISOString(),
      pages: 0,
    };
  };
  let run = stored?.run;
  if (!run) {
    run = fresh();
    if (!(await save({ completedUntil: stored?.completedUntil, run }))) return outcome;
  }
  let throttles = 0;
  for (;;) {
    if (options.maxPages !== undefined && outcome.pages >= options.maxPages) return outcome;
    if (options.deadline !== undefined && Date.now() >= options.deadline) return outcome;
    const wait = (lastCalls.get(key) ?? 0) + interval - Date.now();
    if (wait > 0) await sleep(wait);
    lastCalls.set(key, Date.now());
    let page: LookupPage;
    try {
      page = await deps.lookupEvents.page(scope, {
        start: new Date(run.start),
        end: new Date(run.end),
        nextToken: run.nextToken,
        maxResults: options.maxResults,
      });
    } catch (error) {
      if (isThrottle(error)) {
        outcome.throttled++;
        if (++throttles > (options.maxThrottles ?? 8)) {
          log.warn("trail backfill: throttled repeatedly; resuming next run", { scope: key });
          return outcome;
        }
        await sleep(Math.min(20_000, 500 * 2 ** throttles));
        continue;
      }
      if (isInvalidToken(error)) {
        // Tokens do not live forever: read the range again from its start (ingest dedupes).
        log.warn("trail backfill: NextToken refused; restarting the run's range", { scope: key });
        run = { start: run.start, end: run.end, pages: 0 };
        if (!(await save({ completedUntil: stored?.completedUntil, run }))) return outcome;
        continue;
      }
      throw error;
    }
    throttles = 0;
    outcome.pages++;
    outcome.events += page.events.length;
    if (page.events.length > 0)
      addResults(outcome.result, await ingest(deps, page.events, { source: "lookup", cache }));
    if (!page.nextToken) {
      if (await save({ completedUntil: run.end })) outcome.complete = true;
      return outcome;
    }
    run = { ...run, nextToken: page.nextToken, pages: run.pages + 1 };
    if (!(await save({ completedUntil: stored?.completedUntil, run }))) return outcome;
  }
}

/** Backfills every scope of the policy, one after the other (each has its own 2 TPS budget). */
export async function backfillAll(
  deps: BackfillDeps,
  options: BackfillOptions = {},
): Promise<BackfillResult[]> {
  const results: BackfillResult[] = [];
  for (const scope of scopesOf(deps.config)) {
    try {
      results.push(await backfill(deps, scope, options));
    } catch (error) {
      log.error("trail backfill failed", { scope: checkpointKey(scope), error });
    }
  }
  return results;
}
