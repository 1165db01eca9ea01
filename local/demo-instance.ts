/**
 * The demo instance: a real OpenSSH server on loopback that behaves, for logging in, like an EC2 Linux
 * instance with the EC2 Instance Connect package installed.
 *
 * How it mirrors aws/aws-ec2-instance-connect-config (see reference/protocols.md §2.4):
 * - The package adds `AuthorizedKeysCommand /opt/aws/bin/eic_run_authorized_keys %u %f` with
 *   `AuthorizedKeysCommandUser ec2-instance-connect` to sshd; we generate the same two lines, with `nobody`
 *   as the unprivileged user and `node local/demo-instance/authorized-keys.mjs` as the command (node is
 *   argv[0], so sshd's ownership check applies to the node binary, not to a script under a repository).
 * - `eic_curl_authorized_keys` asks IMDS `meta-data/managed-ssh-keys/active-keys/<user>/` (1 s curl
 *   timeout) and prints nothing on any failure; our script asks the emulator's metadata endpoint for each
 *   instance id this sshd stands in for, with the same timeout and the same fail-closed behaviour, and keeps
 *   the `#Timestamp` expiry, `#Instance` and `%f` fingerprint checks. The RSA-PSS signature and signer
 *   certificate/OCSP checks are left out: the emulator has no Amazon signer, and loopback is the trust path.
 * - Keys therefore work only for the 60 s the emulator keeps a `SendSSHPublicKey`, exactly as on EC2; an
 *   already-authenticated session is not cut when its key expires (sshd asks only at authentication).
 * Unlike the package we also turn off every other way in (no authorized_keys files, passwords, PAM or
 * root login) and allow only the configured OS users, so the demo box is reachable by pushed keys alone.
 */

import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  accessSync,
  appendFileSync,
  chmodSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./dynamo.ts";

export const SSHD_PATH = "/usr/sbin/sshd";
/** The AuthorizedKeysCommand script. Plain JS so `nobody` can run it with node alone, without tsx. */
export const AUTHORIZED_KEYS_SCRIPT = fileURLToPath(
  new URL("./demo-instance/authorized-keys.mjs", import.meta.url),
);
/** Marks OS users this module created, so it only ever repairs accounts it owns. */
const USER_COMMENT = "access-broker demo instance user";
const COMMAND_USER = "nobody";
const READY_TIMEOUT_MS = 10_000;
const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((path) => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
});
const LOG_LINES_KEPT = 200;

export interface DemoInstanceOptions {
  /** Emulator base URL; the key script asks `<metadataUrl>/metadata/<id>/managed-ssh-keys/active-keys/<user>/`. */
  metadataUrl: string;
  /** Instance ids whose pushed keys this sshd accepts, e.g. `i-0a1b2c3d4e5f60718`. */
  instanceIds: string[];
  /** Host key, generated config, pid file and `sshd.log` live here (created 0700). */
  dataDir: string;
  /** 0 or absent: a free port. */
  port?: number;
  /** OS users that may log in; created when running as root. Default `["ec2-user"]`. */
  osUsers?: string[];
  /** Each line sshd logs (it is also appended to `<dataDir>/sshd.log`). */
  onLog?: (line: string) => void;
}

export interface DemoInstance {
  host: string;
  port: number;
  pid: number;
  /** `SHA256:…` of the host key, as `ssh-keygen -lf` and ssh's "Permanently added" print it. */
  hostKeyFingerprint: string;
  /** The host key line (`ssh-ed25519 AAAA…`), e.g. for a known_hosts entry. */
  hostKey: string;
  configPath: string;
  logFile: string;
  /** The last lines sshd logged. */
  logs(): string;
  /** Stops sshd and every session it started. Safe to call twice. */
  stop(): Promise<void>;
}

/** The demo instance cannot run here; `message` says why and `hint` what to do. */
export class DemoInstanceError extends Error {
  readonly hint: string | undefined;

  constructor(message: string, hint?: string) {
    super(hint ? `${message}\n  hint: ${hint}` : message);
    this.name = "DemoInstanceError";
    this.hint = hint;
  }
}

