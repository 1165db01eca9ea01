/**
 * `access ssh`, `access proxy` and `access tunnel`: from a grant to bytes on the instance.
 *
 * ssh: find (or ask for, and wait for) an active ssh grant → make a key pair locally → push the public key
 * (`POST /grants/{id}/ssh-key`, 60 s in instance metadata) → run the system `ssh` with that key only. The
 * route the broker answers decides how ssh reaches port 22: `direct` to a host, or `eice`, where this
 * process holds the tunnel: it presigns while the key is pushed, listens on a Unix socket in a private
 * directory, and ssh's ProxyCommand is relay.js, a few lines of plain Node that join ssh's stdio to that
 * socket. (Running `access proxy` as the ProxyCommand would start the CLI a second time, a quarter second
 * on the way to the first command.) `access proxy <grant>` remains the ProxyCommand for scp, rsync and
 * ssh configs, and asks for a fresh presigned URL on every connection.
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import type { Access } from "../core/access/index.ts";
import type { Request } from "../core/request/index.ts";
import { ApiError, type Client, segment } from "./client.ts";
import { duration } from "./commands.ts";
import { CliError, type Ctx, EXIT } from "./context.ts";
import * as Format from "./format.ts";
import { existingKeyPair, generateKeyPair, type KeyPair } from "./keys.ts";
import { BIN, RELAY } from "./paths.ts";
import { resolveCredentials, sessionDir } from "./session.ts";

// The websocket side (bridge.ts, tunnel.ts and ws) is imported when a tunnel is needed: commands that
// never open one (and `access ssh` to a direct route) do not load ws.
const websocket = () => import("./bridge.ts");

/** `POST /grants/{id}/ssh-key` answer: the push, and the route ssh takes to port 22. */
export type SshKeyPush = Access.PushResult;
/** `POST /grants/{id}/tunnel` answer: a presigned `wss://…/openTunnel?…` URL, valid 60 s. Never print it. */
export type TunnelAuthorization = Access.TunnelResult;

type Page<T> = { items: T[]; nextCursor?: string };

const DEFAULT_OS_USER = "ec2-user";
const GRANT_ID = /^gr_[0-9a-z]{26}$/i;
const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
/** Poll delays while waiting for approval: quick at first (auto-approval, a colleague at hand), then calmer. */
const POLL_DELAYS_MS = [1_000, 1_000, 2_000, 3_000, 5_000];
const WARN_BEFORE_END_MS = 5 * 60_000;

// ---- finding the grant ----

async function activeSshGrants(client: Client, instanceId: string): Promise<Request.Grant[]> {
  const found: Request.Grant[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 20; page++) {
    const answer = await client.get<Page<Request.Grant>>("/grants", {
      active: true,
      mine: true,
      limit: 100,
      cursor,
    });
    found.push(...answer.items.filter((grant) => grant.instanceId === instanceId && grant.method === "ssh"));
    cursor = answer.nextCursor;
    if (!cursor) break;
  }
  return found;
}

function checkUsable(grant: Request.Grant, now: Date): void {
  if (grant.method !== "ssh") {
    throw new CliError(`grant ${grant.id} is for ${Format.access(grant)}, not ssh`, {
      hint: `for a tunnel use: access tunnel ${grant.id} --local-port 2222`,
    });
  }
  if (grant.status === "approved") {
    throw new CliError(
      `grant ${grant.id} has not started yet: it starts ${Format.when(grant.startsAt, now)}`,
    );
  }
  if (grant.status !== "active") {
    throw new CliError(
      `grant ${grant.id} is ${grant.status}${grant.endedAt ? ` (since ${Format.when(grant.endedAt, now)})` : ""}`,
      {
        hint: `ask again: access ssh ${grant.instanceId} --for 30m --reason "…"`,
      },
    );
  }
}

export interface WaitOptions {
  log: (line: string) => void;
  /** Resolves when the user gives up (Ctrl-C); waiting then stops, the request stays open. */
  interrupted: Promise<void>;
  delaysMs?: readonly number[];
}

/**
 * Polls `GET /requests/{id}` until the request's grant is active (resolves with the grant id), the request
 * ends without one (throws), or the user stops waiting (resolves undefined).
 */
