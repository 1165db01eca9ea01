import { EC2InstanceConnectClient, SendSSHPublicKeyCommand } from "@aws-sdk/client-ec2-instance-connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { presignOpenTunnel } from "../../core/aws/tunnel-signer.ts";
import * as Grant from "../../core/grant/index.ts";
import * as Request from "../../core/request/index.ts";
import { createTestBroker, DEMO_CONFIG_TEXT, requestBody, type TestBroker } from "../helpers/broker.ts";
import { ALICE_KEYS, startTestEmulator, type TestEmulator } from "../helpers/emulator.ts";
import { makeKey, type TestKey } from "../helpers/keys.ts";

const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const CAROL = "carol@example.com";
const IAM_INSTANCE = "i-0c0ffee0c0ffee0ee";
const ALICE_ROLE = "arn:aws:iam::111122223333:role/alice";
const DEMO_ENDPOINT = "eice-0demo00000000001";
const DEMO_DNS = `${DEMO_ENDPOINT}.ec2-instance-connect-endpoint.us-east-1.amazonaws.com`;
// Bob may ask under the IAM rule too, but the directory lists no AWS identity for him.
const CONFIG = DEMO_CONFIG_TEXT.replace(
  "    targets: [demo-iam]\n    requesters: [group:dev]",
  "    targets: [demo-iam]\n    requesters: [group:dev, group:sre-leads]",
);

let emulator: TestEmulator;
let broker: TestBroker;
let key: TestKey;
let publicKey: string;

beforeAll(async () => {
  expect(CONFIG).not.toBe(DEMO_CONFIG_TEXT);
  emulator = await startTestEmulator();
  key = makeKey("alice@laptop");
  publicKey = key.publicKey;
});

afterAll(async () => {
  await emulator?.close();
  key?.cleanup();
});

beforeEach(async () => {
  await emulator.reset();
  broker = await createTestBroker(CONFIG, { aws: emulator.aws });
});

