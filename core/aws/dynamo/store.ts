import { type AttributeValue, TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  TransactWriteCommand,
} from "@aws-sdk/lib-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import { Push } from "../../access/schema.ts";
import type { PushStore } from "../../access/store.ts";
import * as Audit from "../../audit/index.ts";
import type { AuditFilter, AuditStore } from "../../audit/store.ts";
import { AppError, InputError } from "../../error.ts";
import { dueAt } from "../../request/lifecycle.ts";
import { Info, type Status } from "../../request/schema.ts";
import {
  type CreateResult,
  type IdempotencyClaim,
  type Page,
  type PageQuery,
  type RequestStore,
  VersionConflictError,
} from "../../request/store.ts";
import { LIST_READ_BUDGET } from "../../util/page.ts";
import { INDEX, KEY_ATTRIBUTES, Keys, pad, withoutKeys } from "./keys.ts";

type Item = Record<string, unknown>;
export type TransactItem = NonNullable<
  ConstructorParameters<typeof TransactWriteCommand>[0]["TransactItems"]
>[number];

const IDEMPOTENCY_TTL_SECONDS = 24 * 3_600;
/** Bounds the work one list call does when a filter hides most items; the cursor resumes from there. */
const MAX_SCANNED_PER_CALL = 1_000;
const MAX_COMMIT_ATTEMPTS = 40;

/** Requests are re-validated on the way out: a field order that reads well, and no stray attributes. */
function toRequest(item: Item): Info {
  return Info.parse(withoutKeys<Info>(item));
}

function requestRecord(item: Info): Item {
  const due = dueAt(item);
  const created = `${item.createdAt}#${item.id}`;
  return {
    ...Keys.request(item.id),
    ...item,
    gsi1pk: `USER#${item.requester}`,
    gsi1sk: created,
    gsi2pk: `STATUS#${item.status}`,
    gsi2sk: created,
    ...(due ? { gsi3pk: "DUE", gsi3sk: `${due}#${item.id}` } : {}),
    gsi4pk: "REQ",
    gsi4sk: created,
  };
}

function pushRecord(push: Push): Item {
  return {
    ...Keys.push(push.requestId, push.id),
    ...push,
    // By status, so evidence of pushes that never completed (a crash after the AWS call) is one Query away.
    gsi2pk: `PUSH#${push.status}`,
    gsi2sk: `${push.createdAt}#${push.id}`,
    // By key fingerprint: how a CloudTrail SendSSHPublicKey event finds the push that made it.
    gsi1pk: `KEY#${push.fingerprint}`,
    gsi1sk: `${push.createdAt}#${push.id}`,
  };
}

function auditRecord(record: Audit.Info): Item {
  return {
    ...Keys.audit(record.seq),
    ...record,
    gsi1pk: `SUBJ#${record.subject}`,
    gsi1sk: pad(record.seq),
    gsi4pk: "AUDIT",
    gsi4sk: `${record.at}#${pad(record.seq)}`,
  };
}

function encodeCursor(index: string, key: Item): string {
  return Buffer.from(JSON.stringify({ i: index, k: key })).toString("base64url");
}

function decodeCursor(index: string, cursor: string | undefined): Item | undefined {
  if (cursor === undefined) return undefined;
  const invalid = () => new InputError("input.invalid_cursor", "The cursor is not one this list returned");
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw invalid();
  }
  const { i, k } = (decoded ?? {}) as { i?: unknown; k?: unknown };
  if (i !== index || typeof k !== "object" || k === null) throw invalid();
  const entries = Object.entries(k);
  if (
    entries.length === 0 ||
    entries.some(([name, value]) => !KEY_ATTRIBUTES.includes(name) || typeof value !== "string")
  )
    throw invalid();
  return k as Item;
}

function keyOf(item: Item, attributes: readonly string[]): Item {
  return Object.fromEntries(attributes.map((name) => [name, item[name]]));
}