export async function waitForGrant(
  client: Client,
  created: Request.Info,
  now: () => Date,
  options: WaitOptions,
): Promise<string | undefined> {
  const delays = options.delaysMs ?? POLL_DELAYS_MS;
  const stopped = Symbol("stopped");
  const interrupted = options.interrupted.then(() => stopped);
  let request = created;
  let said = "";
  for (let attempt = 0; ; attempt++) {
    // What was last said, without the relative times that change on every poll.
    let line: string;
    let gist: string;
    switch (request.status) {
      case "active":
        return request.grantId;
      case "pending": {
        const missing = Math.max(0, request.approvalsRequired - request.approvals.length);
        const from = request.approvalsFrom.length
          ? request.approvalsFrom.map(Format.clean).join(", ")
          : "the rule's approvers";
        gist = `waiting for ${missing} approval${missing === 1 ? "" : "s"} from ${from}`;
        line = `${gist} (request ${request.id}, times out ${Format.when(request.pendingUntil, now())})`;
        break;
      }
      case "approved": {
        const starts = request.startsAt ?? request.startAt;
        gist = `approved; the grant starts ${starts}`;
        line = `approved; the grant starts ${Format.when(starts, now())}`;
        break;
      }
      default: {
        const by = request.decision
          ? ` by ${Format.clean(request.decision.by)}${request.decision.reason ? `: ${Format.clean(request.decision.reason)}` : ""}`
          : "";
        throw new CliError(`request ${request.id} was ${request.status}${by}`);
      }
    }
    if (gist !== said) options.log(line);
    said = gist;
    const delay = delays[Math.min(attempt, delays.length - 1)] ?? 5_000;
    // Not unref()ed: this timer is what keeps the process alive while it waits; cleared on Ctrl-C.
    let timer: NodeJS.Timeout | undefined;
    const slept = new Promise<void>((done) => {
      timer = setTimeout(done, delay);
    });
    const outcome = await Promise.race([slept, interrupted]);
    clearTimeout(timer);
    if (outcome === stopped) return undefined;
    request = await client.get<Request.Info>(`/requests/${segment(request.id)}`);
  }
}

export interface SshOptions {
  user?: string;
  for?: string;
  reason?: string;
  ticket?: string;
  identityFile?: string;
  sshOption?: string[];
}

/** The grant to use: the one named, the caller's active ssh grant on the instance, or a new request's. */
async function sshGrant(
  ctx: Ctx,
  client: Client,
  target: string,
  options: SshOptions,
): Promise<Request.Grant | undefined> {
  if (target.startsWith("gr_")) {
    if (!GRANT_ID.test(target)) throw new CliError(`"${target}" is not a grant id like gr_01jx…`);
    if (options.for || options.reason) ctx.io.stderr("note: --for/--reason are ignored with a grant id\n");
    return client.get<Request.Grant>(`/grants/${segment(target)}`);
  }
  if (!INSTANCE_ID.test(target))
    throw new CliError(`"${target}" is neither an instance id (i-…) nor a grant id (gr_…)`);
  const grants = (await activeSshGrants(client, target)).filter(
    (grant) => !options.user || !grant.osUser || grant.osUser === options.user,
  );
  grants.sort((a, b) => Date.parse(b.endsAt ?? "") - Date.parse(a.endsAt ?? ""));
  const existing = grants[0];
  if (existing) {
    if (options.for || options.reason)
      ctx.io.stderr(`note: using your active grant ${existing.id}; --for/--reason are not needed\n`);
    return existing;
  }
  if (!options.for || !options.reason) {
    throw new CliError(
      `you have no active ssh grant for ${target}${options.user ? ` as ${options.user}` : ""}`,
      {
        hint: `ask for one: access ssh ${target} --for 30m --reason "…"`,
      },
    );
  }
  const body: Request.CreateInput = {
    instanceId: target,
    method: "ssh",
    osUser: options.user,
    durationSeconds: duration(options.for),
    reason: options.reason,
    ticket: options.ticket,
  };
  const { body: created } = await client.call<Request.Info>("POST", "/requests", {
    body,
    headers: { "idempotency-key": randomUUID() },
  });
  if (created.status !== "active") ctx.io.stderr(`${Format.requestSummary(created, ctx.now)}\n`);
  let unsubscribe = () => {};
  const interrupted = new Promise<void>((done) => {
    unsubscribe = ctx.io.onInterrupt(done);
  });
  try {
    const grantId = await waitForGrant(client, created, ctx.io.now, {
      log: (line) => ctx.io.stderr(`${line}\n`),
      interrupted,
    });
    if (!grantId) {
      ctx.io.stderr(
        `stopped waiting; request ${created.id} stays open.\n` +
          `  once approved: access ssh ${created.grantId}\n  to withdraw it: access cancel ${created.id}\n`,
      );
      return undefined;
    }
    return client.get<Request.Grant>(`/grants/${segment(grantId)}`);
  } finally {
    unsubscribe();
  }
}

