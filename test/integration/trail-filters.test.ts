import { beforeAll, describe, expect, inject, it } from "vitest";
import { documentClient } from "../../core/aws/clients.ts";
import { DynamoTrailStore } from "../../core/aws/dynamo/trail-store.ts";
import type { TrailStore } from "../../core/trail/store.ts";
import { LOCAL_AWS } from "../../local/dynamo.ts";
import { createTestBroker, snapshot, type TestBroker } from "../helpers/broker.ts";
import {
  ALICE,
  ALICE_ROLE,
  INSTANCE_A,
  INSTANCE_B,
  type Kind,
  MALLORY,
  world,
} from "../helpers/trail-observations.ts";

const CAROL = "carol@example.com";
const N = 130;

let broker: TestBroker;
let entries: ReturnType<typeof world>;

beforeAll(async () => {
  broker = await createTestBroker();
  entries = world(N);
  const trail = broker.deps.trail as TrailStore;
  // Out of order, as deliveries come: the index orders by event time.
  const result = await trail.record([...entries].reverse());
  expect(result.recorded).toHaveLength(N);
});

const idsOf = (kinds: Kind[], among = entries) =>
  among.filter((entry) => kinds.includes(entry.kind)).map((entry) => entry.observation.eventId);

/** Every page of `GET /audit/trail?…`, following cursors. */
async function pages(query: Record<string, string>) {
  const ids: string[] = [];
  const sizes: number[] = [];
  let cursor: string | undefined;
  do {
    const response = await broker.call(CAROL, "GET", "/audit/trail", {
      query: { ...query, ...(cursor ? { cursor } : {}) },
    });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    ids.push(...response.body.items.map((item: { eventId: string }) => item.eventId));
    sizes.push(response.body.items.length);
    cursor = response.body.nextCursor;
  } while (cursor && sizes.length < 100);
  return { ids, sizes };
}

describe("GET /audit/trail?user=&instance= (DynamoDB)", () => {
  it.each<[string, Record<string, string>, Kind[]]>([
    ["a person by email", { user: ALICE }, ["alice-push", "alice-tunnel", "alice-role"]],
    ["a principal ARN", { user: MALLORY }, ["mallory"]],
    ["her role's ARN alone", { user: ALICE_ROLE }, ["alice-role"]],
    ["an instance", { instance: INSTANCE_A }, ["alice-push", "mallory"]],
    ["the grant's instance of a tunnel", { instance: INSTANCE_B }, ["alice-tunnel", "alice-role"]],
    [
      "user, instance and classification",
      { user: ALICE, instance: INSTANCE_B, classification: "brokered" },
      ["alice-tunnel"],
    ],
  ])("filters by %s, in full pages across the table, oldest first", async (_, query, kinds) => {
    const { ids, sizes } = await pages({ ...query, limit: "7" });
    const expected = idsOf(kinds);
    expect(expected.length).toBeGreaterThan(7);
    expect(ids).toEqual(expected);
    // Every page full but the last, and the last not empty: no page is handed out empty with a cursor.
    expect(sizes.slice(0, -1).every((size) => size === 7)).toBe(true);
    expect(sizes.at(-1)).toBeGreaterThan(0);
  });

  it("combines the filters with a time range", async () => {
    const from = entries[40]?.observation.event.eventTime ?? "";
    const to = entries[89]?.observation.event.eventTime ?? "";
    const { ids } = await pages({ user: ALICE, instance: INSTANCE_A, from, to, limit: "4" });
    expect(ids).toEqual(idsOf(["alice-push"], entries.slice(40, 90)));
  });

  it("reads at most its budget per call, then returns what matched and a cursor to go on", async () => {
    const document = documentClient({ ...LOCAL_AWS, endpoint: inject("dynamoEndpoint") });
    const store = new DynamoTrailStore(broker.store, document, broker.table, { listReadBudget: 20 });
    const walk = async (filter: Parameters<TrailStore["list"]>[0]) => {
      const ids: string[] = [];
      const sizes: number[] = [];
      let cursor: string | undefined;
      do {
        const page = await store.list(filter, { limit: 50, cursor });
        ids.push(...page.items.map((item) => item.eventId));
        sizes.push(page.items.length);
        cursor = page.nextCursor;
      } while (cursor);
      return { ids, sizes };
    };
    // One in five matches: 20 entries read hold 4 matches, well short of the 50 asked for.
    const mallory = await walk({ user: { principals: [MALLORY] } });
    expect(mallory.ids).toEqual(idsOf(["mallory"]));
    expect(Math.max(...mallory.sizes)).toBeLessThanOrEqual(4);
    expect(mallory.sizes.length).toBe(Math.ceil(N / 20));
    // Nobody's events: empty pages with cursors, for the one reason that the budget was spent, then done.
    const nobody = await walk({ user: { email: "dave@example.com", principals: [] } });
    expect(nobody.ids).toEqual([]);
    expect(nobody.sizes.length).toBe(Math.ceil(N / 20));
  });

  it.each<[string, Record<string, string>, string]>([
    ["a user that is neither an email nor an ARN", { user: "mallory" }, "input.invalid"],
    ["an instance id that is not one", { instance: "i-NOPE" }, "input.invalid"],
    ["an unknown parameter", { principal: MALLORY }, "input.invalid"],
    ["a cursor that is not base64 JSON", { cursor: "%%%" }, "input.invalid_cursor"],
    [
      "a cursor of another index",
      { cursor: Buffer.from(JSON.stringify({ pk: "REQ#x", sk: "REQ" })).toString("base64url") },
      "input.invalid_cursor",
    ],
    [
      "a cursor with a foreign attribute",
      {
        cursor: Buffer.from(
          JSON.stringify({
            pk: "TRAIL#a",
            sk: "TRAIL",
            gsi4pk: "TRAIL",
            gsi4sk: "2024-05-01T10:00:00Z#a",
            x: "1",
          }),
        ).toString("base64url"),
      },
      "input.invalid_cursor",
    ],
    [
      "a cursor outside the time range asked for",
      {
        from: "2025-01-01T00:00:00Z",
        cursor: Buffer.from(
          JSON.stringify({ pk: "TRAIL#a", sk: "TRAIL", gsi4pk: "TRAIL", gsi4sk: "2024-05-01T10:00:00Z#a" }),
        ).toString("base64url"),
      },
      "input.invalid_cursor",
    ],
  ])("refuses %s with 400 and changes nothing", async (_, query, code) => {
    const before = await snapshot(broker);
    const response = await broker.call(CAROL, "GET", "/audit/trail", { query: { user: ALICE, ...query } });
    expect(response.status, JSON.stringify(response.body)).toBe(400);
    expect(response.body.error.code).toBe(code);
    expect(await snapshot(broker)).toEqual(before);
  });

  it("continues from a well-formed cursor it did not hand out, as from any position in the index", async () => {
    const cursor = Buffer.from(
      JSON.stringify({
        pk: "TRAIL#zzz",
        sk: "TRAIL",
        gsi4pk: "TRAIL",
        gsi4sk: `${entries[99]?.observation.event.eventTime}#zzz`,
      }),
    ).toString("base64url");
    const { ids } = await pages({ user: MALLORY, limit: "50", cursor });
    expect(ids).toEqual(idsOf(["mallory"], entries.slice(100)));
  });

  it("is for auditors only", async () => {
    expect((await broker.call(ALICE, "GET", "/audit/trail", { query: { user: ALICE } })).status).toBe(404);
  });
});
