import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NotFoundError } from "../../core/error.ts";
import { parseConfig } from "../../core/policy/yaml.ts";
import * as Trail from "../../core/trail/index.ts";
import { MemoryTrailStore } from "../../core/trail/memory.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";
import { rng } from "../helpers/trail-corpus.ts";
import { eventFor, world } from "../helpers/trail-world.ts";

const dir = mkdtempSync(join(tmpdir(), "trail-pipeline-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A plain log file with `count` EC2 Instance Connect records (one batch) and a few others. */
function logFile(name: string, count: number): { path: string; bytes: number } {
  const random = rng(name.length * 7 + count);
  const bench = world(4);
  const records = Array.from({ length: count }, (_, n) => eventFor(bench, n, random));
  const text = `{"Records":[${records.join(",")}]}`;
  const path = join(dir, name);
  writeFileSync(path, text);
  return { path, bytes: text.length };
}

describe("importing files through a bounded pipeline", () => {
  it("reads the next file while earlier batches are written, at most IN_FLIGHT at once, and reports in order", async () => {
    const files = Array.from({ length: 8 }, (_, n) => logFile(`pipe-${n}.json`, 3));
    let inFlight = 0;
    let most = 0;
    let calls = 0;
    const sink: Trail.Sink = async (records) => {
      calls++;
      inFlight++;
      most = Math.max(most, inFlight);
      // Earlier batches take longer, so later files finish first unless reports wait their turn.
      await new Promise((resolve) => setTimeout(resolve, 60 - calls * 5));
      inFlight--;
      return {
        received: records.length,
        skipped: 0,
        recorded: records.length,
        duplicates: 0,
        classifications: {},
      };
    };
    const reported: string[] = [];
    const summary = await Trail.importFiles(files, sink, { onFile: (report) => reported.push(report.path) });
    expect(calls).toBe(8);
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(4);
    expect(reported).toEqual(files.map((file) => file.path));
    expect(summary.result).toMatchObject({ received: 24, recorded: 24 });
    expect(summary.files.map((file) => file.result.recorded)).toEqual(Array(8).fill(3));
  });

  it("stops reading at a failed batch and rethrows its error once the batches in flight settle", async () => {
    const files = Array.from({ length: 12 }, (_, n) => logFile(`fail-${n}.json`, 2));
    let calls = 0;
    let settled = 0;
    const sink: Trail.Sink = async (records) => {
      const call = ++calls;
      await new Promise((resolve) => setTimeout(resolve, 20));
      settled++;
      if (call === 2) throw new Error("the store is gone");
      return {
        received: records.length,
        skipped: 0,
        recorded: records.length,
        duplicates: 0,
        classifications: {},
      };
    };
    await expect(Trail.importFiles(files, sink)).rejects.toThrow("the store is gone");
    expect(calls).toBeLessThan(12);
    expect(settled).toBe(calls);
  });

  it("imports S3 objects through the same pipeline: the next object is read while the last one is written", async () => {
    const bench = world(4);
    const random = rng(11);
    const objectText = (count: number) =>
      Buffer.from(
        `{"Records":[${Array.from({ length: count }, (_, n) => eventFor(bench, n, random)).join(",")}]}`,
      );
    const store = new MemoryTrailStore();
    const events: string[] = [];
    const record = store.record.bind(store);
    store.record = async (entries) => {
      events.push("write started");
      await new Promise((resolve) => setTimeout(resolve, 50));
      events.push("write done");
      return record(entries);
    };
    const deps = { config: parseConfig(DEMO_CONFIG_TEXT), trail: store };
    const bodies = new Map([
      ["a.json", objectText(3)],
      ["b.json", objectText(2)],
    ]);
    const reports = await Trail.importObjects(
      deps,
      [
        { bucket: "trail", key: "a.json" },
        { bucket: "trail", key: "gone.json" },
        { bucket: "trail", key: "b.json" },
      ],
      async (object) => {
        events.push(`open ${object.key}`);
        const body = bodies.get(object.key);
        if (!body) throw new NotFoundError("s3.not_found", `${object.key} does not exist`);
        return (async function* () {
          yield body;
        })();
      },
    );
    expect(reports).toEqual([
      expect.objectContaining({
        key: "a.json",
        records: 3,
        result: expect.objectContaining({ recorded: 3 }),
      }),
      expect.objectContaining({ key: "gone.json", records: 0, error: "gone.json does not exist" }),
      expect.objectContaining({
        key: "b.json",
        records: 2,
        result: expect.objectContaining({ recorded: 2 }),
      }),
    ]);
    // b.json was opened while a.json's batch was still being written.
    expect(events.indexOf("open b.json")).toBeLessThan(events.indexOf("write done"));
    expect(store.observations.size).toBe(5);

    // Anything but a missing object (throttling, access denied) fails the import, so that the event is retried.
    await expect(
      Trail.importObjects(deps, [{ bucket: "trail", key: "a.json" }], async () => {
        throw new Error("SlowDown");
      }),
    ).rejects.toThrow("SlowDown");
  });
});
