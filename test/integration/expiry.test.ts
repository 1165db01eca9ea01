import { beforeEach, describe, expect, it } from "vitest";
import type { Grant } from "../../core/grant/index.ts";
import * as Request from "../../core/request/index.ts";
import { createTestBroker, requestBody, type TestBroker } from "../helpers/broker.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";

const ALICE = "alice@example.com";
const BOB = "bob@example.com";

/** A Scheduler that records what the broker asked of it (EventBridge's adapter is unit-tested on its own). */
function recordingScheduler() {
  const calls: string[] = [];
  const scheduler: Grant.Scheduler = {
    upsert: async (grantId, at) => {
      calls.push(`upsert ${grantId} ${at.toISOString()}`);
    },
    remove: async (grantId) => {
      calls.push(`remove ${grantId}`);
    },
  };
  return { calls, scheduler };
}

let broker: TestBroker;
let calls: string[];

beforeEach(async () => {
  const recording = recordingScheduler();
  calls = recording.calls;
  broker = await createTestBroker(DEMO_CONFIG_TEXT, { scheduler: recording.scheduler });
});

async function active(overrides: Record<string, unknown> = {}) {
  const created = await broker.call(ALICE, "POST", "/requests", { body: requestBody(overrides) });
  const approved = await broker.call(BOB, "POST", `/requests/${created.body.id}/approve`);
  expect(approved.body.status).toBe("active");
  return approved.body as Request.Info;
}

describe("per-grant expiry schedules", () => {
  it("creates one when the grant becomes active, moves it on extension, deletes it on revoke", async () => {
    const grant = await active();
    expect(calls).toEqual([`upsert ${grant.grantId} ${grant.endsAt}`]);

    await broker.call(ALICE, "POST", `/grants/${grant.grantId}/extend`, {
      body: { durationSeconds: 600, reason: "more" },
    });
    expect(calls).toHaveLength(1); // waiting for approval: the end has not moved
    const extended = await broker.call(BOB, "POST", `/requests/${grant.id}/approve`);
    expect(calls.at(-1)).toBe(`upsert ${grant.grantId} ${extended.body.endsAt}`);

    await broker.call(ALICE, "POST", `/grants/${grant.grantId}/revoke`);
    expect(calls.at(-1)).toBe(`remove ${grant.grantId}`);
    expect(calls).toHaveLength(3);
  });

  it("creates none for requests that never become grants, and one at the scheduled start", async () => {
    const created = await broker.call(ALICE, "POST", "/requests", { body: requestBody() });
    await broker.call(BOB, "POST", `/requests/${created.body.id}/deny`);
    const later = await broker.call(ALICE, "POST", "/requests", {
      body: requestBody({ startAt: new Date(broker.clock.now.getTime() + 600_000).toISOString() }),
    });
    await broker.call(BOB, "POST", `/requests/${later.body.id}/approve`);
    expect(calls).toEqual([]);
    broker.clock.advance(600);
    expect(await Request.sweep(broker.deps)).toMatchObject({ activated: 1 });
    const started = await broker.deps.requests.get(later.body.id);
    expect(calls).toEqual([`upsert ${later.body.grantId} ${started?.endsAt}`]);
  });

  it("the schedule's target settles the grant at its end, once, however often it is delivered", async () => {
    const grant = await active({ durationSeconds: 600 });
    expect((await Request.settleGrant(broker.deps, { grantId: grant.grantId }))?.status).toBe("active");
    broker.clock.advance(600);
    const [first, second] = await Promise.all([
      Request.settleGrant(broker.deps, { grantId: grant.grantId }),
      Request.settleGrant(broker.deps, { grantId: grant.grantId }),
    ]);
    expect(first?.status).toBe("expired");
    expect(second?.status).toBe("expired");
    expect(await Request.settleGrant(broker.deps, { grantId: grant.grantId })).toMatchObject({
      status: "expired",
    });
    expect(await Request.sweep(broker.deps)).toEqual({ timedOut: 0, activated: 0, expired: 0 });
    const events = (
      await broker.call("carol@example.com", "GET", "/audit/events", { query: { requestId: grant.id } })
    ).body.items.filter((record: { type: string }) => record.type === "grant.expired");
    expect(events).toHaveLength(1);
    await expect(Request.settleGrant(broker.deps, { grantId: "not-a-grant" })).rejects.toMatchObject({
      kind: "input",
    });
    expect(
      await Request.settleGrant(broker.deps, { grantId: "gr_01m7y9ms5fjay2j5d0d4qd3wev" }),
    ).toBeUndefined();
  });
});
