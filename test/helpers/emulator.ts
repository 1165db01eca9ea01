import { createServer, type Server } from "node:net";
import { fileURLToPath } from "node:url";
import { loadInventory } from "../../local/emulator/inventory.ts";
import { type RunningEmulator, startEmulator } from "../../local/emulator/server.ts";
import { allServices } from "../../local/emulator/services.ts";
import { DEMO_BROKER_CREDENTIALS, type LocalAws } from "../../local/runtime.ts";

export const DEMO_INVENTORY = fileURLToPath(new URL("../../local/demo/inventory.yaml", import.meta.url));

/** The broker's own identity in the demo world (IAM user access-broker in 123456789012). */
export const BROKER_KEYS = DEMO_BROKER_CREDENTIALS;
/** Alice's own role keys (IAM grant mode): she calls AWS herself with them. */
export const ALICE_KEYS = { accessKeyId: "AKIAEMULATORALICE001", secretAccessKey: "emulator-alice-secret" };

export type TrailRecord = Record<string, any> & {
  eventName: string;
  eventSource: string;
  requestID?: string;
  errorCode?: string;
  userIdentity?: Record<string, any>;
  requestParameters?: Record<string, any> | null;
};

export interface TestEmulator {
  url: string;
  running: RunningEmulator;
  /** How the broker reaches it (endpoint + broker keys + emulator time). */
  aws: LocalAws;
  /** Instance port 22 of every demo instance: a TCP echo server. */
  echoPort: number;
  trail(): Promise<TrailRecord[]>;
  faults(config: unknown): Promise<void>;
  advance(seconds: number): Promise<void>;
  now(): Date;
  reset(): Promise<void>;
  close(): Promise<void>;
}

function echoServer(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer((socket) => socket.pipe(socket));
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve({ server, port: typeof address === "object" && address ? address.port : 0 });
    });
  });
}

/** The local AWS emulator with the demo inventory and every service, on a free port. */
export async function startTestEmulator(): Promise<TestEmulator> {
  const echo = await echoServer();
  const running = await startEmulator({
    inventory: loadInventory(DEMO_INVENTORY),
    upstreams: { "demo-sshd": { host: "127.0.0.1", port: echo.port } },
    services: allServices({ sweepIntervalMs: 200 }),
  });
  const admin = async (path: string, body?: unknown) => {
    const response = await fetch(`${running.url}/_emulator/${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`emulator ${path}: ${response.status} ${await response.text()}`);
    return response.status === 204 ? undefined : ((await response.json()) as any);
  };
  const now = () => running.core.now();
  return {
    url: running.url,
    running,
    aws: { endpoint: running.url, credentials: BROKER_KEYS, clock: now },
    echoPort: echo.port,
    trail: async () => (await admin("trail")).Records as TrailRecord[],
    faults: async (config) => {
      await admin("faults", config);
    },
    advance: async (seconds) => {
      await admin("clock", { advanceSeconds: seconds });
    },
    now,
    reset: async () => {
      await admin("reset", {});
    },
    close: async () => {
      await running.close();
      await new Promise<void>((done) => echo.server.close(() => done()));
    },
  };
}
