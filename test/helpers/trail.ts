import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { EC2InstanceConnectClient, SendSSHPublicKeyCommand } from "@aws-sdk/client-ec2-instance-connect";
import WebSocket from "ws";
import { parse, stringify } from "yaml";
import { main } from "../../cli/main.ts";
import { presignOpenTunnel } from "../../core/aws/tunnel-signer.ts";
import { parseInventory } from "../../local/emulator/inventory.ts";
import { type RunningEmulator, startEmulator } from "../../local/emulator/server.ts";
import { allServices } from "../../local/emulator/services.ts";
import type { LocalAws } from "../../local/runtime.ts";
import type { TestBroker } from "./broker.ts";
import { ALICE_KEYS, BROKER_KEYS, DEMO_INVENTORY } from "./emulator.ts";

/**
 * The demo world plus two standing permissions the broker should catch: mallory, an IAM user in the demo
 * instance's account who may push keys to any instance there, and a broad OpenTunnel permission on
 * alice's own role. Events go to an EventBridge-shaped receiver, as a rule and target would deliver them.
 */
export const MALLORY_KEYS = {
  accessKeyId: "AKIAEMULATORMALLOR22",
  secretAccessKey: "emulator-mallory-2-secret",
};
export const DEMO_INSTANCE = "i-0a1b2c3d4e5f60718";
export const IAM_INSTANCE = "i-0c0ffee0c0ffee0ee";
export const DEMO_ENDPOINT = "eice-0demo00000000001";
export const DEMO_DNS = `${DEMO_ENDPOINT}.ec2-instance-connect-endpoint.us-east-1.amazonaws.com`;

function variantInventory(mutate?: (document: any) => void): string {
  const inventory = parse(readFileSync(DEMO_INVENTORY, "utf8"));
  const target = inventory.accounts.find((account: { id: string }) => account.id === "111122223333");
  target.users = [
    ...(target.users ?? []),
    {
      name: "mallory",
      accessKeys: [{ id: MALLORY_KEYS.accessKeyId, secret: MALLORY_KEYS.secretAccessKey }],
      policies: {
        "standing-ssh": {
          Version: "2012-10-17",
          Statement: [
            {
              Effect: "Allow",
              Action: "ec2-instance-connect:SendSSHPublicKey",
              Resource: "arn:aws:ec2:*:111122223333:instance/*",
            },
          ],
        },
      },
    },
  ];
  const alice = target.roles.find((role: { name: string }) => role.name === "alice");
  alice.policies = {
    "standing-tunnels": {
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Action: "ec2-instance-connect:OpenTunnel",
          Resource: "arn:aws:ec2:*:111122223333:instance-connect-endpoint/*",
        },
      ],
    },
  };
  mutate?.(inventory);
  return stringify(inventory);
}

