import { readFileSync } from "node:fs";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import * as Access from "../../core/access/index.ts";
import * as Request from "../../core/request/index.ts";
import {
  createTestBroker,
  DEMO_CONFIG_TEXT,
  DEMO_INSTANCE,
  requestBody,
  type TestBroker,
} from "../helpers/broker.ts";
import { startTestEmulator, type TestEmulator } from "../helpers/emulator.ts";
import { makeKey, type TestKey } from "../helpers/keys.ts";

const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const CAROL = "carol@example.com";
const DAVE = "dave@example.com";
const DEMO_ENDPOINT = "eice-0demo00000000001";
const DEMO_DNS = `${DEMO_ENDPOINT}.ec2-instance-connect-endpoint.us-east-1.amazonaws.com`;

let emulator: TestEmulator;
let broker: TestBroker;
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

beforeEach(async () => {
  await emulator.reset();
  broker = await createTestBroker(DEMO_CONFIG_TEXT, { aws: emulator.aws });
});

async function activeGrant(overrides: Record<string, unknown> = {}) {
  const created = await broker.call(ALICE, "POST", "/requests", { body: requestBody(overrides) });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const approved = await broker.call(BOB, "POST", `/requests/${created.body.id}/approve`);
  expect(approved.body.status).toBe("active");
  return approved.body as Request.Info;
}

const push = (grantId: string, body: unknown = { publicKey }, user = ALICE) =>
  broker.call(user, "POST", `/grants/${grantId}/ssh-key`, { body });

const auditOf = async (requestId: string) =>
  (await broker.call(CAROL, "GET", "/audit/events", { query: { requestId, order: "asc", limit: "200" } }))
    .body.items as { type: string; data: Record<string, any> }[];

describe("the network snapshot taken at request time", () => {
  it("stores the demo instance's private IP and its EICE route with the request, and shows it on the grant", async () => {
    const grant = await activeGrant();
    expect(grant.network).toMatchObject({
      vpcId: "vpc-0demo0000000001",
      subnetId: "subnet-0demo000000001a",
      availabilityZone: "us-east-1a",
      privateIp: "10.0.1.10",
      route: { type: "eice", endpointId: DEMO_ENDPOINT, dnsName: DEMO_DNS, ip: "10.0.1.10" },
    });
    const shown = await broker.call(ALICE, "GET", `/grants/${grant.grantId}`);
    expect(shown.body.network).toEqual(grant.network);
  });
});

