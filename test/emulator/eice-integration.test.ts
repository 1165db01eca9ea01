/**
 * OpenTunnel through the real emulator core: STS session credentials scoped by the broker's per-grant
 * session policy, a URL presigned with @smithy/signature-v4 like the AWS CLI, a real websocket client, and
 * an echo server standing in for the instance's sshd.
 */
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:net";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { type EiceService, eiceService } from "../../local/emulator/eice.ts";
import type { RunningEmulator } from "../../local/emulator/server.ts";
import { presignOpenTunnel } from "./eic-fake-core.ts";
import {
  admin,
  assumeRole,
  brokerSession,
  type Credentials,
  MALLORY,
  SIGNER_ROLE,
  startTestEmulator,
  TARGET,
  trail,
} from "./helpers.ts";

const ENDPOINT = "eice-0demo00000000001";
const DNS = `${ENDPOINT}.ec2-instance-connect-endpoint.us-east-1.amazonaws.com`;
const ENDPOINT_ARN = `arn:aws:ec2:us-east-1:${TARGET}:instance-connect-endpoint/${ENDPOINT}`;
const DEMO_IP = "10.0.1.10";
const OTHER_IP = "10.0.2.20";

/** The broker's per-grant session policy (design §4). */
const sessionPolicy = (maxSeconds: number) =>
  JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      {
        Effect: "Allow",
        Action: "ec2-instance-connect:OpenTunnel",
        Resource: ENDPOINT_ARN,
        Condition: {
          NumericEquals: { "ec2-instance-connect:remotePort": "22" },
          IpAddress: { "ec2-instance-connect:privateIpAddress": `${DEMO_IP}/32` },
          NumericLessThanEquals: { "ec2-instance-connect:maxTunnelDuration": String(maxSeconds) },
        },
      },
    ],
  });

let emulator: RunningEmulator;
let eice: EiceService;
let echo: Server;
let grant: Credentials;

async function signerSession(maxSeconds = 900): Promise<Credentials> {
  const broker = await brokerSession(emulator.url);
  return assumeRole(emulator.url, broker, {
    RoleArn: SIGNER_ROLE,
    RoleSessionName: "grant-01TESTGRANT",
    SourceIdentity: "alice@example.com",
    Policy: sessionPolicy(maxSeconds),
    DurationSeconds: 900,
  });
}

const presign = (
  credentials: Credentials,
  params: { remotePort?: number; privateIpAddress?: string; maxTunnelDuration?: number } = {},
) =>
  presignOpenTunnel({
    credentials,
    region: "us-east-1",
    dnsName: DNS,
    endpointId: ENDPOINT,
    remotePort: params.remotePort ?? 22,
    privateIpAddress: params.privateIpAddress ?? DEMO_IP,
    ...(params.maxTunnelDuration === undefined ? {} : { maxTunnelDuration: params.maxTunnelDuration }),
    signingDate: emulator.core.now(),
  }).then((signed) => signed.pathAndQuery);