/** Whether OpenSSH's server is installed, with the fix when it is not. */
export function isSshdAvailable(): { ok: true } | { ok: false; message: string } {
  try {
    accessSync(SSHD_PATH, constants.X_OK);
    return { ok: true };
  } catch {
    return {
      ok: false,
      message: `${SSHD_PATH} not found: the demo instance needs OpenSSH's server (Debian/Ubuntu: apt-get install -y openssh-server)`,
    };
  }
}

/**
 * The inventory instances whose SSH port the emulator forwards to the demo sshd (`ports: {"22": demo-sshd}`):
 * the ids this sshd must accept pushed keys for.
 */
export function demoInstanceIds(
  instances: readonly { id: string; ports?: Record<string, string> }[],
  upstream = "demo-sshd",
): string[] {
  return instances.filter((instance) => instance.ports?.["22"] === upstream).map((instance) => instance.id);
}

// ---- sshd config ----

export interface SshdConfigInput {
  port: number;
  hostKeyPath: string;
  pidFile: string;
  metadataUrl: string;
  instanceIds: string[];
  osUsers: string[];
  nodePath: string;
  scriptPath: string;
}

const INSTANCE_ID = /^i-[0-9a-f]{8,32}$/;
const OS_USER = /^[A-Za-z0-9_][A-Za-z0-9@._-]{0,30}$/;

