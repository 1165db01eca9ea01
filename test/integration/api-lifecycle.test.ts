import { beforeEach, describe, expect, it } from "vitest";
import { createTestBroker, requestBody, type TestBroker } from "../helpers/broker.ts";

const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const CAROL = "carol@example.com";
const DAVE = "dave@example.com";

let broker: TestBroker;
beforeEach(async () => {
  broker = await createTestBroker();
});

async function createPending(overrides = {}) {
  const created = await broker.call(ALICE, "POST", "/requests", { body: requestBody(overrides) });
  expect(created.status).toBe(201);
  return created.body;
}

describe("request → approve → active → expired", () => {
  it("creates a pending request that needs one approval from sre-leads", async () => {
    const request = await createPending();
    expect(request).toMatchObject({
      status: "pending",
      requester: ALICE,
      ruleId: "dev-demo",
      approvalsRequired: 1,
      osUser: "ec2-user",
      account: "111122223333",
    });
    expect(request.id).toMatch(/^req_/);
  });

  it("activates on approval with the window starting at approval, not at request time", async () => {
    const request = await createPending();
    broker.clock.advance(600);
    const approved = await broker.call(BOB, "POST", `/requests/${request.id}/approve`, {
      body: { comment: "ok" },
    });
    expect(approved.status).toBe(200);
    expect(approved.body.status).toBe("active");
    expect(approved.body.startsAt).toBe(broker.clock.now.toISOString());
    expect(Date.parse(approved.body.endsAt) - Date.parse(approved.body.startsAt)).toBe(1800 * 1000);

    const grant = await broker.call(ALICE, "GET", `/grants/${request.grantId}`);
    expect(grant.body).toMatchObject({ id: request.grantId, status: "active", approvers: [BOB] });

    broker.clock.advance(1800);
    const swept = await broker.deps.requests.listDue(broker.clock.now, 10);
    expect(swept.map((item) => item.id)).toContain(request.id);
    const { Request } = await import("../../core/request/index.ts");
    expect(await Request.sweep(broker.deps)).toMatchObject({ expired: 1 });
    const after = await broker.call(ALICE, "GET", `/requests/${request.id}`);
    expect(after.body.status).toBe("expired");

    const events = await broker.call(CAROL, "GET", "/audit/events", {
      query: { requestId: request.id, order: "asc" },
    });
    expect(events.body.items.map((event: { type: string }) => event.type)).toEqual([
      "request.created",
      "request.approval_recorded",
      "request.approved",
      "grant.activated",
      "grant.expired",
    ]);
    const verify = await broker.call(CAROL, "GET", "/audit/verify");
    expect(verify.body).toMatchObject({ ok: true, records: 5 });
  });

  it("times a pending request out after the rule's pending timeout", async () => {
    const request = await createPending();
    const { Request } = await import("../../core/request/index.ts");
    broker.clock.advance(29 * 60);
    expect((await Request.sweep(broker.deps)).timedOut).toBe(0);
    broker.clock.advance(60);
    expect((await Request.sweep(broker.deps)).timedOut).toBe(1);
    const after = await broker.call(ALICE, "GET", `/requests/${request.id}`);
    expect(after.body.status).toBe("timed-out");
    const late = await broker.call(BOB, "POST", `/requests/${request.id}/approve`);
    expect(late.status).toBe(409);
  });

  it("keeps a request with a future start approved until the start, then activates it", async () => {
    const startAt = new Date(broker.clock.now.getTime() + 3_600_000).toISOString();
    const request = await createPending({ startAt });
    const approved = await broker.call(BOB, "POST", `/requests/${request.id}/approve`);
    expect(approved.body.status).toBe("approved");
    const { Request } = await import("../../core/request/index.ts");
    broker.clock.advance(3_600);
    expect((await Request.sweep(broker.deps)).activated).toBe(1);
    const active = await broker.call(ALICE, "GET", `/requests/${request.id}`);
    expect(active.body).toMatchObject({ status: "active", startsAt: startAt });
  });

  it("denies, cancels and revokes with the decider recorded", async () => {
    const toDeny = await createPending();
    const denied = await broker.call(DAVE, "POST", `/requests/${toDeny.id}/deny`, {
      body: { comment: "not now" },
    });
    expect(denied.body).toMatchObject({ status: "denied", decision: { by: DAVE, reason: "not now" } });
    const approveDenied = await broker.call(BOB, "POST", `/requests/${toDeny.id}/approve`);
    expect(approveDenied.status).toBe(409);
    expect(approveDenied.body.error.message).toContain(DAVE);

    const toCancel = await createPending();
    const cancelled = await broker.call(ALICE, "POST", `/requests/${toCancel.id}/cancel`);
    expect(cancelled.body.status).toBe("cancelled");

    const toRevoke = await createPending();
    await broker.call(BOB, "POST", `/requests/${toRevoke.id}/approve`);
    const revoked = await broker.call(DAVE, "POST", `/grants/${toRevoke.grantId}/revoke`, {
      body: { reason: "done" },
    });
    expect(revoked.body).toMatchObject({ status: "revoked" });
    const again = await broker.call(DAVE, "POST", `/grants/${toRevoke.grantId}/revoke`);
    expect(again.status).toBe(409);
  });

  it("goes active at once on break-glass and flags it for review", async () => {
    const created = await broker.call(BOB, "POST", "/requests", {
      body: requestBody({ breakGlass: true, reason: "prod is down" }),
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: "active", breakGlass: true, review: { status: "pending" } });
    const events = await broker.call(CAROL, "GET", "/audit/events", {
      query: { requestId: created.body.id },
    });
    expect(events.body.items.map((event: { type: string }) => event.type)).toContain("breakglass.used");
  });

  it("refuses break-glass to someone the rule does not name", async () => {
    const created = await broker.call(ALICE, "POST", "/requests", {
      body: requestBody({ breakGlass: true }),
    });
    expect(created.status).toBe(403);
  });

  it("extends within the rule's total after re-approval, and refuses past it", async () => {
    const request = await createPending({ durationSeconds: 3600 });
    await broker.call(BOB, "POST", `/requests/${request.id}/approve`);
    const asked = await broker.call(ALICE, "POST", `/grants/${request.grantId}/extend`, {
      body: { durationSeconds: 1800, reason: "migration is slow" },
    });
    expect(asked.status).toBe(200);
    expect(asked.body.pendingExtension).toMatchObject({ durationSeconds: 1800 });
    const before = asked.body.endsAt;
    const selfApprove = await broker.call(ALICE, "POST", `/requests/${request.id}/approve`);
    expect(selfApprove.status).toBe(403);
    const approved = await broker.call(DAVE, "POST", `/requests/${request.id}/approve`);
    expect(approved.body.status).toBe("active");
    expect(Date.parse(approved.body.endsAt) - Date.parse(before)).toBe(1800 * 1000);
    const tooLong = await broker.call(ALICE, "POST", `/grants/${request.grantId}/extend`, {
      body: { durationSeconds: 3600, reason: "more" },
    });
    expect(tooLong.status).toBe(403);
    expect(tooLong.body.error.code).toBe("grant.extend_too_long");
  });
});

