import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import type { Client } from "../../cli/client.ts";
import { shellQuote, sshArgs, waitForGrant } from "../../cli/connect.ts";
import type { Io } from "../../cli/context.ts";
import { main } from "../../cli/main.ts";
import { readSession, resolveCredentials } from "../../cli/session.ts";
import type { Request } from "../../core/request/index.ts";
import { activeGrant, GRANT, INSTANCE } from "../helpers/ssh-fakes.ts";

const API = "http://api.test:8787";
const DNS = "eice-0demo00000000001.ec2-instance-connect-endpoint.us-east-1.amazonaws.com";
const NOW = new Date();
const LATER = new Date(NOW.getTime() + 60_000).toISOString();
const temps: string[] = [];
const temp = () => {
  const dir = mkdtempSync(join(tmpdir(), "access-connect-"));
  temps.push(dir);
  return dir;
};

afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

const grant = activeGrant(NOW.getTime());

const pending: Request.Info = {
  id: grant.requestId,
  grantId: GRANT,
  status: "pending",
  version: 1,
  requester: "alice@example.com",
  instanceId: INSTANCE,
  account: "111122223333",
  region: "us-east-1",
  target: "demo",
  method: "ssh",
  osUser: "ec2-user",
  durationSeconds: 1_800,
  reason: "logs",
  ruleId: "dev-demo",
  breakGlass: false,
  approvalsRequired: 1,
  approvalsFrom: ["group:sre-leads"],
  approvals: [],
  createdAt: NOW.toISOString(),
  pendingUntil: new Date(NOW.getTime() + 1_800_000).toISOString(),
  extendedSeconds: 0,
};

const push = (route: unknown) => ({
  grantId: GRANT,
  instanceId: INSTANCE,
  osUser: "ec2-user",
  fingerprint: "SHA256:abc",
  requestId: "r-1",
  pushedAt: NOW.toISOString(),
  keyExpiresAt: new Date(NOW.getTime() + 60_000).toISOString(),
  route,
});

interface Call {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: any;
}

type Reply = { status?: number; body?: unknown };

function fakeFetch(reply: (call: Call) => Reply | Promise<Reply>) {
  const calls: Call[] = [];
  const fetch = (async (input: string | URL | globalThis.Request, init: RequestInit = {}) => {
    const url = new URL(String(input));
    const call: Call = {
      method: init.method ?? "GET",
      path: `${url.pathname}${url.search}`,
      headers: (init.headers ?? {}) as Record<string, string>,
      body: typeof init.body === "string" ? JSON.parse(init.body) : undefined,
    };
    calls.push(call);
    const answer = await reply(call);
    return new Response(JSON.stringify(answer.body ?? {}), {
      status: answer.status ?? 200,
      headers: { "content-type": "application/json" },
    });
  }) as typeof globalThis.fetch;
  return { fetch, calls };
}

/** A stand-in `ssh` on PATH that records its argv and the key file's mode, and exits 7. */
function fakeSsh() {
  const dir = temp();
  const record = join(dir, "argv");
  writeFileSync(
    join(dir, "ssh"),
    `#!/bin/sh
printf '%s\\n' "$@" > "${record}"
prev=""
for arg in "$@"; do
  if [ "$prev" = "-i" ]; then stat -c %a "$arg" > "${record}.mode"; cat "$arg.pub" > "${record}.pub"; fi
  prev="$arg"
done
exit 7
`,
  );
  chmodSync(join(dir, "ssh"), 0o755);
  return {
    path: `${dir}:${process.env.PATH}`,
    argv: () => readFileSync(record, "utf8").trimEnd().split("\n"),
    record,
  };
}

async function cli(
  argv: string[],
  fetch: typeof globalThis.fetch,
  overrides: Partial<Io> & { env?: Io["env"] } = {},
) {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, {
    env: { XDG_CONFIG_HOME: temp(), ACCESS_API_URL: API, ACCESS_TOKEN: "t", ...overrides.env },
    fetch,
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    stdin: async () => "",
    now: () => NOW,
    ...Object.fromEntries(Object.entries(overrides).filter(([key]) => key !== "env")),
  });
  return { code, stdout, stderr };
}

