import { beforeEach, describe, expect, it } from "vitest";
import { createTestBroker, requestBody, type TestBroker } from "../helpers/broker.ts";

// What the web app reads beyond the lifecycle routes: the caller's view of the policy (request form,
// inbox context) and one requester's history (the inbox's "recent requests").

const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const CAROL = "carol@example.com";
const DAVE = "dave@example.com";

let broker: TestBroker;
beforeEach(async () => {
  broker = await createTestBroker();
});

describe("GET /policy", () => {
  it("gives a requester the rules they may request under, with the form's limits, and no approver role", async () => {
    const response = await broker.call(ALICE, "GET", "/policy");
    expect(response.status).toBe(200);
    const view = response.body;
    expect(view.approver).toBe(false);
    expect(view.methods).toEqual(["ssh", "tunnel"]);
    const demo = view.rules.find((rule: { id: string }) => rule.id === "dev-demo");
    expect(demo).toMatchObject({
      mayRequest: true,
      mayApprove: false,
      mayBreakGlass: false,
      maxDurationSeconds: 3600,
      pendingTimeoutSeconds: 1800,
      risk: "low",
      methods: { ssh: { osUsers: ["ec2-user"] }, tunnel: { ports: [22] } },
      approvals: { count: 1, from: ["group:sre-leads"] },
      reason: { required: true },
      extend: { allowed: true, maxTotalSeconds: 7200 },
    });
    const staging = view.rules.find((rule: { id: string }) => rule.id === "staging-two-person");
    expect(staging.ticket).toEqual({ required: true, pattern: "^(INC|CHG)-\\d+$" });
    expect(view.targets.map((target: { name: string }) => target.name)).toEqual([
      "demo",
      "demo-iam",
      "staging-web",
    ]);
    expect(view.targets[0]).toMatchObject({ instances: ["i-0a1b2c3d4e5f60718"], account: "111122223333" });
  });

  it("marks an SRE lead as approver (and break-glass) on the rules they approve", async () => {
    const view = (await broker.call(BOB, "GET", "/policy")).body;
    expect(view.approver).toBe(true);
    const demo = view.rules.find((rule: { id: string }) => rule.id === "dev-demo");
    expect(demo).toMatchObject({ mayApprove: true, mayRequest: false, mayBreakGlass: true });
  });

  it("shows an auditor every rule but makes them no approver", async () => {
    const view = (await broker.call(CAROL, "GET", "/policy")).body;
    expect(view.rules).toHaveLength(3);
    expect(view.approver).toBe(false);
    expect(view.methods).toEqual([]);
  });

  it("needs a token", async () => {
    expect((await broker.call(null, "GET", "/policy")).status).toBe(401);
  });
});

describe("GET /requests?requester=", () => {
  it("lists one requester's requests that the caller may see, newest first", async () => {
    const first = (await broker.call(ALICE, "POST", "/requests", { body: requestBody({ reason: "one" }) }))
      .body;
    broker.clock.advance(5);
    const second = (await broker.call(ALICE, "POST", "/requests", { body: requestBody({ reason: "two" }) }))
      .body;
    await broker.call(BOB, "POST", `/requests/${first.id}/deny`, { body: { comment: "no" } });

    const seen = await broker.call(DAVE, "GET", "/requests", { query: { requester: ALICE } });
    expect(seen.status).toBe(200);
    expect(seen.body.items.map((item: { id: string }) => item.id)).toEqual([second.id, first.id]);

    const denied = await broker.call(DAVE, "GET", "/requests", {
      query: { requester: "Alice@Example.com", status: "denied" },
    });
    expect(denied.body.items.map((item: { id: string }) => item.id)).toEqual([first.id]);
  });

  it("shows nothing the caller could not see otherwise", async () => {
    await broker.call(ALICE, "POST", "/requests", { body: requestBody() });
    const other = await broker.call(DAVE, "GET", "/requests", { query: { requester: DAVE } });
    expect(other.body.items).toEqual([]);
    const bobSeesAlice = await broker.call(BOB, "GET", "/requests", { query: { requester: ALICE } });
    expect(bobSeesAlice.body.items).toHaveLength(1);
  });

  it("refuses a requester filter combined with pendingForMe, or mine for someone else", async () => {
    const both = await broker.call(BOB, "GET", "/requests", {
      query: { requester: ALICE, pendingForMe: "true" },
    });
    expect(both.status).toBe(400);
    const mine = await broker.call(BOB, "GET", "/requests", { query: { requester: ALICE, mine: "true" } });
    expect(mine.status).toBe(400);
    const bad = await broker.call(BOB, "GET", "/requests", { query: { requester: "not-an-email" } });
    expect(bad.status).toBe(400);
  });
});
