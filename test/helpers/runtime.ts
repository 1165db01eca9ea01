import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort } from "../../local/dynamo.ts";

export const ROOT = resolve(import.meta.dirname, "../..");

export interface RunningRuntime {
  url: string;
  dataDir: string;
  child: ChildProcess;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs the local runtime exactly as `npm start` does, in its own data directory and port. */
export function spawnRuntime(
  dataDir: string,
  port: number,
  extraArgs: string[] = [],
  env: NodeJS.ProcessEnv = {},
): ChildProcess {
  return spawn(
    process.execPath,
    ["--import", "tsx", "local/start.ts", "--data", dataDir, "--port", String(port), ...extraArgs],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
        ACCESS_SWEEP_SECONDS: "1",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
}

export function collect(child: ChildProcess): () => string {
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  return () => output;
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((done) => child.once("exit", (code) => done(code)));
}

export async function startRuntime(
  dataDir = mkdtempSync(join(tmpdir(), "access-broker-e2e-")),
  options: { env?: NodeJS.ProcessEnv } = {},
): Promise<RunningRuntime> {
  const port = await freePort();
  const child = spawnRuntime(dataDir, port, [], options.env);
  const output = collect(child);
  const deadline = Date.now() + 60_000;
  while (!output().includes("is running at")) {
    if (child.exitCode !== null) throw new Error(`runtime exited early:\n${output()}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`runtime did not start:\n${output()}`);
    }
    await new Promise((done) => setTimeout(done, 100));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    dataDir,
    child,
    output,
    /** SIGINT like Ctrl-C; if the runtime has not exited within 10 s, SIGKILL. */
    async stop(signal = "SIGINT") {
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const code = await exited(child);
      clearTimeout(timer);
      return code;
    },
  };
}
