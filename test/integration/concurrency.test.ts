import { describe, expect, it } from "vitest";
import * as Audit from "../../core/audit/index.ts";
import { createTestBroker, DEMO_CONFIG_TEXT, requestBody, type TestBroker } from "../helpers/broker.ts";

const APPROVERS = Array.from({ length: 50 }, (_, index) => `approver${index}@example.com`);

/** The demo config plus 50 approvers and a rule that needs three of them. */
const QUORUM_CONFIG = DEMO_CONFIG_TEXT.replace(
  "directory:\n  users:\n",
  `directory:\n  users:\n${APPROVERS.map((email) => `    - { email: ${email}, groups: [approvers] }\n`).join("")}`,
).replace(
  "rules:\n",
  `rules:
  - id: quorum
    targets: [demo]
    requesters: [group:dev]
    methods: { ssh: { osUsers: [ec2-user] } }
    maxDuration: 1h
    approvals: { count: 3, from: [group:approvers] }
`,
);

async function auditTypes(broker: TestBroker, requestId: string): Promise<string[]> {
  const page = await broker.store.list({ subject: requestId, order: "asc" }, { limit: 200 });
  return page.items.map((record) => record.type);
}

async function expectChainIntact(broker: TestBroker) {
  const verification = await Audit.verify(broker.store.walk(), await broker.store.head());
  expect(verification).toMatchObject({ ok: true });
}

describe("races against DynamoDB Local, each caller with its own store instance", () => {
  it("records exactly the quorum and one grant when 50 approvers click at once", async () => {
    const broker = await createTestBroker(QUORUM_CONFIG, { isolatedStores: true });
    const created = await broker.call("alice@example.com", "POST", "/requests", { body: requestBody() });
    expect(created.body).toMatchObject({ ruleId: "quorum", approvalsRequired: 3 });

    const responses = await Promise.all(
      APPROVERS.map((approver) => broker.call(approver, "POST", `/requests/${created.body.id}/approve`)),
    );
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(3);
    expect(statuses.filter((status) => status === 409)).toHaveLength(47);

    const stored = await broker.store.get(created.body.id);
    expect(stored?.status).toBe("active");
    expect(stored?.approvals).toHaveLength(3);
    expect(new Set(stored?.approvals.map((approval) => approval.by)).size).toBe(3);
    const types = await auditTypes(broker, created.body.id);
    expect(types.filter((type) => type === "request.approval_recorded")).toHaveLength(3);
    expect(types.filter((type) => type === "grant.activated")).toHaveLength(1);
    await expectChainIntact(broker);
  });

  it("writes one revoke record when 50 revokes arrive at once", async () => {
    const broker = await createTestBroker(QUORUM_CONFIG, { isolatedStores: true });
    const created = await broker.call("alice@example.com", "POST", "/requests", {
      body: requestBody({ instanceId: "i-0a1b2c3d4e5f60718" }),
    });
    for (const approver of APPROVERS.slice(0, 3)) {
      await broker.call(approver, "POST", `/requests/${created.body.id}/approve`);
    }
    const responses = await Promise.all(
      APPROVERS.map((approver) =>
        broker.call(approver, "POST", `/grants/${created.body.grantId}/revoke`, {
          body: { reason: "incident over" },
        }),
      ),
    );
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(1);
    expect(statuses.filter((status) => status === 409)).toHaveLength(49);
    const types = await auditTypes(broker, created.body.id);
    expect(types.filter((type) => type === "grant.revoked")).toHaveLength(1);
    await expectChainIntact(broker);
  });

  it("creates one request for 20 concurrent POSTs with one Idempotency-Key", async () => {
    const broker = await createTestBroker(DEMO_CONFIG_TEXT, { isolatedStores: true });
    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        broker.call("alice@example.com", "POST", "/requests", {
          body: requestBody(),
          headers: { "Idempotency-Key": "retry-me-7" },
        }),
      ),
    );
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 201)).toHaveLength(1);
    expect(statuses.filter((status) => status === 200)).toHaveLength(19);
    expect(new Set(responses.map((response) => response.body.id)).size).toBe(1);
    const all = await broker.store.listAll({ limit: 100 });
    expect(all.items).toHaveLength(1);
    expect((await broker.store.head()).seq).toBe(1);
    await expectChainIntact(broker);
  });
});
