import { describe, expect, it } from "vitest";
import * as Audit from "../../core/audit/index.ts";

const input = (n: number): Audit.Input => ({
  type: "request.created",
  at: new Date(Date.UTC(2026, 10, 21, 10, 0, n)).toISOString(),
  actor: "alice@example.com",
  subject: `req_${n}`,
  data: { n, nested: { b: 1, a: [1, 2] }, skipped: undefined },
});

async function* iterate(records: Audit.Info[]) {
  yield* records;
}

const chain = Audit.link(Audit.GENESIS, [input(1), input(2), input(3), input(4)]);
const head = { seq: 4, hash: chain[3]?.hash ?? "" };

describe("hash chain", () => {
  it("links each record to the previous one's hash", () => {
    expect(chain[0]?.prevHash).toBe(Audit.GENESIS.hash);
    expect(chain[2]?.prevHash).toBe(chain[1]?.hash);
    expect(chain.map((record) => record.seq)).toEqual([1, 2, 3, 4]);
  });

  it("hashes canonical JSON, so key order in storage does not matter", () => {
    const record = chain[0] as Audit.Info;
    const reordered = { ...record, data: { nested: { a: [1, 2], b: 1 }, n: 1 } };
    expect(Audit.hashOf(reordered)).toBe(record.hash);
    expect(record.data).not.toHaveProperty("skipped");
  });

  it("verifies an intact chain", async () => {
    expect(await Audit.verify(iterate(chain), head)).toEqual({ ok: true, records: 4, head });
  });

  it.each<[string, (records: Audit.Info[]) => Audit.Info[], number]>([
    ["an edited field", (r) => r.map((x) => (x.seq === 2 ? { ...x, actor: "mallory" } : x)), 2],
    ["edited data", (r) => r.map((x) => (x.seq === 3 ? { ...x, data: { n: 99 } } : x)), 3],
    ["a removed record", (r) => r.filter((x) => x.seq !== 2), 2],
    ["swapped records", (r) => [r[0], r[2], r[1], r[3]] as Audit.Info[], 2],
    ["a truncated tail", (r) => r.slice(0, 3), 4],
    [
      "a rewritten record with a recomputed hash",
      (r) => r.map((x) => (x.seq === 2 ? rehash({ ...x, actor: "m" }) : x)),
      3,
    ],
  ])("reports the first broken link after %s", async (_name, tamper, brokenSeq) => {
    const result = await Audit.verify(iterate(tamper(chain)), head);
    expect(result).toMatchObject({ ok: false, brokenAt: { seq: brokenSeq } });
  });
});

function rehash(record: Audit.Info): Audit.Info {
  return { ...record, hash: Audit.hashOf(record) };
}
