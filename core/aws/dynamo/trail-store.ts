import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import {
  BatchGetCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
} from "@aws-sdk/lib-dynamodb";
import { Push } from "../../access/schema.ts";
import type { Audit } from "../../audit/index.ts";
import { Info } from "../../request/schema.ts";
import { pushOrder } from "../../trail/correlate.ts";
import { Observation } from "../../trail/schema.ts";
import type { Checkpoint, ObservationFilter, RecordResult, TrailStore } from "../../trail/store.ts";
import { LIST_READ_BUDGET, type Page } from "../../util/page.ts";
import { Condition, decodeCursor, type KeyRange, listFiltered } from "./filtered-list.ts";
import { INDEX, Keys, withoutKeys } from "./keys.ts";
import type { DynamoStore, TransactItem } from "./store.ts";

type Item = Record<string, unknown>;

function strip(item: Item): Item {
  const { expiresAt: _ttl, ...rest } = withoutKeys<Item>(item);
  return rest;
}

const toObservation = (item: Item) => Observation.parse(strip(item));

/** `<eventTime>#<eventId>`: index sort keys order observations by when AWS says they happened. */
function timeKey(observation: Observation): string {
  return `${observation.event.eventTime ?? observation.observedAt}#${observation.eventId}`;
}

function observationItem(observation: Observation): Item {
  const at = timeKey(observation);
  const { verdict } = observation;
  return {
    ...Keys.trail(observation.eventId),
    ...observation,
    ...(verdict.requestId ? { gsi1pk: `TRAIL#${verdict.requestId}`, gsi1sk: at } : {}),
    ...(observation.alert === "pending" ? { gsi2pk: "ALERT#pending", gsi2sk: at } : {}),
    // Sparse: only unbrokered events are re-correlation candidates.
    ...(verdict.classification === "unbrokered" ? { gsi3pk: "TRAIL#UNBROKERED", gsi3sk: at } : {}),
    gsi4pk: "TRAIL",
    gsi4sk: at,
  };
}

/** Events per transaction: each is its observation and its audit record, plus the chain head (≤ 100 items). */
export const EVENTS_PER_TRANSACTION = 49;
/** TransactWriteItems takes at most 4 MB; raw records may be up to 64 K characters (up to 3 bytes each). */
const TRANSACTION_BYTES = 3_500_000;
const BATCH_GET_KEYS = 100;

type Entry = { observation: Observation; audit: Audit.Input };

/** About what an entry weighs in a transaction: its observation and its audit record, with keys. */
function sizeOf(entry: Entry): number {
  return (
    Buffer.byteLength(JSON.stringify(entry.observation)) +
    Buffer.byteLength(JSON.stringify(entry.audit)) +
    1_024
  );
}

/** An entry waiting for a transaction, and the record() call waiting for its outcome. */
interface Queued {
  entry: Entry;
  bytes: number;
  done: (outcome: "recorded" | "duplicate") => void;
  fail: (error: unknown) => void;
}

function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The trail's time index between two event times: `list` reads it, and a cursor must be a key inside it. */
function timeRange(from: string, to: string): KeyRange {
  return {
    index: INDEX.byTime,
    expression: "gsi4pk = :pk AND gsi4sk BETWEEN :from AND :to",
    values: { ":pk": "TRAIL", ":from": from, ":to": to },
    attributes: ["gsi4pk", "gsi4sk", "pk", "sk"],
    holds: ({ pk = "", sk, gsi4pk, gsi4sk = "" }) =>
      gsi4pk === "TRAIL" &&
      sk === "TRAIL" &&
      pk.startsWith("TRAIL#") &&
      gsi4sk.endsWith(`#${pk.slice("TRAIL#".length)}`) &&
      gsi4sk >= from &&
      gsi4sk <= to,
  };
}

