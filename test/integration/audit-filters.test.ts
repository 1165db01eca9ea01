import { beforeAll, describe, expect, inject, it } from "vitest";
import type { Audit } from "../../core/audit/index.ts";
import { MemoryAuditStore } from "../../core/audit/memory.ts";
import type { AuditFilter, AuditStore } from "../../core/audit/store.ts";
import { documentClient } from "../../core/aws/clients.ts";
import { DynamoStore } from "../../core/aws/dynamo/store.ts";
import { LOCAL_AWS } from "../../local/dynamo.ts";
import {
  ALICE,
  ALICE_ROLE,
  auditWorld,
  BOB,
  CAROL,
  FILTER_CASES,
  INSTANCE_A,
  INSTANCE_B,
  seqsOf,
} from "../helpers/audit-records.ts";
import {
  createTestBroker,
  DEMO_INSTANCE,
  requestBody,
  snapshot,
  type TestBroker,
} from "../helpers/broker.ts";

const N = 130;
const STAGING = "i-0fedcba9876543210";
const key = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

let broker: TestBroker;
let world: ReturnType<typeof auditWorld>;
const memory = new MemoryAuditStore();

beforeAll(async () => {
  broker = await createTestBroker();
  world = auditWorld(N);
  const inputs = world.map((entry) => entry.input);
  // A transaction holds at most 100 items: the records go in as several.
  for (let start = 0; start < N; start += 40) await broker.store.append(inputs.slice(start, start + 40));
  memory.append(inputs);
  expect((await broker.store.head()).seq).toBe(N);
});

/** Every page of `GET /audit/events?…` as carol (an auditor), following cursors. */
async function pages(query: Record<string, string>) {
  const seqs: number[] = [];
  const sizes: number[] = [];
  let cursor: string | undefined;
  do {
    const response = await broker.call(CAROL, "GET", "/audit/events", {
      query: { ...query, ...(cursor ? { cursor } : {}) },
    });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    seqs.push(...response.body.items.map((item: Audit.Info) => item.seq));
    sizes.push(response.body.items.length);
    cursor = response.body.nextCursor;
  } while (cursor && sizes.length < 200);
  return { seqs, sizes };
}

/** Every page of a store's list, following cursors. */
async function walk(store: AuditStore, filter: AuditFilter, limit: number) {
  const seqs: number[] = [];
  const sizes: number[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.list(filter, { limit, cursor });
    seqs.push(...page.items.map((item) => item.seq));
    sizes.push(page.items.length);
    cursor = page.nextCursor;
  } while (cursor && sizes.length < 200);
  return { seqs, sizes };
}