describe("sshArgs", () => {
  const base = {
    keyPath: "/tmp/access-ssh-x/id_ed25519",
    osUser: "ec2-user",
    instanceId: INSTANCE,
    grantId: GRANT,
    knownHostsFile: "/home/a/.config/access-broker/known_hosts/i-0a1b2c3d4e5f60718",
  };

  it("routes eice through `access proxy <grant>` and offers only the fresh key", () => {
    const args = sshArgs({
      ...base,
      route: { type: "eice", endpointId: "eice-1", privateIp: "10.0.1.10", port: 22 },
      proxyArgv: ["/usr/bin/node", "/opt/access/cli/bin.js", "proxy", GRANT],
      command: ["echo hello; id -un"],
    });
    expect(args).toEqual([
      "-i",
      base.keyPath,
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "IdentityAgent=none",
      "-o",
      "StrictHostKeyChecking=accept-new",
      "-o",
      `UserKnownHostsFile=${base.knownHostsFile}`,
      "-o",
      `HostKeyAlias=${INSTANCE}`,
      "-o",
      "ServerAliveInterval=5",
      "-l",
      "ec2-user",
      "-o",
      `ProxyCommand=/usr/bin/node /opt/access/cli/bin.js proxy ${GRANT}`,
      "--",
      INSTANCE,
      "echo hello; id -un",
    ]);
  });

  it("connects directly to the route's host and port, the user's options first so they win", () => {
    const args = sshArgs({
      ...base,
      route: { type: "direct", host: "203.0.113.25", port: 22 },
      sshOptions: ["StrictHostKeyChecking=yes"],
    });
    expect(args.slice(0, 2)).toEqual(["-o", "StrictHostKeyChecking=yes"]);
    expect(args.slice(-4)).toEqual(["-p", "22", "--", "203.0.113.25"]);
    expect(args.join(" ")).not.toContain("ProxyCommand");
  });

  it("quotes paths with spaces and doubles every % that ssh would expand", () => {
    const args = sshArgs({
      ...base,
      keyPath: "/tmp/100%/id",
      knownHostsFile: "/home/a b/known_hosts/x",
      route: { type: "eice", endpointId: "eice-1", privateIp: "10.0.1.10", port: 22 },
      proxyArgv: ["/opt/my node/node", "/opt/50%/bin.js", "proxy", GRANT],
    });
    expect(args).toContain("/tmp/100%%/id");
    expect(args).toContain('UserKnownHostsFile="/home/a b/known_hosts/x"');
    expect(args).toContain(`ProxyCommand='/opt/my node/node' /opt/50%%/bin.js proxy ${GRANT}`);
  });

  it("shell-quotes what the shell would otherwise interpret", () => {
    expect(shellQuote("/usr/bin/node")).toBe("/usr/bin/node");
    expect(shellQuote("it's $HOME")).toBe("'it'\\''s $HOME'");
  });
});

describe("waitForGrant", () => {
  const client = (answers: Request.Info[]) => {
    const paths: string[] = [];
    return {
      paths,
      client: {
        apiUrl: API,
        get: async (path: string) => {
          paths.push(path);
          return answers.shift();
        },
      } as unknown as Client,
    };
  };
  const never = new Promise<void>(() => {});

  it("polls until the grant is active and says once what it is waiting for", async () => {
    const lines: string[] = [];
    const { client: c, paths } = client([
      pending,
      { ...pending, status: "approved", startsAt: new Date(NOW.getTime() + 1_000).toISOString() },
      { ...pending, status: "active" },
    ]);
    const id = await waitForGrant(c, pending, () => NOW, {
      log: (l) => lines.push(l),
      interrupted: never,
      delaysMs: [1],
    });
    expect(id).toBe(GRANT);
    expect(paths).toEqual(Array(3).fill(`/requests/${pending.id}`));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^waiting for 1 approval from group:sre-leads \(request req_/);
    expect(lines[1]).toMatch(/^approved; the grant starts /);
  });

  it("throws when the request is denied, naming who denied it and why", async () => {
    const { client: c } = client([
      {
        ...pending,
        status: "denied",
        decision: { by: "bob@example.com", at: NOW.toISOString(), reason: "not now" },
      },
    ]);
    await expect(
      waitForGrant(c, pending, () => NOW, { log: () => {}, interrupted: never, delaysMs: [1] }),
    ).rejects.toThrow(`request ${pending.id} was denied by bob@example.com: not now`);
  });

  it("stops waiting on Ctrl-C without cancelling anything", async () => {
    const { client: c, paths } = client([]);
    const id = await waitForGrant(c, pending, () => NOW, {
      log: () => {},
      interrupted: Promise.resolve(),
      delaysMs: [60_000],
    });
    expect(id).toBeUndefined();
    expect(paths).toEqual([]);
  });
});

