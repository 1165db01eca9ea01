import { execFile } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../cli/main.ts";
import type { Audit } from "../../core/audit/index.ts";
import type { Request } from "../../core/request/index.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const BIN = join(ROOT, "cli/bin.js");
const DEMO_CONFIG = join(ROOT, "local/demo/access.yaml");
const NOW = new Date("2025-06-01T12:00:00.000Z");
const API = "http://api.test:8787";

function fakeToken(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "ES256", typ: "JWT" })}.${part(claims)}.c2lnbmF0dXJl`;
}

const TOKEN = fakeToken({
  email: "alice@example.com",
  groups: ["dev"],
  iss: "http://127.0.0.1:8787/dev",
  exp: NOW.getTime() / 1000 + 3_600,
});

const pending: Request.Info = {
  id: "req_01jxexample000000000000000",
  grantId: "gr_01jxexample000000000000000",
  status: "pending",
  version: 1,
  requester: "alice@example.com",
  instanceId: "i-0a1b2c3d4e5f60718",
  account: "111122223333",
  region: "us-east-1",
  target: "demo",
  method: "ssh",
  osUser: "ec2-user",
  durationSeconds: 1_800,
  reason: "debug the \u001b[31mdeploy\u001b[0m",
  ruleId: "dev-demo",
  breakGlass: false,
  approvalsRequired: 1,
  approvalsFrom: ["group:sre-leads"],
  approvals: [],
  createdAt: "2025-06-01T11:58:00.000Z",
  pendingUntil: "2025-06-01T12:28:00.000Z",
  extendedSeconds: 0,
};

const active: Request.Info = {
  ...pending,
  status: "active",
  version: 2,
  approvals: [{ by: "bob@example.com", at: "2025-06-01T11:59:00.000Z", comment: "ok" }],
  startsAt: "2025-06-01T11:59:00.000Z",
  endsAt: "2025-06-01T12:29:00.000Z",
};

const grant: Request.Grant = {
  id: active.grantId,
  requestId: active.id,
  status: "active",
  requester: active.requester,
  instanceId: active.instanceId,
  account: active.account,
  region: active.region,
  method: "ssh",
  osUser: "ec2-user",
  ruleId: "dev-demo",
  breakGlass: false,
  startsAt: active.startsAt,
  endsAt: active.endsAt,
  approvers: ["bob@example.com"],
  pendingExtension: undefined,
};

interface Call {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: unknown;
}

type Reply = { status?: number; body?: unknown; text?: string; type?: string };

/** A fetch that records what the CLI sent and answers from `reply`; nothing leaves the process. */
function fakeFetch(reply: (call: Call) => Reply = () => ({ body: {} })) {
  const calls: Call[] = [];
  const fetch = (async (input: string | URL | globalThis.Request, init: RequestInit = {}) => {
    const call: Call = {
      method: init.method ?? "GET",
      url: new URL(String(input)),
      headers: Object.fromEntries(Object.entries((init.headers ?? {}) as Record<string, string>)),
      body: typeof init.body === "string" ? JSON.parse(init.body) : undefined,
    };
    calls.push(call);
    const answer = reply(call);
    const text = answer.text ?? JSON.stringify(answer.body ?? {});
    return new Response(text, {
      status: answer.status ?? 200,
      headers: { "content-type": answer.type ?? "application/json" },
    });
  }) as typeof globalThis.fetch;
  return { fetch, calls };
}

function tempHome(): string {
  return mkdtempSync(join(tmpdir(), "access-cli-"));
}

/** Runs the CLI in-process with a fake fetch, a fixed clock and captured output. */
async function cli(
  argv: string[],
  options: { env?: Record<string, string | undefined>; fetch?: typeof fetch; stdin?: string } = {},
) {
  let stdout = "";
  let stderr = "";
  const env = options.env ?? { XDG_CONFIG_HOME: tempHome(), ACCESS_API_URL: API, ACCESS_TOKEN: TOKEN };
  const code = await main(argv, {
    env,
    fetch: options.fetch ?? fakeFetch().fetch,
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    stdin: async () => options.stdin ?? "",
    now: () => NOW,
  });
  return { code, stdout, stderr };
}

/** Runs the real `access` bin as a subprocess (async, so an in-test HTTP server can answer it). */
function spawnCli(argv: string[], env: Record<string, string>) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
    const clean = Object.fromEntries(
      Object.entries(process.env).filter(([key]) => !key.startsWith("ACCESS_")),
    );
    execFile(
      process.execPath,
      [BIN, ...argv],
      { cwd: ROOT, env: { ...clean, ...env } },
      (error, stdout, stderr) => {
        done({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

describe("access request", () => {
  it("posts the request with bearer auth and a fresh Idempotency-Key per invocation", async () => {
    const { fetch, calls } = fakeFetch(() => ({ status: 201, body: pending }));
    const argv = ["request", "i-0a1b2c3d4e5f60718", "--ssh", "--user", "ec2-user", "--for", "1h30m"];
    const first = await cli([...argv, "--reason", "debug deploy", "--ticket", "INC-42"], { fetch });
    await cli([...argv, "--reason", "again"], { fetch });

    expect(first.code).toBe(0);
    const [call, second] = calls;
    expect(call?.method).toBe("POST");
    expect(call?.url.href).toBe(`${API}/requests`);
    expect(call?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(call?.headers["content-type"]).toBe("application/json");
    expect(call?.body).toEqual({
      instanceId: "i-0a1b2c3d4e5f60718",
      method: "ssh",
      osUser: "ec2-user",
      durationSeconds: 5_400,
      reason: "debug deploy",
      ticket: "INC-42",
    });
    expect(call?.headers["idempotency-key"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(second?.headers["idempotency-key"]).not.toBe(call?.headers["idempotency-key"]);
  });

  it("prints the id, the status and how many approvals a pending request waits for", async () => {
    const { fetch } = fakeFetch(() => ({ status: 201, body: pending }));
    const { stdout } = await cli(
      ["request", "i-0a1b2c3d4e5f60718", "--ssh", "--for", "30m", "--reason", "x"],
      {
        fetch,
      },
    );
    expect(stdout).toContain(`request:       ${pending.id}`);
    expect(stdout).toContain("status:        pending");
    expect(stdout).toMatch(/approvals: +0 of 1 \(waiting for 1 more approval from group:sre-leads\)/);
    expect(stdout).toContain("pending until: 2025-06-01 12:28:00Z (in 28m)");
  });

  it("prints the grant id and end time of an active (auto-approved or break-glass) request", async () => {
    const { fetch } = fakeFetch(() => ({ status: 201, body: { ...active, breakGlass: true } }));
    const { stdout } = await cli(
      ["request", "i-0a1b2c3d4e5f60718", "--ssh", "--for", "30m", "--reason", "x", "--break-glass"],
      { fetch },
    );
    expect(stdout).toContain(`grant:       ${active.grantId}`);
    expect(stdout).toContain("ends:        2025-06-01 12:29:00Z (in 29m)");
    expect(stdout).toContain("break-glass: yes — security was alerted");
  });

  it("sends tunnel, port, break-glass and a start time normalised to UTC", async () => {
    const { fetch, calls } = fakeFetch(() => ({ status: 201, body: pending }));
    await cli(
      [
        "request",
        "i-0a1b2c3d4e5f60718",
        "--tunnel",
        "--port",
        "22",
        "--for",
        "90s",
        "--reason",
        "db",
        "--break-glass",
        "--start",
        "2025-06-01T14:30:00+02:00",
      ],
      { fetch },
    );
    expect(calls[0]?.body).toEqual({
      instanceId: "i-0a1b2c3d4e5f60718",
      method: "tunnel",
      port: 22,
      durationSeconds: 90,
      reason: "db",
      breakGlass: true,
      startAt: "2025-06-01T12:30:00.000Z",
    });
  });

  it("rejects a bad --for before calling the API", async () => {
    const { fetch, calls } = fakeFetch();
    const result = await cli(["request", "i-1", "--ssh", "--for", "soon", "--reason", "x"], { fetch });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('error: --for "soon" is not a duration like 90s, 30m, 1h or 1h30m\n');
    expect(calls).toHaveLength(0);
  });

  it("requires exactly one of --ssh, --tunnel, --rdp", async () => {
    const none = await cli(["request", "i-1", "--for", "1h", "--reason", "x"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("choose exactly one of --ssh, --tunnel or --rdp");
    const both = await cli(["request", "i-1", "--ssh", "--rdp", "--for", "1h", "--reason", "x"]);
    expect(both.code).toBe(1);
    expect(both.stderr).toContain("cannot be used with");
  });

  it("requires --for and --reason and rejects a bad --port", async () => {
    const missing = await cli(["request", "i-1", "--ssh"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("required option '--for <duration>' not specified");
    const port = await cli(["request", "i-1", "--tunnel", "--port", "70000", "--for", "1h", "--reason", "x"]);
    expect(port.code).toBe(1);
    expect(port.stderr).toContain("expected a whole number from 1 to 65535");
  });
});

describe("other API commands", () => {
  it("ls maps --status, --mine and --pending to the query and prints a table without control characters", async () => {
    const { fetch, calls } = fakeFetch(() => ({ body: { items: [pending], nextCursor: "abc" } }));
    const { code, stdout, stderr } = await cli(
      ["ls", "--status", "pending", "--mine", "--pending", "--limit", "5"],
      {
        fetch,
      },
    );
    expect(code).toBe(0);
    expect(calls[0]?.method).toBe("GET");
    expect(Object.fromEntries(calls[0]?.url.searchParams ?? [])).toEqual({
      status: "pending",
      mine: "true",
      pendingForMe: "true",
      limit: "5",
    });
    expect(stdout.split("\n")[0]).toMatch(/^ID +STATUS +REQUESTER +INSTANCE +ACCESS +FOR +CREATED +REASON$/);
    expect(stdout).toContain("ssh ec2-user  30m  2m ago");
    expect(stdout).not.toContain("\u001b");
    expect(stderr).toBe("more requests: repeat with --cursor abc\n");
  });

  it("ls rejects an unknown status", async () => {
    const result = await cli(["ls", "--status", "nope"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("Allowed choices are pending, approved, active");
  });

  it("--json prints the raw response", async () => {
    const page = { items: [pending], nextCursor: "abc" };
    const { fetch } = fakeFetch(() => ({ body: page }));
    const { stdout, stderr } = await cli(["ls", "--json"], { fetch });
    expect(JSON.parse(stdout)).toEqual(page);
    expect(stderr).toBe("");
  });

  it("approve and deny send the comment; cancel sends an empty body", async () => {
    const { fetch, calls } = fakeFetch(() => ({ body: active }));
    const approved = await cli(["approve", pending.id, "--comment", "go ahead"], { fetch });
    await cli(["deny", pending.id], { fetch });
    await cli(["cancel", pending.id], { fetch });
    expect(calls.map((call) => [call.method, call.url.pathname, call.body])).toEqual([
      ["POST", `/requests/${pending.id}/approve`, { comment: "go ahead" }],
      ["POST", `/requests/${pending.id}/deny`, {}],
      ["POST", `/requests/${pending.id}/cancel`, {}],
    ]);
    expect(approved.stdout).toContain("status:  active");
  });

  it("show takes a request id or a grant id and encodes it into one path segment", async () => {
    const { fetch, calls } = fakeFetch((call) => ({
      body: call.url.pathname.startsWith("/grants/") ? grant : active,
    }));
    const request = await cli(["show", active.id], { fetch });
    const shown = await cli(["show", grant.id], { fetch });
    await cli(["show", "../audit/verify"], { fetch });
    expect(calls.map((call) => call.url.pathname)).toEqual([
      `/requests/${active.id}`,
      `/grants/${grant.id}`,
      "/requests/..%2Faudit%2Fverify",
    ]);
    expect(request.stdout).toContain('approved by:\n  bob@example.com  2025-06-01 11:59:00Z (1m ago)  "ok"');
    expect(shown.stdout).toContain("approved by: bob@example.com");
  });

  it("grants, revoke and extend build the documented calls", async () => {
    const { fetch, calls } = fakeFetch((call) => ({
      body: call.method === "GET" ? { items: [grant] } : grant,
    }));
    const list = await cli(["grants", "--active", "--mine"], { fetch });
    await cli(["revoke", grant.id, "--reason", "done early"], { fetch });
    await cli(["extend", grant.id, "--for", "30m", "--reason", "still debugging"], { fetch });
    expect(calls.map((call) => [call.method, `${call.url.pathname}${call.url.search}`, call.body])).toEqual([
      ["GET", "/grants?active=true&mine=true", undefined],
      ["POST", `/grants/${grant.id}/revoke`, { reason: "done early" }],
      ["POST", `/grants/${grant.id}/extend`, { durationSeconds: 1_800, reason: "still debugging" }],
    ]);
    expect(list.stdout).toMatch(
      /gr_01jxexample0+ +active +alice@example.com +i-0a1b2c3d4e5f60718 +ssh ec2-user +1m ago +in 29m/,
    );
  });

  it("audit events passes the filters, turning a relative --from into UTC ISO", async () => {
    const record: Audit.Info = {
      seq: 7,
      type: "request.created",
      at: "2025-06-01T11:58:00.000Z",
      actor: "alice@example.com",
      subject: pending.id,
      data: { ruleId: "dev-demo" },
      prevHash: "a".repeat(64),
      hash: "b".repeat(64),
    };
    const { fetch, calls } = fakeFetch(() => ({ body: { items: [record] } }));
    const { stdout } = await cli(
      ["audit", "events", "--from", "24h", "--to", "2025-06-01T12:00:00Z", "--order", "asc"],
      {
        fetch,
      },
    );
    await cli(["audit", "events", "--request", pending.id, "--limit", "10"], { fetch });
    await cli(["audit", "events", "--user", "alice@example.com", "--instance", "i-0a1b2c3d4e5f60718"], {
      fetch,
    });
    expect(Object.fromEntries(calls[0]?.url.searchParams ?? [])).toEqual({
      from: "2025-05-31T12:00:00.000Z",
      to: "2025-06-01T12:00:00.000Z",
      order: "asc",
    });
    expect(Object.fromEntries(calls[1]?.url.searchParams ?? [])).toEqual({
      requestId: pending.id,
      limit: "10",
    });
    expect(Object.fromEntries(calls[2]?.url.searchParams ?? [])).toEqual({
      user: "alice@example.com",
      instance: "i-0a1b2c3d4e5f60718",
    });
    expect(stdout).toMatch(/^7 +2025-06-01 11:58:00Z +request.created +alice@example.com/m);
  });

  it("audit verify exits 0 on an intact chain and 2 on a broken one", async () => {
    const intact = await cli(["audit", "verify"], {
      fetch: fakeFetch(() => ({ body: { ok: true, records: 3, head: { seq: 3, hash: "f00d" } } })).fetch,
    });
    expect(intact.code).toBe(0);
    expect(intact.stdout).toBe("audit chain intact: 3 records, head #3 f00d\n");
    const broken = await cli(["audit", "verify"], {
      fetch: fakeFetch(() => ({ body: { ok: false, records: 2, brokenAt: { seq: 2, reason: "edited" } } }))
        .fetch,
    });
    expect(broken.code).toBe(2);
    expect(broken.stdout).toContain("audit chain BROKEN at record #2: edited");
  });
});

describe("errors", () => {
  it("renders an API error with its code and every detail line, on stderr, exit 1", async () => {
    const body = {
      error: {
        code: "input.invalid",
        message: "Invalid input",
        details: [
          { path: "instanceId", message: "must look like i-0123456789abcdef0" },
          { path: "osUser", message: "too long" },
        ],
      },
    };
    const { fetch } = fakeFetch(() => ({ status: 400, body }));
    const result = await cli(["request", "i-x", "--ssh", "--for", "1h", "--reason", "x"], { fetch });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      "error: Invalid input [input.invalid]\n  instanceId: must look like i-0123456789abcdef0\n  osUser: too long\n",
    );
    const json = await cli(["request", "i-x", "--ssh", "--for", "1h", "--reason", "x", "--json"], { fetch });
    expect(JSON.parse(json.stdout)).toEqual(body);
  });

  it("renders object details as key: value lines", async () => {
    const body = {
      error: {
        code: "request.not_pending",
        message: "Cannot approve: the request is approved (decided by bob@example.com)",
        details: { status: "approved", decidedBy: ["bob@example.com"] },
      },
    };
    const result = await cli(["approve", pending.id], {
      fetch: fakeFetch(() => ({ status: 409, body })).fetch,
    });
    expect(result.stderr).toBe(
      "error: Cannot approve: the request is approved (decided by bob@example.com) [request.not_pending]\n" +
        '  status: approved\n  decidedBy: ["bob@example.com"]\n',
    );
  });

  it("hints at access login on a 401, and never prints the token", async () => {
    const home = tempHome();
    const expired = fakeToken({ email: "alice@example.com", exp: NOW.getTime() / 1000 - 60 });
    await cli(["login", "--token", expired], { env: { XDG_CONFIG_HOME: home } });
    const { fetch } = fakeFetch(() => ({
      status: 401,
      body: { error: { code: "auth.unauthorized", message: "The token is invalid or expired" } },
    }));
    const result = await cli(["ls"], { env: { XDG_CONFIG_HOME: home }, fetch });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      "error: The token is invalid or expired [auth.unauthorized]\nhint: your session has expired; run: access login\n",
    );
    const fromEnv = await cli(["ls"], { fetch });
    expect(fromEnv.stderr).toContain("hint: ACCESS_TOKEN was refused");
    expect(`${result.stdout}${result.stderr}${fromEnv.stdout}${fromEnv.stderr}`).not.toContain(
      expired.split(".")[1],
    );
  });

  it("says the API is unreachable when the connection is refused", async () => {
    const port = await new Promise<number>((done) => {
      const probe = createServer();
      probe.listen(0, "127.0.0.1", () => {
        const { port: free } = probe.address() as AddressInfo;
        probe.close(() => done(free));
      });
    });
    const url = `http://127.0.0.1:${port}`;
    const result = await cli(["ls"], {
      env: { XDG_CONFIG_HOME: tempHome(), ACCESS_API_URL: url, ACCESS_TOKEN: TOKEN },
      fetch: globalThis.fetch,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `error: cannot reach the access-broker API at ${url} — is it running (npm start)?\n`,
    );
  });

  it("reports a non-JSON answer (a proxy's error page) with its status", async () => {
    const { fetch } = fakeFetch(() => ({ status: 502, text: "<html>bad gateway</html>", type: "text/html" }));
    const result = await cli(["ls"], { fetch });
    expect(result.stderr).toBe(
      "error: unexpected non-JSON answer from the API: HTTP 502 (text/html) [http.502]\n",
    );
  });

  it("says not logged in when there is no token, without calling the API", async () => {
    const { fetch, calls } = fakeFetch();
    const result = await cli(["ls"], { env: { XDG_CONFIG_HOME: tempHome() }, fetch });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe("error: not logged in\nhint: run: access login (or set ACCESS_TOKEN)\n");
    expect(calls).toHaveLength(0);
  });
});

