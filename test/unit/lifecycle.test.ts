import { describe, expect, it } from "vitest";
import * as Policy from "../../core/policy/index.ts";
import { parseConfig } from "../../core/policy/yaml.ts";
import * as Lifecycle from "../../core/request/lifecycle.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";
import { at, pending, T0 } from "../helpers/requests.ts";

const config = parseConfig(DEMO_CONFIG_TEXT);
const bob = { email: "bob@example.com", groups: ["sre-leads"] };
const dave = { email: "dave@example.com", groups: ["sre-leads"] };
const alice = { email: "alice@example.com", groups: ["dev"] };

const ctx = (actor: typeof bob, now = at(60), rule = Policy.ruleById(config, "dev-demo")) => ({
  actor,
  rule,
  admin: false,
  now,
});

describe("approve", () => {
  it("activates at the approval time when the quorum is reached", () => {
    const { next, events } = Lifecycle.approve(pending(), ctx(bob, at(300)));
    expect(next).toMatchObject({ status: "active", version: 2, startsAt: at(300).toISOString() });
    expect(next.endsAt).toBe(at(300 + 1800).toISOString());
    expect(events.map((event) => event.type)).toEqual([
      "request.approval_recorded",
      "request.approved",
      "grant.activated",
    ]);
  });

  it("stays pending until n distinct approvers agree", () => {
    const first = Lifecycle.approve(pending({ approvalsRequired: 2 }), ctx(bob));
    expect(first.next).toMatchObject({ status: "pending", approvals: [{ by: bob.email }] });
    expect(() => Lifecycle.approve(first.next, ctx(bob))).toThrow(/already approved/);
    const second = Lifecycle.approve(first.next, ctx(dave));
    expect(second.next.status).toBe("active");
    expect(second.next.approvals.map((approval) => approval.by)).toEqual([bob.email, dave.email]);
  });

  it("refuses the requester even as an admin, and non-approvers", () => {
    const own = pending({ requester: bob.email });
    expect(() => Lifecycle.approve(own, { ...ctx(bob), admin: true })).toThrow(/own request/);
    expect(() =>
      Lifecycle.approve(pending(), ctx({ email: "carol@example.com", groups: ["security"] })),
    ).toThrow(/not an approver/);
  });

  it("lets an admin approve requests outside the rule's approver list", () => {
    const admin = { email: "root@example.com", groups: [] };
    expect(Lifecycle.approve(pending(), { ...ctx(admin), admin: true }).next.status).toBe("active");
  });

  it("refuses decisions on finished requests and names the decider", () => {
    const denied = Lifecycle.deny(pending(), ctx(dave)).next;
    expect(() => Lifecycle.approve(denied, ctx(bob))).toThrow(/denied \(decided by dave@example.com\)/);
  });

  it("holds a request with a future start as approved", () => {
    const { next } = Lifecycle.approve(pending({ startAt: at(3600).toISOString() }), ctx(bob));
    expect(next.status).toBe("approved");
    expect(Lifecycle.dueAt(next)).toBe(at(3600).toISOString());
  });
});

describe("cancel, revoke, extend", () => {
  it("lets only the requester cancel, and only before the grant starts", () => {
    expect(() => Lifecycle.cancel(pending(), ctx(bob))).toThrow(/Only the requester/);
    expect(Lifecycle.cancel(pending(), ctx(alice)).next.status).toBe("cancelled");
    const active = Lifecycle.approve(pending(), ctx(bob)).next;
    expect(() => Lifecycle.cancel(active, ctx(alice))).toThrow(/active/);
  });

  it("lets the requester or an approver revoke an active grant, once", () => {
    const active = Lifecycle.approve(pending(), ctx(bob)).next;
    const stranger = { email: "x@example.com", groups: [] };
    expect(() => Lifecycle.revoke(active, ctx(stranger))).toThrow(/Only the requester or an approver/);
    const revoked = Lifecycle.revoke(active, ctx(alice, at(120))).next;
    expect(revoked).toMatchObject({ status: "revoked", endedAt: at(120).toISOString() });
    expect(() => Lifecycle.revoke(revoked, ctx(bob))).toThrow(/revoked/);
  });

  it("asks for re-approval of an extension when the rule needs approvals", () => {
    const active = Lifecycle.approve(pending(), ctx(bob, T0)).next;
    const asked = Lifecycle.extend(active, ctx(alice), 1800, "slow");
    expect(asked.next.pendingExtension).toMatchObject({ durationSeconds: 1800 });
    expect(asked.next.endsAt).toBe(active.endsAt);
    const approved = Lifecycle.approve(asked.next, ctx(dave)).next;
    expect(approved.endsAt).toBe(at(3600).toISOString());
    expect(approved.pendingExtension).toBeUndefined();
  });

  it("extends at once when the rule needs no approvals, within maxTotal", () => {
    const demoRule = Policy.ruleById(config, "dev-demo");
    if (!demoRule) throw new Error("demo rule missing");
    const rule = { ...demoRule, approvals: { count: 0, from: [] } };
    const active = Lifecycle.approve(pending(), ctx(bob, T0)).next;
    const extended = Lifecycle.extend(active, ctx(alice, at(60), rule), 3600, "more").next;
    expect(extended.endsAt).toBe(at(1800 + 3600).toISOString());
    expect(() => Lifecycle.extend(extended, ctx(alice, at(60), rule), 1801, "more")).toThrow(/at most 2h/);
  });
});

describe("sweep", () => {
  it("times out, activates and expires exactly when due", () => {
    expect(Lifecycle.sweep(pending(), at(1799))).toBeUndefined();
    expect(Lifecycle.sweep(pending(), at(1800))?.next.status).toBe("timed-out");
    const scheduled = Lifecycle.approve(pending({ startAt: at(600).toISOString() }), ctx(bob)).next;
    expect(Lifecycle.sweep(scheduled, at(600))?.next).toMatchObject({
      status: "active",
      startsAt: at(600).toISOString(),
    });
    const active = Lifecycle.approve(pending(), ctx(bob, T0)).next;
    expect(Lifecycle.sweep(active, at(1799))).toBeUndefined();
    expect(Lifecycle.sweep(active, at(1800))?.next.status).toBe("expired");
    expect(Lifecycle.dueAt({ ...active, status: "expired" })).toBeUndefined();
  });
});

describe("audit records", () => {
  it("name the request's requester and instance on every transition, whoever acts", () => {
    const request = pending();
    const approved = Lifecycle.approve(request, ctx(bob, T0));
    const asked = Lifecycle.extend(approved.next, ctx(alice), 1800, "slow");
    const extended = Lifecycle.approve(asked.next, ctx(dave));
    const revoked = Lifecycle.revoke(extended.next, ctx(bob, at(120)));
    const events = [
      ...approved.events,
      ...asked.events,
      ...extended.events,
      ...revoked.events,
      ...(Lifecycle.sweep(pending(), at(1800))?.events ?? []),
      ...Lifecycle.deny(pending(), ctx(dave)).events,
      ...Lifecycle.cancel(pending(), ctx(alice)).events,
      ...(Lifecycle.sweep(approved.next, at(1800))?.events ?? []),
    ];
    expect(new Set(events.map((event) => event.actor))).toEqual(
      new Set([bob.email, alice.email, dave.email, "system"]),
    );
    for (const event of events)
      expect(event.data, event.type).toMatchObject({
        requester: request.requester,
        instanceId: request.instanceId,
      });
  });
});
