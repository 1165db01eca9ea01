import type { IncomingMessage } from "node:http";
import { connect } from "node:net";
import { LookupEventsCommand } from "@aws-sdk/client-cloudtrail";
import { DescribeInstancesCommand, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { EmulatorService } from "../../local/emulator/contract.ts";
import type { RunningEmulator } from "../../local/emulator/server.ts";
import { NodeSha256 } from "../../local/emulator/sigv4.ts";
import {
  admin,
  BROKER,
  brokerSession,
  type Credentials,
  clients,
  rejection,
  startTestEmulator,
  trail,
} from "./helpers.ts";

let emulator: RunningEmulator;
let url: string;

/** A stand-in for the EIC/EICE services: answers GET /custom, upgrades on /ws, throws on /boom. */
const custom: EmulatorService = {
  async handle(request: IncomingMessage, _body, response) {
    if (request.url === "/custom") {
      response.writeHead(200, { "content-type": "text/plain" }).end("custom");
      return true;
    }
    if (request.url === "/boom") throw new Error("service bug");
    return false;
  },
  async upgrade(request, socket) {
    if (request.url !== "/ws") return false;
    socket.end("HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n");
    return true;
  },
};

beforeAll(async () => {
  emulator = await startTestEmulator({ services: () => [custom] });
  url = emulator.url;
});
afterAll(() => emulator.close());
beforeEach(() => admin(url, "reset", {}));

const wrong = (credentials: Credentials, change: Partial<Credentials>) => ({ ...credentials, ...change });

describe("authentication through the real SDK clients", () => {
  it("rejects a wrong secret, with each protocol's error code", async () => {
    const bad = wrong(BROKER, { secretAccessKey: "not-the-secret" });
    const { sts, ec2, cloudtrail } = clients(url, bad);
    expect((await rejection(sts.send(new GetCallerIdentityCommand({})))).name).toBe("SignatureDoesNotMatch");
    expect((await rejection(ec2.send(new DescribeInstancesCommand({})))).name).toBe("AuthFailure");
    expect((await rejection(cloudtrail.send(new LookupEventsCommand({})))).name).toBe(
      "InvalidSignatureException",
    );
  });

  it("rejects an unknown access key", async () => {
    const { sts, ec2, cloudtrail } = clients(url, wrong(BROKER, { accessKeyId: "AKIAUNKNOWNKEY000000" }));
    const error = await rejection(sts.send(new GetCallerIdentityCommand({})));
    expect(error.name).toBe("InvalidClientTokenId");
    expect(error.$metadata.httpStatusCode).toBe(403);
    expect((await rejection(ec2.send(new DescribeInstancesCommand({})))).name).toBe("AuthFailure");
    expect((await rejection(cloudtrail.send(new LookupEventsCommand({})))).name).toBe(
      "UnrecognizedClientException",
    );
  });

  it("rejects a tampered or missing session token", async () => {
    const session = await brokerSession(url);
    const tampered = clients(url, wrong(session, { sessionToken: `${session.sessionToken}x` })).sts;
    expect((await rejection(tampered.send(new GetCallerIdentityCommand({})))).name).toBe(
      "InvalidClientTokenId",
    );
    const { sessionToken: _, ...withoutToken } = session;
    const missing = clients(url, withoutToken).sts;
    expect((await rejection(missing.send(new GetCallerIdentityCommand({})))).name).toBe(
      "InvalidClientTokenId",
    );
  });

  it("rejects requests signed too long ago (and the SDK corrects its clock from the Date header)", async () => {
    const skewed = new STSClient({
      endpoint: url,
      region: "us-east-1",
      credentials: BROKER,
      maxAttempts: 1,
      systemClockOffset: -600_000,
    });
    const error = await rejection(skewed.send(new GetCallerIdentityCommand({})));
    expect(error.name).toBe("SignatureDoesNotMatch");
    expect(error.message).toMatch(/Signature expired/);
    // When emulator time moves ahead, the SDK corrects its clock from the Date header and retries.
    await admin(url, "clock", { advanceSeconds: 600 });
    const following = new STSClient({
      endpoint: url,
      region: "us-east-1",
      credentials: BROKER,
      maxAttempts: 2,
    });
    expect((await following.send(new GetCallerIdentityCommand({}))).Account).toBe("123456789012");
  });

  it("rejects unsigned requests and expired presigned query auth", async () => {
    const unsigned = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "Action=GetCallerIdentity&Version=2011-06-15",
    });
    expect(unsigned.status).toBe(403);
    expect(await unsigned.text()).toMatch(/<Code>MissingAuthenticationToken<\/Code>/);

    const host = new URL(url).host;
    const signer = new SignatureV4({
      service: "sts",
      region: "us-east-1",
      credentials: BROKER,
      sha256: NodeSha256,
    });
    const presign = (signingDate: Date) =>
      signer.presign(
        new HttpRequest({
          method: "GET",
          hostname: "127.0.0.1",
          path: "/",
          headers: { host },
          query: { Action: "GetCallerIdentity", Version: "2011-06-15" },
        }),
        { expiresIn: 60, signingDate },
      );
    const toUrl = (query: Record<string, unknown> | undefined) =>
      `${url}/?${new URLSearchParams(query as Record<string, string>).toString()}`;
    const fresh = await fetch(toUrl((await presign(new Date())).query));
    expect(fresh.status).toBe(200);
    expect(await fresh.text()).toMatch(/<Arn>arn:aws:iam::123456789012:user\/access-broker<\/Arn>/);
    const stale = await fetch(toUrl((await presign(new Date(Date.now() - 120_000))).query));
    expect(stale.status).toBe(403);
    expect(await stale.text()).toMatch(/Signature expired/);
  });
});

