import { describe, expect, it } from "vitest";
import type { Audit } from "../../core/audit/index.ts";
import { MemoryAuditStore } from "../../core/audit/memory.ts";
import { type Deps, events } from "../../core/audit/read.ts";
import { matches } from "../../core/audit/store.ts";
import { type Actor, Identity } from "../../core/identity/index.ts";
import type { Config } from "../../core/policy/index.ts";
import { parseConfig } from "../../core/policy/yaml.ts";
import type { Info } from "../../core/request/schema.ts";
import {
  ALICE,
  ALICE_ROLE,
  auditWorld,
  FILTER_CASES,
  INSTANCE_A,
  KINDS,
  seqsOf,
} from "../helpers/audit-records.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";

const config: Config = parseConfig(DEMO_CONFIG_TEXT);
const actor = (email: string): Actor => {
  const found = Identity.fromDirectory(email, config);
  if (!found) throw new Error(`${email} is not in the demo directory`);
  return found;
};
const carol = actor("carol@example.com");
const alice = actor(ALICE);
const ALICES_REQUEST = "req_01hzx3k4m5n6p7q8r9s0t1v2a1";
const N = 47;

/** A memory store with N records; requests: only alice's one request exists (for the non-auditor rules). */
function seeded(options: { listReadBudget?: number } = {}) {
  const audit = new MemoryAuditStore(options);
  const world = auditWorld(N);
  audit.append(world.map((entry) => entry.input));
  const requests = {
    get: async (id: string) =>
      id === ALICES_REQUEST ? ({ id, requester: ALICE, ruleId: "dev-demo" } as Info) : undefined,
  };
  const deps = { config, audit, requests } as unknown as Deps;
  return { deps, audit, world };
}

/** Every page of `events(query)`, following cursors, with the page sizes seen. */
async function all(deps: Deps, query: Record<string, string>, who = carol) {
  const seqs: number[] = [];
  const sizes: number[] = [];
  let cursor: string | undefined;
  do {
    const page = await events(deps, who, { ...query, ...(cursor ? { cursor } : {}) });
    seqs.push(...page.items.map((item) => item.seq));
    sizes.push(page.items.length);
    cursor = page.nextCursor;
  } while (cursor && sizes.length < 200);
  return { seqs, sizes };
}

