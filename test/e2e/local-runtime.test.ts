import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../local/dynamo.ts";
import { collect, exited, type RunningRuntime, spawnRuntime, startRuntime } from "../helpers/runtime.ts";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

let runtime: RunningRuntime;
beforeAll(async () => {
  runtime = await startRuntime();
});
afterAll(async () => {
  await runtime?.stop();
  if (runtime) rmSync(runtime.dataDir, { recursive: true, force: true });
});

async function login(user: string): Promise<string> {
  const response = await fetch(`${runtime.url}/dev/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  return ((await response.json()) as { token: string }).token;
}

async function api(token: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${runtime.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: (await response.json()) as any };
}

describe("npm start", () => {
  it("prints the URL, the demo users and a first command", () => {
    const out = runtime.output();
    expect(out).toContain(`is running at ${runtime.url}`);
    for (const user of ["alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"]) {
      expect(out).toContain(user);
    }
    expect(out).toContain("access login --user alice@example.com");
  });

  it("serves the whole request → approval → grant flow over HTTP with dev-issued tokens", async () => {
    const alice = await login("alice@example.com");
    const bob = await login("bob@example.com");
    const created = await api(alice, "POST", "/requests", {
      instanceId: "i-0a1b2c3d4e5f60718",
      method: "ssh",
      durationSeconds: 1800,
      reason: "e2e",
    });
    expect(created.status).toBe(201);
    const approved = await api(bob, "POST", `/requests/${created.body.id}/approve`);
    expect(approved.body.status).toBe("active");
    const grants = await api(alice, "GET", "/grants?active=true&mine=true");
    expect(grants.body.items.map((grant: { id: string }) => grant.id)).toContain(created.body.grantId);
    const verify = await api(await login("carol@example.com"), "GET", "/audit/verify");
    expect(verify.body.ok).toBe(true);
  });

  it("runs the expiry sweeper on a timer", async () => {
    const alice = await login("alice@example.com");
    const created = await api(alice, "POST", "/requests", {
      instanceId: "i-0a1b2c3d4e5f60718",
      method: "tunnel",
      durationSeconds: 2,
      reason: "short",
    });
    await api(await login("dave@example.com"), "POST", `/requests/${created.body.id}/approve`);
    const deadline = Date.now() + 15_000;
    let status = "active";
    while (status !== "expired" && Date.now() < deadline) {
      await new Promise((done) => setTimeout(done, 500));
      status = (await api(alice, "GET", `/requests/${created.body.id}`)).body.status;
    }
    expect(status).toBe("expired");
  });

  it("refuses a second runtime on the same data directory with a clear message", async () => {
    const second = spawnRuntime(runtime.dataDir, await freePort());
    const output = collect(second);
    expect(await exited(second)).toBe(1);
    expect(output()).toMatch(/already running \(pid \d+\) at http:\/\/127\.0\.0\.1:\d+/);
  });

  it("fails at startup listing every config error as path: reason", async () => {
    const bad = join(runtime.dataDir, "bad.yaml");
    writeFileSync(bad, "targets: []\nrules:\n  - id: X\n    maxDuration: soon\n");
    const child = spawnRuntime(join(runtime.dataDir, "other"), await freePort(), ["--config", bad]);
    const output = collect(child);
    expect(await exited(child)).toBe(1);
    expect(output()).toMatch(/rules\.0\.id: /);
    expect(output()).toMatch(/rules\.0\.maxDuration: /);
    expect(output()).toMatch(/targets: /);
  });

  it("stops every child on Ctrl-C, leaving no Java behind, and keeps the data for the next start", async () => {
    const lock = JSON.parse(readFileSync(join(runtime.dataDir, "runtime.lock"), "utf8")) as {
      children: number[];
    };
    expect(lock.children.length).toBeGreaterThan(0);
    expect(lock.children.every(alive)).toBe(true);
    expect(await runtime.stop("SIGINT")).toBe(0);
    await new Promise((done) => setTimeout(done, 200));
    expect(lock.children.some(alive)).toBe(false);

    const { dataDir } = runtime;
    runtime = await startRuntime(dataDir);
    const carol = await login("carol@example.com");
    const requests = await api(carol, "GET", "/requests");
    expect(requests.body.items.length).toBeGreaterThan(0);
  });
});
