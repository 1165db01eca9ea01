/**
 * 50 MB scp through the EICE emulator tunnel vs straight to the demo sshd, both ways, in the same run.
 *
 * Tunnel: `scp -o ProxyCommand="<node> cli/bin.js proxy <grant>" … ec2-user@<instance>:…`, the way a user
 * copies files over a grant (the proxy presigns a fresh tunnel URL and bridges stdin/stdout to the
 * websocket; the emulator bridges the websocket to sshd). Direct: the same scp with `-P <sshd port>` to
 * 127.0.0.1. Same key, same cipher, no compression; the routes alternate within each round; every copy is
 * checked by SHA-256 (uploads: the file that landed in ec2-user's home; downloads: the local copy).
 * Throughput is the file size over scp's whole wall time (what a user waits for, connection setup included),
 * and over its data phase alone: from sshd's `Starting session: subsystem 'sftp'` log line (OpenSSH 9's scp
 * speaks SFTP) to scp's exit. The setup cost of each route (`ssh … true`, median) is printed alongside.
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { type BenchStack, BIN, INSTANCE, median, OS_USER, sshCommon, startBenchStack } from "./stack.ts";

export const FILE_BYTES = 50_000_000;
/** AES-GCM: hardware-accelerated here, so the cipher is not what limits either route. */
export const CIPHER = "aes128-gcm@openssh.com";

export interface ScpRow {
  direction: "upload" | "download";
  tunnelMBps: number;
  directMBps: number;
  ratio: number;
  tunnelSeconds: number;
  directSeconds: number;
  /** Over the data phase only (SFTP session start → scp exit). */
  tunnelDataMBps: number;
  directDataMBps: number;
  dataRatio: number;
}

export interface ScpBenchResult {
  rows: ScpRow[];
  cipher: string;
  bytes: number;
  runs: number;
  setupTunnelMs: number;
  setupDirectMs: number;
}

