import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { ConfigError } from "../core/policy/index.ts";
import { loadConfig } from "../core/policy/yaml.ts";
import { Request } from "../core/request/index.ts";
import { log } from "../core/util/log.ts";
import { startDynamoLocal } from "./dynamo.ts";
import { createDevIssuer } from "./issuer.ts";
import { localDeps } from "./runtime.ts";
import { createDevServer, listen } from "./server.ts";

const DEFAULT_PORT = 8787;
const TABLE = "access-broker";

const { values: flags } = parseArgs({
  options: {
    config: { type: "string" },
    data: { type: "string" },
    port: { type: "string" },
  },
});

const dataDir = resolve(flags.data ?? process.env.ACCESS_DATA_DIR ?? ".data");
const configPath = resolve(flags.config ?? process.env.ACCESS_CONFIG ?? "local/demo/access.yaml");
const port = Number(flags.port ?? process.env.PORT ?? DEFAULT_PORT);
const sweepSeconds = Number(process.env.ACCESS_SWEEP_SECONDS ?? 5);
const lockFile = resolve(dataDir, "runtime.lock");

interface Lock {
  pid: number;
  url: string;
  children: number[];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function fail(message: string): never {
  process.stderr.write(`access-broker: ${message}\n`);
  process.exit(1);
}

/** One runtime per data directory; a lock left by a killed runtime is cleaned, with its orphans. */
function takeLock(): void {
  mkdirSync(dataDir, { recursive: true });
  if (existsSync(lockFile)) {
    const lock = JSON.parse(readFileSync(lockFile, "utf8")) as Lock;
    if (alive(lock.pid)) {
      fail(
        `already running (pid ${lock.pid}) at ${lock.url} with data in ${dataDir}. Stop it with Ctrl-C first.`,
      );
    }
    for (const child of lock.children) if (alive(child)) process.kill(child, "SIGKILL");
    rmSync(lockFile, { force: true });
  }
  writeFileSync(lockFile, JSON.stringify({ pid: process.pid, url: "", children: [] } satisfies Lock), {
    flag: "wx",
  });
}

function updateLock(lock: Lock) {
  writeFileSync(lockFile, JSON.stringify(lock));
}

async function main() {
  if (!Number.isInteger(port) || port < 0 || port > 65_535) fail(`PORT must be a port number, got "${port}"`);
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(configPath);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
  takeLock();
  const cleanups: Array<() => Promise<void> | void> = [() => rmSync(lockFile, { force: true })];
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const cleanup of cleanups.reverse()) await cleanup();
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));

  try {
    process.stdout.write("Starting DynamoDB Local…\n");
    const dynamo = await startDynamoLocal({ dbPath: resolve(dataDir, "dynamodb") });
    cleanups.push(() => dynamo.stop());
    const url = `http://127.0.0.1:${port}`;
    const children = [dynamo.process.pid ?? 0];
    updateLock({ pid: process.pid, url, children });

    const deps = await localDeps(config, dynamo.endpoint, TABLE);
    const issuer = await createDevIssuer(`${url}/dev`, resolve(dataDir, "dev-issuer.jwk"));
    const { server } = createDevServer({ deps, issuer, port });
    try {
      await listen(server, port);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EADDRINUSE")
        throw new Error(`port ${port} is in use by another program; set PORT to use another port`);
      throw error;
    }
    cleanups.push(() => new Promise<void>((done) => server.close(() => done())));

    const sweeper = setInterval(() => {
      Request.sweep(deps).then(
        (result) => {
          if (result.timedOut + result.activated + result.expired > 0) log.info("sweep", { ...result });
        },
        (error: unknown) => log.error("sweep failed", { error }),
      );
    }, sweepSeconds * 1000);
    cleanups.push(() => clearInterval(sweeper));

    const users = config.directory.users
      .map((user) => `    ${user.email.padEnd(22)} ${user.groups.join(", ")}`)
      .join("\n");
    process.stdout.write(
      [
        "",
        `access-broker is running at ${url}`,
        `  config: ${configPath}`,
        `  data:   ${dataDir} (DynamoDB Local, persisted)`,
        "  users (log in as any of them):",
        users,
        "",
        "Try it (in another terminal):",
        `  npx access login --user alice@example.com --api ${url}`,
        "  npx access request i-0a1b2c3d4e5f60718 --ssh --for 30m --reason 'look at the logs'",
        "  npx access login --user bob@example.com && npx access ls --pending",
        "",
        "Ctrl-C stops everything.",
        "",
      ].join("\n"),
    );
  } catch (error) {
    process.stderr.write(`access-broker: ${(error as Error).message}\n`);
    await stop(1);
  }
}

await main();