describe("GET /audit/events?user=&instance= (DynamoDB)", () => {
  it.each(FILTER_CASES)("filters by %s, in full pages, in both orders", async (_, query, kinds) => {
    const expected = seqsOf(world, kinds);
    const asc = await pages({ ...query, order: "asc", limit: "7" });
    expect(asc.seqs).toEqual(expected);
    // Every page full but the last: no page is handed out short when the budget was not reached.
    expect(asc.sizes.slice(0, -1).every((size) => size === 7)).toBe(true);
    expect((await pages({ ...query, limit: "9" })).seqs).toEqual([...expected].reverse());
  });

  it("combines user and instance with a time range, by time", async () => {
    const from = world[40]?.input.at ?? "";
    const to = world[89]?.input.at ?? "";
    const { seqs } = await pages({ user: ALICE, instance: INSTANCE_B, from, to, order: "asc", limit: "4" });
    expect(seqs).toEqual(
      seqsOf(world, ["signer-tunnel", "alice-role", "bob-revoked"]).filter((seq) => seq >= 41 && seq <= 90),
    );
  });

  it("agrees with the memory adapter on every filter, order, time range and a small read budget", async () => {
    const document = documentClient({ ...LOCAL_AWS, endpoint: inject("dynamoEndpoint") });
    const dynamo = new DynamoStore(document, broker.table, { listReadBudget: 11 });
    const budgeted = new MemoryAuditStore({ listReadBudget: 11 });
    budgeted.append(world.map((entry) => entry.input));
    const users = [
      { email: ALICE, principals: [ALICE_ROLE] },
      { email: BOB, principals: [] },
      { email: "nobody@example.com", principals: [] },
    ];
    const filters: AuditFilter[] = [
      ...users.map((user) => ({ user })),
      { instance: INSTANCE_A },
      { user: users[0], instance: INSTANCE_B },
      { user: users[0], from: world[25]?.input.at, to: world[104]?.input.at },
      { instance: INSTANCE_A, from: world[7]?.input.at },
      { subject: "req_01hzx3k4m5n6p7q8r9s0t1v2a1", user: users[1] },
      { subject: "req_01hzx3k4m5n6p7q8r9s0t1v2a1", to: world[60]?.input.at },
    ];
    for (const filter of filters)
      for (const order of ["asc", "desc"] as const) {
        const expected = await walk(budgeted, { ...filter, order }, 6);
        const found = await walk(dynamo, { ...filter, order }, 6);
        const label = JSON.stringify({ ...filter, order });
        expect(found.seqs, label).toEqual(expected.seqs);
        expect(expected.seqs, label).toEqual((await walk(memory, { ...filter, order }, 50)).seqs);
        // Eleven entries read at most per call, so at most six (the page) of them, often fewer.
        expect(Math.max(...found.sizes), label).toBeLessThanOrEqual(6);
      }
  });

  it("reads at most its budget per call, then returns what matched and a cursor to go on", async () => {
    const document = documentClient({ ...LOCAL_AWS, endpoint: inject("dynamoEndpoint") });
    const store = new DynamoStore(document, broker.table, { listReadBudget: 20 });
    // One in ten is carol's: 20 entries read hold 2 matches, well short of the 50 asked for.
    const carols = await walk(store, { user: { email: CAROL, principals: [] }, order: "asc" }, 50);
    expect(carols.seqs).toEqual(seqsOf(world, ["imported-mallory"]));
    expect(Math.max(...carols.sizes)).toBeLessThanOrEqual(2);
    expect(carols.sizes.length).toBe(Math.ceil(N / 20));
    // Nobody's records: empty pages with cursors, for the one reason that the budget was spent, then done.
    const nobody = await walk(store, { user: { email: "nobody@example.com", principals: [] } }, 50);
    expect(nobody.seqs).toEqual([]);
    expect(nobody.sizes.length).toBe(Math.ceil(N / 20));
    // Unfiltered, the budget does not apply: one page of 130 asked for is one page.
    expect((await walk(store, {}, 200)).sizes).toEqual([N]);
  });

  const cursors: [string, unknown][] = [
    ["the table's order, used with a time range", { pk: "AUDIT", sk: "SEQ#000000000005" }],
    [
      "a record's key in the time index, outside the time range asked for",
      {
        pk: "AUDIT",
        sk: "SEQ#000000000001",
        gsi4pk: "AUDIT",
        gsi4sk: "2024-05-01T10:00:00.000Z#000000000001",
      },
    ],
    [
      "the time index with another item kind",
      { pk: "REQ#req_x", sk: "REQ", gsi4pk: "REQ", gsi4sk: "2025-06-01T10:00:00.000Z#req_x" },
    ],
    [
      "a foreign attribute",
      {
        pk: "AUDIT",
        sk: "SEQ#000000000001",
        gsi4pk: "AUDIT",
        gsi4sk: "2025-06-01T10:00:00.000Z#000000000001",
        x: "1",
      },
    ],
    [
      "a sort key that is not its sequence",
      {
        pk: "AUDIT",
        sk: "SEQ#000000000001",
        gsi4pk: "AUDIT",
        gsi4sk: "2025-06-01T10:00:00.000Z#000000000002",
      },
    ],
    ["a number where a key string goes", { pk: "AUDIT", sk: 1, gsi4pk: "AUDIT", gsi4sk: "2025-06-01#1" }],
    ["a requests-list cursor", { i: "gsi4", k: { pk: "REQ#req_x", sk: "REQ" } }],
  ];

  it.each<[string, Record<string, string>, string]>([
    ["a user that is not an email", { user: "alice" }, "input.invalid"],
    ["a user that is an ARN", { user: ALICE_ROLE }, "input.invalid"],
    ["an instance id that is not one", { instance: "i-NOPE" }, "input.invalid"],
    ["an empty instance", { instance: "" }, "input.invalid"],
    [
      "user with requestId",
      { user: ALICE, requestId: "req_01hzx3k4m5n6p7q8r9s0t1v2a1" },
      "audit.invalid_filter",
    ],
    ["a cursor that is not base64 JSON", { user: ALICE, cursor: "%%%" }, "input.invalid_cursor"],
    ...cursors.map(([name, value]): [string, Record<string, string>, string] => [
      `a cursor of ${name}`,
      { instance: INSTANCE_A, from: "2025-01-01T00:00:00Z", cursor: key(value) },
      "input.invalid_cursor",
    ]),
    [
      "a cursor of another request's history",
      {
        requestId: "req_01hzx3k4m5n6p7q8r9s0t1v2a1",
        cursor: key({
          pk: "AUDIT",
          sk: "SEQ#000000000003",
          gsi1pk: "SUBJ#req_other",
          gsi1sk: "000000000003",
        }),
      },
      "input.invalid_cursor",
    ],
  ])("refuses %s with 400 and changes nothing", async (_, query, code) => {
    const before = await snapshot(broker);
    const response = await broker.call(CAROL, "GET", "/audit/events", { query });
    expect(response.status, JSON.stringify(response.body)).toBe(400);
    expect(response.body.error.code).toBe(code);
    expect(await snapshot(broker)).toEqual(before);
  });

  it("continues from a well-formed cursor it did not hand out, as from any position in the order", async () => {
    const cursor = key({ pk: "AUDIT", sk: "SEQ#000000000100" });
    const { seqs } = await pages({ user: BOB, order: "asc", limit: "50", cursor });
    expect(seqs).toEqual(
      seqsOf(world, ["bob-approved", "old-approval", "bob-revoked"]).filter((s) => s > 100),
    );
  });
});