export interface TrailEmulator {
  running: RunningEmulator;
  url: string;
  aws: LocalAws;
  /** EventBridge envelopes delivered so far. */
  delivered: Record<string, any>[];
  trail(): Promise<Record<string, any>[]>;
  admin(path: string, body?: unknown): Promise<any>;
  advance(seconds: number): Promise<void>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** `inventory` changes the world further (buckets, more permissions) before the emulator starts. */
export async function startTrailEmulator(
  options: { inventory?: (document: any) => void } = {},
): Promise<TrailEmulator> {
  const delivered: Record<string, any>[] = [];
  const receiver: Server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => {
      body += chunk;
    });
    request.on("end", () => {
      delivered.push(JSON.parse(body));
      response.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const echoTcp = await import("node:net").then(({ createServer: tcp }) => {
    const server = tcp((socket) => socket.pipe(socket));
    return new Promise<import("node:net").Server>((resolve) =>
      server.listen(0, "127.0.0.1", () => resolve(server)),
    );
  });
  const running = await startEmulator({
    inventory: parseInventory(variantInventory(options.inventory), "trail test inventory"),
    upstreams: { "demo-sshd": { host: "127.0.0.1", port: (echoTcp.address() as AddressInfo).port } },
    services: allServices({ sweepIntervalMs: 200 }),
    trailTarget: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events`,
  });
  const admin = async (path: string, body?: unknown): Promise<any> => {
    const response = await fetch(`${running.url}/_emulator/${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`emulator ${path}: ${response.status} ${await response.text()}`);
    return response.status === 204 ? undefined : response.json();
  };
  return {
    running,
    url: running.url,
    aws: { endpoint: running.url, credentials: BROKER_KEYS, clock: () => running.core.now() },
    delivered,
    trail: async () => (await admin("trail")).Records,
    admin,
    advance: async (seconds) => {
      await admin("clock", { advanceSeconds: seconds });
    },
    reset: async () => {
      await admin("reset", {});
      delivered.length = 0;
    },
    close: async () => {
      await running.close();
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
      await new Promise<void>((resolve) => echoTcp.close(() => resolve()));
    },
  };
}

export { makeKey } from "./keys.ts";

/** Someone calling EC2 Instance Connect directly with their own keys (as the AWS CLI would). */
export async function sendKey(
  emulator: TrailEmulator,
  credentials: { accessKeyId: string; secretAccessKey: string },
  input: { instanceId: string; osUser: string; publicKey: string },
): Promise<string> {
  const client = new EC2InstanceConnectClient({
    endpoint: emulator.url,
    region: "us-east-1",
    credentials,
    maxAttempts: 1,
  });
  try {
    const output = await client.send(
      new SendSSHPublicKeyCommand({
        InstanceId: input.instanceId,
        InstanceOSUser: input.osUser,
        SSHPublicKey: input.publicKey,
      }),
    );
    return output.RequestId ?? "ok";
  } catch (error) {
    return (error as Error).name;
  } finally {
    client.destroy();
  }
}

/** Opens (and closes) one websocket to the emulator's EICE with a presigned URL; resolves to the HTTP status. */
export function openTunnel(emulator: TrailEmulator, url: string): Promise<number> {
  const parsed = new URL(url);
  return new Promise((resolve) => {
    const ws = new WebSocket(`${emulator.url.replace("http", "ws")}${parsed.pathname}${parsed.search}`, {
      headers: { host: parsed.host },
    });
    ws.once("open", () => {
      ws.close();
      resolve(101);
    });
    ws.once("unexpected-response", (_request, response) => resolve(response.statusCode ?? 0));
    ws.once("error", () => resolve(-1));
  });
}

/** Alice presigning OpenTunnel with her own role's keys (IAM grant mode). */
export async function aliceTunnelUrl(
  emulator: TrailEmulator,
  input: { privateIp: string; remotePort: number; maxTunnelDuration?: number },
): Promise<string> {
  return presignOpenTunnel({
    credentials: ALICE_KEYS,
    region: "us-east-1",
    dnsName: DEMO_DNS,
    endpointId: DEMO_ENDPOINT,
    remotePort: input.remotePort,
    privateIp: input.privateIp,
    maxTunnelDuration: input.maxTunnelDuration,
    signingDate: emulator.running.core.now(),
  });
}

/** Polls until `check` holds (EventBridge delivery is asynchronous). */
export async function eventually<T>(
  read: () => Promise<T> | T,
  check: (value: T) => boolean,
  ms = 10_000,
): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (check(value) || Date.now() > until) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The real `access` CLI in-process, its HTTP calls answered by the broker's handler as `user`. */
export async function cliAs(broker: TestBroker, user: string, argv: string[]) {
  let stdout = "";
  let stderr = "";
  const fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    const response = await broker.call(user, init?.method ?? "GET", url.pathname, {
      query: Object.fromEntries(url.searchParams),
      ...(init?.body ? { rawBody: String(init.body), headers: { "content-type": "application/json" } } : {}),
    });
    const text = typeof response.body === "string" ? response.body : JSON.stringify(response.body ?? "");
    return new Response(text, { status: response.status, headers: response.headers });
  }) as typeof globalThis.fetch;
  const code = await main(argv, {
    env: { ACCESS_API_URL: "http://broker.test", ACCESS_TOKEN: "header.payload.signature" },
    fetch,
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
  });
  return { code, stdout, stderr };
}
