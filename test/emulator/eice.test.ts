import { createHash, randomBytes } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { eiceService } from "../../local/emulator/eice.ts";
import {
  ACCOUNT,
  type Credentials,
  credentialsOf,
  DEMO_INSTANCE,
  DEMO_IP,
  DNS_NAME,
  demoInventory,
  ENDPOINT_ID,
  type FakeCore,
  type FakePrincipal,
  FIPS_DNS_NAME,
  fakeCore,
  OTHER_IP,
  presignOpenTunnel,
  REGION,
  STOPPED_IP,
  serve,
  sessionPrincipal,
  sigv4Signature,
  type TestServer,
} from "./eic-fake-core.ts";

const ENDPOINT_ARN = `arn:aws:ec2:${REGION}:${ACCOUNT}:instance-connect-endpoint/${ENDPOINT_ID}`;
const signerRole = {
  Statement: [
    {
      Effect: "Allow" as const,
      Action: "ec2-instance-connect:OpenTunnel",
      Resource: `arn:aws:ec2:*:${ACCOUNT}:instance-connect-endpoint/*`,
    },
  ],
};
/** The broker's per-grant session policy: this endpoint, port 22, one IP, ≤ maxSeconds. */
const grantSession = (name: string, maxSeconds = 3600) =>
  sessionPrincipal({
    name,
    policies: [signerRole],
    sessionPolicy: {
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
    },
  });
const grant = grantSession("grant-01HX");
const shortGrant = grantSession("grant-short", 600);
const wide = sessionPrincipal({ name: "wide", policies: [signerRole] });