/** One word of an sshd config line: sshd splits on whitespace and honours double quotes. */
function word(value: string, what: string): string {
  if (/["'\\\n\r\t]/.test(value) || value === "")
    throw new DemoInstanceError(`${what} cannot be used: ${value}`);
  return /\s/.test(value) ? `"${value}"` : value;
}

/** sshd percent-expands AuthorizedKeysCommand (%u, %f…): a literal % must be written %%. */
const literal = (value: string) => value.replaceAll("%", "%%");

/** The sshd_config of the demo instance (pure; `sshd -t` validates it before use). */
export function sshdConfig(input: SshdConfigInput): string {
  if (input.instanceIds.length === 0)
    throw new DemoInstanceError("instanceIds is empty: no keys could ever work");
  for (const id of input.instanceIds)
    if (!INSTANCE_ID.test(id))
      throw new DemoInstanceError(`"${id}" is not an instance id like i-0a1b2c3d4e5f60718`);
  if (input.osUsers.length === 0) throw new DemoInstanceError("osUsers is empty: nobody could log in");
  for (const user of input.osUsers)
    if (!OS_USER.test(user)) throw new DemoInstanceError(`"${user}" is not a valid OS user name`);
  const url = new URL(input.metadataUrl);
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new DemoInstanceError(`metadataUrl must be http(s), got ${input.metadataUrl}`);
  const command = [
    word(input.nodePath, "the node path"),
    word(input.scriptPath, "the key script path"),
    "--metadata",
    word(literal(url.href), "the metadata URL"),
    ...input.instanceIds.flatMap((id) => ["--instance", id]),
    "%u",
    "%f",
  ].join(" ");
  return [
    "# Generated by access-broker local/demo-instance.ts on every start; edits are overwritten.",
    `Port ${input.port}`,
    "ListenAddress 127.0.0.1",
    "AddressFamily inet",
    `HostKey ${word(input.hostKeyPath, "the host key path")}`,
    `PidFile ${word(input.pidFile, "the pid file path")}`,
    "",
    "# EC2 Instance Connect: keys come only from the (emulated) instance metadata, for 60 s after a push.",
    "AuthorizedKeysFile none",
    `AuthorizedKeysCommand ${command}`,
    `AuthorizedKeysCommandUser ${COMMAND_USER}`,
    "PubkeyAuthentication yes",
    "",
    "# No other way in.",
    "UsePAM no",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "HostbasedAuthentication no",
    "PermitRootLogin no",
    "PermitEmptyPasswords no",
    `AllowUsers ${input.osUsers.join(" ")}`,
    "StrictModes yes",
    "",
    "LogLevel VERBOSE",
    "PrintMotd no",
    "X11Forwarding no",
    "AllowAgentForwarding no",
    "PermitTunnel no",
    "# scp and sftp (OpenSSH 9's scp speaks SFTP).",
    "Subsystem sftp internal-sftp",
    "",
  ].join("\n");
}

// ---- OS users ----

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  comment: string;
  home: string;
  shell: string;
}

function passwd(name: string): PasswdEntry | undefined {
  const result = spawnSync("getent", ["passwd", name], { encoding: "utf8" });
  let line = result.status === 0 ? result.stdout.trim() : undefined;
  if (result.error) {
    // no getent: read the file
    line = readFileSync("/etc/passwd", "utf8")
      .split("\n")
      .find((entry) => entry.startsWith(`${name}:`));
  }
  if (!line) return undefined;
  const [user, , uid, gid, comment, home, shell] = line.split(":");
  if (user === undefined || home === undefined || shell === undefined) return undefined;
  return { name: user, uid: Number(uid), gid: Number(gid), comment: comment ?? "", home, shell };
}

/** The shadow password field (root only): "!…" marks a locked account. */
function shadowPassword(name: string): string | undefined {
  const result = spawnSync("getent", ["shadow", name], { encoding: "utf8" });
  return result.status === 0 ? result.stdout.trim().split(":")[1] : undefined;
}

function run(command: string, args: string[]): void {
  const result = spawnSync(command, args, { encoding: "utf8" });
  if (result.error || result.status !== 0) {
    throw new DemoInstanceError(
      `${command} ${args.join(" ")} failed: ${(result.error?.message ?? result.stderr).trim() || `exit ${result.status}`}`,
    );
  }
}

const isRoot = () => process.getuid?.() === 0;

/**
 * Makes sure `name` can log in through sshd: it exists (created when root), its account is not locked
 * (with `UsePAM no` sshd refuses a shadow password starting with "!", which is what useradd leaves), its
 * home exists, is its own and is not group/world-writable (StrictModes), and its shell exists.
 * Only accounts this module created are repaired; for others the error says what to run.
 */
export function ensureOsUser(name: string): PasswdEntry {
  let entry = passwd(name);
  if (!entry) {
    if (!isRoot()) {
      throw new DemoInstanceError(
        `OS user ${name} does not exist and only root can create it`,
        `run once as root: useradd --create-home --shell /bin/bash ${name} && usermod -p '*' ${name}` +
          " (the local runtime runs without the demo instance meanwhile)",
      );
    }
    try {
      run("useradd", ["--create-home", "--shell", "/bin/bash", "--comment", USER_COMMENT, name]);
    } catch (error) {
      // Another runtime (or test run) on this machine may have just created it.
      if (!passwd(name)) throw error;
    }
    entry = passwd(name);
    if (!entry)
      throw new DemoInstanceError(`useradd reported success but ${name} is not in the passwd database`);
  }
  const ours = entry.comment === USER_COMMENT;
  const fix = (problem: string, command: string) => {
    if (isRoot() && ours) return true;
    throw new DemoInstanceError(`OS user ${name}: ${problem}`, `run as root: ${command}`);
  };
  if (isRoot() && shadowPassword(name)?.startsWith("!")) {
    // "*" is "no password can match" without the lock marker: keys work, passwords never do.
    if (fix("the account is locked, and sshd (UsePAM no) refuses locked accounts", `usermod -p '*' ${name}`))
      run("usermod", ["-p", "*", name]);
  }
  let home: Stats | undefined;
  try {
    home = statSync(entry.home);
  } catch {
    if (
      fix(
        `home directory ${entry.home} is missing`,
        `mkdir -m 750 ${entry.home} && chown ${name}: ${entry.home}`,
      )
    ) {
      mkdirSync(entry.home, { recursive: true, mode: 0o750 });
      execFileSync("chown", [`${entry.uid}:${entry.gid}`, entry.home]);
      home = statSync(entry.home);
    }
  }
  if (home && (home.uid !== entry.uid || (home.mode & 0o022) !== 0)) {
    if (
      fix(
        `home directory ${entry.home} must belong to ${name} and not be group/world-writable (sshd StrictModes)`,
        `chown ${name}: ${entry.home} && chmod go-w ${entry.home}`,
      )
    ) {
      execFileSync("chown", [`${entry.uid}:${entry.gid}`, entry.home]);
      chmodSync(entry.home, home.mode & 0o755);
    }
  }
  try {
    accessSync(entry.shell, constants.X_OK);
  } catch {
    throw new DemoInstanceError(
      `OS user ${name} has shell ${entry.shell}, which cannot be run; sshd refuses such users`,
    );
  }
  return entry;
}

// ---- paths sshd will check ----

/**
 * sshd refuses an AuthorizedKeysCommand unless it and every directory above it belong to root and are not
 * group/world-writable. Returns the offending path, if any.
 */
export function unsafeCommandPath(path: string): string | undefined {
  let current = resolve(path);
  for (;;) {
    const stat = statSync(current);
    if (stat.uid !== 0 || (stat.mode & 0o022) !== 0) return current;
    const parent = dirname(current);
    if (parent === current) return undefined;
    current = parent;
  }
}

/**
 * The key script decides who logs in, so nobody else may be able to change it: neither it nor a directory
 * above it may be group/world-writable (sshd itself only checks argv[0], here node). Returns the offender.
 */
/**
 * Where sshd runs the key script from: a root-owned system directory, not the checkout. A checkout may sit
 * under /tmp (world-writable) or a 0700 home that `nobody` cannot read; the copy is named by its content
 * hash, so two checkouts never overwrite each other's script.
 */
export const KEY_SCRIPT_DIR = "/var/lib/access-broker";

export function installKeyScript(source = AUTHORIZED_KEYS_SCRIPT, dir = KEY_SCRIPT_DIR): string {
  const content = readFileSync(source);
  const digest = createHash("sha256").update(content).digest("hex").slice(0, 16);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  const target = join(dir, `authorized-keys-${digest}.mjs`);
  if (!existsSync(target)) {
    const partial = `${target}.${process.pid}.tmp`;
    writeFileSync(partial, content, { mode: 0o644 });
    renameSync(partial, target);
  }
  return target;
}

export function writableByOthers(path: string): string | undefined {
  let current = resolve(path);
  for (;;) {
    if ((statSync(current).mode & 0o022) !== 0) return current;
    const parent = dirname(current);
    if (parent === current) return undefined;
    current = parent;
  }
}

function nobodyIds(): { uid: number; gid: number } {
  const entry = passwd(COMMAND_USER);
  if (!entry)
    throw new DemoInstanceError(`the user ${COMMAND_USER} (AuthorizedKeysCommandUser) does not exist`);
  return { uid: entry.uid, gid: entry.gid };
}

/** Runs the key script as `nobody` once, so an unreadable checkout fails here rather than at every login. */
function checkScriptRunsAsNobody(nodePath: string, script: string): void {
  const ids = nobodyIds();
  const result = spawnSync(nodePath, [script, "--check"], {
    ...ids,
    cwd: "/",
    encoding: "utf8",
    timeout: 10_000,
    env: { PATH: "/usr/bin:/bin" },
  });
  if (result.stdout.trim() !== "ok") {
    throw new DemoInstanceError(
      `${COMMAND_USER} cannot run ${script}: ${(result.error?.message ?? result.stderr).trim().split("\n").slice(-3).join(" ")}`,
      "sshd runs the key lookup as nobody: every directory above the checkout needs o+x and the script o+r",
    );
  }
}

// ---- processes ----

/** Every live descendant of `pid` (sshd's per-connection children call setsid, so a group kill misses them). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue;
    }
    // pid (comm) state ppid …; comm may contain spaces and parentheses, so read after the last ")".
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.shift() as number;
    for (const child of children.get(next) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** Running, and not a zombie (killed sessions reparented to a PID 1 that does not reap stay as zombies). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
}

function signal(pids: number[], name: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, name);
    } catch {
      // already gone
    }
  }
}

/** An sshd left by a runtime that was killed outright: only if its command line names our config. */
function killStale(pidFile: string, configPath: string): void {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, "utf8").trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) return;
  let cmdline = "";
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return;
  }
  // sshd rewrites its process title ("sshd: /usr/sbin/sshd -D -e -f <config> [listener] …").
  if (!cmdline.includes("sshd") || !cmdline.replaceAll("\0", " ").includes(` ${configPath}`)) return;
  signal([pid, ...descendants(pid)], "SIGKILL");
}

