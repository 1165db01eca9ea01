/**
 * The real OpenSSH client and server end to end: the demo instance (a private sshd whose
 * AuthorizedKeysCommand asks a metadata endpoint), `access proxy` as ssh's ProxyCommand through an EICE
 * websocket, `access ssh` making, pushing and cleaning up its key, and `access tunnel`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type DemoInstance,
  ensureOsUser,
  keyFingerprint,
  startDemoInstance,
} from "../../local/demo-instance.ts";
import {
  type FakeApi,
  type FakeEice,
  type FakeMetadata,
  GRANT,
  INSTANCE,
  startFakeApi,
  startFakeEice,
  startFakeMetadata,
} from "../helpers/ssh-fakes.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const BIN = join(ROOT, "cli/bin.js");
const temps: string[] = [];
const temp = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command without blocking the event loop (the fakes answer from this process). */
function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: Buffer } = {}) {
  return new Promise<Run>((done) => {
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.stdin.end(options.input);
    const timer = setTimeout(() => child.kill("SIGKILL"), 25_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

let metadata: FakeMetadata;
let demo: DemoInstance;
let userKey: string;
let userPublicKey: string;
let knownHosts: string;

/** ssh as a user would type it, with BatchMode so a refused key fails instead of prompting. */
const sshBase = (key = userKey) => [
  "-F",
  "/dev/null",
  "-o",
  "BatchMode=yes",
  "-o",
  "IdentitiesOnly=yes",
  "-o",
  "IdentityAgent=none",
  "-o",
  `UserKnownHostsFile=${knownHosts}`,
  "-o",
  "StrictHostKeyChecking=accept-new",
  "-o",
  "ConnectTimeout=10",
  "-i",
  key,
  "-l",
  "ec2-user",
];

const direct = (...command: string[]) =>
  run("ssh", [
    ...sshBase(),
    "-o",
    `HostKeyAlias=${INSTANCE}`,
    "-p",
    String(demo.port),
    "127.0.0.1",
    ...command,
  ]);

beforeAll(async () => {
  metadata = await startFakeMetadata();
  demo = await startDemoInstance({
    metadataUrl: metadata.url,
    instanceIds: [INSTANCE, "i-0c0ffee0c0ffee0ee"],
    dataDir: join(temp("access-demo-"), "demo-instance"),
  });
  const keys = temp("access-e2e-key-");
  userKey = join(keys, "id_ed25519");
  const keygen = await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f", userKey]);
  expect(keygen.code).toBe(0);
  userPublicKey = readFileSync(`${userKey}.pub`, "utf8").trim();
  knownHosts = join(keys, "known_hosts");
});

afterAll(async () => {
  await demo?.stop();
  await metadata?.close();
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

describe("the demo instance", () => {
  it("lets a pushed key log in as ec2-user, runs the command and passes its exit code", async () => {
    metadata.push(INSTANCE, "ec2-user", userPublicKey);
    const result = await direct("echo hello; id -un; exit 7");
    expect(result.stdout).toBe("hello\nec2-user\n");
    expect(result.code).toBe(7);
    // The key script asked for each instance id this sshd stands in for, with sshd's %f fingerprint.
    const fingerprint = encodeURIComponent(keyFingerprint(userPublicKey));
    for (const id of [INSTANCE, "i-0c0ffee0c0ffee0ee"]) {
      expect(metadata.requests).toContain(
        `/metadata/${id}/managed-ssh-keys/active-keys/ec2-user/?fingerprint=${fingerprint}`,
      );
    }
    expect(readFileSync(demo.logFile, "utf8")).toContain("Accepted publickey for ec2-user");
  });

  it("checks the host key it serves against the fingerprint it reports", async () => {
    const lines = readFileSync(knownHosts, "utf8");
    expect(lines).toContain(`${INSTANCE} ${demo.hostKey}`);
    const scan = await run("ssh-keygen", [
      "-l",
      "-f",
      `${demo.configPath.replace("sshd_config", "ssh_host_ed25519_key.pub")}`,
    ]);
    expect(scan.stdout).toContain(demo.hostKeyFingerprint);
  });

  it("refuses keys never pushed, pushed for another user, or whose 60 s are over", async () => {
    const fresh = temp("access-e2e-other-");
    const otherKey = join(fresh, "id");
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", otherKey]);
    const other = readFileSync(`${otherKey}.pub`, "utf8");
    metadata.push(INSTANCE, "root", other);
    metadata.push(INSTANCE, "ec2-user", other, -1);
    const refused = await run("ssh", [
      ...sshBase(otherKey),
      "-o",
      `HostKeyAlias=${INSTANCE}`,
      "-p",
      String(demo.port),
      "127.0.0.1",
      "true",
    ]);
    expect(refused.code).toBe(255);
    expect(refused.stderr).toContain("Permission denied (publickey)");
  });

  it("fails closed when the metadata endpoint hangs, errs or answers garbage", async () => {
    metadata.push(INSTANCE, "ec2-user", userPublicKey);
    try {
      for (const mode of ["500", "garbage", "hang"] as const) {
        metadata.mode = mode;
        const started = Date.now();
        const result = await direct("true");
        expect(result.code, mode).toBe(255);
        // Two instance ids asked in parallel, 1 s timeout each: no login waits long for a dead endpoint.
        expect(Date.now() - started).toBeLessThan(8_000);
      }
    } finally {
      metadata.mode = "normal";
    }
    expect((await direct("true")).code).toBe(0);
  });
});

describe("OS users for the demo instance", () => {
  const name = `abtest${process.pid % 100_000}`;
  const cleanup = () => run("userdel", ["--remove", name]);

  it("creates a missing user, unlocks it for key logins and repairs its home; leaves others' accounts alone", async () => {
    await cleanup();
    try {
      const created = ensureOsUser(name);
      expect(created.home).toBe(`/home/${name}`);
      // useradd leaves "!" (locked), which sshd refuses with UsePAM no: it must be "*" now.
      expect((await run("getent", ["shadow", name])).stdout.split(":")[1]).toBe("*");
      // A group/world-writable home makes StrictModes refuse logins: repaired on the next start.
      chmodSync(created.home, 0o777);
      ensureOsUser(name);
      expect(statSync(created.home).mode & 0o777).toBe(0o755);
      // An account this module did not create is never changed; the error says what to run.
      await run("usermod", ["--comment", "someone else", "-p", "!", name]);
      expect(() => ensureOsUser(name)).toThrow(/account is locked[\s\S]*hint: run as root: usermod -p '\*'/);
    } finally {
      await cleanup();
    }
  });
});

describe("access ssh / proxy / tunnel with the real OpenSSH, a fake broker and a fake EICE", () => {
  let eice: FakeEice;
  let api: FakeApi;
  let home: string;
  let keyTmp: string;
  let env: NodeJS.ProcessEnv;
  /** Key directories `access ssh` left in its TMPDIR (tsx keeps its own cache there too). */
  const keyDirs = () => readdirSync(keyTmp).filter((name) => name.startsWith("access-ssh-"));

  beforeAll(async () => {
    eice = await startFakeEice(() => ({ host: demo.host, port: demo.port }));
    api = await startFakeApi({ metadata, direct: () => ({ host: demo.host, port: demo.port }) });
    home = temp("access-e2e-home-");
    keyTmp = temp("access-e2e-tmp-");
    const clean = Object.fromEntries(
      Object.entries(process.env).filter(([key]) => !key.startsWith("ACCESS_")),
    );
    env = {
      ...clean,
      XDG_CONFIG_HOME: home,
      TMPDIR: keyTmp,
      ACCESS_API_URL: api.url,
      ACCESS_TOKEN: "test-token",
      ACCESS_EICE_ENDPOINT: eice.endpoint,
    };
  });

  afterAll(async () => {
    await api?.close();
    await eice?.close();
  });

  it("ssh with ProxyCommand=access proxy runs a command on the instance through the websocket", async () => {
    metadata.push(INSTANCE, "ec2-user", userPublicKey);
    const before = eice.handshakes.length;
    const result = await run(
      "ssh",
      [
        ...sshBase(),
        "-o",
        `ProxyCommand=${process.execPath} ${BIN} proxy ${GRANT}`,
        "-o",
        `HostKeyAlias=${INSTANCE}`,
        INSTANCE,
        "echo hello; id -un; exit 7",
      ],
      { env },
    );
    expect(result.stdout).toBe("hello\nec2-user\n");
    expect(result.code).toBe(7);
    // One websocket, to the override address, signed for (and sent with) the endpoint's DNS name.
    expect(eice.handshakes.slice(before)).toEqual([
      {
        host: expect.stringMatching(/^eice-0demo00000000001\.ec2-instance-connect-endpoint/),
        path: expect.stringContaining("X-Amz-Credential=AKIA%2F"),
      },
    ]);
  });

  it("scp copies 1 MB both ways through access proxy, byte for byte", async () => {
    metadata.push(INSTANCE, "ec2-user", userPublicKey);
    const dir = temp("access-e2e-scp-");
    const data = randomBytes(1024 * 1024);
    writeFileSync(join(dir, "up.bin"), data);
    const proxy = [
      "-o",
      `ProxyCommand=${process.execPath} ${BIN} proxy ${GRANT}`,
      "-o",
      `HostKeyAlias=${INSTANCE}`,
    ];
    const base = sshBase().filter((arg) => arg !== "-l" && arg !== "ec2-user");
    const remote = `/tmp/access-e2e-${process.pid}.bin`;
    const up = await run("scp", [...base, ...proxy, join(dir, "up.bin"), `ec2-user@${INSTANCE}:${remote}`], {
      env,
    });
    expect(up.stderr).toBe("");
    expect(up.code).toBe(0);
    metadata.push(INSTANCE, "ec2-user", userPublicKey);
    const down = await run(
      "scp",
      [...base, ...proxy, `ec2-user@${INSTANCE}:${remote}`, join(dir, "down.bin")],
      { env },
    );
    expect(down.code).toBe(0);
    expect(readFileSync(join(dir, "down.bin")).equals(data)).toBe(true);
    rmSync(remote, { force: true });
  });

  it("access ssh <grant> makes a key, pushes only its public half, runs ssh through EICE and removes the key", async () => {
    const pushes = api.calls.length;
    const result = await run(
      process.execPath,
      [BIN, "ssh", GRANT, "--ssh-option", "BatchMode=yes", "--", "echo hello; id -un; exit 7"],
      {
        env,
      },
    );
    expect(result.stdout).toBe("hello\nec2-user\n");
    expect(result.code).toBe(7);
    expect(result.stderr).toContain(`connecting to ${INSTANCE} as ec2-user through eice-0demo00000000001`);
    const push = api.calls.slice(pushes).find((call) => call.path.endsWith("/ssh-key"));
    expect(Object.keys(push?.body ?? {})).toEqual(["publicKey"]);
    expect(push?.body.publicKey).toMatch(new RegExp(`^ssh-ed25519 [A-Za-z0-9+/]+=* access-broker-${GRANT}$`));
    expect(JSON.stringify(api.calls)).not.toContain("PRIVATE KEY");
    // The temp key directory is gone; the host key was remembered per instance.
    expect(keyDirs()).toEqual([]);
    expect(readFileSync(join(home, "access-broker/known_hosts", INSTANCE), "utf8")).toContain(demo.hostKey);
  });

  it("access ssh gives an interactive session a terminal (run under script(1), which provides a pty)", async () => {
    const child = spawn("script", ["-qec", `${process.execPath} ${BIN} ssh ${GRANT}`, "/dev/null"], {
      env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let output = "";
    let typed = false;
    // Type at the prompt; whatever the prompt looks like, the remote pty buffers what is typed early.
    const type = () => {
      if (typed) return;
      typed = true;
      child.stdin?.write("echo tty is $(tty); exit 3\n");
    };
    const early = setTimeout(type, 3_000);
    const onData = (chunk: Buffer) => {
      output += chunk;
      if (output.includes("$ ")) type();
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const code = await new Promise((done) => child.once("close", (exitCode) => done(exitCode)));
    clearTimeout(timer);
    clearTimeout(early);
    expect(output).toMatch(/tty is \/dev\/pts\/\d+/);
    expect(code).toBe(3);
    expect(keyDirs()).toEqual([]);
  });

  it("access ssh <instance> finds the active grant and connects directly when the route says so", async () => {
    api.route = "direct";
    try {
      const result = await run(
        process.execPath,
        [BIN, "ssh", INSTANCE, "-o", "BatchMode=yes", "--", "id", "-un"],
        { env },
      );
      expect(result.stderr).toContain(`at 127.0.0.1:${demo.port}`);
      expect(result.stdout).toBe("ec2-user\n");
      expect(result.code).toBe(0);
      expect(api.calls.some((call) => call.path.startsWith("/grants?active=true&mine=true"))).toBe(true);
      expect(keyDirs()).toEqual([]);
    } finally {
      api.route = "eice";
    }
  });

  it("access tunnel serves several ssh connections, each with its own presigned URL, and stops on Ctrl-C", async () => {
    const child: ChildProcess = spawn(
      process.execPath,
      [BIN, "tunnel", GRANT, "--local-port", "0", "--max-connections", "2"],
      {
        env,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr?.on("data", (chunk) => {
      stderr += chunk;
    });
    try {
      const deadline = Date.now() + 15_000;
      while (!/listening on 127\.0\.0\.1:(\d+)/.test(stdout)) {
        if (Date.now() > deadline || child.exitCode !== null)
          throw new Error(`tunnel did not start: ${stdout}${stderr}`);
        await new Promise((done) => setTimeout(done, 50));
      }
      expect(stdout).toMatch(/listening on 127\.0\.0\.1:\d+ → 10\.0\.1\.10:22 through eice-0demo00000000001/);
      const port = /listening on 127\.0\.0\.1:(\d+)/.exec(stdout)?.[1] as string;
      const before = eice.handshakes.length;
      const tunnelCalls = () => api.calls.filter((call) => call.path.endsWith("/tunnel")).length;
      const presigned = tunnelCalls();
      metadata.push(INSTANCE, "ec2-user", userPublicKey);
      const [a, b] = await Promise.all(
        ["echo one", "echo two"].map((command) =>
          run("ssh", [...sshBase(), "-o", `HostKeyAlias=${INSTANCE}`, "-p", port, "127.0.0.1", command]),
        ),
      );
      expect([a?.stdout, b?.stdout]).toEqual(["one\n", "two\n"]);
      expect(eice.handshakes.length - before).toBe(2);
      // The banner's URL served the first connection; the second got a fresh one.
      expect(tunnelCalls() - presigned).toBe(1);
      expect(new Set(eice.handshakes.slice(-2).map((h) => h.path)).size).toBe(2);
    } finally {
      child.kill("SIGINT");
      const code = await new Promise((done) => child.once("exit", (exitCode) => done(exitCode)));
      expect(code).toBe(0);
    }
  });

  it("Ctrl-C while waiting for approval stops waiting, leaves the request open and exits 130", async () => {
    api.noGrants = true;
    try {
      const child = spawn(process.execPath, [BIN, "ssh", INSTANCE, "--for", "30m", "--reason", "e2e"], {
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      child.stderr?.on("data", (chunk) => {
        stderr += chunk;
        if (String(chunk).includes("waiting for 1 approval")) child.kill("SIGINT");
      });
      const code = await new Promise((done) => child.once("exit", (exitCode) => done(exitCode)));
      expect(code).toBe(130);
      expect(stderr).toContain(`stopped waiting; request ${api.grant.requestId} stays open`);
      expect(stderr).toContain(`access cancel ${api.grant.requestId}`);
      expect(api.calls.some((call) => call.path.includes("/cancel"))).toBe(false);
      expect(keyDirs()).toEqual([]);
    } finally {
      api.noGrants = false;
    }
  });

  it("access proxy exits 1 with a clear message when the endpoint cannot be reached, never printing the URL", async () => {
    const result = await run(process.execPath, [BIN, "proxy", GRANT], {
      env: { ...env, ACCESS_EICE_ENDPOINT: undefined },
      input: Buffer.alloc(0),
    });
    // Without the override the CLI connects to the (unresolvable) DNS name itself.
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/cannot open the tunnel through eice-0demo00000000001/);
    expect(result.stderr).not.toContain("X-Amz-Signature");
  });
});