describe("access ssh", () => {
  it("pushes only the public key of a fresh pair, runs ssh with it and exits with ssh's code", async () => {
    const ssh = fakeSsh();
    const { fetch, calls } = fakeFetch((call) => {
      if (call.path === `/grants/${GRANT}`) return { body: grant };
      if (call.path === `/grants/${GRANT}/ssh-key`)
        return {
          body: push({ type: "eice", endpointId: "eice-0demo00000000001", privateIp: "10.0.1.10", port: 22 }),
        };
      if (call.path === `/grants/${GRANT}/tunnel`)
        return { body: { url: "wss://eice.example/openTunnel?X-Amz-Signature=x", expiresAt: LATER } };
      return { status: 404 };
    });
    const result = await cli(["ssh", GRANT, "--", "uptime"], fetch, { env: { PATH: ssh.path } });
    expect(result.code).toBe(7);
    expect(result.stderr).toContain(
      `connecting to ${INSTANCE} as ec2-user through eice-0demo00000000001 to 10.0.1.10:22`,
    );
    const pushed = calls.find((call) => call.path.endsWith("/ssh-key"));
    expect(pushed?.method).toBe("POST");
    expect(Object.keys(pushed?.body)).toEqual(["publicKey"]);
    // What ssh was given is the pair whose public half was pushed; the private file was 0600, and is gone now.
    expect(readFileSync(`${ssh.record}.pub`, "utf8").trim()).toBe(pushed?.body.publicKey);
    expect(readFileSync(`${ssh.record}.mode`, "utf8").trim()).toBe("600");
    const argv = ssh.argv();
    const keyPath = argv[argv.indexOf("-i") + 1] as string;
    expect(existsSync(keyPath)).toBe(false);
    expect(argv.slice(-3)).toEqual(["--", INSTANCE, "uptime"]);
    // This process holds the tunnel; ssh's ProxyCommand is the relay to its private Unix socket, which is
    // gone once ssh has exited.
    const proxyCommand = argv.find((word) => word.startsWith("ProxyCommand="));
    const relay = `ProxyCommand=${process.execPath} ${join(import.meta.dirname, "../../cli/relay.js")} `;
    expect(proxyCommand?.startsWith(relay)).toBe(true);
    const socketPath = proxyCommand?.slice(relay.length) ?? "";
    expect(socketPath).toMatch(/access-ssh-[^/]+\/tunnel\.sock$/);
    expect(existsSync(dirname(socketPath))).toBe(false);
    expect(calls.filter((call) => call.path === `/grants/${GRANT}/tunnel`)).toHaveLength(1);
  });

  it("presigns the tunnel while pushing the key when the grant already says the route is EICE", async () => {
    const ssh = fakeSsh();
    const order: string[] = [];
    // The push waits (up to 2 s) for the presign to arrive: if they were not in flight together, it fails.
    let releasePush: (presigned: boolean) => void = () => {};
    const pushHeld = new Promise<boolean>((done) => {
      releasePush = done;
      setTimeout(() => done(false), 2_000).unref();
    });
    const route = { type: "eice", endpointId: "eice-0demo00000000001", privateIp: "10.0.1.10", port: 22 };
    const withNetwork = {
      ...grant,
      network: {
        vpcId: "vpc-1",
        subnetId: "subnet-1",
        privateIp: "10.0.1.10",
        route: {
          type: "eice",
          endpointId: "eice-0demo00000000001",
          dnsName: "eice.example",
          ip: "10.0.1.10",
        },
        resolvedAt: NOW.toISOString(),
      },
    };
    const { fetch } = fakeFetch(async (call) => {
      order.push(call.path);
      if (call.path === `/grants/${GRANT}`) return { body: withNetwork };
      if (call.path === `/grants/${GRANT}/ssh-key`) {
        return (await pushHeld) ? { body: push(route) } : { status: 503 };
      }
      if (call.path === `/grants/${GRANT}/tunnel`) {
        releasePush(true);
        return { body: { url: "wss://eice.example/openTunnel?X-Amz-Signature=x", expiresAt: LATER } };
      }
      return { status: 404 };
    });
    const result = await cli(["ssh", GRANT, "--", "uptime"], fetch, { env: { PATH: ssh.path } });
    expect(result.code).toBe(7);
    expect(order).toEqual([`/grants/${GRANT}`, `/grants/${GRANT}/tunnel`, `/grants/${GRANT}/ssh-key`]);
  });

  it("asks for a grant with --for/--reason when there is none, waits for approval, then connects", async () => {
    const ssh = fakeSsh();
    let polls = 0;
    const { fetch, calls } = fakeFetch((call) => {
      if (call.path.startsWith("/grants?")) return { body: { items: [] } };
      if (call.path === "/requests" && call.method === "POST") return { status: 201, body: pending };
      if (call.path === `/requests/${pending.id}`)
        return { body: ++polls < 2 ? pending : { ...pending, status: "active" } };
      if (call.path === `/grants/${GRANT}`) return { body: grant };
      if (call.path.endsWith("/ssh-key"))
        return { body: push({ type: "direct", host: "203.0.113.25", port: 22 }) };
      return { status: 404 };
    });
    const result = await cli(
      ["ssh", INSTANCE, "--for", "30m", "--reason", "read the logs", "--ssh-option", "BatchMode=yes"],
      fetch,
      { env: { PATH: ssh.path } },
    );
    expect(result.code).toBe(7);
    const created = calls.find((call) => call.path === "/requests");
    expect(created?.body).toEqual({
      instanceId: INSTANCE,
      method: "ssh",
      durationSeconds: 1_800,
      reason: "read the logs",
    });
    expect(created?.headers["idempotency-key"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(result.stderr).toContain("waiting for 1 approval from group:sre-leads");
    expect(ssh.argv().slice(0, 2)).toEqual(["-o", "BatchMode=yes"]);
    expect(ssh.argv().slice(-4)).toEqual(["-p", "22", "--", "203.0.113.25"]);
  }, 15_000);

  it("says how to ask when there is no active grant and no --for/--reason", async () => {
    const { fetch, calls } = fakeFetch(() => ({
      body: { items: [{ ...grant, instanceId: "i-0fedcba9876543210" }] },
    }));
    const result = await cli(["ssh", INSTANCE], fetch);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`error: you have no active ssh grant for ${INSTANCE}`);
    expect(result.stderr).toContain(`hint: ask for one: access ssh ${INSTANCE} --for 30m --reason`);
    expect(calls.map((call) => call.path)).toEqual(["/grants?active=true&mine=true&limit=100"]);
  });

  it("refuses a grant for another method or OS user, an inactive grant and a malformed --ssh-option", async () => {
    const answer = (body: unknown) => fakeFetch(() => ({ body })).fetch;
    expect((await cli(["ssh", GRANT], answer({ ...grant, method: "tunnel", port: 22 }))).stderr).toMatch(
      /is for tunnel to port 22, not ssh/,
    );
    expect((await cli(["ssh", GRANT, "--user", "root"], answer(grant))).stderr).toMatch(
      /is for OS user ec2-user, not root/,
    );
    expect((await cli(["ssh", GRANT], answer({ ...grant, status: "revoked" }))).stderr).toMatch(/is revoked/);
    expect((await cli(["ssh", GRANT, "-o", "-oProxyCommand=sh"], answer(grant))).stderr).toMatch(
      /is not Key=Value/,
    );
    expect((await cli(["ssh", "web-1"], answer(grant))).stderr).toMatch(/neither an instance id/);
  });
});

describe("eiceEndpoint in the session", () => {
  it("login stores the dev server's eiceEndpoint; ACCESS_EICE_ENDPOINT wins; another API never gets it", async () => {
    const home = temp();
    const { fetch } = fakeFetch(() => ({
      body: {
        token: "eyJhbGciOiJFUzI1NiJ9.eyJlbWFpbCI6ImFsaWNlQGV4YW1wbGUuY29tIn0.c2ln",
        eiceEndpoint: "ws://127.0.0.1:4566/",
      },
    }));
    const result = await cli(["login", "--user", "alice@example.com", "--api", API], fetch, {
      env: { XDG_CONFIG_HOME: home, ACCESS_API_URL: undefined, ACCESS_TOKEN: undefined },
    });
    expect(result.code).toBe(0);
    expect(readSession({ XDG_CONFIG_HOME: home })?.eiceEndpoint).toBe("ws://127.0.0.1:4566");
    expect(resolveCredentials({ XDG_CONFIG_HOME: home }).eiceEndpoint).toBe("ws://127.0.0.1:4566");
    expect(
      resolveCredentials({ XDG_CONFIG_HOME: home, ACCESS_EICE_ENDPOINT: "ws://127.0.0.1:9" }).eiceEndpoint,
    ).toBe("ws://127.0.0.1:9");
    expect(
      resolveCredentials({ XDG_CONFIG_HOME: home, ACCESS_API_URL: "https://broker.example.com" })
        .eiceEndpoint,
    ).toBeUndefined();
  });
});

describe("access proxy and access tunnel (in process)", () => {
  let server: Server;
  let wss: WebSocketServer;
  let endpoint: string;
  const hosts: (string | undefined)[] = [];

  beforeAll(async () => {
    wss = new WebSocketServer({ noServer: true });
    server = createServer();
    server.on("upgrade", (request, socket, head) => {
      hosts.push(request.headers.host);
      wss.handleUpgrade(request, socket, head, (ws) => {
        ws.on("message", (data) => ws.send(data as Buffer, { binary: true }));
      });
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    endpoint = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    for (const client of wss.clients) client.terminate();
    wss.close();
    await new Promise<void>((done) => server.close(() => done()));
  });

  const tunnelAnswer = () =>
    fakeFetch((call) =>
      call.path === `/grants/${GRANT}/tunnel`
        ? {
            body: {
              grantId: GRANT,
              url: `wss://${DNS}/openTunnel?instanceConnectEndpointId=eice-0demo00000000001&X-Amz-Signature=s`,
              expiresAt: new Date(Date.now() + 60_000).toISOString(),
              endpointId: "eice-0demo00000000001",
              privateIp: "10.0.1.10",
              remotePort: 22,
              maxTunnelDuration: 1_800,
            },
          }
        : { status: 404 },
    );

  it("proxy pipes stdin to the websocket and the websocket to stdout, then exits 0", async () => {
    const { fetch, calls } = tunnelAnswer();
    const input = new PassThrough();
    const chunks: Buffer[] = [];
    const output = new Writable({
      write(chunk, _encoding, done) {
        chunks.push(chunk as Buffer);
        done();
        // The echo is back: end stdin as ssh does when it is done.
        if (Buffer.concat(chunks).length >= 5) input.end();
      },
    });
    input.write("hello");
    const result = await cli(["proxy", GRANT], fetch, {
      env: { ACCESS_EICE_ENDPOINT: endpoint },
      input,
      output,
    });
    expect(result).toMatchObject({ code: 0, stdout: "", stderr: "" });
    expect(Buffer.concat(chunks).toString()).toBe("hello");
    expect(calls.map((call) => [call.method, call.path, call.body])).toEqual([
      ["POST", `/grants/${GRANT}/tunnel`, {}],
    ]);
    expect(hosts.at(-1)).toBe(DNS);
  });

  it("tunnel prints where it listens, serves connections and closes on Ctrl-C", async () => {
    const { fetch } = tunnelAnswer();
    let interrupt = () => {};
    let stdout = "";
    const listening = new Promise<number>((done) => {
      const check = setInterval(() => {
        const port = /listening on 127\.0\.0\.1:(\d+)/.exec(stdout)?.[1];
        if (port) {
          clearInterval(check);
          done(Number(port));
        }
      }, 5);
    });
    const running = main(["tunnel", GRANT, "--local-port", "0"], {
      env: {
        XDG_CONFIG_HOME: temp(),
        ACCESS_API_URL: API,
        ACCESS_TOKEN: "t",
        ACCESS_EICE_ENDPOINT: endpoint,
      },
      fetch,
      stdout: (text) => {
        stdout += text;
      },
      stderr: () => {},
      now: () => NOW,
      onInterrupt: (handler) => {
        interrupt = handler;
        return () => {};
      },
    });
    const port = await listening;
    expect(stdout).toBe(`listening on 127.0.0.1:${port} → 10.0.1.10:22 through eice-0demo00000000001\n`);
    const answer = await new Promise<string>((done) => {
      const socket = connect(port, "127.0.0.1", () => socket.write("ping"));
      socket.once("data", (data) => {
        done(data.toString());
        socket.end();
      });
    });
    expect(answer).toBe("ping");
    interrupt();
    expect(await running).toBe(0);
  });
});