describe("a grant's lifecycle through the API, found by person and instance", () => {
  let fresh: TestBroker;
  let requestId: string;

  beforeAll(async () => {
    fresh = await createTestBroker();
    const created = await fresh.call(ALICE, "POST", "/requests", { body: requestBody() });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    requestId = created.body.id;
    const approved = await fresh.call(BOB, "POST", `/requests/${requestId}/approve`);
    expect(approved.body.status).toBe("active");
    const revoked = await fresh.call(BOB, "POST", `/grants/${created.body.grantId}/revoke`, {
      body: { reason: "done" },
    });
    expect(revoked.status, JSON.stringify(revoked.body)).toBe(200);
    // Someone else's request on another instance: found by neither filter.
    const other = await fresh.call("dave@example.com", "POST", "/requests", {
      body: requestBody({ instanceId: STAGING, osUser: "ubuntu", ticket: "INC-1" }),
    });
    expect(other.status, JSON.stringify(other.body)).toBe(201);
  });

  const types = async (query: Record<string, string>) => {
    const response = await fresh.call(CAROL, "GET", "/audit/events", { query: { ...query, order: "asc" } });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    return response.body.items.map((item: Audit.Info) => `${item.type} ${item.actor}`);
  };

  it("names the requester and instance in every record, so the requester finds what others did to her grant", async () => {
    const history = [
      `request.created ${ALICE}`,
      `request.approval_recorded ${BOB}`,
      `request.approved ${BOB}`,
      `grant.activated ${BOB}`,
      `grant.revoked ${BOB}`,
    ];
    expect(await types({ user: ALICE })).toEqual(history);
    expect(await types({ instance: DEMO_INSTANCE })).toEqual(history);
    expect(await types({ user: BOB, instance: DEMO_INSTANCE })).toEqual(history.slice(1));
    expect(await types({ instance: STAGING })).toEqual(["request.created dave@example.com"]);
  });

  it("keeps the rules for non-auditors: their request's history by requestId alone", async () => {
    const forbidden = await fresh.call(ALICE, "GET", "/audit/events", { query: { user: ALICE } });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.error.code).toBe("audit.forbidden");
    const combined = await fresh.call(ALICE, "GET", "/audit/events", { query: { requestId, user: ALICE } });
    expect(combined.status).toBe(400);
    expect(combined.body.error.code).toBe("audit.invalid_filter");
    const stranger = await fresh.call("mallory@example.com", "GET", "/audit/events", {
      query: { requestId, user: ALICE },
    });
    expect(stranger.status).toBe(404);
    const own = await fresh.call(ALICE, "GET", "/audit/events", { query: { requestId } });
    expect(own.status).toBe(200);
    expect(own.body.items).toHaveLength(5);
  });
});
