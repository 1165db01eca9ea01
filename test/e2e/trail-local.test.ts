import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EC2InstanceConnectClient, SendSSHPublicKeyCommand } from "@aws-sdk/client-ec2-instance-connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningRuntime, startRuntime } from "../helpers/runtime.ts";

let runtime: RunningRuntime;
let keyDir: string;

beforeAll(async () => {
  runtime = await startRuntime(undefined, { env: { ACCESS_TRAIL_BACKFILL_SECONDS: "2" } });
  keyDir = mkdtempSync(join(tmpdir(), "trail-e2e-key-"));
  execFileSync("ssh-keygen", [
    "-q",
    "-N",
    "",
    "-t",
    "ed25519",
    "-C",
    "alice@laptop",
    "-f",
    join(keyDir, "id"),
  ]);
});

afterAll(async () => {
  await runtime?.stop();
  if (runtime) rmSync(runtime.dataDir, { recursive: true, force: true });
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
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

async function until<T>(read: () => Promise<T>, check: (value: T) => boolean, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (check(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe("npm start: the trail", () => {
  it("ingests the emulator's events as they happen, classifies them and anchors the audit chain", async () => {
    const [alice = "", bob = "", carol = ""] = await Promise.all(
      ["alice", "bob", "carol"].map((who) => login(`${who}@example.com`)),
    );
    const created = await api(alice, "POST", "/requests", {
      instanceId: "i-0a1b2c3d4e5f60718",
      method: "ssh",
      osUser: "ec2-user",
      durationSeconds: 1800,
      reason: "trail e2e",
    });
    expect(created.status).toBe(201);
    await api(bob, "POST", `/requests/${created.body.id}/approve`);
    const pushed = await api(alice, "POST", `/grants/${created.body.grantId}/ssh-key`, {
      publicKey: readFileSync(join(keyDir, "id.pub"), "utf8"),
    });
    expect(pushed.status, JSON.stringify(pushed.body)).toBe(200);

    // Someone without a grant: mallory's own keys (the demo inventory gives her nothing), straight to AWS.
    const emulatorUrl = /AWS emulator: (http:\/\/127\.0\.0\.1:\d+)/.exec(runtime.output())?.[1] ?? "";
    const mallory = new EC2InstanceConnectClient({
      endpoint: emulatorUrl,
      region: "us-east-1",
      credentials: { accessKeyId: "AKIAEMULATORMALLORY1", secretAccessKey: "emulator-mallory-secret" },
      maxAttempts: 1,
    });
    await mallory
      .send(
        new SendSSHPublicKeyCommand({
          InstanceId: "i-0a1b2c3d4e5f60718",
          InstanceOSUser: "root",
          SSHPublicKey: readFileSync(join(keyDir, "id.pub"), "utf8"),
        }),
      )
      .catch(() => undefined);
    mallory.destroy();

    const trail = await until(
      () => api(carol, "GET", "/audit/trail"),
      (response) => response.body.items?.length >= 2,
    );
    const byName = Object.fromEntries(
      trail.body.items.map((item: any) => [item.verdict.classification, item]),
    );
    expect(byName.brokered).toMatchObject({
      event: { kind: "key-push", instanceId: "i-0a1b2c3d4e5f60718" },
      verdict: { grantId: created.body.grantId, matchedBy: "push" },
    });
    expect(byName["denied-attempt"]).toBeDefined();

    // The backfill (every 2 s here) finds the same events again: nothing is recorded twice.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    expect((await api(carol, "GET", "/audit/trail")).body.items).toHaveLength(2);

    const anchors = join(runtime.dataDir, "audit-anchors.jsonl");
    await until(
      async () => existsSync(anchors),
      (exists) => exists,
    );
    const verified = await until(
      () => api(carol, "GET", "/audit/verify"),
      (response) => response.body.anchor?.ok === true,
    );
    expect(verified.body).toMatchObject({ ok: true, anchor: { ok: true, location: anchors } });
  });
});