describe("POST /grants/{id}/ssh-key", () => {
  it("pushes the key for the grant's instance and OS user, and the instance's metadata serves it", async () => {
    const grant = await activeGrant();
    const pushed = await push(grant.grantId);
    expect(pushed.status, JSON.stringify(pushed.body)).toBe(200);
    expect(pushed.body).toEqual({
      grantId: grant.grantId,
      instanceId: DEMO_INSTANCE,
      osUser: "ec2-user",
      fingerprint: key.fingerprint,
      requestId: expect.any(String),
      pushedAt: expect.any(String),
      keyExpiresAt: new Date(Date.parse(pushed.body.pushedAt) + 60_000).toISOString(),
      route: { type: "eice", endpointId: DEMO_ENDPOINT, privateIp: "10.0.1.10", port: 22 },
    });

    const metadata = await fetch(
      `${emulator.url}/metadata/${DEMO_INSTANCE}/managed-ssh-keys/active-keys/ec2-user/`,
    );
    expect(metadata.status).toBe(200);
    const served = await metadata.text();
    expect(served).toContain(publicKey);
    expect(served).toContain(`#Request=${pushed.body.requestId}`);
    expect(served).toContain("#Caller=arn:aws:sts::111122223333:assumed-role/access-broker/access-broker");

    const records = await auditOf(grant.id);
    const pushes = records.filter((record) => record.type === "grant.key_pushed");
    expect(pushes).toHaveLength(1);
    expect(pushes[0]?.data).toMatchObject({
      grantId: grant.grantId,
      fingerprint: key.fingerprint,
      instanceId: DEMO_INSTANCE,
      osUser: "ec2-user",
      awsRequestId: pushed.body.requestId,
      pushedAt: pushed.body.pushedAt,
    });
    expect(await broker.store.listPushes(grant.id)).toEqual([
      expect.objectContaining({
        status: "pushed",
        fingerprint: key.fingerprint,
        awsRequestId: pushed.body.requestId,
      }),
    ]);

    const events = (await emulator.trail()).filter((event) => event.eventName === "SendSSHPublicKey");
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      requestID: pushed.body.requestId,
      recipientAccountId: "111122223333",
      requestParameters: { instanceId: DEMO_INSTANCE, instanceOSUser: "ec2-user" },
    });
  });

  it("pushes again on every call inside the window, one audit record each", async () => {
    const grant = await activeGrant();
    for (let i = 0; i < 3; i++) expect((await push(grant.grantId)).status).toBe(200);
    expect((await auditOf(grant.id)).filter((record) => record.type === "grant.key_pushed")).toHaveLength(3);
  });

  it("lets nobody choose the instance or OS user: the body takes the key alone", async () => {
    const grant = await activeGrant();
    for (const extra of [
      { instanceId: "i-0c0ffee0c0ffee0ee" },
      { osUser: "root" },
      { instanceOSUser: "root" },
    ]) {
      const refused = await push(grant.grantId, { publicKey, ...extra });
      expect(refused.status).toBe(400);
      expect(refused.body.error.code).toBe("input.invalid");
    }
    expect(await emulator.trail()).not.toContainEqual(
      expect.objectContaining({ eventName: "SendSSHPublicKey" }),
    );
  });

  it("refuses private key material with a 400 that does not repeat it, and pushes nothing", async () => {
    const grant = await activeGrant();
    const privateKey = readFileSync(key.privateKeyPath, "utf8");
    const refused = await push(grant.grantId, { publicKey: privateKey });
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe("key.private_key");
    const said = JSON.stringify(refused.body);
    for (const line of privateKey.split("\n").filter((part) => part.length > 20))
      expect(said).not.toContain(line);
    expect(await broker.store.listPushes(grant.id)).toEqual([]);
  });

  it("is for the requester only", async () => {
    const grant = await activeGrant();
    expect((await push(grant.grantId, { publicKey }, BOB)).status).toBe(403);
    expect((await push(grant.grantId, { publicKey }, CAROL)).status).toBe(403);
    expect((await push(grant.grantId, { publicKey }, DAVE)).status).toBe(403);
    expect((await push("gr_01m7y9ms5fjay2j5d0d4qd3wev", { publicKey }, ALICE)).status).toBe(404);
  });

  it("refuses pending, denied, revoked and expired grants, and outside the window, with 409", async () => {
    const pending = await broker.call(ALICE, "POST", "/requests", { body: requestBody() });
    const beforeApproval = await push(pending.body.grantId);
    expect(beforeApproval.status).toBe(409);
    expect(beforeApproval.body.error).toMatchObject({
      code: "grant.not_active",
      message: "The request is pending",
    });

    const denied = await broker.call(ALICE, "POST", "/requests", { body: requestBody() });
    await broker.call(BOB, "POST", `/requests/${denied.body.id}/deny`);
    const afterDenial = await push(denied.body.grantId);
    expect(afterDenial.status).toBe(409);
    expect(afterDenial.body.error.message).toBe("The request is denied");

    const revoked = await activeGrant();
    expect((await broker.call(ALICE, "POST", `/grants/${revoked.grantId}/revoke`)).status).toBe(200);
    const afterRevoke = await push(revoked.grantId);
    expect(afterRevoke.status).toBe(409);
    expect(afterRevoke.body.error.code).toBe("grant.not_active");

    const late = await activeGrant({ durationSeconds: 600 });
    broker.clock.advance(600);
    const outside = await push(late.grantId);
    expect(outside.status).toBe(409);
    expect(outside.body.error.code).toBe("grant.outside_window");
    await Request.sweep(broker.deps);
    const expired = await push(late.grantId);
    expect(expired.status).toBe(409);
    expect(expired.body.error.code).toBe("grant.not_active");

    const scheduled = await broker.call(ALICE, "POST", "/requests", {
      body: requestBody({ startAt: new Date(broker.clock.now.getTime() + 3_600_000).toISOString() }),
    });
    await broker.call(BOB, "POST", `/requests/${scheduled.body.id}/approve`);
    const early = await push(scheduled.body.grantId);
    expect(early.status).toBe(409);
    expect(early.body.error.message).toMatch(/starts at/);

    expect(await emulator.trail()).not.toContainEqual(
      expect.objectContaining({ eventName: "SendSSHPublicKey" }),
    );
  });

  it("pushes keys for ssh grants only", async () => {
    const grant = await activeGrant({ method: "tunnel", osUser: undefined, port: 22 });
    const refused = await push(grant.grantId);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("grant.not_ssh");
  });

  it("leaves a failed intent and no audit record when AWS refuses the push", async () => {
    const grant = await activeGrant();
    await emulator.faults({ operations: { SendSSHPublicKey: { rate: 1, kind: "5xx" } } });
    const failed = await push(grant.grantId);
    expect(failed.status).toBe(429);
    expect(failed.body.error.code).toBe("aws.unavailable");
    await emulator.faults({});
    expect((await auditOf(grant.id)).filter((record) => record.type === "grant.key_pushed")).toEqual([]);
    expect(await broker.store.listPushes(grant.id)).toEqual([expect.objectContaining({ status: "failed" })]);
  });
});

