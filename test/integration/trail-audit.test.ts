import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DeleteItemCommand, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { anchorHead } from "../../core/audit/anchor.ts";
import * as Audit from "../../core/audit/index.ts";
import * as Trail from "../../core/trail/index.ts";
import { FileAnchorStore } from "../../local/anchor-file.ts";
import { createTestBroker, type TestBroker } from "../helpers/broker.ts";

const FIXTURES = new URL("../fixtures/cloudtrail/", import.meta.url);
const fixture = (name: string) => JSON.parse(readFileSync(new URL(name, FIXTURES), "utf8"));
const key = (seq: number) => ({ pk: { S: "AUDIT" }, sk: { S: `SEQ#${String(seq).padStart(12, "0")}` } });
const dir = mkdtempSync(join(tmpdir(), "trail-audit-"));

let broker: TestBroker;
let anchors: FileAnchorStore;

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function verify() {
  return (await broker.call("carol@example.com", "GET", "/audit/verify")).body;
}

async function read(seq: number): Promise<Audit.Info> {
  const { Item } = await broker.raw.send(new GetItemCommand({ TableName: broker.table, Key: key(seq) }));
  return unmarshall(Item ?? {}) as Audit.Info;
}

async function write(record: Audit.Info) {
  await broker.raw.send(
    new PutItemCommand({
      TableName: broker.table,
      Item: { ...marshall(record, { removeUndefinedValues: true }), ...key(record.seq) },
    }),
  );
}

/** Five trail.observed records (seq 1-5), anchored. */
beforeEach(async () => {
  broker = await createTestBroker();
  anchors = new FileAnchorStore(join(mkdtempSync(join(dir, "data-")), "audit-anchors.jsonl"));
  broker.deps.anchors = anchors;
  const names = [
    "push-unbrokered.json",
    "push-denied.json",
    "tunnel-no-duration-federated.json",
    "serial-console-root.json",
    "unparsed-no-time.json",
  ];
  for (const name of names)
    await Trail.ingest(broker.deps as Trail.Deps, [fixture(name)], { source: "import" });
  expect(await anchorHead({ audit: broker.store, anchors })).toMatchObject({ seq: 5 });
  expect(await verify()).toMatchObject({ ok: true, records: 5, anchor: { ok: true, seq: 5 } });
});

describe("tampering with observed trail events", () => {
  it("detects an edited classification", async () => {
    const record = await read(2);
    expect(record.type).toBe("trail.observed");
    await write({ ...record, data: { ...record.data, classification: "brokered" } });
    expect(await verify()).toMatchObject({
      ok: false,
      brokenAt: { seq: 2, reason: expect.stringContaining("hash") },
    });
  });

  it("detects a deleted event record", async () => {
    await broker.raw.send(new DeleteItemCommand({ TableName: broker.table, Key: key(3) }));
    expect(await verify()).toMatchObject({
      ok: false,
      brokenAt: { seq: 3, reason: expect.stringContaining("missing") },
    });
  });

  it("detects reordered event records", async () => {
    const [two, four] = [await read(2), await read(4)];
    await write({ ...four, seq: 2 });
    await write({ ...two, seq: 4 });
    expect(await verify()).toMatchObject({ ok: false, brokenAt: { seq: 2 } });
  });
});

describe("the anchor outside the table", () => {
  it("detects a rollback that the chain alone cannot see (head and records restored to an earlier point)", async () => {
    const three = await read(3);
    for (const seq of [4, 5])
      await broker.raw.send(new DeleteItemCommand({ TableName: broker.table, Key: key(seq) }));
    await broker.raw.send(
      new PutItemCommand({
        TableName: broker.table,
        Item: { pk: { S: "AUDIT" }, sk: { S: "HEAD" }, seq: { N: "3" }, hash: { S: three.hash } },
      }),
    );
    // Self-consistent: the chain verifies against its (rolled back) head…
    expect(await Audit.verify(broker.store.walk(), await broker.store.head())).toMatchObject({ ok: true });
    // …but not against the anchor, which also refuses to move back.
    expect(await verify()).toMatchObject({
      ok: false,
      brokenAt: { seq: 4, reason: expect.stringMatching(/anchored at 5 .* rolled back/) },
      anchor: { ok: false, seq: 5 },
    });
    expect(await anchorHead({ audit: broker.store, anchors })).toBeUndefined();
    expect((await anchors.latest())?.seq).toBe(5);
  });

  it("detects a chain rewritten with recomputed hashes", async () => {
    let previous = await read(2);
    for (const seq of [3, 4, 5]) {
      const record = await read(seq);
      const edited = {
        ...record,
        prevHash: previous.hash,
        data: seq === 3 ? { ...record.data, reasons: ["nothing to see"] } : record.data,
      };
      edited.hash = Audit.hashOf(edited);
      await write(edited);
      previous = edited;
    }
    await broker.raw.send(
      new PutItemCommand({
        TableName: broker.table,
        Item: { pk: { S: "AUDIT" }, sk: { S: "HEAD" }, seq: { N: "5" }, hash: { S: previous.hash } },
      }),
    );
    expect(await Audit.verify(broker.store.walk(), await broker.store.head())).toMatchObject({ ok: true });
    expect(await verify()).toMatchObject({
      ok: false,
      brokenAt: { seq: 5, reason: expect.stringContaining("differs from its anchor") },
    });
  });

  it("keeps anchoring as the chain grows, one line per new head", async () => {
    await Trail.ingest(broker.deps as Trail.Deps, [fixture("push-aws-service-govcloud.json")], {
      source: "import",
    });
    expect(await anchorHead({ audit: broker.store, anchors })).toMatchObject({ seq: 6 });
    expect(await anchorHead({ audit: broker.store, anchors })).toBeUndefined();
    const lines = readFileSync(anchors.location, "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line).seq);
    expect(lines).toEqual([5, 6]);
    expect(await verify()).toMatchObject({ ok: true, anchor: { ok: true, seq: 6 } });
  });
});
