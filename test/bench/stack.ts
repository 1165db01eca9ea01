/**
 * The whole local stack in this process, on free loopback ports, for the ssh and scp benchmarks: DynamoDB
 * Local, the AWS emulator (EIC, EICE, metadata) forwarding port 22 of the demo instances to a real demo
 * sshd, the broker with the production AWS adapters pointed at the emulator, and the dev server (the API
 * Gateway stand-in) — wired as local/start.ts wires them, minus the fixed ports, the lock and the sweeper.
 *
 * Everything it starts (servers, sshd, Java, every child process spawned through `run`) and every temp
 * directory it makes goes away in `close()`, which also runs on SIGINT/SIGTERM and on the way out of the
 * benchmark's `finally`.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseConfig } from "../../core/policy/yaml.ts";
import {
  type DemoInstance,
  demoInstanceIds,
  isSshdAvailable,
  startDemoInstance,
} from "../../local/demo-instance.ts";
import { type DynamoLocal, freePort, startDynamoLocal } from "../../local/dynamo.ts";
import { loadInventory } from "../../local/emulator/inventory.ts";
import { type RunningEmulator, startEmulator } from "../../local/emulator/server.ts";
import { allServices } from "../../local/emulator/services.ts";
import { createDevIssuer } from "../../local/issuer.ts";
import { DEMO_BROKER_CREDENTIALS, localDeps } from "../../local/runtime.ts";
import { createDevServer, listen } from "../../local/server.ts";

export const ROOT = resolve(import.meta.dirname, "../..");
export const BIN = join(ROOT, "cli/bin.js");
export const INSTANCE = "i-0a1b2c3d4e5f60718";
export const OS_USER = "ec2-user";

/** One API request as the dev server saw it (bench clock: performance.now()). */
export interface ApiEvent {
  method: string;
  path: string;
  start: number;
  end: number;
  status: number;
}

/** One line sshd logged, stamped when it reached this process. */
export interface SshdEvent {
  at: number;
  line: string;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** performance.now() when the process exited. */
  exitedAt: number;
  ms: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export interface BenchStack {
  api: string;
  emulator: RunningEmulator;
  demo: DemoInstance;
  /** Environment for the `access` CLI as `user` (its own XDG_CONFIG_HOME with a session from `access login`). */
  cliEnv(user: "alice" | "bob"): NodeJS.ProcessEnv;
  /** JSON call to the API as `user`; throws on a non-2xx answer. */
  call<T = any>(user: "alice" | "bob", method: "GET" | "POST", path: string, body?: unknown): Promise<T>;
  /** Spawns a command (its own process group, killed on timeout and on close) and waits for it. */
  run(command: string, args: string[], options?: RunOptions): Promise<RunResult>;
  /** A temp directory removed on close. */
  temp(prefix: string): string;
  apiEvents: ApiEvent[];
  sshdEvents: SshdEvent[];
  /** A fresh pending ssh request by alice, approved by bob: `{ requestId, grantId }`. */
  activeGrant(reason: string): Promise<{ requestId: string; grantId: string }>;
  close(): Promise<void>;
}

/** ACCESS_* from the caller's shell must not point the CLI at another API or token. */
function cleanEnv(): NodeJS.ProcessEnv {
  return {
    ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("ACCESS_"))),
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  };
}

/** Why the ssh/scp benchmarks cannot run here, or undefined when they can. */
export function sshBenchUnavailable(): string | undefined {
  const sshd = isSshdAvailable();
  if (!sshd.ok) return sshd.message;
  if (process.getuid?.() !== 0) return "the demo instance (a private sshd) needs root";
  return undefined;
}