/** The filter as a FilterExpression on the observation's own attributes (`matches` in core/trail/store.ts). */
function filterCondition(filter: ObservationFilter): Condition {
  const condition = new Condition();
  if (filter.classification)
    condition.parts.push(
      `${condition.path("verdict", "classification")} = ${condition.value("classification", filter.classification)}`,
    );
  if (filter.user) {
    const any: string[] = [];
    if (filter.user.email !== undefined) {
      const email = condition.value("email", filter.user.email);
      for (const field of [
        condition.path("verdict", "requester"),
        condition.path("event", "identity", "sourceIdentity"),
        condition.path("event", "identity", "sessionName"),
        condition.path("event", "identity", "userName"),
      ])
        any.push(`${field} = ${email}`);
    }
    if (filter.user.principals.length > 0)
      any.push(
        ...condition.anyIn(
          [condition.path("event", "identity", "arn"), condition.path("event", "identity", "principalArn")],
          "principal",
          filter.user.principals,
        ),
      );
    condition.parts.push(`(${any.join(" OR ")})`);
  }
  if (filter.instance) {
    const instance = condition.value("instance", filter.instance);
    condition.parts.push(
      `(${condition.path("event", "instanceId")} = ${instance} OR ${condition.path("verdict", "instanceId")} = ${instance})`,
    );
  }
  return condition;
}

/**
 * DynamoDB adapter of the TrailStore port, in the broker's single table. Observation writes go through
 * DynamoStore's transaction (one chain head, one in-process lock), each Put on condition that its event id
 * is new: the dedupe. Each transaction appends up to 49 events and their audit records and moves the head
 * once; duplicates found by a cancelled transaction (CancellationReasons) are dropped and the rest retried.
 * An event and its audit record are written together or not at all, so a crash leaves nothing to repair:
 * importing the same records again writes what is missing.
 */
export class DynamoTrailStore implements TrailStore {
  private queue: Queued[] = [];
  private writing: Promise<void> | undefined;

  constructor(
    private readonly store: DynamoStore,
    private readonly client: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly options: { listReadBudget?: number } = {},
  ) {}

  private async queryAll(input: Omit<QueryCommandInput, "TableName" | "ExclusiveStartKey">): Promise<Item[]> {
    const items: Item[] = [];
    let startKey: Item | undefined;
    do {
      const { Items = [], LastEvaluatedKey } = await this.client.send(
        new QueryCommand({ TableName: this.table, ...input, ExclusiveStartKey: startKey }),
      );
      items.push(...Items);
      startKey = LastEvaluatedKey;
    } while (startKey);
    return items;
  }

  async pushesByFingerprint(fingerprint: string): Promise<Push[]> {
    const items = await this.queryAll({
      IndexName: INDEX.byOwner,
      KeyConditionExpression: "gsi1pk = :pk",
      ExpressionAttributeValues: { ":pk": `KEY#${fingerprint}` },
    });
    return items.map((item) => Push.parse(strip(item)));
  }

  async request(requestId: string): Promise<Info | undefined> {
    return this.store.get(requestId);
  }

  async requestsOf(email: string, from: string, to: string): Promise<Info[]> {
    const items = await this.queryAll({
      IndexName: INDEX.byOwner,
      KeyConditionExpression: "gsi1pk = :pk AND gsi1sk BETWEEN :from AND :to",
      ExpressionAttributeValues: { ":pk": `USER#${email}`, ":from": from, ":to": `${to}#~` },
    });
    return items.map((item) => Info.parse(strip(item)));
  }

  async requests(ids: readonly string[]): Promise<Info[]> {
    const found: Info[] = [];
    const chunks: string[][] = [];
    for (let start = 0; start < ids.length; start += BATCH_GET_KEYS)
      chunks.push(ids.slice(start, start + BATCH_GET_KEYS));
    await Promise.all(
      chunks.map(async (chunk) => {
        let keys: Item[] = chunk.map((id) => Keys.request(id));
        for (let attempt = 0; keys.length > 0; attempt++) {
          if (attempt > 0) await sleep(Math.min(1_000, 20 * 2 ** attempt) * Math.random());
          const { Responses = {}, UnprocessedKeys = {} } = await this.client.send(
            new BatchGetCommand({ RequestItems: { [this.table]: { Keys: keys, ConsistentRead: true } } }),
          );
          for (const item of Responses[this.table] ?? []) found.push(Info.parse(strip(item)));
          keys = (UnprocessedKeys[this.table]?.Keys as Item[] | undefined) ?? [];
        }
      }),
    );
    return found;
  }

