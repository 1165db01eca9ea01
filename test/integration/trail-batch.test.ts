import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { DeleteItemCommand, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { afterAll, beforeEach, describe, expect, inject, it } from "vitest";
import type { Push } from "../../core/access/schema.ts";
import type { Audit } from "../../core/audit/index.ts";
import { documentClient } from "../../core/aws/clients.ts";
import { DynamoStore } from "../../core/aws/dynamo/store.ts";
import { DynamoTrailStore } from "../../core/aws/dynamo/trail-store.ts";
import * as Trail from "../../core/trail/index.ts";
import { LOCAL_AWS } from "../../local/dynamo.ts";
import { createTestBroker, type TestBroker } from "../helpers/broker.ts";
import { writeCorpus } from "../helpers/trail-corpus.ts";
import { eventFor, seed, type World, world } from "../helpers/trail-world.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CAROL = "carol@example.com";
const root = mkdtempSync(join(tmpdir(), "trail-batch-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let broker: TestBroker;
let bench: World;
let logs: string;
let events: number;

/** 60 grants in the table and 240 of their EC2 Instance Connect events among 6,000 records in 6 files. */
beforeEach(async () => {
  broker = await createTestBroker();
  bench = world(60);
  await seed(broker.store, bench, 8);
  logs = mkdtempSync(join(root, "logs-"));
  const corpus = await writeCorpus({
    dir: logs,
    records: 6_000,
    recordsPerFile: 1_000,
    eicRatio: 0.04,
    eic: (n, random) => eventFor(bench, n, random),
  });
  events = corpus.eicRecords;
  expect(events).toBe(240);
});

interface Importer {
  deps: Trail.Deps;
  trail: DynamoTrailStore;
  /** Items of each transaction that reached DynamoDB. */
  transactions: number[];
}

/**
 * An importer with a store and client of its own (like another Lambda or CLI process: no shared lock or
 * cached head). `crashBefore: n` dies before its n-th transaction is sent; `crashAfter: n` dies after its n-th
 * transaction committed, before the answer arrives. Once dead, nothing it sends reaches DynamoDB.
 */
function importer(options: { crashBefore?: number; crashAfter?: number } = {}): Importer {
  const document = documentClient({ ...LOCAL_AWS, endpoint: inject("dynamoEndpoint") });
  const transactions: number[] = [];
  let attempts = 0;
  let dead = false;
  document.middlewareStack.add(
    (next, context) => async (args) => {
      if (dead) throw new Error("crashed");
      if (context.commandName !== "TransactWriteItemsCommand") return next(args);
      attempts++;
      if (attempts === options.crashBefore) {
        dead = true;
        throw new Error("crashed");
      }
      const output = await next(args);
      transactions.push((args.input as { TransactItems: unknown[] }).TransactItems.length);
      if (attempts === options.crashAfter) {
        dead = true;
        throw new Error("crashed");
      }
      return output;
    },
    { step: "initialize", name: "crashAfterTransactions" },
  );
  const trail = new DynamoTrailStore(new DynamoStore(document, broker.table), document, broker.table);
  return { deps: { config: broker.deps.config, trail }, trail, transactions };
}

async function importDir(by: Importer, dir = logs) {
  const cache = new Trail.LookupCache();
  return Trail.importFiles(await Trail.listLogFiles([dir]), (records) =>
    Trail.ingest(by.deps, records, { source: "import", cache }),
  );
}

async function chain(): Promise<Audit.Info[]> {
  const records: Audit.Info[] = [];
  for await (const record of broker.store.walk()) records.push(record);
  return records;
}

/** The event ids the chain holds a trail.observed record of, in chain order. */
async function chained(): Promise<string[]> {
  return (await chain())
    .filter((record) => record.type === "trail.observed")
    .map((record) => String(record.data.eventId));
}

async function observations(): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await (broker.deps.trail as Trail.TrailStore).list({}, { limit: 200, cursor });
    ids.push(...page.items.map((observation) => observation.eventId));
    cursor = page.nextCursor;
  } while (cursor);
  return ids;
}

async function verify() {
  return (await broker.call(CAROL, "GET", "/audit/verify")).body;
}

/** Every event is stored once and chained once, and the chain verifies. */
async function expectWhole(expected: number) {
  const ids = await chained();
  expect(ids).toHaveLength(expected);
  expect(new Set(ids).size).toBe(expected);
  expect((await observations()).sort()).toEqual([...ids].sort());
  expect(await verify()).toMatchObject({ ok: true, records: expected });
}

describe("batched chain appends", () => {
  it("writes an import in transactions of up to 49 events, each with its audit record, correlated as one by one", async () => {
    const by = importer();
    const summary = await importDir(by);
    expect(summary.result).toMatchObject({ recorded: 240, duplicates: 0 });
    expect(summary.result.classifications).toEqual({ brokered: 192, unbrokered: 24, "denied-attempt": 24 });
    // Each transaction: its events' observations and audit records, and the chain head.
    expect(Math.max(...by.transactions)).toBeLessThanOrEqual(99);
    expect(by.transactions.every((items) => items % 2 === 1)).toBe(true);
    expect(by.transactions.reduce((sum, items) => sum + (items - 1) / 2, 0)).toBe(240);
    expect(by.transactions.length).toBeLessThanOrEqual(10);
    await expectWhole(240);
  });

  it("writes nothing twice: duplicates within a batch, across batches and files, and delivered three times", async () => {
    const by = importer();
    const files = (await Trail.listLogFiles([logs])).map((file) => file.path);
    const first = mkdtempSync(join(root, "first-"));
    copyFileSync(files[0] as string, join(first, basename(files[0] as string)));
    expect((await importDir(by, first)).result).toMatchObject({ recorded: 40, duplicates: 0 });

    // Every file three times, and one file holding its records, file 1's and its own again: one batch.
    const again = mkdtempSync(join(root, "again-"));
    for (const [index, file] of files.entries())
      for (const copy of [1, 2, 3]) copyFileSync(file, join(again, `${copy}-${index}-${basename(file)}`));
    const records = (name: string) =>
      JSON.parse(gunzipSync(readFileSync(name)).toString("utf8")).Records as Record<string, unknown>[];
    const mixed = [
      ...records(files[1] as string),
      ...records(files[0] as string),
      ...records(files[1] as string),
    ];
    writeFileSync(join(again, "mixed.json.gz"), gzipSync(JSON.stringify({ Records: mixed })));
    const summary = await importDir(by, again);
    expect(summary.result).toMatchObject({ recorded: 200, duplicates: 240 * 3 - 200 + 40 * 3 });
    await expectWhole(240);

    // The store's own dedupe, for callers that hand it the same event twice in one call.
    const [observation] = (await (broker.deps.trail as Trail.TrailStore).list({}, { limit: 1 })).items;
    const fresh = { ...(observation as Trail.Observation), eventId: "batch-dup", raw: "{}" };
    const audit: Audit.Input = {
      type: "trail.observed",
      at: new Date().toISOString(),
      actor: "system",
      subject: "x",
      data: { eventId: "batch-dup" },
    };
    const entry = { observation: fresh, audit };
    const known = { observation: observation as Trail.Observation, audit };
    expect(await by.trail.record([entry, known, entry])).toEqual({
      recorded: ["batch-dup"],
      duplicates: expect.arrayContaining([(observation as Trail.Observation).eventId, "batch-dup"]),
    });
    expect(await verify()).toMatchObject({ ok: true, records: 241 });
  });

  it("records each event once when the same files are imported concurrently by separate processes", async () => {
    const importers = [importer(), importer(), importer()];
    const child = new Promise<Record<string, any>>((done, fail) =>
      execFile(
        process.execPath,
        [
          "--import",
          "tsx",
          "test/helpers/import-child.ts",
          "--store",
          "dynamo",
          "--endpoint",
          inject("dynamoEndpoint"),
          "--table",
          broker.table,
          logs,
        ],
        { cwd: ROOT, env: { ...process.env, LOG_LEVEL: "error" } },
        (error, stdout) => (error ? fail(error) : done(JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}"))),
      ),
    );
    const results = await Promise.all([...importers.map((by) => importDir(by)), child]);
    const recorded = results.reduce((sum, summary) => sum + summary.result.recorded, 0);
    const duplicates = results.reduce((sum, summary) => sum + summary.result.duplicates, 0);
    expect(recorded).toBe(240);
    expect(duplicates).toBe(240 * 3);
    await expectWhole(240);
    const seqs = (await chain()).map((record) => record.seq);
    expect(seqs).toEqual(seqs.map((_, index) => index + 1));
  }, 120_000);
});

describe("a crash in the middle of an import", () => {
  for (const [what, options] of [
    ["before a transaction is sent", { crashBefore: 4 }],
    ["after a transaction committed, before its answer arrived", { crashAfter: 3 }],
  ] as const)
    it(`${what}: whole batches or nothing, and importing again writes the rest once`, async () => {
      const crashing = importer(options);
      await expect(importDir(crashing)).rejects.toThrow("crashed");
      const committed = crashing.transactions.reduce((sum, items) => sum + (items - 1) / 2, 0);
      expect(committed).toBeGreaterThan(0);
      expect(committed).toBeLessThan(240);
      // Nothing half-written: every stored event is in the chain, and the chain verifies.
      await expectWhole(committed);

      const summary = await importDir(importer());
      expect(summary.result).toMatchObject({ recorded: 240 - committed, duplicates: committed });
      await expectWhole(240);
    });
});

describe("verify, over records appended in batches", () => {
  const key = (seq: number) => ({ pk: { S: "AUDIT" }, sk: { S: `SEQ#${String(seq).padStart(12, "0")}` } });
  const read = async (seq: number) =>
    unmarshall(
      (await broker.raw.send(new GetItemCommand({ TableName: broker.table, Key: key(seq) }))).Item ?? {},
    );
  const write = (item: Record<string, unknown>) =>
    broker.raw.send(
      new PutItemCommand({ TableName: broker.table, Item: marshall(item, { removeUndefinedValues: true }) }),
    );

  it("detects an edited, a deleted and a reordered event record inside a transaction", async () => {
    const by = importer();
    await importDir(by);
    await expectWhole(240);
    // Two records in the middle of the second transaction.
    const first = ((by.transactions[0] as number) - 1) / 2;
    expect((by.transactions[1] as number) - 1).toBeGreaterThanOrEqual(8);
    const seq = first + 2;
    const [record, next] = [await read(seq), await read(seq + 1)];
    expect(record.type).toBe("trail.observed");

    await write({ ...record, data: { ...record.data, classification: "brokered", reasons: [] } });
    expect(await verify()).toMatchObject({
      ok: false,
      brokenAt: { seq, reason: expect.stringContaining("hash") },
    });
    await write(record);
    expect(await verify()).toMatchObject({ ok: true });

    await broker.raw.send(new DeleteItemCommand({ TableName: broker.table, Key: key(seq) }));
    expect(await verify()).toMatchObject({
      ok: false,
      brokenAt: { seq, reason: expect.stringContaining("missing") },
    });
    await write(record);

    await write({ ...next, sk: record.sk, seq });
    await write({ ...record, sk: next.sk, seq: seq + 1 });
    expect(await verify()).toMatchObject({ ok: false, brokenAt: { seq } });
  });
});

describe("events that arrive before the broker's records of them", () => {
  it("are re-correlated once the pushes and grants exist, through the bulk reads", async () => {
    // A fresh table: the events are imported first, their grants and pushes written afterwards.
    broker = await createTestBroker();
    const recent = world(20, Date.now() - 2 * 3_600_000);
    const dir = mkdtempSync(join(root, "late-"));
    await writeCorpus({
      dir,
      records: 2_000,
      recordsPerFile: 1_000,
      eicRatio: 0.05,
      eic: (n, random) => eventFor(recent, n, random),
    });
    const summary = await importDir(importer(), dir);
    expect(summary.result.classifications).toEqual({ unbrokered: 90, "denied-attempt": 10 });

    await seed(broker.store, recent, 8);
    const deps = broker.deps as Trail.Deps;
    expect(await Trail.recorrelate(deps)).toEqual({ checked: 90, reclassified: 80 });
    const types = (await chain()).map((record) => record.type);
    expect(types.filter((type) => type === "trail.reclassified")).toHaveLength(80);
    const brokered = await (broker.deps.trail as Trail.TrailStore).list(
      { classification: "brokered" },
      { limit: 200 },
    );
    expect(brokered.items).toHaveLength(80);
    expect(new Set(brokered.items.map((item) => item.verdict.matchedBy))).toEqual(
      new Set(["push", "session"]),
    );
    expect(await verify()).toMatchObject({ ok: true, records: 180 });
  });
});

describe("the DynamoDB adapter's bulk reads", () => {
  it("reads pushes of every status created in a range, in index order, and requests by the hundred", async () => {
    const trail = broker.deps.trail as Trail.TrailStore;
    const base = bench.pushes[0] as Push;
    const later = (seconds: number) => new Date(Date.parse(base.createdAt) + seconds * 1000).toISOString();
    await broker.store.beginPush({
      ...base,
      id: "push_01hzx0000000000000000000a1",
      status: "intent",
      pushedAt: undefined,
      createdAt: later(1),
    });
    await broker.store.beginPush({
      ...base,
      id: "push_01hzx0000000000000000000a2",
      status: "failed",
      pushedAt: undefined,
      createdAt: later(2),
    });
    const found = await trail.pushesCreatedBetween(base.createdAt, later(2));
    expect(found.map((push) => [push.id, push.status])).toEqual([
      [base.id, "pushed"],
      ["push_01hzx0000000000000000000a1", "intent"],
      ["push_01hzx0000000000000000000a2", "failed"],
    ]);
    expect(await trail.pushesCreatedBetween(later(3), later(7))).toEqual([]);

    const ids = [
      ...bench.requests.map((request) => request.id),
      ...Array.from({ length: 90 }, (_, n) => `req_missing${n}`),
    ];
    const requests = await trail.requests(ids);
    expect(requests.map((request) => request.id).sort()).toEqual(
      bench.requests.map((request) => request.id).sort(),
    );
    for (const request of requests)
      expect(bench.requests.find((known) => known.id === request.id)).toMatchObject(request);
  });
});