export async function startBenchStack(): Promise<BenchStack> {
  // Measure the CLI users run: the compiled copy `npm start` builds (bin.js falls back to tsx without it).
  execFileSync(process.execPath, [resolve(import.meta.dirname, "../../scripts/build-cli.mjs")], {
    stdio: "ignore",
  });
  const temps: string[] = [];
  const children = new Set<ChildProcess>();
  const cleanups: Array<() => Promise<void> | void> = [];
  let closing: Promise<void> | undefined;

  const temp = (prefix: string) => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    temps.push(dir);
    return dir;
  };
  const killGroup = (child: ChildProcess) => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      child.kill("SIGKILL");
    }
  };

  const close = () => {
    closing ??= (async () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      for (const child of children) killGroup(child);
      for (const cleanup of cleanups.reverse()) {
        try {
          await cleanup();
        } catch (error) {
          process.stderr.write(`bench cleanup: ${(error as Error).message}\n`);
        }
      }
      for (const dir of temps) rmSync(dir, { recursive: true, force: true });
    })();
    return closing;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping the benchmark stack…\n`);
    void close().then(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const run = (command: string, args: string[], options: RunOptions = {}) =>
    new Promise<RunResult>((done, fail) => {
      const start = performance.now();
      // A process group of its own: ssh's ProxyCommand (`access proxy`) dies with it on timeout or close.
      const child = spawn(command, args, {
        cwd: ROOT,
        env: options.env ?? cleanEnv(),
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      children.add(child);
      let stdout = "";
      let stderr = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        stdout += chunk;
      });
      child.stderr?.on("data", (chunk: Buffer) => {
        stderr += chunk;
      });
      const timer = setTimeout(() => killGroup(child), options.timeoutMs ?? 60_000);
      child.once("error", (error) => {
        clearTimeout(timer);
        children.delete(child);
        fail(error);
      });
      child.once("exit", (code) => {
        const exitedAt = performance.now();
        clearTimeout(timer);
        children.delete(child);
        // Reap anything left in its group (a ProxyCommand that outlived ssh).
        try {
          if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
        } catch {
          // the group is already gone
        }
        child.stdout?.destroy();
        child.stderr?.destroy();
        done({ code, stdout, stderr, exitedAt, ms: exitedAt - start });
      });
    });

  const apiEvents: ApiEvent[] = [];
  const sshdEvents: SshdEvent[] = [];
  const homes: Record<string, string> = {};
  const tokens: Record<string, string> = {};
  let api = "";

  try {
    const dynamo: DynamoLocal = await startDynamoLocal();
    cleanups.push(() => dynamo.stop());

    const inventory = loadInventory(join(ROOT, "local/demo/inventory.yaml"));
    const sshdPort = await freePort();
    const emulator = await startEmulator({
      inventory,
      upstreams: { "demo-sshd": { host: "127.0.0.1", port: sshdPort } },
      services: allServices(),
    });
    cleanups.push(() => emulator.close());

    const demo = await startDemoInstance({
      port: sshdPort,
      metadataUrl: emulator.url,
      instanceIds: demoInstanceIds(inventory.instances),
      dataDir: join(temp("access-bench-demo-"), "demo-instance"),
      onLog: (line) => {
        sshdEvents.push({ at: performance.now(), line });
        if (sshdEvents.length > 5_000) sshdEvents.splice(0, 1_000);
      },
    });
    cleanups.push(() => demo.stop());

    const config = parseConfig(readFileSync(join(ROOT, "local/demo/access.yaml"), "utf8"));
    const deps = await localDeps(config, dynamo.endpoint, "access-bench", {
      endpoint: emulator.url,
      credentials: DEMO_BROKER_CREDENTIALS,
      clock: () => emulator.core.now(),
    });
    const issuer = await createDevIssuer("http://127.0.0.1/dev");
    const { server }: { server: Server } = createDevServer({
      deps,
      issuer,
      port: 0,
      eiceEndpoint: emulator.url.replace(/^http/, "ws"),
    });
    server.on("request", (request, response) => {
      const event: ApiEvent = {
        method: request.method ?? "",
        path: new URL(request.url ?? "/", "http://api").pathname,
        start: performance.now(),
        end: Number.NaN,
        status: 0,
      };
      response.once("finish", () => {
        event.end = performance.now();
        event.status = response.statusCode;
      });
      apiEvents.push(event);
      if (apiEvents.length > 5_000) apiEvents.splice(0, 1_000);
    });
    api = `http://127.0.0.1:${await listen(server, 0)}`;
    cleanups.push(() => {
      server.closeAllConnections();
      return new Promise<void>((done) => server.close(() => done()));
    });

    const cliEnv = (user: string) => ({ ...cleanEnv(), XDG_CONFIG_HOME: homes[user] });
    for (const user of ["alice", "bob"]) {
      homes[user] = temp(`access-bench-${user}-`);
      // The way a user logs in to the local runtime: the session also stores the emulator's EICE address.
      const login = await run(
        process.execPath,
        [BIN, "login", "--user", `${user}@example.com`, "--api", api],
        {
          env: cliEnv(user),
        },
      );
      if (login.code !== 0) throw new Error(`access login as ${user} failed: ${login.stderr}`);
      tokens[user] = (
        JSON.parse(readFileSync(join(homes[user], "access-broker/session.json"), "utf8")) as {
          token: string;
        }
      ).token;
    }

    const call = async <T>(user: string, method: "GET" | "POST", path: string, body?: unknown) => {
      const response = await fetch(`${api}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${tokens[user]}`,
          ...(method === "POST" ? { "content-type": "application/json" } : {}),
        },
        body: method === "POST" ? JSON.stringify(body ?? {}) : undefined,
        signal: AbortSignal.timeout(15_000),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`${method} ${path} as ${user}: HTTP ${response.status} ${text}`);
      return (text ? JSON.parse(text) : undefined) as T;
    };

    const activeGrant = async (reason: string) => {
      const created = await call<{ id: string; grantId: string }>("alice", "POST", "/requests", {
        instanceId: INSTANCE,
        method: "ssh",
        osUser: OS_USER,
        durationSeconds: 1800,
        reason,
      });
      const approved = await call<{ status: string }>("bob", "POST", `/requests/${created.id}/approve`, {});
      if (approved.status !== "active") throw new Error(`approved request is ${approved.status}, not active`);
      return { requestId: created.id, grantId: created.grantId };
    };

    return {
      api,
      emulator,
      demo,
      cliEnv,
      call,
      run,
      temp,
      apiEvents,
      sshdEvents,
      activeGrant,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

export const median = (values: number[]) => percentile(values, 0.5);

/** Nearest-rank percentile. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] as number;
}

/** ssh options both routes share: only this key, no agent, no prompts, the host key pinned per instance. */
export function sshCommon(key: string, knownHosts: string): string[] {
  return [
    "-F",
    "/dev/null",
    "-i",
    key,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "IdentityAgent=none",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=accept-new",
    "-o",
    `UserKnownHostsFile=${knownHosts}`,
    "-o",
    `HostKeyAlias=${INSTANCE}`,
    "-o",
    "ConnectTimeout=15",
  ];
}
