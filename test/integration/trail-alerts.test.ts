import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import * as Trail from "../../core/trail/index.ts";
import type { TrailStore } from "../../core/trail/store.ts";
import { createTestBroker } from "../helpers/broker.ts";

const FIXTURES = new URL("../fixtures/cloudtrail/", import.meta.url);
const fixture = (name: string) => JSON.parse(readFileSync(new URL(name, FIXTURES), "utf8"));

describe("pending alerts in DynamoDB", () => {
  // The in-memory store hid this: DynamoDB rejects an empty string in a key condition, so the sweeper's
  // alert pass failed on every tick of the local runtime.
  it("lists unbrokered events awaiting an alert, and nothing when there are none", async () => {
    const broker = await createTestBroker();
    const trail = broker.deps.trail as TrailStore;
    expect(await trail.pendingAlerts(10)).toEqual([]);
    await Trail.ingest(broker.deps as Trail.Deps, [fixture("push-unbrokered.json")], { source: "import" });
    const pending = await trail.pendingAlerts(10);
    expect(pending.map((observation) => observation.verdict.classification)).toEqual(["unbrokered"]);
  });
});