describe("cross-account resolution", () => {
  it("describes instances as the broker role of each account, from the broker's own user", async () => {
    const demo = await activeGrant();
    expect(demo.account).toBe("111122223333");
    const staging = await broker.call(ALICE, "POST", "/requests", {
      body: requestBody({ instanceId: "i-0fedcba9876543210", ticket: "INC-7" }),
    });
    expect(staging.status, JSON.stringify(staging.body)).toBe(201);
    expect(staging.body).toMatchObject({
      account: "444455556666",
      region: "eu-west-1",
      network: {
        publicIp: "203.0.113.25",
        privateIp: "172.31.5.6",
        route: { type: "direct", host: "203.0.113.25" },
      },
    });

    const trail = await emulator.trail();
    // Cross-account AssumeRole is recorded in the caller's and in the role's account: one call, two records.
    const assumed = trail.filter(
      (event) =>
        event.eventName === "AssumeRole" && !event.errorCode && event.recipientAccountId === "123456789012",
    );
    expect(assumed.map((event) => event.requestParameters?.roleArn).sort()).toEqual([
      "arn:aws:iam::111122223333:role/access-broker",
      "arn:aws:iam::444455556666:role/access-broker",
    ]);
    for (const event of assumed) {
      expect(event.userIdentity).toMatchObject({
        type: "IAMUser",
        arn: "arn:aws:iam::123456789012:user/access-broker",
      });
      expect(event.requestParameters?.roleSessionName).toBe("access-broker");
    }
    // Each instance is looked up only where the target that lists it says, not in every account.
    const describes = trail.filter((event) => event.eventName === "DescribeInstances");
    expect(describes.map((event) => `${event.recipientAccountId}/${event.awsRegion}`)).toEqual([
      "111122223333/us-east-1",
      "444455556666/eu-west-1",
    ]);
    expect(describes.filter((event) => event.errorCode)).toEqual([]);
    for (const event of describes)
      expect(event.userIdentity?.arn).toBe(
        `arn:aws:sts::${event.recipientAccountId}:assumed-role/access-broker/access-broker`,
      );
  });

  it("finds an instance through a tag selector in another account and region", async () => {
    const config = DEMO_CONFIG_TEXT.replace(
      "    instances: [i-0fedcba9876543210]\n    tags: { env: staging, app: web }",
      "    tags: { env: staging, app: web }",
    );
    expect(config).not.toBe(DEMO_CONFIG_TEXT);
    const tagged = await createTestBroker(config, { aws: emulator.aws });
    const created = await tagged.call(ALICE, "POST", "/requests", {
      body: requestBody({ instanceId: "i-0fedcba9876543210", ticket: "INC-7" }),
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({
      target: "staging-web",
      account: "444455556666",
      region: "eu-west-1",
    });
  });

  it("answers 404 for an instance AWS does not have and 409 for a stopped one", async () => {
    const config = DEMO_CONFIG_TEXT.replace(
      "instances: [i-0a1b2c3d4e5f60718]",
      "instances: [i-0a1b2c3d4e5f60718, i-0deadbeef00000005, i-0000000000000dead]",
    );
    const wide = await createTestBroker(config, { aws: emulator.aws });
    const missing = await wide.call(ALICE, "POST", "/requests", {
      body: requestBody({ instanceId: "i-0000000000000dead" }),
    });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("target.not_found");
    const stopped = await wide.call(ALICE, "POST", "/requests", {
      body: requestBody({ instanceId: "i-0deadbeef00000005" }),
    });
    expect(stopped.status).toBe(409);
    expect(stopped.body.error.code).toBe("target.not_running");
    expect((await wide.store.listAll({ limit: 10 })).items).toEqual([]);
  });
});

/** Opens the presigned URL the way the AWS CLI does: to the endpoint (here the emulator), Host = the EICE DNS name. */
function openTunnel(url: string): Promise<{ ws?: WebSocket; status?: number; body?: string }> {
  const parsed = new URL(url);
  const target = `${emulator.url.replace("http", "ws")}${parsed.pathname}${parsed.search}`;
  return new Promise((resolve) => {
    const ws = new WebSocket(target, { headers: { host: parsed.host } });
    ws.once("open", () => resolve({ ws }));
    ws.once("unexpected-response", (_request, response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      response.on("end", () => resolve({ status: response.statusCode, body }));
    });
    ws.once("error", () => resolve({ status: -1 }));
  });
}

function echoThrough(ws: WebSocket, text: string): Promise<string> {
  return new Promise((resolve) => {
    ws.once("message", (data: Buffer) => resolve(data.toString()));
    ws.send(Buffer.from(text), { binary: true });
  });
}

describe("POST /grants/{id}/tunnel", () => {
  it("returns a URL the endpoint accepts, through a per-grant signer session attributed to the requester", async () => {
    const grant = await activeGrant({ method: "tunnel", osUser: undefined, port: 22, durationSeconds: 1800 });
    const tunnel = await broker.call(ALICE, "POST", `/grants/${grant.grantId}/tunnel`, { body: {} });
    expect(tunnel.status, JSON.stringify(tunnel.body)).toBe(200);
    expect(tunnel.body).toEqual({
      grantId: grant.grantId,
      url: expect.stringMatching(
        new RegExp(
          `^wss://${DEMO_DNS}/openTunnel\\?instanceConnectEndpointId=${DEMO_ENDPOINT}&remotePort=22&privateIpAddress=10\\.0\\.1\\.10&maxTunnelDuration=1800&X-Amz-Algorithm`,
        ),
      ),
      expiresAt: expect.any(String),
      endpointId: DEMO_ENDPOINT,
      privateIp: "10.0.1.10",
      remotePort: 22,
      maxTunnelDuration: 1800,
    });
    const url = new URL(tunnel.body.url);
    expect(url.searchParams.get("X-Amz-Expires")).toBe("60");
    expect(url.searchParams.get("X-Amz-Security-Token")).toBeTruthy();
    expect(url.searchParams.get("X-Amz-Credential")).toMatch(
      /\/us-east-1\/ec2-instance-connect\/aws4_request$/,
    );

    const opened = await openTunnel(tunnel.body.url);
    expect(opened.status, opened.body).toBeUndefined();
    expect(await echoThrough(opened.ws as WebSocket, "SSH-2.0-test\r\n")).toBe("SSH-2.0-test\r\n");
    opened.ws?.close();

    const trail = await emulator.trail();
    const openEvent = trail.find((event) => event.eventName === "OpenTunnel" && !event.errorCode);
    expect(openEvent?.userIdentity).toMatchObject({
      type: "AssumedRole",
      arn: `arn:aws:sts::111122223333:assumed-role/access-broker-tunnel-signer/grant-${grant.grantId}`,
      sessionContext: expect.objectContaining({ sourceIdentity: ALICE }),
    });
    const assume = trail.find(
      (event) =>
        event.eventName === "AssumeRole" &&
        event.requestParameters?.roleSessionName === `grant-${grant.grantId}`,
    );
    expect(assume?.requestParameters).toMatchObject({ sourceIdentity: ALICE, durationSeconds: 900 });
    expect(assume?.userIdentity?.arn).toBe(
      "arn:aws:sts::111122223333:assumed-role/access-broker/access-broker",
    );

    const records = (await auditOf(grant.id)).filter((record) => record.type === "grant.tunnel_authorized");
    expect(records).toHaveLength(1);
    expect(records[0]?.data).toMatchObject({
      endpointId: DEMO_ENDPOINT,
      privateIp: "10.0.1.10",
      remotePort: 22,
      maxTunnelDuration: 1800,
      sessionName: `grant-${grant.grantId}`,
      urlExpiresAt: tunnel.body.expiresAt,
    });
    expect(JSON.stringify(records)).not.toContain("X-Amz-Signature");
  });

  it("caps maxTunnelDuration at what is left of the window", async () => {
    const grant = await activeGrant({ method: "tunnel", osUser: undefined, port: 22, durationSeconds: 1800 });
    broker.clock.advance(1500);
    const capped = await broker.call(ALICE, "POST", `/grants/${grant.grantId}/tunnel`, {
      body: { maxTunnelDuration: 3600 },
    });
    expect(capped.body.maxTunnelDuration).toBe(300);
    const shorter = await broker.call(ALICE, "POST", `/grants/${grant.grantId}/tunnel`, {
      body: { maxTunnelDuration: 60 },
    });
    expect(shorter.body.maxTunnelDuration).toBe(60);
    const invalid = await broker.call(ALICE, "POST", `/grants/${grant.grantId}/tunnel`, {
      body: { maxTunnelDuration: 3601 },
    });
    expect(invalid.status).toBe(400);
  });

  it("is refused by the endpoint once tampered with, or after its 60 s", async () => {
    const grant = await activeGrant({ method: "tunnel", osUser: undefined, port: 22 });
    const tunnel = await broker.call(ALICE, "POST", `/grants/${grant.grantId}/tunnel`, { body: {} });
    const tampered = tunnel.body.url.replace("privateIpAddress=10.0.1.10", "privateIpAddress=10.0.2.20");
    expect((await openTunnel(tampered)).status).toBe(403);
    const longer = tunnel.body.url.replace("maxTunnelDuration=1800", "maxTunnelDuration=3600");
    expect((await openTunnel(longer)).status).toBe(403);

    await emulator.advance(61);
    expect((await openTunnel(tunnel.body.url)).status).toBe(403);
  });

  it("cannot reach another port or IP even with a URL presigned for it: the session policy bounds the signer", async () => {
    const grant = await activeGrant({ method: "tunnel", osUser: undefined, port: 22 });
    const policy = Access.Documents.tunnelSessionPolicy({
      endpointArn: `arn:aws:ec2:us-east-1:111122223333:instance-connect-endpoint/${DEMO_ENDPOINT}`,
      remotePort: 22,
      ip: "10.0.1.10",
      maxTunnelDuration: 600,
      notAfter: new Date(grant.endsAt as string),
    });
    const sign = (remotePort: number, privateIp: string, maxTunnelDuration = 600) =>
      broker.deps.tunnels.sign({
        account: "111122223333",
        region: "us-east-1",
        session: {
          sessionName: `grant-${grant.grantId}`,
          sourceIdentity: ALICE,
          policy,
          durationSeconds: 900,
        },
        endpointId: DEMO_ENDPOINT,
        dnsName: DEMO_DNS,
        remotePort,
        privateIp,
        maxTunnelDuration,
        signingDate: emulator.now(),
      });
    const wrongPort = await openTunnel((await sign(3389, "10.0.1.10")).url);
    expect(wrongPort.status).toBe(403);
    const wrongIp = await openTunnel((await sign(22, "10.0.2.20")).url);
    expect(wrongIp.status).toBe(403);
    const tooLong = await openTunnel((await sign(22, "10.0.1.10", 601)).url);
    expect(tooLong.status).toBe(403);
    const right = await openTunnel((await sign(22, "10.0.1.10")).url);
    expect(right.ws).toBeDefined();
    right.ws?.close();
  });

  it("works for ssh grants routed through EICE, and not for ssh grants reached directly", async () => {
    const viaEice = await activeGrant();
    const tunnel = await broker.call(ALICE, "POST", `/grants/${viaEice.grantId}/tunnel`, { body: {} });
    expect(tunnel.status).toBe(200);
    expect(tunnel.body.remotePort).toBe(22);

    const staging = await broker.call(ALICE, "POST", "/requests", {
      body: requestBody({ instanceId: "i-0fedcba9876543210", ticket: "INC-7" }),
    });
    await broker.call(BOB, "POST", `/requests/${staging.body.id}/approve`);
    await broker.call(DAVE, "POST", `/requests/${staging.body.id}/approve`);
    const direct = await broker.call(ALICE, "POST", `/grants/${staging.body.grantId}/tunnel`, { body: {} });
    expect(direct.status).toBe(409);
    expect(direct.body.error.code).toBe("grant.direct_route");
    const pushed = await push(staging.body.grantId);
    expect(pushed.status).toBe(200);
    expect(pushed.body.route).toEqual({ type: "direct", host: "203.0.113.25", port: 22 });
  });

  it("is refused after revoke, for other users, and with unknown fields", async () => {
    const grant = await activeGrant({ method: "tunnel", osUser: undefined, port: 22 });
    expect((await broker.call(BOB, "POST", `/grants/${grant.grantId}/tunnel`, { body: {} })).status).toBe(
      403,
    );
    expect(
      (await broker.call(ALICE, "POST", `/grants/${grant.grantId}/tunnel`, { body: { remotePort: 3389 } }))
        .status,
    ).toBe(400);
    await broker.call(BOB, "POST", `/grants/${grant.grantId}/revoke`, { body: { reason: "done" } });
    const revoked = await broker.call(ALICE, "POST", `/grants/${grant.grantId}/tunnel`, { body: {} });
    expect(revoked.status).toBe(409);
  });
});