type Route = "tunnel" | "direct";

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");
const quote = (word: string) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`);

function homeOf(user: string): string {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((entry) => entry.startsWith(`${user}:`));
  const home = line?.split(":")[5];
  if (!home) throw new Error(`no home directory for ${user}`);
  return home;
}

function writeRandomFile(path: string, bytes: number): void {
  const fd = openSync(path, "w", 0o600);
  try {
    for (let written = 0; written < bytes; ) {
      const chunk = randomBytes(Math.min(1 << 20, bytes - written));
      writeSync(fd, chunk);
      written += chunk.length;
    }
  } finally {
    closeSync(fd);
  }
}

/** `runs` rounds (each: both routes, both directions, plus `ssh true`); stops after 3 once `budgetMs` is spent. */
export async function benchScp(runs = 5, budgetMs = 100_000): Promise<ScpBenchResult> {
  const stack: BenchStack = await startBenchStack();
  const home = homeOf(OS_USER);
  const remoteFiles: string[] = [];
  try {
    const dir = stack.temp("access-bench-scp-");
    const key = join(dir, "id_ed25519");
    const keygen = await stack.run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", key]);
    if (keygen.code !== 0) throw new Error(`ssh-keygen: ${keygen.stderr}`);
    const publicKey = readFileSync(`${key}.pub`, "utf8").trim();
    const knownHosts = join(dir, "known_hosts");
    const source = join(dir, "source.bin");
    writeRandomFile(source, FILE_BYTES);
    const sourceHash = sha256(source);

    const { grantId } = await stack.activeGrant("bench: scp throughput");
    const proxyCommand = [process.execPath, BIN, "proxy", grantId].map(quote).join(" ");
    const common = [...sshCommon(key, knownHosts), "-c", CIPHER, "-o", "Compression=no"];
    const routeOptions = (route: Route, port: "-p" | "-P") =>
      route === "tunnel" ? ["-o", `ProxyCommand=${proxyCommand}`] : [port, String(stack.demo.port)];
    const host = (route: Route) => `${OS_USER}@${route === "tunnel" ? INSTANCE : "127.0.0.1"}`;
    const env = stack.cliEnv("alice");
    // A pushed key stays in instance metadata for 60 s: push before every connection (untimed).
    const push = () => stack.call("alice", "POST", `/grants/${grantId}/ssh-key`, { publicKey });

    type Timing = { ms: number; dataMs: number };
    const timed = async (what: string, command: string, args: string[]): Promise<Timing> => {
      await push();
      const from = stack.sshdEvents.length;
      const result = await stack.run(command, args, { env, timeoutMs: 60_000 });
      if (result.code !== 0)
        throw new Error(
          `${what} exited ${result.code}:\n${result.stderr.trim().split("\n").slice(-8).join("\n")}`,
        );
      const session = stack.sshdEvents
        .slice(from)
        .find((event) => event.line.startsWith("Starting session: subsystem 'sftp'"));
      return { ms: result.ms, dataMs: session ? result.exitedAt - session.at : Number.NaN };
    };

    let uploads = 0;
    const upload = async (route: Route) => {
      const name = `access-bench-${process.pid}-${uploads++}.bin`;
      const landed = join(home, name);
      remoteFiles.push(landed);
      const timing = await timed(`scp upload (${route})`, "scp", [
        "-q",
        ...common,
        ...routeOptions(route, "-P"),
        source,
        `${host(route)}:${name}`,
      ]);
      if (sha256(landed) !== sourceHash) throw new Error(`upload (${route}): the copy's SHA-256 differs`);
      return { timing, name, landed };
    };
    let downloads = 0;
    const download = async (route: Route, name: string) => {
      const local = join(dir, `download-${downloads++}.bin`);
      const timing = await timed(`scp download (${route})`, "scp", [
        "-q",
        ...common,
        ...routeOptions(route, "-P"),
        `${host(route)}:${name}`,
        local,
      ]);
      if (sha256(local) !== sourceHash) throw new Error(`download (${route}): the copy's SHA-256 differs`);
      rmSync(local, { force: true });
      return timing;
    };
    const setup = async (route: Route) =>
      (
        await timed(`ssh true (${route})`, "ssh", [
          ...common,
          ...routeOptions(route, "-p"),
          host(route),
          "true",
        ])
      ).ms;

    // Warm-up: known_hosts, tsx's cache, the page cache for the source file; also the download source.
    await setup("direct");
    await setup("tunnel");
    const seed = await upload("direct");
    await download("tunnel", seed.name);

    const times: Record<"upload" | "download", Record<Route, Timing[]>> = {
      upload: { tunnel: [], direct: [] },
      download: { tunnel: [], direct: [] },
    };
    const setups: Record<Route, number[]> = { tunnel: [], direct: [] };
    const started = performance.now();
    let rounds = 0;
    for (let round = 0; round < runs; round++) {
      if (round >= 3 && performance.now() - started > budgetMs) break;
      rounds++;
      const order: Route[] = round % 2 === 0 ? ["tunnel", "direct"] : ["direct", "tunnel"];
      for (const route of order) {
        const copy = await upload(route);
        times.upload[route].push(copy.timing);
        rmSync(copy.landed, { force: true });
      }
      for (const route of order) times.download[route].push(await download(route, seed.name));
      for (const route of order) setups[route].push(await setup(route));
    }

    const mbps = (ms: number) => FILE_BYTES / 1e6 / (ms / 1000);
    const rows = (["upload", "download"] as const).map((direction): ScpRow => {
      const { tunnel, direct } = times[direction];
      const tunnelMs = median(tunnel.map((time) => time.ms));
      const directMs = median(direct.map((time) => time.ms));
      const tunnelDataMBps = mbps(median(tunnel.map((time) => time.dataMs)));
      const directDataMBps = mbps(median(direct.map((time) => time.dataMs)));
      return {
        direction,
        tunnelMBps: mbps(tunnelMs),
        directMBps: mbps(directMs),
        ratio: directMs / tunnelMs,
        tunnelSeconds: tunnelMs / 1000,
        directSeconds: directMs / 1000,
        tunnelDataMBps,
        directDataMBps,
        dataRatio: tunnelDataMBps / directDataMBps,
      };
    });
    return {
      rows,
      cipher: CIPHER,
      bytes: FILE_BYTES,
      runs: rounds,
      setupTunnelMs: median(setups.tunnel),
      setupDirectMs: median(setups.direct),
    };
  } finally {
    for (const file of remoteFiles) rmSync(file, { force: true });
    await stack.close();
  }
}
