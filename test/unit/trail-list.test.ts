import { describe, expect, it } from "vitest";
import * as Identity from "../../core/identity/index.ts";
import type { Config } from "../../core/policy/index.ts";
import { parseConfig } from "../../core/policy/yaml.ts";
import { MemoryTrailStore } from "../../core/trail/memory.ts";
import { list } from "../../core/trail/read.ts";
import type { Observation } from "../../core/trail/schema.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";
import {
  ALICE,
  ALICE_ROLE,
  INSTANCE_A,
  INSTANCE_B,
  type Kind,
  MALLORY,
  world,
} from "../helpers/trail-observations.ts";

const config: Config = parseConfig(DEMO_CONFIG_TEXT);
const carol = Identity.fromDirectory("carol@example.com", config);

async function seeded(n: number) {
  const trail = new MemoryTrailStore();
  const entries = world(n);
  // Recorded out of order: the list orders by event time, not by arrival.
  await trail.record([...entries].reverse());
  return { deps: { config, trail }, entries };
}

/** Every page of `query`, following cursors, with the page sizes seen. */
async function all(deps: Parameters<typeof list>[0], query: Record<string, string>) {
  if (!carol) throw new Error("no carol");
  const items: Observation[] = [];
  const sizes: number[] = [];
  let cursor: string | undefined;
  do {
    const page = await list(deps, carol, { ...query, ...(cursor ? { cursor } : {}) });
    items.push(...page.items);
    sizes.push(page.items.length);
    cursor = page.nextCursor;
  } while (cursor);
  return { ids: items.map((item) => item.eventId), sizes };
}

const idsOf = (entries: { kind: Kind; observation: Observation }[], kinds: Kind[]) =>
  entries.filter((entry) => kinds.includes(entry.kind)).map((entry) => entry.observation.eventId);

describe("GET /audit/trail's user and instance filters (memory store)", () => {
  it.each<[string, Record<string, string>, Kind[]]>([
    // Her grants (the verdict's requester), her SourceIdentity, her directory AWS principal.
    ["a person by email", { user: "Alice@Example.com" }, ["alice-push", "alice-tunnel", "alice-role"]],
    ["a principal ARN", { user: MALLORY }, ["mallory"]],
    ["her role's ARN alone", { user: ALICE_ROLE }, ["alice-role"]],
    // The event's instance, or the grant's for a tunnel (which names none).
    ["an instance", { instance: INSTANCE_A }, ["alice-push", "mallory"]],
    ["another instance", { instance: INSTANCE_B }, ["alice-tunnel", "alice-role"]],
    ["user and instance", { user: ALICE, instance: INSTANCE_B }, ["alice-tunnel", "alice-role"]],
    ["user and classification", { user: ALICE, classification: "unbrokered" }, ["alice-role"]],
    ["nobody's events", { user: "dave@example.com" }, []],
  ])("filters by %s across pages, in event time order", async (_, query, kinds) => {
    const { deps, entries } = await seeded(23);
    const { ids, sizes } = await all(deps, { ...query, limit: "2" });
    expect(ids).toEqual(idsOf(entries, kinds));
    // Full pages until the last; no empty page handed out with a cursor.
    expect(sizes.slice(0, -1).every((size) => size === 2)).toBe(true);
    if (ids.length > 0) expect(sizes.at(-1)).toBeGreaterThan(0);
  });

  it("keeps its place when events are recorded between pages", async () => {
    const { deps, entries } = await seeded(10);
    if (!carol) throw new Error("no carol");
    const first = await list(deps, carol, { user: ALICE, limit: "2" });
    const [early] = world(1, Date.parse("2024-05-01T09:00:00Z"), "early");
    if (early) await deps.trail.record([{ observation: early.observation, audit: early.audit }]);
    const rest = await all(deps, { user: ALICE, limit: "50", cursor: first.nextCursor ?? "" });
    expect([...first.items.map((item) => item.eventId), ...rest.ids]).toEqual(
      idsOf(entries, ["alice-push", "alice-tunnel", "alice-role"]),
    );
  });

  it.each([
    ["a user that is neither email nor ARN", { user: "mallory" }],
    ["an ARN of something else", { user: "arn:aws:s3:::bucket" }],
    ["an instance that is not one", { instance: "i-xyz" }],
    ["an unknown parameter", { principal: MALLORY }],
    ["a tampered cursor", { cursor: "bm90LWEtY3Vyc29y" }],
    ["a cursor that is not base64 JSON", { cursor: "%%%" }],
  ])("refuses %s (400)", async (_, query) => {
    const { deps } = await seeded(3);
    if (!carol) throw new Error("no carol");
    await expect(list(deps, carol, query)).rejects.toMatchObject({ kind: "input" });
  });
});