  async pushesCreatedBetween(from: string, to: string): Promise<Push[]> {
    const lists = await Promise.all(
      Push.shape.status.options.map((status) =>
        this.queryAll({
          IndexName: INDEX.byStatus,
          KeyConditionExpression: "gsi2pk = :pk AND gsi2sk BETWEEN :from AND :to",
          ExpressionAttributeValues: { ":pk": `PUSH#${status}`, ":from": from, ":to": `${to}#~` },
        }),
      ),
    );
    return lists
      .flat()
      .map((item) => Push.parse(strip(item)))
      .sort(pushOrder);
  }

  async record(entries: readonly Entry[]): Promise<RecordResult> {
    const result: RecordResult = { recorded: [], duplicates: [] };
    // One transaction may not touch an item twice: a second copy of an event in the same call is a duplicate.
    const seen = new Set<string>();
    const outcomes: Promise<void>[] = [];
    for (const entry of entries) {
      const { eventId } = entry.observation;
      if (seen.has(eventId)) {
        result.duplicates.push(eventId);
        continue;
      }
      seen.add(eventId);
      outcomes.push(
        new Promise<"recorded" | "duplicate">((done, fail) =>
          this.queue.push({ entry, bytes: sizeOf(entry), done, fail }),
        ).then((outcome) => {
          (outcome === "recorded" ? result.recorded : result.duplicates).push(eventId);
        }),
      );
    }
    this.kick();
    await Promise.all(outcomes);
    return result;
  }

  private kick(): void {
    if (this.writing) return;
    this.writing = this.drain().finally(() => {
      this.writing = undefined;
      // Entries queued after the loop saw an empty queue, before this ran.
      if (this.queue.length > 0) this.kick();
    });
  }