// ---- running ssh ----

/** POSIX shell quoting for one word of ssh's ProxyCommand (run by `/bin/sh -c`). */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/** ssh percent-expands ProxyCommand, IdentityFile and UserKnownHostsFile: a literal % is written %%. */
const percent = (text: string) => text.replaceAll("%", "%%");
/** One path value inside `-o Key=value`: ssh splits on whitespace unless quoted. */
const pathValue = (path: string) => (/\s/.test(path) ? `"${percent(path)}"` : percent(path));

export interface SshArgsInput {
  keyPath: string;
  osUser: string;
  instanceId: string;
  grantId: string;
  knownHostsFile: string;
  route: SshKeyPush["route"];
  /** The ProxyCommand argv for eice routes (default: this node running `access proxy <grant>`). */
  proxyArgv?: string[];
  sshOptions?: string[];
  command?: string[];
}

/**
 * The system ssh's arguments. The user's `-o` options come first because ssh keeps the first value it
 * sees for each option, so they can override ours; the key is the only identity offered; the host key is
 * remembered per instance (HostKeyAlias), whatever address or tunnel reaches it.
 */
export function sshArgs(input: SshArgsInput): string[] {
  const args: string[] = [];
  for (const option of input.sshOptions ?? []) args.push("-o", option);
  args.push(
    "-i",
    percent(input.keyPath),
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "IdentityAgent=none",
    "-o",
    "StrictHostKeyChecking=accept-new",
    "-o",
    `UserKnownHostsFile=${pathValue(input.knownHostsFile)}`,
    "-o",
    `HostKeyAlias=${input.instanceId}`,
    "-o",
    "ServerAliveInterval=5",
    "-l",
    input.osUser,
  );
  let host: string;
  if (input.route.type === "eice") {
    const argv = input.proxyArgv ?? [process.execPath, BIN, "proxy", input.grantId];
    args.push("-o", `ProxyCommand=${percent(argv.map(shellQuote).join(" "))}`);
    host = input.instanceId;
  } else {
    args.push("-p", String(input.route.port));
    host = input.route.host;
  }
  // `--` so a host or command word starting with "-" is never read as an ssh option.
  args.push("--", host, ...(input.command ?? []));
  return args;
}

function validatePush(push: SshKeyPush): SshKeyPush {
  const route = push?.route as Partial<SshKeyPush["route"]> | undefined;
  const ok =
    route &&
    typeof route.port === "number" &&
    ((route.type === "direct" && typeof route.host === "string" && route.host !== "") ||
      (route.type === "eice" && typeof route.endpointId === "string"));
  if (!ok) throw new CliError("the broker's answer to the key push has no usable route");
  return push;
}

function knownHostsFile(ctx: Ctx, instanceId: string): string {
  const dir = join(sessionDir(ctx.io.env), "known_hosts");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return join(dir, instanceId);
}