describe("who sees what", () => {
  it("shows requesters their own, approvers what they may approve, auditors everything", async () => {
    const request = await createPending();
    const stranger = await broker.call("mallory@example.com", "GET", `/requests/${request.id}`);
    expect(stranger.status).toBe(404);
    expect((await broker.call(BOB, "GET", `/requests/${request.id}`)).status).toBe(200);
    expect((await broker.call(CAROL, "GET", `/requests/${request.id}`)).status).toBe(200);

    const pendingForBob = await broker.call(BOB, "GET", "/requests", { query: { pendingForMe: "true" } });
    expect(pendingForBob.body.items.map((item: { id: string }) => item.id)).toEqual([request.id]);
    const pendingForAlice = await broker.call(ALICE, "GET", "/requests", { query: { pendingForMe: "true" } });
    expect(pendingForAlice.body.items).toEqual([]);
    const strangerList = await broker.call("mallory@example.com", "GET", "/requests");
    expect(strangerList.body.items).toEqual([]);
    const strangerAudit = await broker.call("mallory@example.com", "GET", "/audit/events");
    expect(strangerAudit.status).toBe(403);
    const aliceVerify = await broker.call(ALICE, "GET", "/audit/verify");
    expect(aliceVerify.status).toBe(404);
  });

  it("pages through lists with an opaque cursor", async () => {
    const ids: string[] = [];
    for (let index = 0; index < 5; index++) ids.push((await createPending()).id);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await broker.call(ALICE, "GET", "/requests", {
        query: { mine: "true", limit: "2", ...(cursor ? { cursor } : {}) },
      });
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((item: { id: string }) => item.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
  });
});
