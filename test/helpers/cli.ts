/**
 * Driving the real `access` CLI, the system OpenSSH client and the HTTP API of a local runtime
 * (test/helpers/runtime.ts) from end-to-end tests, as a user at a terminal would.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { TrailRecord } from "./emulator.ts";
import { ROOT, type RunningRuntime } from "./runtime.ts";

export const BIN = join(ROOT, "cli/bin.js");

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Date.now() when the process exited. */
  endedAt: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Kill (SIGKILL) after this long; default 60 s. */
  timeoutMs?: number;
  onStdout?: (all: string) => void;
  onStderr?: (all: string) => void;
  /** The child, e.g. to stop a long-running `access tunnel` with SIGINT. */
  onSpawn?: (child: ChildProcess) => void;
}

/** Runs a command without blocking the event loop (servers in this process keep answering). */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<Run> {
  return new Promise((done) => {
    const child = spawn(command, args, {
      cwd: ROOT,
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    options.onSpawn?.(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      options.onStdout?.(stdout);
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
      options.onStderr?.(stderr);
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, stdout, stderr, endedAt: Date.now() });
    });
  });
}

/** The environment without ACCESS_* settings of whoever runs the tests. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("ACCESS_"))),
    ...extra,
  };
}

export interface Users {
  /** The `access` CLI as `who` (alice, bob…), each with their own XDG_CONFIG_HOME. */
  access(who: string, argv: string[], options?: RunOptions): Promise<Run>;
  /** `access login --user <who>@example.com --api <runtime>`; throws when it fails. */
  login(who: string): Promise<void>;
  /** The environment `access` runs with for `who` (e.g. for ssh's ProxyCommand). */
  env(who: string): NodeJS.ProcessEnv;
  /** Every CLI run so far, for "nothing secret was printed" checks. */
  runs: Run[];
}

export function users(apiUrl: string, root: string): Users {
  const runs: Run[] = [];
  const env = (who: string) => {
    const home = join(root, who);
    mkdirSync(home, { recursive: true, mode: 0o700 });
    return cleanEnv({ XDG_CONFIG_HOME: home });
  };
  const access = async (who: string, argv: string[], options: RunOptions = {}) => {
    const result = await run(process.execPath, [BIN, ...argv], {
      ...options,
      env: { ...env(who), ...options.env },
    });
    runs.push(result);
    return result;
  };
  return {
    access,
    env,
    runs,
    async login(who) {
      const result = await access(who, ["login", "--user", `${who}@example.com`, "--api", apiUrl]);
      if (result.code !== 0) throw new Error(`access login ${who} failed: ${result.stderr}`);
    },
  };
}

/** The options every plain ssh run in the tests uses: only `key`, no config, no prompts, no host checks. */
export function sshOptions(key: string): string[] {
  return [
    "-F",
    "/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "IdentityAgent=none",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=10",
    "-i",
    key,
    "-l",
    "ec2-user",
  ];
}

/** `ssh -o ProxyCommand='access proxy <grant>' … <instance> <command>`: a new tunnel, no key push. */
export function sshThroughProxy(
  who: Users,
  user: string,
  grantId: string,
  instanceId: string,
  key: string,
  command: string[],
  options: RunOptions = {},
): Promise<Run> {
  return run(
    "ssh",
    [
      ...sshOptions(key),
      "-o",
      `ProxyCommand=${process.execPath} ${BIN} proxy ${grantId}`,
      "--",
      instanceId,
      ...command,
    ],
    { ...options, env: who.env(user) },
  );
}

/** Makes an unencrypted ED25519 key pair at `path` (and `path`.pub). */
export async function keygen(path: string): Promise<{ privateKey: string; publicKey: string }> {
  const result = await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f", path]);
  if (result.code !== 0) throw new Error(`ssh-keygen failed: ${result.stderr}`);
  return {
    privateKey: readFileSync(path, "utf8"),
    publicKey: readFileSync(`${path}.pub`, "utf8").trim(),
  };
}

/** The AWS emulator's URL, as `npm start` prints it. */
export function emulatorUrl(runtime: RunningRuntime): string {
  const url = /AWS emulator: (http:\/\/127\.0\.0\.1:\d+)/.exec(runtime.output())?.[1];
  if (!url) throw new Error(`the runtime did not print the emulator's URL:\n${runtime.output()}`);
  return url;
}

/** Where the runtime's demo sshd logs (LogLevel VERBOSE). */
export function sshdLogFile(runtime: RunningRuntime): string {
  return join(runtime.dataDir, "demo-instance", "sshd.log");
}

/** Every CloudTrail record the emulator kept, oldest first. */
export async function trail(emulator: string): Promise<TrailRecord[]> {
  const response = await fetch(`${emulator}/_emulator/trail`);
  if (!response.ok) throw new Error(`emulator trail: ${response.status}`);
  return ((await response.json()) as { Records: TrailRecord[] }).Records;
}

/** A bearer token from the runtime's dev issuer. */
export async function token(apiUrl: string, user: string): Promise<string> {
  const response = await fetch(`${apiUrl}/dev/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  if (!response.ok) throw new Error(`dev login ${user}: ${response.status}`);
  return ((await response.json()) as { token: string }).token;
}

export interface ApiResponse {
  status: number;
  body: any;
}

/** One call to the runtime's HTTP API. */
export async function api(
  apiUrl: string,
  bearer: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<ApiResponse> {
  const response = await fetch(`${apiUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${bearer}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

export const sleepUntil = (at: number) =>
  new Promise<void>((done) => setTimeout(done, Math.max(0, at - Date.now())));