/** Runs ssh in the foreground; resolves with its exit code (128+n when a signal ended it). */
function runSsh(
  ctx: Ctx,
  args: string[],
  endsAt: string | undefined,
  grantId: string,
  credentials: ReturnType<typeof resolveCredentials>,
): Promise<number> {
  return new Promise((done, fail) => {
    // ssh's ProxyCommand (`access proxy`) must act as this user even if someone runs `access login` as
    // another user while we wait for approval (the demo does exactly that): pin the credentials resolved
    // when this command started. ssh sends no environment to the remote side beyond its SendEnv list.
    const env = {
      ...ctx.io.env,
      ACCESS_API_URL: credentials.apiUrl,
      ...(credentials.token ? { ACCESS_TOKEN: credentials.token } : {}),
      ...(credentials.eiceEndpoint ? { ACCESS_EICE_ENDPOINT: credentials.eiceEndpoint } : {}),
    };
    const child = spawn("ssh", args, { stdio: "inherit", env });
    // The terminal's Ctrl-C reaches ssh too; ssh decides (in an interactive session it goes to the remote).
    const ignore = () => {};
    const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
    const onTerm = forward("SIGTERM");
    const onHup = forward("SIGHUP");
    process.on("SIGINT", ignore);
    process.on("SIGTERM", onTerm);
    process.on("SIGHUP", onHup);
    const timers: NodeJS.Timeout[] = [];
    const left = endsAt ? Date.parse(endsAt) - ctx.io.now().getTime() : Number.NaN;
    if (left > WARN_BEFORE_END_MS) {
      timers.push(
        setTimeout(() => {
          ctx.io.stderr(
            `\r\n[access] grant ${grantId} ends in 5 minutes (extend: access extend ${grantId} --for 30m --reason …)\r\n`,
          );
        }, left - WARN_BEFORE_END_MS).unref(),
      );
    }
    const finish = () => {
      for (const timer of timers) clearTimeout(timer);
      process.off("SIGINT", ignore);
      process.off("SIGTERM", onTerm);
      process.off("SIGHUP", onHup);
    };
    child.once("error", (error: NodeJS.ErrnoException) => {
      finish();
      fail(
        error.code === "ENOENT"
          ? new CliError("ssh not found: install OpenSSH's client", {
              hint: "Debian/Ubuntu: apt-get install -y openssh-client",
            })
          : error,
      );
    });
    child.once("exit", (code, signal) => {
      finish();
      const number = signal ? (constants.signals[signal] ?? 1) : 0;
      done(code ?? 128 + number);
    });
  });
}

export async function ssh(ctx: Ctx, target: string, command: string[], options: SshOptions): Promise<number> {
  const credentials = resolveCredentials(ctx.io.env);
  const client = ctx.api();
  for (const option of options.sshOption ?? []) {
    if (!/^[A-Za-z][A-Za-z0-9]*[= ]/.test(option))
      throw new CliError(`--ssh-option "${option}" is not Key=Value`);
  }
  const grant = await sshGrant(ctx, client, target, options);
  if (!grant) return EXIT.interrupted;
  checkUsable(grant, ctx.io.now());
  if (options.user && grant.osUser && options.user !== grant.osUser) {
    throw new CliError(`grant ${grant.id} is for OS user ${grant.osUser}, not ${options.user}`);
  }
  const osUser = grant.osUser ?? options.user ?? DEFAULT_OS_USER;
  // The grant says when the route is EICE: presign while the key is made and pushed.
  const early = grant.network?.route.type === "eice" ? presign(client, grant.id) : undefined;
  early?.catch(() => {}); // awaited below, or dropped if the push answers a direct route

  const key: KeyPair = options.identityFile
    ? existingKeyPair(options.identityFile)
    : generateKeyPair(`access-broker-${grant.id}`);
  try {
    let push: SshKeyPush;
    try {
      push = validatePush(
        await client.post<SshKeyPush>(`/grants/${segment(grant.id)}/ssh-key`, { publicKey: key.publicKey }),
      );
    } catch (error) {
      if (error instanceof ApiError && error.status === 404 && !error.code?.startsWith("grant"))
        throw new CliError(`${client.apiUrl} cannot push SSH keys (no POST /grants/{id}/ssh-key)`);
      throw error;
    }
    const via =
      push.route.type === "eice"
        ? `through ${push.route.endpointId} to ${push.route.privateIp}:${push.route.port}`
        : `at ${push.route.host}:${push.route.port}`;
    ctx.io.stderr(
      `connecting to ${grant.instanceId} as ${osUser} ${via} (grant ${grant.id} ends ${Format.when(grant.endsAt, ctx.io.now())}; key ${push.fingerprint} valid until ${Format.when(push.keyExpiresAt, ctx.io.now())})\n`,
    );
    const relay =
      push.route.type === "eice"
        ? await relayTunnel(ctx, client, grant.id, early ?? presign(client, grant.id))
        : undefined;
    try {
      const args = sshArgs({
        keyPath: key.privateKeyPath,
        osUser,
        instanceId: grant.instanceId,
        grantId: grant.id,
        knownHostsFile: knownHostsFile(ctx, grant.instanceId),
        route: push.route,
        proxyArgv: relay && [process.execPath, RELAY, relay.path],
        sshOptions: options.sshOption,
        command,
      });
      return await runSsh(ctx, args, grant.endsAt, grant.id, credentials);
    } finally {
      await relay?.close();
    }
  } finally {
    key.dispose();
  }
}

interface Relay {
  /** The Unix socket ssh's ProxyCommand (relay.js) connects to. */
  path: string;
  close(): Promise<void>;
}