type Result = { ok: true; ws: WebSocket } | { ok: false; status: number; body: string };
function connect(pathAndQuery: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${emulator.port}${pathAndQuery}`, { headers: { host: DNS } });
    ws.on("open", () => resolve({ ok: true, ws }));
    ws.on("unexpected-response", (request, response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => {
        body += chunk.toString("utf8");
      });
      response.on("end", () => {
        resolve({ ok: false, status: response.statusCode ?? 0, body });
        request.destroy();
      });
    });
    ws.on("error", reject);
  });
}

const closed = (ws: WebSocket) =>
  new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );

async function until(predicate: () => boolean, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

beforeAll(async () => {
  echo = createServer((socket) => {
    socket.pipe(socket);
    socket.on("error", () => socket.destroy());
  });
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
  emulator = await startTestEmulator({
    upstreams: { "demo-sshd": { host: "127.0.0.1", port: (echo.address() as { port: number }).port } },
    services: (core) => {
      eice = eiceService(core, { sweepIntervalMs: 50 });
      return [eice];
    },
  });
});
beforeEach(async () => {
  await admin(emulator.url, "reset", {});
  grant = await signerSession();
});
afterEach(async () => {
  eice.tunnels.close({}, { code: 1000, reason: "test over" });
  await until(() => eice.tunnels.list().length === 0);
});
afterAll(async () => {
  await emulator?.close();
  await new Promise((resolve) => echo.close(resolve));
});

describe("OpenTunnel through the emulator", () => {
  it("opens a tunnel with the grant's session credentials, echoes binary frames and logs who it was for", async () => {
    const result = await connect(await presign(grant, { maxTunnelDuration: 900 }));
    if (!result.ok) throw new Error(`${result.status} ${result.body}`);
    const payload = randomBytes(150_000);
    const received: Buffer[] = [];
    result.ws.on("message", (data: Buffer, isBinary) => {
      expect(isBinary).toBe(true);
      received.push(data);
    });
    result.ws.send(payload.subarray(0, 65_000));
    result.ws.send(payload.subarray(65_000));
    await until(() => Buffer.concat(received).length === payload.length);
    expect(Buffer.concat(received).equals(payload)).toBe(true);
    result.ws.close();

    const [event] = await trail(emulator.url, "OpenTunnel");
    expect(event).toMatchObject({
      eventSource: "ec2-instance-connect.amazonaws.com",
      eventName: "OpenTunnel",
      awsRegion: "us-east-1",
      readOnly: false,
      requestParameters: {
        instanceConnectEndpointId: ENDPOINT,
        maxTunnelDuration: "900",
        remotePort: "22",
        privateIpAddress: DEMO_IP,
      },
      responseElements: null,
      resources: [{ accountId: TARGET, type: "AWS::EC2::InstanceConnectEndpoint", ARN: ENDPOINT_ARN }],
      userIdentity: {
        type: "AssumedRole",
        arn: `arn:aws:sts::${TARGET}:assumed-role/access-broker-tunnel-signer/grant-01TESTGRANT`,
        sessionContext: { sourceIdentity: "alice@example.com" },
      },
    });
    expect(event.errorCode).toBeUndefined();
  });

  it.each([
    [
      "a port the session policy does not allow",
      { remotePort: 3389, maxTunnelDuration: 900 },
      403,
      "AccessDenied",
    ],
    [
      "an IP outside the session policy's /32",
      { privateIpAddress: OTHER_IP, maxTunnelDuration: 900 },
      403,
      "AccessDenied",
    ],
    ["no maxTunnelDuration while the policy caps it below 3600", {}, 403, "AccessDenied"],
    ["a maxTunnelDuration above the policy's cap", { maxTunnelDuration: 901 }, 403, "AccessDenied"],
    ["a port EICE does not forward", { remotePort: 80, maxTunnelDuration: 900 }, 400, "ValidationException"],
  ])("refuses %s and logs the denied attempt", async (_name, params, status, errorCode) => {
    const result = await connect(await presign(grant, params));
    expect(result).toMatchObject({ ok: false, status });
    const [event] = await trail(emulator.url, "OpenTunnel");
    expect(event).toMatchObject({ errorCode, responseElements: null });
    if (!result.ok) expect(event.errorMessage).toBe(result.body.slice(result.body.indexOf(": ") + 2, -1));
  });

  it("refuses a tampered signature and a URL used more than 60 s after signing", async () => {
    const path = await presign(grant, { maxTunnelDuration: 900 });
    const tampered = path.replace(
      /X-Amz-Signature=([0-9a-f])/,
      (_m, c) => `X-Amz-Signature=${c === "a" ? "b" : "a"}`,
    );
    expect(await connect(tampered)).toMatchObject({ ok: false, status: 403 });
    await admin(emulator.url, "clock", { advanceSeconds: 61 });
    const expired = await connect(path);
    expect(expired).toMatchObject({ ok: false, status: 403 });
    const events = await trail(emulator.url, "OpenTunnel");
    expect(events).toHaveLength(2);
    expect(events.every((e) => typeof e.errorCode === "string")).toBe(true);
  });

  it("refuses another account's principal even with a wide-open policy of its own", async () => {
    const result = await connect(await presign(MALLORY, { maxTunnelDuration: 900 }));
    expect(result).toMatchObject({ ok: false, status: 403 });
    if (!result.ok) expect(result.body).toMatch(/no resource-based policy allows/);
  });

  it("cuts the tunnel when emulator time passes maxTunnelDuration (close 1000 with a reason)", async () => {
    const result = await connect(await presign(grant, { maxTunnelDuration: 600 }));
    if (!result.ok) throw new Error(result.body);
    const done = closed(result.ws);
    await admin(emulator.url, "clock", { advanceSeconds: 600 });
    expect(await done).toEqual({ code: 1000, reason: "maxTunnelDuration of 600 seconds reached" });
  });

  it("refuses the 21st concurrent tunnel of the endpoint", async () => {
    const paths = await Promise.all(
      Array.from({ length: 21 }, () => presign(grant, { maxTunnelDuration: 900 })),
    );
    const opened: WebSocket[] = [];
    for (const path of paths.slice(0, 20)) {
      const result = await connect(path);
      if (!result.ok) throw new Error(result.body);
      opened.push(result.ws);
    }
    const refused = await connect(paths[20] as string);
    expect(refused).toMatchObject({ ok: false, status: 429 });
    expect(eice.tunnels.count(ENDPOINT)).toBe(20);
    const events = await trail(emulator.url, "OpenTunnel");
    expect(events.filter((e) => e.errorCode === undefined)).toHaveLength(20);
    expect(events.at(-1)).toMatchObject({ errorCode: "ConnectionLimitExceeded" });
  });
});
