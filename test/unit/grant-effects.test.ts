import { describe, expect, it } from "vitest";
import * as Grant from "../../core/grant/index.ts";
import { parseConfig } from "../../core/policy/yaml.ts";
import * as Lifecycle from "../../core/request/lifecycle.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";
import { at, pending } from "../helpers/requests.ts";

const config = parseConfig(DEMO_CONFIG_TEXT);
const bob = { email: "bob@example.com", groups: ["sre-leads"] };
const alice = { email: "alice@example.com", groups: ["dev"] };

const demoRule = () => {
  const rule = config.rules.find((candidate) => candidate.id === "dev-demo");
  if (!rule) throw new Error("dev-demo rule missing");
  return rule;
};

const ctx = (actor: typeof bob, seconds: number) => ({
  actor,
  rule: config.rules.find((rule) => rule.id === "dev-demo"),
  admin: false,
  now: at(seconds),
});

describe("side effects of committed transitions (Grant.effectsOf)", () => {
  it("schedules the end when a grant becomes active, and nothing for IAM in broker mode", () => {
    const before = pending();
    const { next } = Lifecycle.approve(before, ctx(bob, 60), "ok");
    expect(next.status).toBe("active");
    expect(Grant.effectsOf(before, next)).toEqual([
      { kind: "schedule.upsert", at: at(60 + 1800).toISOString() },
    ]);
  });

  it("puts the IAM policy on activation in IAM mode, and the same for break-glass/auto-approval at creation", () => {
    const before = pending({ grantMode: "iam", awsPrincipal: "arn:aws:iam::111122223333:role/alice" });
    const { next } = Lifecycle.approve(before, ctx(bob, 0), undefined);
    expect(Grant.effectsOf(before, next)).toEqual([
      { kind: "schedule.upsert", at: next.endsAt },
      { kind: "iam.put" },
    ]);
    expect(Grant.effectsOf(undefined, next)).toEqual([
      { kind: "schedule.upsert", at: next.endsAt },
      { kind: "iam.put" },
    ]);
  });

  it("moves the schedule and re-puts the policy when an extension moves the end", () => {
    const active = Lifecycle.approve(pending({ grantMode: "iam" }), ctx(bob, 0), undefined).next;
    const rule = { ...demoRule(), approvals: { count: 0, from: [] } };
    const { next } = Lifecycle.extend(active, { ...ctx(alice, 600), rule }, 600, "more");
    expect(next.endsAt).toBe(at(2400).toISOString());
    expect(Grant.effectsOf(active, next)).toEqual([
      { kind: "schedule.upsert", at: at(2400).toISOString() },
      { kind: "iam.put" },
    ]);
  });

  it("does nothing for transitions that leave the window alone (an extension still awaiting approval)", () => {
    const active = Lifecycle.approve(pending({ grantMode: "iam" }), ctx(bob, 0), undefined).next;
    const { next } = Lifecycle.extend(active, ctx(alice, 600), 600, "more");
    expect(next.pendingExtension).toBeDefined();
    expect(Grant.effectsOf(active, next)).toEqual([]);
  });

  it("deletes the schedule and the IAM policy on revoke", () => {
    const active = Lifecycle.approve(pending({ grantMode: "iam" }), ctx(bob, 0), undefined).next;
    const { next } = Lifecycle.revoke(active, ctx(alice, 60), "done");
    expect(Grant.effectsOf(active, next)).toEqual([
      { kind: "schedule.remove" },
      { kind: "iam.remove", reason: "revoked" },
    ]);
  });

  it("deletes only the IAM policy on expiry (the fired schedule deletes itself)", () => {
    const active = Lifecycle.approve(pending({ grantMode: "iam" }), ctx(bob, 0), undefined).next;
    const transition = Lifecycle.sweep(active, at(1800));
    expect(transition?.next.status).toBe("expired");
    expect(transition && Grant.effectsOf(active, transition.next)).toEqual([
      { kind: "iam.remove", reason: "expired" },
    ]);
  });

  it("has nothing to undo for a scheduled grant revoked before it started", () => {
    const approved = pending({ status: "approved", startAt: at(3600).toISOString(), grantMode: "iam" });
    const { next } = Lifecycle.revoke(approved, ctx(alice, 60), undefined);
    expect(Grant.effectsOf(approved, next)).toEqual([{ kind: "schedule.remove" }]);
  });

  it("has no effects for requests that never became grants", () => {
    const before = pending();
    expect(Grant.effectsOf(undefined, before)).toEqual([]);
    expect(Grant.effectsOf(before, Lifecycle.deny(before, ctx(bob, 10), "no").next)).toEqual([]);
    const timedOut = Lifecycle.sweep(before, at(1800));
    expect(timedOut?.next.status).toBe("timed-out");
    expect(timedOut && Grant.effectsOf(before, timedOut.next)).toEqual([]);
  });
});