describe("GET /audit/events?user=&instance= (memory store)", () => {
  it.each(FILTER_CASES)("filters by %s across pages, in both orders", async (_, query, kinds) => {
    const { deps, world } = seeded();
    const expected = seqsOf(world, kinds);
    const asc = await all(deps, { ...query, order: "asc", limit: "3" });
    expect(asc.seqs).toEqual(expected);
    // Full pages until the last; no empty page handed out with a cursor.
    expect(asc.sizes.slice(0, -1).every((size) => size === 3)).toBe(true);
    expect((await all(deps, { ...query, limit: "4" })).seqs).toEqual([...expected].reverse());
  });

  it("combines user and instance with a time range", async () => {
    const { deps, world } = seeded();
    const from = world[12]?.input.at ?? "";
    const to = world[33]?.input.at ?? "";
    const { seqs } = await all(deps, {
      user: ALICE,
      instance: INSTANCE_A,
      from,
      to,
      order: "asc",
      limit: "2",
    });
    expect(seqs).toEqual(
      seqsOf(world, ["alice-created", "bob-approved", "expired"]).filter((seq) => seq >= 13 && seq <= 34),
    );
  });

  it("reads at most its budget per call, then returns what matched and a cursor to go on", async () => {
    const { deps, world } = seeded({ listReadBudget: 5 });
    // One in ten records is carol's: five read hold at most one.
    const carols = await all(deps, { user: "carol@example.com", order: "asc", limit: "50" });
    expect(carols.seqs).toEqual(seqsOf(world, ["imported-mallory"]));
    expect(Math.max(...carols.sizes)).toBeLessThanOrEqual(1);
    expect(carols.sizes).toHaveLength(Math.ceil(N / 5));
    // Nobody's records: empty pages with cursors, for the one reason that the budget was spent, then done.
    const nobody = await all(deps, { user: "nobody@example.com", limit: "50" });
    expect(nobody.seqs).toEqual([]);
    expect(nobody.sizes).toHaveLength(Math.ceil(N / 5));
    // Unfiltered reads are not budgeted: one full page.
    expect((await all(deps, { limit: "50" })).sizes).toEqual([N]);
  });

  it("resumes from its cursor when records are appended between pages", async () => {
    const { deps, audit, world } = seeded();
    const first = await events(deps, carol, { user: ALICE, order: "asc", limit: "4" });
    audit.append(auditWorld(10, Date.parse("2024-05-01T09:00:00Z")).map((entry) => entry.input));
    const rest = await all(deps, { user: ALICE, order: "asc", limit: "50", cursor: first.nextCursor ?? "" });
    const mine = [
      "alice-created",
      "bob-approved",
      "expired",
      "signer-tunnel",
      "alice-role",
      "bob-revoked",
    ] as const;
    expect([...first.items.map((item) => item.seq), ...rest.seqs]).toEqual([
      ...seqsOf(world, mine),
      ...seqsOf(auditWorld(10), mine, N),
    ]);
  });

  it.each<[string, Record<string, string>, string]>([
    ["a user that is not an email", { user: "alice" }, "input.invalid"],
    ["a user that is an ARN", { user: ALICE_ROLE }, "input.invalid"],
    ["an instance id that is not one", { instance: "i-NOPE" }, "input.invalid"],
    ["user with requestId", { user: ALICE, requestId: ALICES_REQUEST }, "audit.invalid_filter"],
    ["instance with requestId", { instance: INSTANCE_A, requestId: ALICES_REQUEST }, "audit.invalid_filter"],
    ["a cursor that is not base64 JSON", { user: ALICE, cursor: "%%%" }, "input.invalid_cursor"],
    [
      "a cursor of the time index without a time range",
      {
        user: ALICE,
        cursor: Buffer.from(JSON.stringify({ after: "2024-05-01T10:00:00.000Z#000000000001" })).toString(
          "base64url",
        ),
      },
      "input.invalid_cursor",
    ],
    [
      "a cursor outside the time range asked for",
      {
        user: ALICE,
        from: "2025-01-01T00:00:00Z",
        cursor: Buffer.from(JSON.stringify({ after: "2024-05-01T10:00:00.000Z#000000000001" })).toString(
          "base64url",
        ),
      },
      "input.invalid_cursor",
    ],
  ])("refuses %s as input (400)", async (_, query, code) => {
    const { deps } = seeded();
    await expect(events(deps, carol, query)).rejects.toMatchObject({ kind: "input", code });
  });

  it("keeps the rules for non-auditors: a request's history only, with requestId alone", async () => {
    const { deps } = seeded();
    await expect(events(deps, alice, { user: ALICE })).rejects.toMatchObject({
      kind: "forbidden",
      code: "audit.forbidden",
    });
    // Visibility first (a request they cannot see is not found), then the combination.
    await expect(
      events(deps, alice, { user: ALICE, requestId: "req_01hzx3k4m5n6p7q8r9s0t1v2zz" }),
    ).rejects.toMatchObject({ kind: "not_found" });
    await expect(events(deps, alice, { user: ALICE, requestId: ALICES_REQUEST })).rejects.toMatchObject({
      kind: "input",
      code: "audit.invalid_filter",
    });
    const history = await events(deps, alice, { requestId: ALICES_REQUEST, limit: "200" });
    expect(new Set(history.items.map((item) => item.subject))).toEqual(new Set([ALICES_REQUEST]));
  });
});

describe("the audit filter's definition (matches)", () => {
  const record = (overrides: Partial<Audit.Info>): Audit.Info => ({
    type: "trail.observed",
    at: "2024-05-01T10:00:00.000Z",
    actor: "system",
    subject: "instance:i-0a1b2c3d4e5f60718",
    data: {},
    seq: 1,
    prevHash: "0",
    hash: "1",
    ...overrides,
  });
  const user = { email: ALICE, principals: [ALICE_ROLE] };

  it.each<[string, Partial<Audit.Info>, boolean]>([
    ["the actor", { actor: ALICE }, true],
    ["data.requester", { data: { requester: ALICE } }, true],
    ["data.sourceIdentity", { data: { sourceIdentity: ALICE } }, true],
    ["data.principal (an IAM user's or role's own ARN)", { data: { principal: ALICE_ROLE } }, true],
    ["data.principalArn", { data: { principalArn: ALICE_ROLE } }, true],
    ["another person's request", { actor: "bob@example.com", data: { requester: "bob@example.com" } }, false],
    ["the email anywhere else in data", { data: { approvers: [ALICE], comment: ALICE } }, false],
    ["the principal as an email field", { data: { requester: ALICE_ROLE } }, false],
    ["a prefix of the email", { actor: "alice@example.co" }, false],
  ])("matches a person by %s: %s", (_, overrides, expected) => {
    expect(matches(record(overrides), { user })).toBe(expected);
  });

  it("matches an instance by data.instanceId only, exactly", () => {
    const instance = INSTANCE_A;
    expect(matches(record({ data: { instanceId: INSTANCE_A } }), { instance })).toBe(true);
    expect(matches(record({ data: { instanceId: `${INSTANCE_A}0` } }), { instance })).toBe(false);
    // The trail subject names the instance, but the filter reads the data field.
    expect(matches(record({ data: {} }), { instance })).toBe(false);
  });

  it("has every kind of the shared fixture matched by something", () => {
    expect(new Set(FILTER_CASES.flatMap(([, , kinds]) => kinds))).toEqual(
      new Set(KINDS.filter((kind) => kind !== "alert")),
    );
  });
});