/** A TCP echo server standing in for the instance's sshd; "QUIT" makes it hang up. */
async function echoServer(): Promise<Server & { port: number }> {
  const server = createServer((socket) => {
    socket.on("data", (data) => (data.toString() === "QUIT" ? socket.end() : socket.write(data)));
    socket.on("error", () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return Object.assign(server, { port: (server.address() as { port: number }).port });
}

type Opened = { ok: true; ws: WebSocket; requestId: string | undefined };
type Refused = { ok: false; status: number; body: string; requestId: string | undefined };

/** Connects like the CLI: to the emulator's address, with `Host: <endpoint DNS name>` (what was signed). */
function connect(server: TestServer, pathAndQuery: string, host = DNS_NAME): Promise<Opened | Refused> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}${pathAndQuery}`, { headers: { host } });
    let requestId: string | undefined;
    ws.on("upgrade", (response) => {
      requestId = response.headers["x-amzn-requestid"] as string | undefined;
    });
    ws.on("open", () => resolve({ ok: true, ws, requestId }));
    ws.on("unexpected-response", (request, response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        resolve({
          ok: false,
          status: response.statusCode ?? 0,
          body: Buffer.concat(chunks).toString("utf8"),
          requestId: response.headers["x-amzn-requestid"] as string | undefined,
        });
        request.destroy();
      });
    });
    ws.on("error", reject);
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) =>
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
}

async function until(predicate: () => boolean, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

let core: FakeCore;
let eice: ReturnType<typeof eiceService>;
let server: TestServer;
let echo: Server & { port: number };

const url = (
  principal: FakePrincipal,
  params: {
    remotePort?: number | string;
    privateIpAddress?: string;
    maxTunnelDuration?: number | string;
  } = {},
  more: {
    credentials?: Credentials;
    signingDate?: Date;
    expiresIn?: number;
    endpointId?: string;
    dnsName?: string;
  } = {},
) =>
  presignOpenTunnel({
    credentials: more.credentials ?? credentialsOf(principal),
    region: REGION,
    dnsName: more.dnsName ?? DNS_NAME,
    endpointId: more.endpointId ?? ENDPOINT_ID,
    remotePort: params.remotePort ?? 22,
    privateIpAddress: params.privateIpAddress ?? DEMO_IP,
    ...(params.maxTunnelDuration === undefined ? {} : { maxTunnelDuration: params.maxTunnelDuration }),
    signingDate: more.signingDate ?? core.now(),
    ...(more.expiresIn === undefined ? {} : { expiresIn: more.expiresIn }),
  }).then((u) => u.pathAndQuery);

async function open(principal: FakePrincipal, params: Parameters<typeof url>[1] = {}): Promise<Opened> {
  const result = await connect(server, await url(principal, params));
  if (!result.ok) throw new Error(`expected a tunnel, got ${result.status} ${result.body}`);
  return result;
}

const lastTrail = () => core.trail.at(-1);

beforeAll(async () => {
  echo = await echoServer();
  core = fakeCore({
    inventory: demoInventory(),
    principals: [grant, shortGrant, wide],
    upstreams: { "demo-sshd": { host: "127.0.0.1", port: echo.port } },
  });
  eice = eiceService(core);
  server = await serve([eice]);
});
afterEach(async () => {
  eice.tunnels.close({}, { code: 1000, reason: "test over" });
  await until(() => eice.tunnels.list().length === 0);
  core.trail.length = 0;
  core.upstreams.set("demo-sshd", { host: "127.0.0.1", port: echo.port });
});
afterAll(async () => {
  await server.close();
  await new Promise((resolve) => echo.close(resolve));
});

describe("presigning like the AWS CLI", () => {
  it("reproduces the CLI's functional-test signature, parameters in the CLI's order", async () => {
    const credentials = { accessKeyId: "access_key", secretAccessKey: "secret_key" };
    const host = "eice-123.ec2-instance-connect-endpoint.us-west-2.amazonaws.com";
    const { url: signed } = await presignOpenTunnel({
      credentials,
      region: "us-west-2",
      dnsName: host,
      endpointId: "eice-123",
      remotePort: 22,
      privateIpAddress: "10.0.0.0",
      maxTunnelDuration: 1,
      signingDate: new Date("2020-01-01T01:01:01Z"),
    });
    const parsed = new URL(signed);
    expect(parsed.host).toBe(host);
    expect([...parsed.searchParams.keys()]).toEqual([
      "instanceConnectEndpointId",
      "remotePort",
      "privateIpAddress",
      "maxTunnelDuration",
      "X-Amz-Algorithm",
      "X-Amz-Credential",
      "X-Amz-Date",
      "X-Amz-Expires",
      "X-Amz-SignedHeaders",
      "X-Amz-Signature",
    ]);
    const q = Object.fromEntries(parsed.searchParams);
    expect(q).toMatchObject({
      "X-Amz-Credential": "access_key/20200101/us-west-2/ec2-instance-connect/aws4_request",
      "X-Amz-Expires": "60",
      "X-Amz-SignedHeaders": "host",
      "X-Amz-Signature": "3a56740422a5b9aebd22d860b7a30c729e459a6f71a83bc0de3a2b44b7353f28",
    });
    // The fake core's verifier computes the same value from the same inputs.
    const { "X-Amz-Signature": _signature, ...unsigned } = q;
    expect(
      sigv4Signature({
        secretAccessKey: "secret_key",
        method: "GET",
        path: "/openTunnel",
        query: unsigned,
        headers: { host },
        signedHeaders: ["host"],
        payloadHash: createHash("sha256").update("").digest("hex"),
        amzDate: "20200101T010101Z",
        scope: { date: "20200101", region: "us-west-2", service: "ec2-instance-connect" },
      }),
    ).toBe(q["X-Amz-Signature"]);
  });
});

describe("OpenTunnel", () => {
  it("proxies bytes both ways as binary frames and sets x-amzn-RequestId on the 101", async () => {
    const { ws, requestId } = await open(grant);
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    const payload = randomBytes(200_000);
    const received: Buffer[] = [];
    let textFrames = 0;
    ws.on("message", (data: Buffer, isBinary) => {
      if (!isBinary) textFrames++;
      received.push(data);
    });
    for (let i = 0; i < payload.length; i += 65_000) ws.send(payload.subarray(i, i + 65_000));
    await until(() => Buffer.concat(received).length >= payload.length);
    expect(Buffer.concat(received).equals(payload)).toBe(true);
    expect(textFrames).toBe(0);

    expect(eice.tunnels.list(ENDPOINT_ID)).toMatchObject([
      {
        id: requestId,
        instanceId: DEMO_INSTANCE,
        privateIpAddress: DEMO_IP,
        remotePort: 22,
        maxTunnelDuration: 3600,
        callerArn: grant.caller.arn,
        bytesToInstance: payload.length,
        bytesFromInstance: payload.length,
      },
    ]);
    ws.close();
    await until(() => eice.tunnels.count(ENDPOINT_ID) === 0);
  });

  it("records the attempt as a real-shaped OpenTunnel event and authorizes with the condition keys", async () => {
    const { ws, requestId } = await open(grant);
    ws.close();
    expect(core.trail).toHaveLength(1);
    expect(lastTrail()).toEqual({
      eventSource: "ec2-instance-connect.amazonaws.com",
      eventName: "OpenTunnel",
      region: REGION,
      accountId: ACCOUNT,
      caller: grant.caller,
      sourceIPAddress: "127.0.0.1",
      requestParameters: {
        instanceConnectEndpointId: ENDPOINT_ID,
        remotePort: "22",
        privateIpAddress: DEMO_IP,
      },
      responseElements: null,
      requestId,
      resources: [{ accountId: ACCOUNT, type: "AWS::EC2::InstanceConnectEndpoint", ARN: ENDPOINT_ARN }],
      readOnly: false,
      host: DNS_NAME,
    });
    expect(core.authorizations.at(-1)).toEqual({
      action: "ec2-instance-connect:OpenTunnel",
      resource: ENDPOINT_ARN,
      context: {
        "ec2-instance-connect:remotePort": 22,
        "ec2-instance-connect:privateIpAddress": DEMO_IP,
        "ec2-instance-connect:maxTunnelDuration": 3600,
      },
    });
    const timed = await open(grant, { maxTunnelDuration: 900 });
    timed.ws.close();
    expect(lastTrail()?.requestParameters).toEqual({
      instanceConnectEndpointId: ENDPOINT_ID,
      remotePort: "22",
      privateIpAddress: DEMO_IP,
      maxTunnelDuration: "900",
    });
  });

  it("answers to the endpoint's FIPS DNS name too", async () => {
    const path = await url(grant, {}, { dnsName: FIPS_DNS_NAME });
    const result = await connect(server, path, FIPS_DNS_NAME);
    expect(result.ok).toBe(true);
    if (result.ok) result.ws.close();
  });

  it("closes with 1000 when the instance ends the connection", async () => {
    const { ws } = await open(grant);
    const done = closed(ws);
    ws.send(Buffer.from("QUIT"));
    expect(await done).toEqual({ code: 1000, reason: "" });
    await until(() => eice.tunnels.count(ENDPOINT_ID) === 0);
  });

  it("closes with 1003 when the client sends a TEXT frame", async () => {
    const { ws } = await open(grant);
    const done = closed(ws);
    ws.send("hello");
    expect((await done).code).toBe(1003);
  });

  type Case = [string, () => Promise<string>, number, string, RegExp, string?];
  it.each<Case>([
    [
      "a tampered signature",
      async () =>
        (await url(grant)).replace(
          /X-Amz-Signature=([0-9a-f])/,
          (_m, c) => `X-Amz-Signature=${c === "0" ? "1" : "0"}`,
        ),
      403,
      "SignatureDoesNotMatch",
      /signature/i,
    ],
    [
      "a URL signed more than 60 s ago",
      async () => url(grant, {}, { signingDate: new Date(core.now().getTime() - 61_000) }),
      403,
      "AccessDenied",
      /expired/i,
    ],
    [
      "a URL valid for longer than 60 s",
      async () => url(grant, {}, { expiresIn: 3600 }),
      403,
      "AccessDenied",
      /Expires/,
    ],
    [
      "unknown credentials",
      async () => url(grant, {}, { credentials: { accessKeyId: "AKIANOBODY", secretAccessKey: "x" } }),
      403,
      "InvalidClientTokenId",
      /token/,
    ],
    [
      "port 80 (EICE forwards 22 and 3389 only)",
      async () => url(wide, { remotePort: 80 }),
      400,
      "ValidationException",
      /22 and 3389/,
    ],
    [
      "a non-numeric port",
      async () => url(wide, { remotePort: "ssh" }),
      400,
      "ValidationException",
      /not a port/,
    ],
    [
      "a port the session policy does not allow",
      async () => url(grant, { remotePort: 3389 }),
      403,
      "AccessDeniedException",
      /because no session policy allows/,
      "AccessDenied",
    ],
    [
      "an IP outside the policy's /32",
      async () => url(grant, { privateIpAddress: OTHER_IP }),
      403,
      "AccessDeniedException",
      /not authorized to perform: ec2-instance-connect:OpenTunnel/,
      "AccessDenied",
    ],
    [
      "an IP no instance in the endpoint's VPC holds",
      async () => url(wide, { privateIpAddress: "10.0.9.9" }),
      400,
      "ValidationException",
      /No instance in vpc-0demo0000000001/,
    ],
    [
      "an address that is not an IP",
      async () => url(wide, { privateIpAddress: "demo.internal" }),
      400,
      "ValidationException",
      /not an IP address/,
    ],
    [
      "maxTunnelDuration 0",
      async () => url(wide, { maxTunnelDuration: 0 }),
      400,
      "ValidationException",
      /between 1 and 3600/,
    ],
    [
      "maxTunnelDuration 3601",
      async () => url(wide, { maxTunnelDuration: 3601 }),
      400,
      "ValidationException",
      /between 1 and 3600/,
    ],
    [
      "a policy limit of 600 s without maxTunnelDuration",
      async () => url(shortGrant),
      403,
      "AccessDeniedException",
      /not authorized/,
      "AccessDenied",
    ],
    [
      "a policy limit of 600 s with maxTunnelDuration 601",
      async () => url(shortGrant, { maxTunnelDuration: 601 }),
      403,
      "AccessDeniedException",
      /not authorized/,
      "AccessDenied",
    ],
    [
      "an instanceConnectEndpointId that is not the Host's endpoint",
      async () => url(grant, {}, { endpointId: "eice-0other000000001" }),
      400,
      "ValidationException",
      /does not match/,
    ],
    [
      "a stopped instance",
      async () => url(wide, { privateIpAddress: STOPPED_IP }),
      502,
      "InstanceConnectionFailed",
      /is stopped/,
    ],
    [
      "a port with no upstream in the emulator",
      async () => url(wide, { remotePort: 3389 }),
      502,
      "InstanceConnectionFailed",
      /upstream "demo-rdp"/,
    ],
  ])(
    "refuses %s before the upgrade, with a text body, and logs it",
    async (_name, makeUrl, status, code, message, trailCode) => {
      const result = await connect(server, await makeUrl());
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.status).toBe(status);
      expect(result.body).toMatch(new RegExp(`^${code}: `));
      expect(result.body).toMatch(message);
      expect(result.requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(eice.tunnels.count(ENDPOINT_ID)).toBe(0);
      expect(core.trail).toHaveLength(1);
      expect(lastTrail()).toMatchObject({
        eventName: "OpenTunnel",
        errorCode: trailCode ?? code,
        errorMessage: result.body.slice(code.length + 2, -1),
        requestId: result.requestId,
        responseElements: null,
        resources: [{ ARN: ENDPOINT_ARN }],
      });
    },
  );

  it("logs the parameters of a refused request as strings, as sent", async () => {
    await connect(server, await url(grant, { remotePort: 3389, maxTunnelDuration: 60 }));
    expect(lastTrail()?.requestParameters).toEqual({
      instanceConnectEndpointId: ENDPOINT_ID,
      remotePort: "3389",
      privateIpAddress: DEMO_IP,
      maxTunnelDuration: "60",
    });
    expect(lastTrail()?.caller).toEqual(grant.caller);
  });

  it("accepts a URL up to 60 s after signing", async () => {
    const path = await url(grant, {}, { signingDate: new Date(core.now().getTime() - 59_000) });
    const result = await connect(server, path);
    expect(result.ok).toBe(true);
    if (result.ok) result.ws.close();
  });

  it("accepts maxTunnelDuration within the policy's limit", async () => {
    const { ws } = await open(shortGrant, { maxTunnelDuration: 600 });
    expect(eice.tunnels.list()[0]?.maxTunnelDuration).toBe(600);
    ws.close();
  });

  it("answers 404 to a Host that is no endpoint, without logging (no account to log in)", async () => {
    const result = await connect(server, await url(grant), "eice-0nothere.example.com");
    expect(result).toMatchObject({ ok: false, status: 404 });
    expect(core.trail).toEqual([]);
  });

  it("refuses when the upstream is down, and passes injected faults through", async () => {
    const dead = await echoServer();
    const port = dead.port;
    await new Promise((resolve) => dead.close(resolve));
    core.upstreams.set("demo-sshd", { host: "127.0.0.1", port });
    const refused = await connect(server, await url(grant));
    expect(refused).toMatchObject({ ok: false, status: 502 });
    if (!refused.ok) expect(refused.body).toMatch(/ECONNREFUSED/);

    core.failNext("OpenTunnel", { status: 503, code: "ServiceUnavailable", message: "try later" });
    const faulted = await connect(server, await url(grant));
    expect(faulted).toMatchObject({ ok: false, status: 503, body: "ServiceUnavailable: try later\n" });
    expect(lastTrail()).toMatchObject({ errorCode: "ServiceUnavailable", caller: grant.caller });
  });
});

describe("limits", () => {
  it("refuses the 21st concurrent tunnel of an endpoint with 429, and accepts again once one closes", async () => {
    const tunnels = await Promise.all(Array.from({ length: 20 }, () => open(wide)));
    expect(eice.tunnels.count(ENDPOINT_ID)).toBe(20);
    const refused = await connect(server, await url(wide));
    expect(refused).toMatchObject({ ok: false, status: 429 });
    if (!refused.ok) expect(refused.body).toMatch(/^ConnectionLimitExceeded: .*20 concurrent/);
    expect(lastTrail()).toMatchObject({ errorCode: "ConnectionLimitExceeded" });

    tunnels[0]?.ws.close();
    await until(() => eice.tunnels.count(ENDPOINT_ID) === 19);
    const again = await open(wide);
    expect(eice.tunnels.count(ENDPOINT_ID)).toBe(20);
    again.ws.close();
  });

  it("counts tunnels still connecting to the instance, so a burst cannot overshoot", async () => {
    const small = eiceService(core, { maxConnectionsPerEndpoint: 3 });
    const smallServer = await serve([small]);
    try {
      const paths = await Promise.all(Array.from({ length: 6 }, () => url(wide)));
      const results = await Promise.all(paths.map((p) => connect(smallServer, p)));
      expect(results.filter((r) => r.ok)).toHaveLength(3);
      expect(results.filter((r) => !r.ok).map((r) => (r.ok ? 0 : r.status))).toEqual([429, 429, 429]);
      for (const r of results) if (r.ok) r.ws.close();
    } finally {
      await smallServer.close();
    }
  });
});

describe("maxTunnelDuration", () => {
  it("cuts the tunnel once emulator time passes maxTunnelDuration, with 1000 and a reason", async () => {
    const { ws } = await open(grant, { maxTunnelDuration: 30 });
    const done = closed(ws);
    core.advance(29_999);
    expect(eice.tunnels.sweep()).toBe(0);
    core.advance(1);
    expect(eice.tunnels.sweep()).toBe(1);
    expect(await done).toEqual({ code: 1000, reason: "maxTunnelDuration of 30 seconds reached" });
    await until(() => eice.tunnels.count(ENDPOINT_ID) === 0);
  });

  it("notices emulator time on its own timer", async () => {
    const quick = eiceService(core, { sweepIntervalMs: 20 });
    const quickServer = await serve([quick]);
    try {
      const result = await connect(quickServer, await url(grant, { maxTunnelDuration: 120 }));
      if (!result.ok) throw new Error(result.body);
      const done = closed(result.ws);
      core.advance(120_000);
      expect(await done).toEqual({ code: 1000, reason: "maxTunnelDuration of 120 seconds reached" });
    } finally {
      await quickServer.close();
    }
  });

  it("cuts the tunnel after maxTunnelDuration of real time even if emulator time stands still", async () => {
    const started = Date.now();
    const { ws } = await open(grant, { maxTunnelDuration: 1 });
    expect((await closed(ws)).code).toBe(1000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it("force-closes an endpoint's tunnels with 1008 and the given reason", async () => {
    const a = await open(grant);
    const b = await open(wide);
    const closes = [closed(a.ws), closed(b.ws)];
    expect(eice.tunnels.close({ endpointId: ENDPOINT_ID }, { reason: "grant revoked" })).toBe(2);
    expect(await Promise.all(closes)).toEqual([
      { code: 1008, reason: "grant revoked" },
      { code: 1008, reason: "grant revoked" },
    ]);
    await until(() => eice.tunnels.list().length === 0);
  });
});

describe("streaming", () => {
  const FIFTY_MB = 50 * 1024 * 1024;

  it("streams 50 MB from the instance with bounded buffering while the client is slow", async () => {
    let written = 0;
    const source = createServer((socket: Socket) => {
      const chunk = randomBytes(64 * 1024);
      const pump = () => {
        while (written < FIFTY_MB) {
          written += chunk.length;
          if (!socket.write(chunk)) return void socket.once("drain", pump);
        }
        socket.end();
      };
      pump();
    });
    await new Promise<void>((resolve) => source.listen(0, "127.0.0.1", resolve));
    core.upstreams.set("demo-sshd", { host: "127.0.0.1", port: (source.address() as { port: number }).port });
    try {
      const { ws } = await open(grant);
      ws.pause();
      await new Promise((resolve) => setTimeout(resolve, 500));
      const readByEmulator = eice.tunnels.list()[0]?.bytesFromInstance ?? 0;
      // Kernel socket buffers plus the 1 MiB high-water mark; nowhere near the 50 MB on offer.
      expect(readByEmulator).toBeLessThan(16 * 1024 * 1024);
      expect(written).toBeLessThan(FIFTY_MB);

      let received = 0;
      ws.on("message", (data: Buffer) => {
        received += data.length;
      });
      const done = closed(ws);
      ws.resume();
      expect((await done).code).toBe(1000);
      expect(received).toBe(FIFTY_MB);
    } finally {
      await new Promise((resolve) => source.close(resolve));
    }
  });

  it("streams 50 MB to the instance with bounded buffering while the instance is slow", async () => {
    let sink: Socket | undefined;
    const hash = createHash("sha256");
    let sunk = 0;
    const target = createServer((socket: Socket) => {
      sink = socket;
      socket.pause();
      socket.on("data", (data: Buffer) => {
        hash.update(data);
        sunk += data.length;
      });
    });
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    core.upstreams.set("demo-sshd", { host: "127.0.0.1", port: (target.address() as { port: number }).port });
    try {
      const { ws } = await open(grant);
      const sent = createHash("sha256");
      let offered = 0;
      // Like the CLI: read ≤ 65,000 bytes, send one binary frame, wait for the send to complete.
      const sending = (async () => {
        while (offered < FIFTY_MB) {
          const chunk = randomBytes(Math.min(65_000, FIFTY_MB - offered));
          sent.update(chunk);
          offered += chunk.length;
          await new Promise<void>((resolve, reject) => ws.send(chunk, (e) => (e ? reject(e) : resolve())));
          while (ws.bufferedAmount > 1024 * 1024) await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(eice.tunnels.list()[0]?.bytesToInstance ?? 0).toBeLessThan(16 * 1024 * 1024);
      expect(offered).toBeLessThan(FIFTY_MB);

      sink?.resume();
      await sending;
      await until(() => sunk === FIFTY_MB, 30_000);
      expect(hash.digest("hex")).toBe(sent.digest("hex"));
      ws.close();
    } finally {
      sink?.destroy();
      await new Promise((resolve) => target.close(resolve));
    }
  });
});
