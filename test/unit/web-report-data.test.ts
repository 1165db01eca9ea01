import { describe, expect, it } from "vitest";
import type { AccessReport, GrantRow } from "../../core/report/schema.ts";
import {
  days,
  grantsPerDay,
  latencyDistribution,
  nonBrokeredPerDay,
  usedVsGranted,
} from "../../web/src/report-data.ts";

// The web app's report charts are pure functions of the API's report JSON.

const local = (day: string, time = "12:00") => new Date(`${day}T${time}:00`).toISOString();

function grant(overrides: Partial<GrantRow>): GrantRow {
  return {
    requestId: "req_1",
    grantId: "gr_1",
    status: "expired",
    requester: "alice@example.com",
    approvers: ["bob@example.com"],
    rule: "dev-demo",
    reason: "r",
    target: "demo",
    instanceId: "i-0a1b2c3d4e5f60718",
    account: "111122223333",
    region: "us-east-1",
    method: "ssh",
    grantMode: "broker",
    breakGlass: false,
    requestedAt: local("2026-03-02", "09:00"),
    requestedStart: local("2026-03-02", "09:00"),
    requestedSeconds: 1800,
    extendedSeconds: 0,
    events: {},
    unused: true,
    ...overrides,
  };
}

function report(grants: GrantRow[], nonBrokered: AccessReport["nonBrokeredEvents"] = []): AccessReport {
  return {
    period: { from: local("2026-03-01", "00:00"), to: local("2026-03-04", "00:00") },
    grants,
    nonBrokeredEvents: nonBrokered,
  } as AccessReport;
}

describe("report charts", () => {
  it("has one bucket per local day of the period", () => {
    expect(days(local("2026-03-01", "00:00"), local("2026-03-04", "00:00"))).toEqual([
      "2026-03-01",
      "2026-03-02",
      "2026-03-03",
    ]);
  });

  it("counts grants per day by method, on the day access started", () => {
    const buckets = grantsPerDay(
      report([
        grant({ method: "ssh", startsAt: local("2026-03-02") }),
        grant({ method: "tunnel", startsAt: local("2026-03-02") }),
        grant({ method: "ssh", startsAt: local("2026-03-03"), requestedAt: local("2026-03-01") }),
      ]),
    );
    expect(buckets).toEqual([
      { label: "03-01", values: [0, 0, 0] },
      { label: "03-02", values: [1, 1, 0] },
      { label: "03-03", values: [1, 0, 0] },
    ]);
  });

  it("bands approval latency and leaves out grants that needed no approval", () => {
    const values = latencyDistribution(
      report([
        grant({ approvalLatencySeconds: 30 }),
        grant({ approvalLatencySeconds: 59 }),
        grant({ approvalLatencySeconds: 60 }),
        grant({ approvalLatencySeconds: 20_000 }),
        grant({}),
      ]),
    ).map((bucket) => bucket.values[0]);
    expect(values).toEqual([2, 1, 0, 0, 0, 1]);
  });

  it("stacks non-brokered events per day by classification", () => {
    const buckets = nonBrokeredPerDay(
      report(
        [],
        [
          { eventId: "a", eventTime: local("2026-03-03"), classification: "unbrokered", reasons: [] },
          { eventId: "b", eventTime: local("2026-03-03"), classification: "denied-attempt", reasons: [] },
          { eventId: "c", classification: "unparsed", reasons: [] },
        ],
      ),
    );
    expect(buckets[2]).toEqual({ label: "03-03", values: [1, 0, 0, 1, 0] });
    expect(buckets.flatMap((bucket) => bucket.values).reduce((a, b) => a + b, 0)).toBe(2);
  });

  it("compares hours granted (with extensions) with hours open", () => {
    const buckets = usedVsGranted(
      report([
        grant({
          startsAt: local("2026-03-01"),
          requestedSeconds: 3600,
          extendedSeconds: 1800,
          usedWindowSeconds: 900,
        }),
        grant({ requestedSeconds: 3600 }),
      ]),
    );
    expect(buckets[0]).toEqual({ label: "03-01", values: [1.5, 0.25] });
    expect(buckets[1]?.values).toEqual([0, 0]);
  });
});
