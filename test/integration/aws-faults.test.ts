import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestBroker, DEMO_CONFIG_TEXT, requestBody } from "../helpers/broker.ts";
import { startTestEmulator, type TestEmulator } from "../helpers/emulator.ts";
import { makeKey, type TestKey } from "../helpers/keys.ts";

const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const CAROL = "carol@example.com";

let emulator: TestEmulator;
let key: TestKey;
let publicKey: string;

beforeAll(async () => {
  emulator = await startTestEmulator();
  key = makeKey("alice@laptop");
  publicKey = key.publicKey;
});

afterAll(async () => {
  await emulator?.close();
  key?.cleanup();
});

describe("AWS throttling and 5xx", () => {
  it("are ridden out by retries, and the audit trail matches CloudTrail push for push", async () => {
    await emulator.reset();
    const broker = await createTestBroker(DEMO_CONFIG_TEXT, { aws: emulator.aws });
    // Faults on every call the broker makes on the way: role sessions, describes, and the pushes themselves.
    await emulator.faults({
      seed: 20261121,
      operations: {
        AssumeRole: { rate: 0.3, kind: "throttle" },
        DescribeInstances: { rate: 0.3, kind: "5xx" },
        DescribeInstanceConnectEndpoints: { rate: 0.3, kind: "throttle" },
        SendSSHPublicKey: [
          { rate: 0.4, kind: "throttle" },
          { rate: 0.3, kind: "5xx" },
        ],
      },
    });
    const created = await broker.call(ALICE, "POST", "/requests", { body: requestBody() });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const approved = await broker.call(BOB, "POST", `/requests/${created.body.id}/approve`);
    expect(approved.body.status).toBe("active");

    const PUSHES = 8;
    const statuses: number[] = [];
    for (let i = 0; i < PUSHES; i++) {
      const pushed = await broker.call(ALICE, "POST", `/grants/${created.body.grantId}/ssh-key`, {
        body: { publicKey },
      });
      statuses.push(pushed.status);
    }
    expect(statuses).toEqual(Array(PUSHES).fill(200));

    const trail = (await emulator.trail()).filter((event) => event.eventName === "SendSSHPublicKey");
    const succeeded = trail.filter((event) => !event.errorCode);
    const failed = trail.filter((event) => event.errorCode);
    // The faults did happen (and were retried): more calls than pushes.
    expect(failed.length).toBeGreaterThan(0);
    expect(trail.length).toBe(succeeded.length + failed.length);

    const audited = (
      await broker.call(CAROL, "GET", "/audit/events", {
        query: { requestId: created.body.id, limit: "200" },
      })
    ).body.items.filter((record: { type: string }) => record.type === "grant.key_pushed");
    expect(audited).toHaveLength(succeeded.length);
    expect(audited.map((record: any) => record.data.awsRequestId).sort()).toEqual(
      succeeded.map((event) => event.requestID).sort(),
    );
    const pushes = await broker.store.listPushes(created.body.id);
    expect(pushes.filter((push) => push.status === "pushed")).toHaveLength(PUSHES);
    expect(pushes.filter((push) => push.status !== "pushed")).toEqual([]);
    expect((await broker.call(CAROL, "GET", "/audit/verify")).body.ok).toBe(true);
  });
});
