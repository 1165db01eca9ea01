import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { beforeEach, describe, expect, it } from "vitest";
import { createTestBroker, requestBody, type TestBroker } from "../helpers/broker.ts";

let broker: TestBroker;

const key = (seq: number) => ({ pk: { S: "AUDIT" }, sk: { S: `SEQ#${String(seq).padStart(12, "0")}` } });

async function verify() {
  return (await broker.call("carol@example.com", "GET", "/audit/verify")).body;
}

/** Six records: create + approve (3 records) for one request, create + cancel for another. */
beforeEach(async () => {
  broker = await createTestBroker();
  const first = await broker.call("alice@example.com", "POST", "/requests", { body: requestBody() });
  await broker.call("bob@example.com", "POST", `/requests/${first.body.id}/approve`);
  const second = await broker.call("alice@example.com", "POST", "/requests", { body: requestBody() });
  await broker.call("alice@example.com", "POST", `/requests/${second.body.id}/cancel`);
  expect(await verify()).toMatchObject({ ok: true, records: 6, head: { seq: 6 } });
});

describe("GET /audit/verify finds the first broken link", () => {
  it("detects an edited record", async () => {
    await broker.raw.send(
      new UpdateItemCommand({
        TableName: broker.table,
        Key: key(3),
        UpdateExpression: "SET actor = :someone",
        ExpressionAttributeValues: { ":someone": { S: "dave@example.com" } },
      }),
    );
    expect(await verify()).toMatchObject({
      ok: false,
      brokenAt: { seq: 3, reason: expect.stringContaining("hash") },
    });
  });

  it("detects an edited record whose hash was recomputed by the editor", async () => {
    const { Audit } = await import("../../core/audit/index.ts");
    const { Item } = await broker.raw.send(new GetItemCommand({ TableName: broker.table, Key: key(2) }));
    const { unmarshall, marshall } = await import("@aws-sdk/util-dynamodb");
    const record = unmarshall(Item ?? {}) as import("../../core/audit/index.ts").Audit.Info;
    const edited = { ...record, actor: "mallory@example.com" };
    edited.hash = Audit.hashOf(edited);
    await broker.raw.send(new PutItemCommand({ TableName: broker.table, Item: marshall(edited) }));
    // the rewritten record is self-consistent, so the break shows at the next link
    expect(await verify()).toMatchObject({ ok: false, brokenAt: { seq: 3 } });
  });

  it("detects a deleted record in the middle", async () => {
    await broker.raw.send(new DeleteItemCommand({ TableName: broker.table, Key: key(4) }));
    expect(await verify()).toMatchObject({
      ok: false,
      brokenAt: { seq: 4, reason: expect.stringContaining("missing") },
    });
  });

  it("detects deleted records at the end", async () => {
    await broker.raw.send(new DeleteItemCommand({ TableName: broker.table, Key: key(6) }));
    expect(await verify()).toMatchObject({ ok: false, brokenAt: { seq: 6 } });
  });

  it("detects reordered records", async () => {
    const { Item: two } = await broker.raw.send(new GetItemCommand({ TableName: broker.table, Key: key(2) }));
    const { Item: three } = await broker.raw.send(
      new GetItemCommand({ TableName: broker.table, Key: key(3) }),
    );
    // swap the contents of 2 and 3 but keep each one's sequence number and key
    await broker.raw.send(
      new PutItemCommand({ TableName: broker.table, Item: { ...three, ...key(2), seq: { N: "2" } } }),
    );
    await broker.raw.send(
      new PutItemCommand({ TableName: broker.table, Item: { ...two, ...key(3), seq: { N: "3" } } }),
    );
    expect(await verify()).toMatchObject({ ok: false, brokenAt: { seq: 2 } });
  });
});
