/**
 * Approval → first successful SSH command. Each run: alice's fresh ssh request for the demo instance is
 * pending; the clock starts when bob's `POST /requests/{id}/approve` is sent and stops when
 * `access ssh <grant> -- true` (the real CLI: tsx, key generation and key push while the EICE URL is
 * presigned, ssh with relay.js as its ProxyCommand, the websocket through the emulator, the ssh handshake with
 * sshd asking the emulator's metadata for the key, the remote command) has exited 0.
 *
 * Baseline, interleaved in the same run: plain `ssh -i key -p <sshd port> ec2-user@127.0.0.1 true` straight
 * to the demo sshd with a key pushed beforehand (sshd still asks the metadata endpoint for it, as on EC2),
 * so the difference is what the broker path adds.
 *
 * The breakdown comes for free from where the pieces meet: the dev server's request/finish times for
 * `GET /grants/{id}`, `POST …/ssh-key` and `POST …/tunnel`, sshd's own log lines (`Connection from`,
 * `Accepted publickey`), and the CLI's exit, all on this process's clock.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type BenchStack,
  BIN,
  INSTANCE,
  median,
  OS_USER,
  percentile,
  type RunResult,
  sshCommon,
  startBenchStack,
} from "./stack.ts";

export interface Stats {
  p50: number;
  p95: number;
  min: number;
  max: number;
}

export interface SshBenchResult {
  runs: number;
  broker: Stats;
  baseline: Stats;
  /** Median of each step, in order (ms). */
  steps: { step: string; ms: number }[];
}

const stats = (values: number[]): Stats => ({
  p50: median(values),
  p95: percentile(values, 0.95),
  min: Math.min(...values),
  max: Math.max(...values),
});

function check(result: RunResult, what: string): void {
  if (result.code !== 0) {
    throw new Error(
      `${what} exited ${result.code}:\n${result.stderr.trim().split("\n").slice(-8).join("\n")}`,
    );
  }
}

const STEPS = [
  "approve (POST /requests/{id}/approve)",
  "access CLI start (node + compiled CLI, tsx if stale)",
  "GET /grants/{id}",
  "ssh-keygen + key push (POST …/ssh-key → SendSSHPublicKey) ∥ tunnel presign (POST …/tunnel)",
  "ssh start + relay.js start + websocket open + EICE → sshd connect",
  "ssh handshake + auth (sshd key lookup)",
  "remote `true` + teardown + exit",
] as const;

/**
 * The points in time between the approve call and the CLI's exit; undefined when one is missing (the
 * run still counts, only the breakdown skips it).
 */
function breakdown(stack: BenchStack, grantId: string, t0: number, t1: number, exit: number) {
  const api = (method: string, path: string) =>
    stack.apiEvents.find((event) => event.method === method && event.path === path && event.start >= t1);
  const getGrant = api("GET", `/grants/${grantId}`);
  const push = api("POST", `/grants/${grantId}/ssh-key`);
  const tunnel = api("POST", `/grants/${grantId}/tunnel`);
  if (!getGrant || !push || !tunnel) return undefined;
  const sshd = (pattern: RegExp) =>
    stack.sshdEvents.find((event) => event.at >= push.end && event.at <= exit && pattern.test(event.line));
  const connected = sshd(/^Connection from 127\.0\.0\.1 /);
  const accepted = sshd(/^Accepted publickey for /);
  if (!connected || !accepted) return undefined;
  // The CLI presigns while it makes and pushes the key (the grant names the EICE route), so those two
  // overlap and count as one step, ending when the later of them answered.
  const points = [
    t0,
    t1,
    getGrant.start,
    getGrant.end,
    Math.max(push.end, tunnel.end),
    connected.at,
    accepted.at,
    exit,
  ];
  return points.slice(1).map((point, index) => point - (points[index] as number));
}

/**
 * `runs` measured runs after `warmups`; stops early (after at least 5) once `budgetMs` of measuring is
 * spent, so a loaded machine still finishes in bounded time (the result says how many runs it made).
 */
export async function benchSsh(runs = 20, warmups = 2, budgetMs = 120_000): Promise<SshBenchResult> {
  const stack = await startBenchStack();
  try {
    const keys = stack.temp("access-bench-keys-");
    const key = join(keys, "id_ed25519");
    check(
      await stack.run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", key]),
      "ssh-keygen",
    );
    const publicKey = readFileSync(`${key}.pub`, "utf8").trim();
    const knownHosts = join(keys, "known_hosts");
    // The baseline's key rides on a grant of its own; the push is made (untimed) before every baseline run.
    const baselineGrant = await stack.activeGrant("bench: baseline key");
    const bareSsh = async () => {
      await stack.call("alice", "POST", `/grants/${baselineGrant.grantId}/ssh-key`, { publicKey });
      const result = await stack.run(
        "ssh",
        [...sshCommon(key, knownHosts), "-p", String(stack.demo.port), `${OS_USER}@127.0.0.1`, "true"],
        { timeoutMs: 30_000 },
      );
      check(result, "bare ssh");
      return result.ms;
    };

    const brokerRun = async () => {
      const { id: requestId, grantId } = await stack.call<{ id: string; grantId: string }>(
        "alice",
        "POST",
        "/requests",
        {
          instanceId: INSTANCE,
          method: "ssh",
          osUser: OS_USER,
          durationSeconds: 1800,
          reason: "bench: approval to first command",
        },
      );
      const t0 = performance.now();
      const approved = await stack.call<{ status: string }>(
        "bob",
        "POST",
        `/requests/${requestId}/approve`,
        {},
      );
      const t1 = performance.now();
      if (approved.status !== "active") throw new Error(`approved request is ${approved.status}`);
      const result = await stack.run(
        process.execPath,
        [BIN, "ssh", grantId, "-o", "BatchMode=yes", "--", "true"],
        { env: stack.cliEnv("alice"), timeoutMs: 30_000 },
      );
      check(result, `access ssh ${grantId}`);
      const total = result.exitedAt - t0;
      const steps = breakdown(stack, grantId, t0, t1, result.exitedAt);
      // Leave no active grants behind between runs (untimed).
      await stack.call("alice", "POST", `/grants/${grantId}/revoke`, { reason: "bench run done" });
      return { total, steps };
    };

    // Warm-ups: tsx's transform cache, the JIT, known_hosts entries for both routes, DynamoDB Local.
    for (let index = 0; index < warmups; index++) {
      await brokerRun();
      await bareSsh();
    }
    const broker: number[] = [];
    const baseline: number[] = [];
    const perStep: number[][] = STEPS.map(() => []);
    const started = performance.now();
    for (let index = 0; index < runs; index++) {
      if (index >= 5 && performance.now() - started > budgetMs) break;
      // Alternate the order so neither side always runs right after the other.
      if (index % 2 === 1) baseline.push(await bareSsh());
      const run = await brokerRun();
      broker.push(run.total);
      run.steps?.forEach((ms, step) => {
        perStep[step]?.push(ms);
      });
      if (index % 2 === 0) baseline.push(await bareSsh());
    }
    return {
      runs: broker.length,
      broker: stats(broker),
      baseline: stats(baseline),
      steps: STEPS.map((step, index) => ({ step, ms: median(perStep[index] ?? []) })),
    };
  } finally {
    await stack.close();
  }
}
