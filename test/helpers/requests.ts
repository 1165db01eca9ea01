import type { Info } from "../../core/request/schema.ts";

/** Fixed time for lifecycle fixtures; `at(n)` is n seconds later. */
export const T0 = new Date("2026-11-21T10:00:00.000Z");
export const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

/** Alice's pending ssh request under dev-demo (one approval from sre-leads), created at T0. */
export function pending(overrides: Partial<Info> = {}): Info {
  return {
    id: "req_01m7y9ms5fjay2j5d0d4qd3wev",
    grantId: "gr_01m7y9ms5fjay2j5d0d4qd3wev",
    status: "pending",
    version: 1,
    requester: "alice@example.com",
    instanceId: "i-0a1b2c3d4e5f60718",
    account: "111122223333",
    region: "us-east-1",
    target: "demo",
    method: "ssh",
    osUser: "ec2-user",
    durationSeconds: 1800,
    reason: "debug",
    ruleId: "dev-demo",
    breakGlass: false,
    approvalsRequired: 1,
    approvalsFrom: ["group:sre-leads"],
    approvals: [],
    createdAt: T0.toISOString(),
    pendingUntil: at(1800).toISOString(),
    extendedSeconds: 0,
    ...overrides,
  };
}