/**
 * The tunnel end of `access ssh` over EICE: a listener on a Unix socket in a fresh 0700 directory (so only
 * this user can reach it), opening the websocket with the URL presigned earlier when ssh connects.
 */
async function relayTunnel(
  ctx: Ctx,
  client: Client,
  grantId: string,
  first: Promise<TunnelAuthorization>,
): Promise<Relay> {
  const [spare, { listenTunnel }] = await Promise.all([first, import("./tunnel.ts")]);
  const dir = mkdtempSync(join(tmpdir(), "access-ssh-"));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const path = join(dir, "tunnel.sock");
  try {
    const listener = await listenTunnel({
      path,
      maxConnections: 1,
      authorize: () => presign(client, grantId),
      spare,
      eiceEndpoint: resolveCredentials(ctx.io.env).eiceEndpoint,
      // ssh reports a connection that went nowhere itself; the reason is ours to tell.
      log: (line, level) => {
        if (level === "error") ctx.io.stderr(`[access] tunnel ${line}\n`);
      },
    });
    return {
      path,
      close: async () => {
        await listener.close();
        remove();
      },
    };
  } catch (error) {
    remove();
    throw error;
  }
}

// ---- proxy and tunnel ----

function checkGrantId(grantId: string): void {
  if (!GRANT_ID.test(grantId)) throw new CliError(`"${grantId}" is not a grant id like gr_01jx…`);
}

async function presign(client: Client, grantId: string): Promise<TunnelAuthorization> {
  const answer = await client.post<TunnelAuthorization>(`/grants/${segment(grantId)}/tunnel`, {});
  if (typeof answer?.url !== "string") throw new CliError("the broker's tunnel answer has no URL");
  return answer;
}

/** stdin/stdout ↔ one websocket: `ssh -o ProxyCommand="access proxy <grant>"` (and so scp, rsync, sftp). */
export async function proxy(ctx: Ctx, grantId: string): Promise<number> {
  checkGrantId(grantId);
  const client = ctx.api();
  const { eiceEndpoint } = resolveCredentials(ctx.io.env);
  const [authorization, { bridge, openTunnel }] = await Promise.all([presign(client, grantId), websocket()]);
  try {
    const socket = await openTunnel(authorization.url, { eiceEndpoint });
    await bridge({ socket, input: ctx.io.input, output: ctx.io.output, endOutput: false });
    return EXIT.ok;
  } finally {
    // Nothing more will be read; let the process end even though ssh keeps our stdin open.
    ctx.io.input.destroy();
  }
}

export interface TunnelOptions {
  localPort: number;
  maxConnections: number;
}

/** A local port whose every connection is its own tunnel, until Ctrl-C. */
export async function tunnel(ctx: Ctx, grantId: string, options: TunnelOptions): Promise<number> {
  checkGrantId(grantId);
  const client = ctx.api();
  const { eiceEndpoint } = resolveCredentials(ctx.io.env);
  const [first, { listenTunnel }] = await Promise.all([presign(client, grantId), import("./tunnel.ts")]);
  let listener: Awaited<ReturnType<typeof listenTunnel>>;
  try {
    listener = await listenTunnel({
      localPort: options.localPort,
      maxConnections: options.maxConnections,
      authorize: () => presign(client, grantId),
      spare: first,
      eiceEndpoint,
      log: (line) => ctx.io.stderr(`${line}\n`),
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EADDRINUSE")
      throw new CliError(`127.0.0.1:${options.localPort} is already in use`, {
        hint: "pick another --local-port",
      });
    throw error;
  }
  const info = {
    grantId,
    listen: `${listener.host}:${listener.port}`,
    remote: `${first.privateIp}:${first.remotePort}`,
    endpointId: first.endpointId,
    maxTunnelDuration: first.maxTunnelDuration,
  };
  ctx.emit(info, () => `listening on ${info.listen} → ${info.remote} through ${info.endpointId}`);
  ctx.io.stderr(
    `each connection gets its own tunnel (at most ${options.maxConnections} at once, each cut after ${Format.span(first.maxTunnelDuration)}); Ctrl-C closes everything\n`,
  );
  await new Promise<void>((done) => {
    const unsubscribe = ctx.io.onInterrupt(() => {
      unsubscribe();
      done();
    });
  });
  ctx.io.stderr(`closing ${listener.connections()} open connection(s)\n`);
  await listener.close();
  return EXIT.ok;
}