describe("faults", () => {
  it("throttles, fails and slows chosen operations, as seen through the SDK", async () => {
    const session = await brokerSession(url);
    const { ec2, sts } = clients(url, session);
    await admin(url, "faults", {
      operations: {
        DescribeInstances: { rate: 1, kind: "throttle" },
        "sts:GetCallerIdentity": { rate: 1, kind: "5xx" },
      },
    });
    const throttled = await rejection(ec2.send(new DescribeInstancesCommand({})));
    expect(throttled.name).toBe("RequestLimitExceeded");
    expect(throttled.$metadata.httpStatusCode).toBe(503);
    const failed = await rejection(sts.send(new GetCallerIdentityCommand({})));
    expect(failed.name).toBe("InternalFailure");
    expect(failed.$fault).toBe("server");
    expect(failed.$metadata.httpStatusCode).toBe(500);
    const [event] = await trail(url, "DescribeInstances");
    expect(event.errorCode).toBe("Client.RequestLimitExceeded");

    await admin(url, "faults", { operations: { "*": { rate: 1, kind: "latency", latencyMs: 300 } } });
    const started = Date.now();
    expect((await ec2.send(new DescribeInstancesCommand({}))).Reservations?.length).toBeGreaterThan(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);

    await admin(url, "faults", {});
    const quick = Date.now();
    await ec2.send(new DescribeInstancesCommand({}));
    expect(Date.now() - quick).toBeLessThan(290);
  });

  it("is reproducible with a seed", async () => {
    const ec2 = clients(url, await brokerSession(url)).ec2;
    const run = async () => {
      await admin(url, "faults", {
        seed: 7,
        operations: { DescribeInstances: { rate: 0.5, kind: "throttle" } },
      });
      const outcomes: boolean[] = [];
      for (let i = 0; i < 12; i++) {
        outcomes.push(
          await ec2.send(new DescribeInstancesCommand({})).then(
            () => true,
            () => false,
          ),
        );
      }
      return outcomes;
    };
    const first = await run();
    expect(first).toContain(true);
    expect(first).toContain(false);
    expect(await run()).toEqual(first);
  });

  it("refuses an invalid fault config", async () => {
    await expect(admin(url, "faults", { operations: { X: { rate: 2, kind: "throttle" } } })).rejects.toThrow(
      /400/,
    );
    await expect(admin(url, "faults", { operations: { X: { rate: 1, kind: "explode" } } })).rejects.toThrow(
      /400/,
    );
  });
});

describe("admin API", () => {
  it("moves and resets emulator time", async () => {
    const before = Date.now();
    const moved = await admin(url, "clock", { offsetSeconds: 3600 });
    expect(Date.parse(moved.now) - before).toBeGreaterThanOrEqual(3_599_000);
    const advanced = await admin(url, "clock", { advanceSeconds: 60 });
    expect(advanced.offsetSeconds).toBe(3660);
    const response = await fetch(`${url}/`, { method: "POST" });
    expect(Date.parse(response.headers.get("date") ?? "") - Date.now()).toBeGreaterThan(3_600_000);
    await admin(url, "reset", {});
    expect((await admin(url, "clock")).offsetSeconds).toBe(0);
    await expect(admin(url, "clock", { offsetSeconds: "soon" })).rejects.toThrow(/400/);
  });

  it("reset drops sessions and the trail", async () => {
    const session = await brokerSession(url);
    expect((await trail(url)).length).toBeGreaterThan(0);
    await admin(url, "reset", {});
    expect(await trail(url)).toEqual([]);
    const error = await rejection(clients(url, session).sts.send(new GetCallerIdentityCommand({})));
    expect(error.name).toBe("InvalidClientTokenId");
  });
});