/** `SHA256:…` fingerprint of an OpenSSH public key line. */
export function keyFingerprint(keyLine: string): string {
  const blob = Buffer.from(keyLine.trim().split(/\s+/)[1] ?? "", "base64");
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

function ensureHostKey(dataDir: string): { path: string; publicKey: string } {
  const path = join(dataDir, "ssh_host_ed25519_key");
  if (!existsSync(path) || !existsSync(`${path}.pub`)) {
    // Remove a half pair first, so ssh-keygen never asks "Overwrite (y/n)?". Feeding it "y" on stdin
    // instead raced: ssh-keygen does not read stdin for a new file and may exit before the write, which
    // spawnSync then reports as EPIPE (seen as a failed start on a fresh data directory).
    rmSync(path, { force: true });
    rmSync(`${path}.pub`, { force: true });
    const result = spawnSync(
      "ssh-keygen",
      ["-q", "-t", "ed25519", "-N", "", "-C", "access-broker-demo-instance", "-f", path],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    );
    if (result.error || result.status !== 0)
      throw new DemoInstanceError(
        `ssh-keygen could not make the host key: ${(result.error?.message ?? result.stderr).trim()}`,
        "apt-get install -y openssh-client",
      );
  }
  // sshd ignores a host key that others can read.
  chmodSync(path, 0o600);
  return { path, publicKey: readFileSync(`${path}.pub`, "utf8").trim() };
}

function validate(configPath: string): void {
  const result = spawnSync(SSHD_PATH, ["-t", "-f", configPath], { encoding: "utf8" });
  if (result.error || result.status !== 0) {
    throw new DemoInstanceError(
      `sshd rejected the generated config ${configPath}: ${(result.error?.message ?? result.stderr).trim()}`,
    );
  }
}

interface Started {
  child: ChildProcess;
  port: number;
}

/** Starts sshd and resolves once it listens; rejects with sshd's own words if it exits first. */
function launch(configPath: string, lines: string[], onLine: (line: string) => void): Promise<Started> {
  return new Promise((done, fail) => {
    const sshd = [SSHD_PATH, "-D", "-e", "-f", configPath];
    // With setpriv (util-linux), the kernel sends sshd SIGTERM when we die, even of SIGKILL, when no
    // `exit` handler runs; setpriv execs sshd, so the pid is sshd's own.
    const child = SETPRIV
      ? spawn(SETPRIV, ["--pdeathsig", "SIGTERM", ...sshd], { stdio: ["ignore", "ignore", "pipe"] })
      : spawn(SSHD_PATH, sshd.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
    let buffered = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(
        new DemoInstanceError(
          `sshd did not start listening within ${READY_TIMEOUT_MS / 1000}s:\n${lines.join("\n")}`,
        ),
      );
    }, READY_TIMEOUT_MS);
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split("\n");
      buffered = parts.pop() ?? "";
      for (const line of parts) {
        onLine(line);
        const listening = /^Server listening on 127\.0\.0\.1 port (\d+)\./.exec(line);
        if (listening) {
          clearTimeout(timer);
          done({ child, port: Number(listening[1]) });
        }
      }
    });
    child.once("error", (error) => {
      clearTimeout(timer);
      fail(new DemoInstanceError(`cannot start ${SSHD_PATH}: ${error.message}`));
    });
    child.once("exit", (code, signalName) => {
      clearTimeout(timer);
      fail(
        new DemoInstanceError(
          `sshd exited (${signalName ?? `code ${code}`}) before listening:\n${lines.slice(-10).join("\n")}`,
        ),
      );
    });
  });
}