async function iamGrant(overrides: Record<string, unknown> = {}) {
  const created = await broker.call(ALICE, "POST", "/requests", {
    body: requestBody({ instanceId: IAM_INSTANCE, ...overrides }),
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  expect(created.body).toMatchObject({ grantMode: "iam", awsPrincipal: ALICE_ROLE });
  const approved = await broker.call(BOB, "POST", `/requests/${created.body.id}/approve`);
  expect(approved.body.status).toBe("active");
  return approved.body as Request.Info;
}

/** Alice, with her own access key, calling EC2 Instance Connect directly (as the AWS CLI would). */
const aliceEic = () =>
  new EC2InstanceConnectClient({
    endpoint: emulator.url,
    region: "us-east-1",
    credentials: ALICE_KEYS,
    maxAttempts: 1,
  });

async function aliceSendsKey(instanceId = IAM_INSTANCE, osUser = "ec2-user"): Promise<string> {
  try {
    await aliceEic().send(
      new SendSSHPublicKeyCommand({
        InstanceId: instanceId,
        InstanceOSUser: osUser,
        SSHPublicKey: publicKey,
      }),
    );
    return "ok";
  } catch (error) {
    return (error as Error).name;
  }
}

async function aliceOpensTunnel(remotePort: number, maxTunnelDuration?: number): Promise<number> {
  const url = new URL(
    await presignOpenTunnel({
      credentials: ALICE_KEYS,
      region: "us-east-1",
      dnsName: DEMO_DNS,
      endpointId: DEMO_ENDPOINT,
      remotePort,
      privateIp: "10.0.2.20",
      maxTunnelDuration,
      signingDate: emulator.now(),
    }),
  );
  return new Promise((resolve) => {
    const ws = new WebSocket(`${emulator.url.replace("http", "ws")}${url.pathname}${url.search}`, {
      headers: { host: url.host },
    });
    ws.once("open", () => {
      ws.close();
      resolve(101);
    });
    ws.once("unexpected-response", (_request, response) => resolve(response.statusCode ?? 0));
    ws.once("error", () => resolve(-1));
  });
}

const policiesOfAlice = async () =>
  (await broker.deps.iam.list(ALICE_ROLE)).filter((name) => name.startsWith(Grant.POLICY_PREFIX));

const auditTypes = async (requestId: string) =>
  (await broker.call(CAROL, "GET", "/audit/events", { query: { requestId, order: "asc" } })).body.items.map(
    (record: { type: string }) => record.type,
  );

describe("IAM grant mode", () => {
  it("lets alice use her own credentials inside the window, for exactly the grant's instance and OS user", async () => {
    expect(await aliceSendsKey()).toBe("AccessDeniedException");
    const grant = await iamGrant();
    expect(await policiesOfAlice()).toEqual([Grant.policyName(grant.grantId)]);
    expect(await auditTypes(grant.id)).toContain("grant.iam_policy_attached");

    expect(await aliceSendsKey()).toBe("ok");
    expect(await aliceSendsKey(IAM_INSTANCE, "root")).toBe("AccessDeniedException");
    expect(await aliceSendsKey("i-0a1b2c3d4e5f60718")).toBe("AccessDeniedException");
    // ssh through EICE: the tunnel to port 22 of the instance's private IP, with a bounded duration.
    expect(await aliceOpensTunnel(22, 1800)).toBe(101);
    expect(await aliceOpensTunnel(22)).toBe(403);
    expect(await aliceOpensTunnel(3389, 60)).toBe(403);

    // The broker neither pushes nor presigns for an IAM-mode grant.
    const push = await broker.call(ALICE, "POST", `/grants/${grant.grantId}/ssh-key`, {
      body: { publicKey },
    });
    expect(push.status).toBe(409);
    expect(push.body.error.code).toBe("grant.iam_mode");
  });

  it("is inert after the grant's end even when nothing deletes the policy, and deleted by the sweeper", async () => {
    const grant = await iamGrant({ durationSeconds: 120 });
    expect(await aliceSendsKey()).toBe("ok");
    await emulator.advance(125);
    expect(await policiesOfAlice()).toEqual([Grant.policyName(grant.grantId)]);
    expect(await aliceSendsKey()).toBe("AccessDeniedException");

    broker.clock.advance(125);
    const swept = await Grant.sweepAll(broker.deps);
    expect(swept).toMatchObject({ expired: 1, iam: { removed: 0, attached: 0, failed: 0 } });
    expect(await policiesOfAlice()).toEqual([]);
    const types = await auditTypes(grant.id);
    expect(types.slice(-3)).toEqual([
      "grant.iam_policy_attached",
      "grant.expired",
      "grant.iam_policy_removed",
    ]);
  });

  it("deletes the policy at revoke, and re-puts it with the new end on extension", async () => {
    const extendable = CONFIG.replace(
      "    approvals: { count: 1, from: [group:sre-leads] }\n    grantMode: iam",
      "    approvals: { count: 0 }\n    extend: { allowed: true, maxTotal: 2h }\n    grantMode: iam",
    );
    expect(extendable).not.toBe(CONFIG);
    broker = await createTestBroker(extendable, { aws: emulator.aws });
    const created = await broker.call(ALICE, "POST", "/requests", {
      body: requestBody({ instanceId: IAM_INSTANCE, durationSeconds: 120 }),
    });
    expect(created.body.status).toBe("active");
    const extended = await broker.call(ALICE, "POST", `/grants/${created.body.grantId}/extend`, {
      body: { durationSeconds: 600, reason: "more time" },
    });
    expect(extended.status).toBe(200);
    await emulator.advance(125);
    expect(await aliceSendsKey()).toBe("ok");

    await broker.call(ALICE, "POST", `/grants/${created.body.grantId}/revoke`);
    expect(await policiesOfAlice()).toEqual([]);
    expect(await aliceSendsKey()).toBe("AccessDeniedException");
    expect(await auditTypes(created.body.id)).toEqual([
      "request.created",
      "request.approval_recorded",
      "request.approved",
      "grant.activated",
      "grant.iam_policy_attached",
      "grant.extended",
      "grant.iam_policy_attached",
      "grant.revoked",
      "grant.iam_policy_removed",
    ]);
  });

  it("refuses at creation a requester with no AWS identity in the grant's account", async () => {
    const refused = await broker.call(BOB, "POST", "/requests", {
      body: requestBody({ instanceId: IAM_INSTANCE }),
    });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe("request.no_aws_principal");
    expect((await broker.store.listAll({ limit: 10 })).items).toEqual([]);
  });
});

describe("the IAM reconciler", () => {
  it("removes broker-named policies without a live grant and keeps the live one", async () => {
    const live = await iamGrant();
    const unknownGrant = "gr_01m7y9ms5fjay2j5d0d4qd3wev";
    await broker.deps.iam.put(
      ALICE_ROLE,
      Grant.policyName(unknownGrant),
      Grant.grantPolicy(broker.deps.config, live),
    );
    await broker.deps.iam.put(
      ALICE_ROLE,
      `${Grant.POLICY_PREFIX}not-a-grant`,
      Grant.grantPolicy(broker.deps.config, live),
    );
    await broker.deps.iam.put(
      ALICE_ROLE,
      "someone-elses-policy",
      Grant.grantPolicy(broker.deps.config, live),
    );

    expect(await Grant.reconcile(broker.deps)).toEqual({ removed: 2, attached: 0, failed: 0 });
    expect((await broker.deps.iam.list(ALICE_ROLE)).sort()).toEqual(
      [Grant.policyName(live.grantId), "someone-elses-policy"].sort(),
    );
    const removed = (
      await broker.call(CAROL, "GET", "/audit/events", { query: { order: "asc", limit: "200" } })
    ).body.items.filter((record: { type: string }) => record.type === "grant.iam_policy_removed");
    expect(removed.map((record: any) => record.data.policyName).sort()).toEqual(
      [Grant.policyName(unknownGrant), `${Grant.POLICY_PREFIX}not-a-grant`].sort(),
    );
    expect(await Grant.reconcile(broker.deps)).toEqual({ removed: 0, attached: 0, failed: 0 });
  });

  it("heals a grant whose policy was never attached (IAM failed after the approval committed)", async () => {
    await emulator.faults({ operations: { PutRolePolicy: { rate: 1, kind: "5xx" } } });
    const grant = await iamGrant();
    expect(await policiesOfAlice()).toEqual([]);
    expect(await aliceSendsKey()).toBe("AccessDeniedException");
    await emulator.faults({});

    expect(await Grant.reconcile(broker.deps)).toEqual({ removed: 0, attached: 1, failed: 0 });
    expect(await policiesOfAlice()).toEqual([Grant.policyName(grant.grantId)]);
    expect(await aliceSendsKey()).toBe("ok");
    const attached = (
      await broker.call(CAROL, "GET", "/audit/events", { query: { requestId: grant.id, order: "asc" } })
    ).body.items.filter((record: { type: string }) => record.type === "grant.iam_policy_attached");
    expect(attached).toHaveLength(1);
    expect(attached[0].data).toMatchObject({ reconciled: true, principalArn: ALICE_ROLE });
  });

  it("heals an expiry whose policy deletion failed", async () => {
    const grant = await iamGrant({ durationSeconds: 60 });
    await emulator.faults({ operations: { DeleteRolePolicy: { rate: 1, kind: "5xx" } } });
    broker.clock.advance(61);
    expect(await Request.sweep(broker.deps)).toMatchObject({ expired: 1 });
    expect(await policiesOfAlice()).toEqual([Grant.policyName(grant.grantId)]);
    await emulator.faults({});
    expect(await Grant.reconcile(broker.deps)).toEqual({ removed: 1, attached: 0, failed: 0 });
    expect(await policiesOfAlice()).toEqual([]);
  });
});