  /**
   * Writes what record() calls queued, as full transactions as DynamoDB allows: entries of concurrent calls
   * (the batches of an import in flight) share transactions, so the chain head moves once per ~49 events.
   */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const chunk: Queued[] = [];
      const ids = new Set<string>();
      let bytes = 0;
      const rest: Queued[] = [];
      for (const queued of this.queue) {
        const { eventId } = queued.entry.observation;
        // The same event from two calls waits for the next transaction, where it is found a duplicate.
        const fits =
          chunk.length < EVENTS_PER_TRANSACTION &&
          (chunk.length === 0 || bytes + queued.bytes <= TRANSACTION_BYTES) &&
          !ids.has(eventId);
        if (!fits) {
          rest.push(queued);
          continue;
        }
        chunk.push(queued);
        ids.add(eventId);
        bytes += queued.bytes;
      }
      this.queue = rest;
      try {
        await this.commit(chunk);
      } catch (error) {
        for (const queued of chunk) queued.fail(error);
      }
    }
  }

  /** One transaction of observations and their audit records; existing event ids are dropped and the rest retried. */
  private async commit(chunk: readonly Queued[]): Promise<void> {
    let pending = chunk;
    while (pending.length > 0) {
      const outcome = await this.store.transact(
        pending.map(({ entry }) => ({
          Put: {
            TableName: this.table,
            Item: observationItem(entry.observation),
            ConditionExpression: "attribute_not_exists(pk)",
          },
        })),
        pending.map(({ entry }) => entry.audit),
      );
      if (outcome.ok) {
        for (const queued of pending) queued.done("recorded");
        return;
      }
      for (const index of outcome.failed.keys()) pending[index]?.done("duplicate");
      pending = pending.filter((_, index) => !outcome.failed.has(index));
    }
  }

  async appendAudit(events: readonly Audit.Input[]): Promise<void> {
    await this.store.append([...events]);
  }

  async get(eventId: string): Promise<Observation | undefined> {
    const { Item } = await this.client.send(
      new GetCommand({ TableName: this.table, Key: Keys.trail(eventId), ConsistentRead: true }),
    );
    return Item ? toObservation(Item) : undefined;
  }

  async replace(
    observation: Observation,
    expectedVersion: number,
    audit: readonly Audit.Input[],
  ): Promise<boolean> {
    const write: TransactItem = {
      Put: {
        TableName: this.table,
        Item: observationItem(observation),
        ConditionExpression: "version = :expected",
        ExpressionAttributeValues: { ":expected": expectedVersion },
      },
    };
    const outcome = await this.store.transact([write], [...audit]);
    return outcome.ok;
  }

  /** `from` bounds the sort key from below; omit it for the whole partition (DynamoDB rejects "" there). */
  private async indexed(
    index: string,
    pk: string,
    from: string | undefined,
    limit: number,
  ): Promise<Observation[]> {
    const items: Item[] = [];
    let startKey: Item | undefined;
    do {
      const { Items = [], LastEvaluatedKey } = await this.client.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: index,
          KeyConditionExpression: from ? `${index}pk = :pk AND ${index}sk >= :from` : `${index}pk = :pk`,
          ExpressionAttributeValues: from ? { ":pk": pk, ":from": from } : { ":pk": pk },
          ExclusiveStartKey: startKey,
          Limit: Math.min(limit - items.length, 200),
        }),
      );
      items.push(...Items);
      startKey = LastEvaluatedKey;
    } while (startKey && items.length < limit);
    return items.map(toObservation);
  }

  async uncorrelated(since: string, limit: number): Promise<Observation[]> {
    // The index is eventually consistent and sparse: re-read each candidate before trusting it.
    const candidates = await this.indexed(INDEX.byDue, "TRAIL#UNBROKERED", since, limit);
    const fresh = await Promise.all(candidates.map((candidate) => this.get(candidate.eventId)));
    return fresh.filter(
      (observation): observation is Observation => observation?.verdict.classification === "unbrokered",
    );
  }

  async pendingAlerts(limit: number): Promise<Observation[]> {
    const candidates = await this.indexed(INDEX.byStatus, "ALERT#pending", undefined, limit);
    const fresh = await Promise.all(candidates.map((candidate) => this.get(candidate.eventId)));
    return fresh.filter((observation): observation is Observation => observation?.alert === "pending");
  }

  async list(
    filter: ObservationFilter,
    page: { limit: number; cursor?: string },
  ): Promise<Page<Observation>> {
    const range = timeRange(filter.from ?? "0", `${filter.to ?? "9"}#~`);
    // A person with no email and no principal matches nothing; DynamoDB would reject the empty OR. A bad
    // cursor is still a bad cursor.
    if (filter.user && filter.user.email === undefined && filter.user.principals.length === 0) {
      decodeCursor(range, page.cursor);
      return { items: [] };
    }
    return listFiltered(
      this.client,
      this.table,
      range,
      filterCondition(filter),
      { ...page, ascending: true, budget: this.options.listReadBudget ?? LIST_READ_BUDGET },
      toObservation,
    );
  }

  async ofRequest(requestId: string): Promise<Observation[]> {
    const items = await this.queryAll({
      IndexName: INDEX.byOwner,
      KeyConditionExpression: "gsi1pk = :pk",
      ExpressionAttributeValues: { ":pk": `TRAIL#${requestId}` },
    });
    return items.map(toObservation);
  }

  async getCheckpoint(key: string): Promise<Checkpoint | undefined> {
    const { Item } = await this.client.send(
      new GetCommand({ TableName: this.table, Key: Keys.trailCheckpoint(key), ConsistentRead: true }),
    );
    if (!Item) return undefined;
    const { completedUntil, run, updatedAt, version } = Item as Item & Checkpoint;
    return { completedUntil, run, updatedAt, version };
  }

  async putCheckpoint(key: string, checkpoint: Checkpoint, expectedVersion: number): Promise<boolean> {
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...Keys.trailCheckpoint(key), ...checkpoint },
          ...(expectedVersion === 0
            ? { ConditionExpression: "attribute_not_exists(pk)" }
            : {
                ConditionExpression: "version = :expected",
                ExpressionAttributeValues: { ":expected": expectedVersion },
              }),
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  async claim(key: string, ttlSeconds: number): Promise<boolean> {
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            ...Keys.claim(key),
            at: new Date().toISOString(),
            expiresAt: Math.floor(Date.now() / 1000) + ttlSeconds,
          },
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }
}