/**
 * Runs a private `sshd -D -e` on 127.0.0.1 that accepts, for the configured OS users, exactly the keys
 * pushed to `instanceIds` in the last 60 s (asked from the emulator's metadata endpoint at each login).
 * Throws DemoInstanceError, with a hint, when this machine cannot run it (no sshd, not root, …).
 */
export async function startDemoInstance(options: DemoInstanceOptions): Promise<DemoInstance> {
  const available = isSshdAvailable();
  if (!available.ok) throw new DemoInstanceError(available.message);
  const osUsers = options.osUsers ?? ["ec2-user"];
  if (!isRoot()) {
    const missing = osUsers.filter((user) => !passwd(user));
    const create = missing
      .map((user) => `useradd --create-home --shell /bin/bash ${user} && usermod -p '*' ${user}`)
      .join(" && ");
    throw new DemoInstanceError(
      `the demo instance needs root: sshd must switch to the OS user and run the key lookup as nobody${missing.length ? `, and OS user ${missing.join(", ")} does not exist` : ""}`,
      `${missing.length ? `as root, once: ${create}; then ` : ""}run npm start as root (meanwhile the local runtime runs without the demo instance)`,
    );
  }
  const nodePath = process.execPath;
  const unsafe = unsafeCommandPath(nodePath);
  if (unsafe) {
    throw new DemoInstanceError(
      `sshd will not run ${nodePath} as AuthorizedKeysCommand: ${unsafe} is not root-owned or is group/world-writable`,
      "use a node installed system-wide (e.g. /usr/bin/node)",
    );
  }
  const keyScript = installKeyScript();
  const exposed = writableByOthers(keyScript);
  if (exposed) {
    throw new DemoInstanceError(
      `${exposed} is group/world-writable, so others could change ${keyScript}, which decides who logs in`,
      `chmod go-w ${exposed}`,
    );
  }
  checkScriptRunsAsNobody(nodePath, keyScript);
  for (const user of osUsers) ensureOsUser(user);

  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
  // sshd's privilege separation directory (normally made by the init system).
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });

  const configPath = join(dataDir, "sshd_config");
  const pidFile = join(dataDir, "sshd.pid");
  const logFile = join(dataDir, "sshd.log");
  killStale(pidFile, configPath);
  const hostKey = ensureHostKey(dataDir);

  // Keep one previous log; a long-lived dev box should not grow it forever.
  try {
    if (statSync(logFile).size > 5 * 1024 * 1024) renameSync(logFile, `${logFile}.1`);
  } catch {
    // no log yet
  }
  const lines: string[] = [];
  const onLine = (line: string) => {
    lines.push(line);
    if (lines.length > LOG_LINES_KEPT) lines.shift();
    try {
      appendFileSync(logFile, `${line}\n`);
    } catch {
      // the log file is a convenience; never let it stop sshd
    }
    options.onLog?.(line);
  };

  let started: Started | undefined;
  for (let attempt = 0; !started; attempt++) {
    const port = options.port || (await freePort());
    writeFileSync(
      configPath,
      sshdConfig({
        port,
        hostKeyPath: hostKey.path,
        pidFile,
        metadataUrl: options.metadataUrl,
        instanceIds: options.instanceIds,
        osUsers,
        nodePath,
        scriptPath: keyScript,
      }),
      { mode: 0o600 },
    );
    validate(configPath);
    try {
      started = await launch(configPath, lines, onLine);
    } catch (error) {
      // A free port can be taken between the probe and sshd's bind: try another one.
      const raced = !options.port && attempt < 3 && lines.some((line) => /Address already in use/.test(line));
      if (!raced) throw error;
    }
  }

  const { child, port } = started;
  const pid = child.pid as number;
  const killAll = () => signal([pid, ...descendants(pid)], "SIGKILL");
  process.once("exit", killAll);
  let stopped: Promise<void> | undefined;
  child.once("exit", (code, signalName) => {
    if (!stopped) onLine(`access-broker: sshd exited unexpectedly (${signalName ?? `code ${code}`})`);
  });

  return {
    host: "127.0.0.1",
    port,
    pid,
    hostKeyFingerprint: keyFingerprint(hostKey.publicKey),
    hostKey: hostKey.publicKey.split(/\s+/).slice(0, 2).join(" "),
    configPath,
    logFile,
    logs: () => lines.join("\n"),
    stop() {
      stopped ??= (async () => {
        process.off("exit", killAll);
        const all = [pid, ...descendants(pid)];
        signal(all, "SIGTERM");
        const deadline = Date.now() + 3_000;
        while (all.some(alive) && Date.now() < deadline) await new Promise((done) => setTimeout(done, 50));
        signal(all.filter(alive), "SIGKILL");
        if (child.exitCode === null && child.signalCode === null)
          await new Promise((done) => child.once("exit", done));
      })();
      return stopped;
    },
  };
}