describe("dispatch and robustness", () => {
  it("offers unclaimed requests and upgrades to extra services", async () => {
    expect(await (await fetch(`${url}/custom`)).text()).toBe("custom");
    const failing = await fetch(`${url}/boom`);
    expect(failing.status).toBe(500);
    const status = await new Promise<string>((resolve, reject) => {
      const socket = connect(emulator.port, "127.0.0.1", () => {
        socket.write(
          "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        );
      });
      socket.once("data", (data) => {
        resolve(data.toString().split("\r\n")[0] ?? "");
        socket.destroy();
      });
      socket.on("error", reject);
    });
    expect(status).toBe("HTTP/1.1 418 I'm a teapot");
  });

  it("answers unknown operations in the protocol's own shape", async () => {
    const json = await fetch(url, {
      method: "POST",
      headers: { "x-amz-target": "Foo_2020.Bar", "content-type": "application/x-amz-json-1.1" },
      body: "{}",
    });
    expect(json.status).toBe(400);
    expect(((await json.json()) as { __type: string }).__type).toBe("UnknownOperationException");
    const query = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "Action=FlyToTheMoon&Version=2016-11-15",
    });
    expect(query.status).toBe(400);
    expect(await query.text()).toMatch(/<Code>InvalidAction<\/Code>/);
    // A signed EC2 call the emulator does not implement.
    const session = await brokerSession(url);
    const error = await rejection(
      clients(url, session).ec2.send(
        new RunInstancesCommand({ MinCount: 1, MaxCount: 1, ImageId: "ami-12345678" }),
      ),
    );
    expect(error.name).toBe("InvalidAction");
  });

  it("refuses bodies over 1 MB with 413", async () => {
    const response = await fetch(url, { method: "POST", body: "x".repeat(1024 * 1024 + 1) }).catch(
      (error) => error,
    );
    if (response instanceof Response) expect(response.status).toBe(413);
    expect((await clients(url, BROKER).sts.send(new GetCallerIdentityCommand({}))).Account).toBe(
      "123456789012",
    );
  });

  it("survives malformed input (fuzz)", async () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)] as T;
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
    const authorizations = [
      "AWS4-HMAC-SHA256 Credential=AKIAEMULATORBROKER01/20240101/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
      "AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=, Signature=",
      "AWS4-HMAC-SHA256 ,,,===,",
      "AWS4-HMAC-SHA256 Credential=AKIAEMULATORBROKER01/2024/ec2/aws4_request",
      "AWS4-HMAC-SHA256 Credential=AKIAEMULATORBROKER01/20240101/us-east-1/cloudtrail/aws4_request, SignedHeaders=host, Signature=00",
      "garbage",
    ];
    const bodies = [
      () => bytes(Math.floor(random() * 300)),
      () =>
        Buffer.from("Action=DescribeInstances&InstanceId.1=%ZZ&Filter.1.Name=tag:%&Filter.x.Value.1=a&&=&"),
      () =>
        Buffer.from(
          '{"LookupAttributes": [{"AttributeKey": null}], "StartTime": "yesterday", "MaxResults": "x"}',
        ),
      () => Buffer.from("[1,2,3]"),
      () => Buffer.from("{"),
      () => Buffer.alloc(0),
    ];
    for (let i = 0; i < 150; i++) {
      const headers: Record<string, string> = {
        "content-type": pick([
          "application/x-www-form-urlencoded",
          "application/x-amz-json-1.1",
          "text/plain",
          "x/\u00ff",
        ]),
      };
      if (random() < 0.7) headers.authorization = pick(authorizations);
      if (random() < 0.5) headers["x-amz-date"] = pick(["20240101T000000Z", "yesterday", "99999999T999999Z"]);
      if (random() < 0.5)
        headers["x-amz-target"] = pick([
          "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
          ".",
          "x",
        ]);
      if (random() < 0.3) headers["x-amz-security-token"] = "token";
      const path = pick([
        "/",
        "/?X-Amz-Credential=a%2Fb&X-Amz-Signature=1",
        "/%%%",
        "/?Action=GetCallerIdentity",
        "/_emulator/nope",
        "/?__proto__=1&__proto__=2&constructor=x&Action=GetCallerIdentity",
        "/openTunnel?X-Amz-Algorithm=x",
      ]);
      const method = pick(["GET", "POST", "PUT", "DELETE", "PATCH"]);
      const response = await fetch(`${url}${path}`, {
        method,
        headers,
        ...(method === "GET" ? {} : { body: pick(bodies)() }),
      });
      expect(response.status).toBeGreaterThanOrEqual(200);
      expect(response.status).toBeLessThan(500);
      await response.arrayBuffer();
    }
    // Raw garbage on the socket: the server answers 400 or closes, and keeps serving.
    for (const garbage of [
      "\x00\x01\x02 nonsense\r\n\r\n",
      "GET / HTTP/9.9\r\n\r\n",
      `POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n`,
    ]) {
      await new Promise<void>((resolve) => {
        const socket = connect(emulator.port, "127.0.0.1", () => socket.write(garbage));
        socket.on("data", () => undefined);
        socket.on("close", () => resolve());
        socket.on("error", () => resolve());
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 1000);
      });
    }
    expect((await clients(url, BROKER).sts.send(new GetCallerIdentityCommand({}))).Account).toBe(
      "123456789012",
    );
  });
});