describe("session", () => {
  it("login --user gets a dev token and stores it 0600 in a 0700 directory, printing no token", async () => {
    const home = tempHome();
    mkdirSync(join(home, "access-broker"), { mode: 0o755 });
    chmodSync(join(home, "access-broker"), 0o755);
    const { fetch, calls } = fakeFetch(() => ({ body: { token: TOKEN } }));
    const result = await cli(["login", "--user", "alice@example.com", "--api", "http://127.0.0.1:9999/"], {
      env: { XDG_CONFIG_HOME: home },
      fetch,
    });

    expect(result.code).toBe(0);
    expect(calls[0]?.url.href).toBe("http://127.0.0.1:9999/dev/login");
    expect(calls[0]?.body).toEqual({ user: "alice@example.com" });
    expect(calls[0]?.headers.authorization).toBeUndefined();
    const file = join(home, "access-broker", "session.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, "access-broker")).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({
      apiUrl: "http://127.0.0.1:9999",
      token: TOKEN,
      user: "alice@example.com",
    });
    expect(result.stdout).toContain("logged in as: alice@example.com");
    expect(result.stdout).not.toContain(TOKEN);
  });

  it("uses the stored session for later commands, and whoami decodes it", async () => {
    const env = { XDG_CONFIG_HOME: tempHome() };
    await cli(["login", "--user", "alice@example.com"], {
      env,
      fetch: fakeFetch(() => ({ body: { token: TOKEN } })).fetch,
    });
    const { fetch, calls } = fakeFetch(() => ({ body: { items: [] } }));
    const listed = await cli(["ls"], { env, fetch });
    expect(calls[0]?.url.origin).toBe("http://127.0.0.1:8787");
    expect(calls[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(listed.stdout).toBe("(no requests)\n");

    const who = await cli(["whoami"], { env });
    expect(who.stdout).toContain("user:    alice@example.com");
    expect(who.stdout).toContain("groups:  dev");
    expect(who.stdout).toContain("expires: 2025-06-01 13:00:00Z (in 1h)");
    expect(who.stdout).not.toContain(TOKEN);

    const out = await cli(["logout"], { env });
    expect(out.stdout).toMatch(/^logged out/);
    expect((await cli(["whoami"], { env })).code).toBe(1);
  });

  it("login --token - reads the token from stdin", async () => {
    const env = { XDG_CONFIG_HOME: tempHome() };
    const result = await cli(["login", "--token", "-", "--api", "https://access.example.com"], {
      env,
      stdin: `${TOKEN}\n`,
    });
    expect(result.code).toBe(0);
    expect(
      JSON.parse(readFileSync(join(env.XDG_CONFIG_HOME, "access-broker/session.json"), "utf8")).token,
    ).toBe(TOKEN);
    expect((await cli(["login", "--token", "not-a-jwt"], { env })).stderr).toContain("not a JWT");
  });

  it("ACCESS_API_URL and ACCESS_TOKEN override the session; a session token never goes to another API", async () => {
    const home = tempHome();
    await cli(["login", "--token", TOKEN, "--api", "http://127.0.0.1:9999"], {
      env: { XDG_CONFIG_HOME: home },
    });
    const other = fakeToken({ email: "bob@example.com" });

    const { fetch, calls } = fakeFetch(() => ({ body: { items: [] } }));
    await cli(["ls"], { env: { XDG_CONFIG_HOME: home, ACCESS_API_URL: API, ACCESS_TOKEN: other }, fetch });
    expect(calls[0]?.url.origin).toBe(API);
    expect(calls[0]?.headers.authorization).toBe(`Bearer ${other}`);

    const elsewhere = await cli(["ls"], { env: { XDG_CONFIG_HOME: home, ACCESS_API_URL: API }, fetch });
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toContain(
      `not logged in to ${API} (the stored session is for http://127.0.0.1:9999)`,
    );
    expect(calls).toHaveLength(1);
  });

  it("reports a corrupt session file", async () => {
    const home = tempHome();
    mkdirSync(join(home, "access-broker"));
    writeFileSync(join(home, "access-broker/session.json"), "{");
    const result = await cli(["ls"], { env: { XDG_CONFIG_HOME: home } });
    expect(result.stderr).toContain("is corrupt\nhint: run: access login");
  });
});

describe("access policy (offline)", () => {
  it("check prints a one-line summary of a valid file", async () => {
    const result = await cli(["policy", "check", DEMO_CONFIG]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${DEMO_CONFIG}: valid — 3 targets, 3 rules, 1 deny entry, 4 users\n`);
  });

  it("check lists every problem of an invalid file as path: reason and exits 1", async () => {
    const file = join(tempHome(), "bad.yaml");
    writeFileSync(
      file,
      [
        "targets:",
        "  - { name: demo, account: '12', region: us-east-1, instances: [i-0a1b2c3d4e5f60718] }",
        "rules:",
        "  - id: r1",
        "    targets: [demo, nowhere]",
        "    requesters: [group:dev]",
        "    methods: { ssh: { osUsers: [ec2-user] } }",
        "    maxDuration: 13h",
        "    approvals: { count: 1 }",
      ].join("\n"),
    );
    const result = await cli(["policy", "check", file]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines[0]).toBe(`error: ${file} is not a valid access-broker config (4 problems) [config.invalid]`);
    expect(lines.slice(1).sort()).toEqual(
      [
        "  targets.0.account: must be a 12-digit AWS account id",
        "  rules.0.maxDuration: must be at most 12h",
        "  rules.0.approvals: approvals.from must name who approves when count > 0",
        '  rules.0.targets.1: unknown target "nowhere"',
      ].sort(),
    );
    const json = await cli(["policy", "check", file, "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, file, issues: expect.any(Array) });
  });

  it("check defaults to $ACCESS_CONFIG", async () => {
    const result = await cli(["policy", "check", "--json"], { env: { ACCESS_CONFIG: DEMO_CONFIG } });
    expect(JSON.parse(result.stdout)).toEqual({
      ok: true,
      file: DEMO_CONFIG,
      targets: 3,
      rules: 3,
      deny: 1,
      users: 4,
    });
  });

  it("explain adds --groups to the directory's and reports violations as not allowed (exit 2)", async () => {
    const base = ["policy", "explain", "--config", DEMO_CONFIG, "--instance", "i-0a1b2c3d4e5f60718"];
    const violated = await cli([
      ...base,
      "--user",
      "alice@example.com",
      "--method",
      "tunnel",
      "--port",
      "3389",
    ]);
    expect(violated.code).toBe(2);
    expect(violated.stdout).toContain(
      'NOT ALLOWED AS ASKED by rule "dev-demo":\n  port: port 3389 is not allowed',
    );
    const stranger = await cli([
      ...base,
      "--user",
      "eve@example.com",
      "--method",
      "ssh",
      "--groups",
      "dev",
      "--json",
    ]);
    expect(stranger.code).toBe(0);
    expect(JSON.parse(stranger.stdout)).toMatchObject({
      actor: { email: "eve@example.com", groups: ["dev"] },
      inDirectory: false,
      evaluation: { outcome: "allowed", osUser: "ec2-user" },
    });
  });
});

describe("the access bin (subprocess)", () => {
  let server: Server;
  let url: string;
  const seen: { method?: string; url?: string; authorization?: string; body: string }[] = [];

  beforeAll(async () => {
    server = createServer(async (request: IncomingMessage, response) => {
      let body = "";
      for await (const chunk of request) body += chunk;
      seen.push({
        method: request.method,
        url: request.url,
        authorization: request.headers.authorization,
        body,
      });
      response.setHeader("content-type", "application/json");
      if (request.url === "/dev/login") return response.end(JSON.stringify({ token: TOKEN }));
      if (request.url === "/requests" && request.method === "POST") {
        response.statusCode = 201;
        return response.end(JSON.stringify(pending));
      }
      response.statusCode = 404;
      response.end(JSON.stringify({ error: { code: "not_found", message: "No such route" } }));
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => new Promise<void>((done) => server.close(() => done())));

  it("logs in, stores a 0600 session and requests access with it", async () => {
    const env = { XDG_CONFIG_HOME: tempHome() };
    const login = await spawnCli(["login", "--user", "alice@example.com", "--api", url], env);
    expect(login).toMatchObject({ code: 0, stderr: "" });
    expect(statSync(join(env.XDG_CONFIG_HOME, "access-broker/session.json")).mode & 0o777).toBe(0o600);

    const requested = await spawnCli(
      ["request", "i-0a1b2c3d4e5f60718", "--ssh", "--for", "30m", "--reason", "debug", "--json"],
      env,
    );
    expect(requested.code).toBe(0);
    expect(JSON.parse(requested.stdout)).toEqual(pending);
    const post = seen.find((call) => call.url === "/requests");
    expect(post?.authorization).toBe(`Bearer ${TOKEN}`);
    expect(JSON.parse(post?.body ?? "{}")).toMatchObject({ durationSeconds: 1_800, method: "ssh" });
  });

  it("exits 1 with the API's error on stderr", async () => {
    const result = await spawnCli(["show", pending.id], { ACCESS_API_URL: url, ACCESS_TOKEN: TOKEN });
    expect(result).toEqual({ code: 1, stdout: "", stderr: "error: No such route [not_found]\n" });
  });

  it("policy check fails with every problem on an invalid file", async () => {
    const file = join(tempHome(), "access.yaml");
    writeFileSync(file, "targets: []\nrules: []\nextra: 1\n");
    const result = await spawnCli(["policy", "check"], { ACCESS_CONFIG: file });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("(3 problems)");
    expect(result.stderr).toMatch(/^ {2}targets: /m);
    expect(result.stderr).toMatch(/^ {2}rules: /m);
    expect(result.stderr).toMatch(/^ {2}\(root\): .*extra/m);
  });

  it("policy explain allows alice ssh on the demo instance under dev-demo with one sre-leads approval", async () => {
    const result = await spawnCli(
      [
        "policy",
        "explain",
        "--user",
        "alice@example.com",
        "--instance",
        "i-0a1b2c3d4e5f60718",
        "--method",
        "ssh",
      ],
      { ACCESS_CONFIG: DEMO_CONFIG },
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('ALLOWED by rule "dev-demo"');
    expect(result.stdout).toContain("  OS user: ec2-user");
    expect(result.stdout).toContain("  approvals: 1 from group:sre-leads (never the requester)");
  });

  it("policy explain denies carol (exit 2)", async () => {
    const result = await spawnCli(
      [
        "policy",
        "explain",
        "--user",
        "carol@example.com",
        "--instance",
        "i-0a1b2c3d4e5f60718",
        "--method",
        "ssh",
      ],
      { ACCESS_CONFIG: DEMO_CONFIG },
    );
    expect(result.code).toBe(2);
    expect(result.stdout).toContain("DENIED (policy.no_matching_rule)");
    expect(result.stdout).toContain("dev-demo: skipped — carol@example.com is not one of group:dev");
  });
});