/** Serialises commits within one process so its own writers do not fight over the audit head. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work, work);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/**
 * DynamoDB adapter for requests, grants and the audit chain. Each state change is one
 * TransactWriteItems: the item on condition of its version, the audit head on condition of its
 * sequence number, and the new audit records. A lost race on the head is retried here; a lost race
 * on the item goes back to the domain as VersionConflictError so it can decide again on fresh state.
 */
export class DynamoStore implements RequestStore, AuditStore, PushStore {
  private cachedHead: Audit.Head | undefined;
  private readonly mutex = new Mutex();

  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly options: { listReadBudget?: number } = {},
  ) {}

  async get(id: string): Promise<Info | undefined> {
    const { Item } = await this.client.send(
      new GetCommand({ TableName: this.table, Key: Keys.request(id), ConsistentRead: true }),
    );
    return Item ? toRequest(Item) : undefined;
  }

  async create(item: Info, events: Audit.Input[], idempotency?: IdempotencyClaim): Promise<CreateResult> {
    const writes: TransactItem[] = [
      {
        Put: {
          TableName: this.table,
          Item: requestRecord(item),
          ConditionExpression: "attribute_not_exists(pk)",
        },
      },
    ];
    if (idempotency) {
      writes.push({
        Put: {
          TableName: this.table,
          Item: {
            ...Keys.idempotency(idempotency.owner, idempotency.key),
            requestId: item.id,
            fingerprint: idempotency.fingerprint,
            expiresAt: Math.floor(Date.now() / 1000) + IDEMPOTENCY_TTL_SECONDS,
          },
          ConditionExpression: "attribute_not_exists(pk)",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        },
      });
    }
    const outcome = await this.commit(writes, events);
    if (outcome.ok) return { created: true };
    const failedIdempotency = idempotency ? outcome.failed.get(1) : undefined;
    if (failedIdempotency) {
      return {
        created: false,
        existingId: String(failedIdempotency.requestId),
        fingerprint: String(failedIdempotency.fingerprint),
      };
    }
    throw new VersionConflictError(item.id);
  }

  async update(item: Info, expectedVersion: number, events: Audit.Input[]): Promise<void> {
    const outcome = await this.commit(
      [
        {
          Put: {
            TableName: this.table,
            Item: requestRecord(item),
            ConditionExpression: "version = :expected",
            ExpressionAttributeValues: { ":expected": expectedVersion },
          },
        },
      ],
      events,
    );
    if (!outcome.ok) throw new VersionConflictError(item.id);
  }

  async append(events: Audit.Input[]): Promise<void> {
    if (events.length === 0) return;
    await this.commit([], events);
  }

  async beginPush(push: Push): Promise<void> {
    await this.client.send(
      new PutCommand({
        TableName: this.table,
        Item: pushRecord(push),
        ConditionExpression: "attribute_not_exists(pk)",
      }),
    );
  }

  /** The push item goes from `intent` to `pushed` in the same transaction as its audit record. */
  async completePush(push: Push, event: Audit.Input): Promise<void> {
    const outcome = await this.commit(
      [
        {
          Put: {
            TableName: this.table,
            Item: pushRecord(push),
            ConditionExpression: "#status = :intent",
            ExpressionAttributeNames: { "#status": "status" },
            ExpressionAttributeValues: { ":intent": "intent" },
          },
        },
      ],
      [event],
    );
    if (!outcome.ok) throw new Error(`push ${push.id} was not an open intent`);
  }

  async failPush(push: Push): Promise<void> {
    await this.client.send(
      new PutCommand({
        TableName: this.table,
        Item: pushRecord(push),
        ConditionExpression: "#status = :intent",
        ExpressionAttributeNames: { "#status": "status" },
        ExpressionAttributeValues: { ":intent": "intent" },
      }),
    );
  }

  async listPushes(requestId: string): Promise<Push[]> {
    const items: Push[] = [];
    let startKey: Item | undefined;
    do {
      const { Items = [], LastEvaluatedKey } = await this.client.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: "pk = :pk AND begins_with(sk, :push)",
          ExpressionAttributeValues: { ":pk": `REQ#${requestId}`, ":push": "PUSH#" },
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
      );
      for (const raw of Items) items.push(Push.parse(withoutKeys(raw)));
      startKey = LastEvaluatedKey;
    } while (startKey);
    return items;
  }

  /**
   * Writes `writes` plus the audit records for `events` atomically. Returns the failed conditions of
   * `writes` (by position) when one of them did not hold; chain-head races and transaction conflicts
   * are retried with backoff.
   */
  private commit(
    writes: TransactItem[],
    events: Audit.Input[],
  ): Promise<{ ok: true } | { ok: false; failed: Map<number, Item> }> {
    return this.mutex.run(async () => {
      for (let attempt = 1; ; attempt++) {
        const head = this.cachedHead ?? (await this.head());
        const records = Audit.link(head, events);
        const last = records.at(-1) ?? head;
        const headWrite: TransactItem = {
          Put: {
            TableName: this.table,
            Item: { ...Keys.auditHead, seq: last.seq, hash: last.hash },
            ConditionExpression: head.seq === 0 ? "attribute_not_exists(pk)" : "seq = :seq",
            ...(head.seq === 0 ? {} : { ExpressionAttributeValues: { ":seq": head.seq } }),
            ReturnValuesOnConditionCheckFailure: "ALL_OLD",
          },
        };
        const auditWrites: TransactItem[] = records.map((record) => ({
          Put: {
            TableName: this.table,
            Item: auditRecord(record),
            ConditionExpression: "attribute_not_exists(pk)",
          },
        }));
        try {
          await this.client.send(
            new TransactWriteCommand({
              TransactItems: [...writes, ...(records.length ? [headWrite] : []), ...auditWrites],
            }),
          );
          if (records.length) this.cachedHead = { seq: last.seq, hash: last.hash };
          return { ok: true };
        } catch (error) {
          if (!(error instanceof TransactionCanceledException)) throw error;
          const reasons = error.CancellationReasons ?? [];
          const failed = new Map<number, Item>();
          reasons.slice(0, writes.length).forEach((reason, index) => {
            if (reason.Code === "ConditionalCheckFailed") failed.set(index, unmarshallItem(reason.Item));
          });
          if (failed.size > 0) return { ok: false, failed };
          const headReason = reasons[writes.length];
          this.cachedHead =
            headReason?.Code === "ConditionalCheckFailed" && headReason.Item
              ? headFrom(unmarshallItem(headReason.Item))
              : undefined;
          if (attempt >= MAX_COMMIT_ATTEMPTS)
            throw new AppError("throttled", "store.busy", "The audit log is busy; retry shortly");
          const conflict = reasons.some((reason) => reason.Code === "TransactionConflict");
          if (conflict) await sleep(Math.random() * Math.min(200, 5 * 2 ** Math.min(attempt, 6)));
        }
      }
    });
  }

  /**
   * One transaction of `writes` (other ports' items, e.g. trail observations) and the audit records of
   * `events`, through the same chain head and in-process lock as every other write.
   */
  transact(
    writes: TransactItem[],
    events: Audit.Input[],
  ): Promise<{ ok: true } | { ok: false; failed: Map<number, Item> }> {
    return this.commit(writes, events);
  }

  async head(): Promise<Audit.Head> {
    const { Item } = await this.client.send(
      new GetCommand({ TableName: this.table, Key: Keys.auditHead, ConsistentRead: true }),
    );
    return Item ? headFrom(Item) : Audit.GENESIS;
  }

  async listByRequester(email: string, page: PageQuery): Promise<Page<Info>> {
    return this.queryPage(
      INDEX.byOwner,
      { KeyConditionExpression: "gsi1pk = :pk", ExpressionAttributeValues: { ":pk": `USER#${email}` } },
      page,
      ["pk", "sk", "gsi1pk", "gsi1sk"],
      toRequest,
    );
  }

  async listByStatus(status: Status, page: PageQuery): Promise<Page<Info>> {
    return this.queryPage(
      INDEX.byStatus,
      { KeyConditionExpression: "gsi2pk = :pk", ExpressionAttributeValues: { ":pk": `STATUS#${status}` } },
      page,
      ["pk", "sk", "gsi2pk", "gsi2sk"],
      toRequest,
    );
  }

  async listAll(page: PageQuery): Promise<Page<Info>> {
    return this.queryPage(
      INDEX.byTime,
      { KeyConditionExpression: "gsi4pk = :pk", ExpressionAttributeValues: { ":pk": "REQ" } },
      page,
      ["pk", "sk", "gsi4pk", "gsi4sk"],
      toRequest,
    );
  }

  async listDue(now: Date, limit: number): Promise<Info[]> {
    const { Items = [] } = await this.client.send(
      new QueryCommand({
        TableName: this.table,
        IndexName: INDEX.byDue,
        KeyConditionExpression: "gsi3pk = :pk AND gsi3sk <= :now",
        ExpressionAttributeValues: { ":pk": "DUE", ":now": `${now.toISOString()}#~` },
        Limit: limit,
      }),
    );
    return Items.map(toRequest);
  }

  /** Newest first; a filter is applied while paging and the cursor resumes after the last item returned. */
  private async queryPage<T>(
    index: string | undefined,
    query: Pick<QueryCommandInput, "KeyConditionExpression" | "ExpressionAttributeValues">,
    page: { limit: number; cursor?: string; filter?: (item: T) => boolean },
    keyAttributes: readonly string[],
    decode: (raw: Item) => T,
    ascending = false,
  ): Promise<Page<T>> {
    const cursorName = index ?? "table";
    let startKey = decodeCursor(cursorName, page.cursor);
    const items: T[] = [];
    let scanned = 0;
    while (true) {
      const want = page.limit - items.length;
      const { Items = [], LastEvaluatedKey } = await this.client.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: index,
          ...query,
          ScanIndexForward: ascending,
          ExclusiveStartKey: startKey,
          Limit: page.filter ? Math.min(200, Math.max(25, want * 2)) : want,
        }),
      );
      for (const [position, raw] of Items.entries()) {
        scanned++;
        const item = decode(raw);
        if (page.filter && !page.filter(item)) continue;
        items.push(item);
        if (items.length === page.limit) {
          const more = position < Items.length - 1 || LastEvaluatedKey !== undefined;
          return {
            items,
            nextCursor: more ? encodeCursor(cursorName, keyOf(raw, keyAttributes)) : undefined,
          };
        }
      }
      if (!LastEvaluatedKey) return { items };
      startKey = LastEvaluatedKey;
      if (scanned >= MAX_SCANNED_PER_CALL)
        return { items, nextCursor: encodeCursor(cursorName, LastEvaluatedKey) };
    }
  }

  /**
   * Audit records by the key range `filter` picks, with its user and instance as a FilterExpression and a
   * read budget per call (core/aws/dynamo/audit-list.ts, loaded on first use: only the API lists the log).
   */
  async list(filter: AuditFilter, page: { limit: number; cursor?: string }): Promise<Page<Audit.Info>> {
    const { listAudit } = await import("./audit-list.ts");
    return listAudit(this.client, this.table, filter, {
      ...page,
      budget: this.options.listReadBudget ?? LIST_READ_BUDGET,
    });
  }

  async *walk(): AsyncIterable<Audit.Info> {
    let startKey: Item | undefined;
    do {
      const { Items = [], LastEvaluatedKey } = await this.client.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: "pk = :pk AND begins_with(sk, :seq)",
          ExpressionAttributeValues: { ":pk": "AUDIT", ":seq": "SEQ#" },
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
      );
      for (const item of Items) yield withoutKeys<Audit.Info>(item);
      startKey = LastEvaluatedKey;
    } while (startKey);
  }
}

function headFrom(item: Item): Audit.Head {
  return { seq: Number(item.seq), hash: String(item.hash) };
}

/** Cancellation reasons carry items in low-level AttributeValue form even through the document client. */
function unmarshallItem(item: Record<string, AttributeValue> | undefined): Item {
  return item ? unmarshall(item) : {};
}

function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
