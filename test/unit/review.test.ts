import { describe, expect, it } from "vitest";
import { parseConfig } from "../../core/policy/yaml.ts";
import * as Lifecycle from "../../core/request/lifecycle.ts";
import type { Info } from "../../core/request/schema.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";

const config = parseConfig(DEMO_CONFIG_TEXT);
const T0 = new Date("2026-11-21T10:00:00.000Z");
const used: Info = {
  id: "req_01m7y9ms5fjay2j5d0d4qd3wev",
  grantId: "gr_01m7y9ms5fjay2j5d0d4qd3wev",
  status: "active",
  version: 1,
  requester: "bob@example.com",
  instanceId: "i-0a1b2c3d4e5f60718",
  account: "111122223333",
  region: "us-east-1",
  target: "demo",
  method: "ssh",
  osUser: "ec2-user",
  durationSeconds: 1800,
  reason: "prod down",
  ruleId: "dev-demo",
  breakGlass: true,
  review: { status: "pending" },
  approvalsRequired: 0,
  approvalsFrom: [],
  approvals: [],
  createdAt: T0.toISOString(),
  pendingUntil: T0.toISOString(),
  startsAt: T0.toISOString(),
  endsAt: new Date(T0.getTime() + 1_800_000).toISOString(),
  extendedSeconds: 0,
};
const ctx = (email: string, groups: string[], roles: { auditor?: boolean; admin?: boolean } = {}) => ({
  actor: { email, groups },
  rule: config.rules[0],
  admin: roles.admin ?? false,
  auditor: roles.auditor ?? false,
  now: T0,
});

describe("reviewing break-glass access", () => {
  it("marks it done with who and when, audited, leaving the grant as it is", () => {
    const { next, events } = Lifecycle.review(
      used,
      ctx("carol@example.com", ["security"], { auditor: true }),
      "justified",
    );
    expect(next).toMatchObject({
      status: "active",
      version: 2,
      review: { status: "done", by: "carol@example.com", at: T0.toISOString(), comment: "justified" },
    });
    expect(events).toEqual([
      expect.objectContaining({ type: "breakglass.reviewed", actor: "carol@example.com", subject: used.id }),
    ]);
  });

  it("is for auditors and admins only, never the person who broke the glass, and happens once", () => {
    expect(() => Lifecycle.review(used, ctx("dave@example.com", ["sre-leads"]))).toThrow(
      expect.objectContaining({ code: "request.not_a_reviewer" }),
    );
    expect(() => Lifecycle.review(used, ctx("bob@example.com", ["sre-leads"], { admin: true }))).toThrow(
      expect.objectContaining({ code: "request.self_review" }),
    );
    const { next } = Lifecycle.review(used, ctx("ed@example.com", [], { admin: true }));
    expect(() => Lifecycle.review(next, ctx("carol@example.com", ["security"], { auditor: true }))).toThrow(
      expect.objectContaining({ code: "request.already_reviewed" }),
    );
    expect(() =>
      Lifecycle.review(
        { ...used, breakGlass: false, review: undefined },
        ctx("carol@example.com", [], { auditor: true }),
      ),
    ).toThrow(expect.objectContaining({ code: "request.not_break_glass" }));
  });
});
