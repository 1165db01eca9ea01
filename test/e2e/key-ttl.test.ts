/**
 * The real 60 s: a key pushed through the broker logs in for as long as EC2 Instance Connect keeps it in
 * instance metadata, and no longer. Nothing is moved or shortened here — the runtime `npm start` runs, the
 * emulator's default key lifetime, its clock at real time — so this file waits for real (about 65 s).
 * Every other test of key expiry moves the emulator's clock instead.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  api,
  emulatorUrl,
  keygen,
  sleepUntil,
  sshThroughProxy,
  token,
  trail,
  type Users,
  users,
} from "../helpers/cli.ts";
import { type RunningRuntime, startRuntime } from "../helpers/runtime.ts";

const INSTANCE = "i-0a1b2c3d4e5f60718";

let runtime: RunningRuntime;
let root: string;
let who: Users;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "access-key-ttl-"));
  runtime = await startRuntime();
  who = users(runtime.url, root);
  await who.login("alice");
});

afterAll(async () => {
  await runtime?.stop();
  if (runtime) rmSync(runtime.dataDir, { recursive: true, force: true });
  if (root) rmSync(root, { recursive: true, force: true });
});

describe("a key pushed with EC2 Instance Connect's default lifetime", () => {
  it("logs in right after the push and at ~50 s without a new push, and is refused at ~62 s", async () => {
    const emulator = emulatorUrl(runtime);
    const clock = (await (await fetch(`${emulator}/_emulator/clock`)).json()) as { offsetSeconds: number };
    expect(clock.offsetSeconds, "the emulator's clock must run at real time").toBe(0);

    const alice = await token(runtime.url, "alice@example.com");
    const bob = await token(runtime.url, "bob@example.com");
    const created = await api(runtime.url, alice, "POST", "/requests", {
      instanceId: INSTANCE,
      method: "ssh",
      osUser: "ec2-user",
      durationSeconds: 1800,
      reason: "e2e: the real 60 s",
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const approved = await api(runtime.url, bob, "POST", `/requests/${created.body.id}/approve`);
    expect(approved.body.status).toBe("active");
    const grantId = created.body.grantId as string;

    // `access ssh` with our own key file: it pushes the public half and logs in with it at once.
    const key = join(root, "id_ed25519");
    await keygen(key);
    const first = await who.access("alice", [
      "ssh",
      grantId,
      "-i",
      key,
      "-o",
      "BatchMode=yes",
      "--",
      "echo pushed-and-in",
    ]);
    expect(first.stderr).toContain(`connecting to ${INSTANCE} as ec2-user through eice-0demo00000000001`);
    expect(first.stdout).toBe("pushed-and-in\n");
    expect(first.code).toBe(0);

    const pushes = async () =>
      (await trail(emulator)).filter((event) => event.eventName === "SendSSHPublicKey" && !event.errorCode);
    const [push] = await pushes();
    expect(await pushes()).toHaveLength(1);
    // CloudTrail's eventTime has whole seconds: the key was stored at most 1 s after it, for 60 s.
    const pushedAt = Date.parse(push?.eventTime as string);
    expect(Math.abs(Date.now() - pushedAt)).toBeLessThan(10_000);

    // ~50 s after the push: a fresh ssh connection (a new tunnel through `access proxy`), same key, no push.
    await sleepUntil(pushedAt + 50_000);
    const later = await sshThroughProxy(who, "alice", grantId, INSTANCE, key, ["echo still-valid"]);
    expect(later.stderr).toBe("");
    expect(later.stdout).toBe("still-valid\n");
    expect(later.code).toBe(0);
    expect(Date.now() - pushedAt).toBeLessThan(60_000);

    // ~62 s after the push: the key has left instance metadata, so sshd finds nothing for it.
    await sleepUntil(pushedAt + 62_000);
    const late = await sshThroughProxy(who, "alice", grantId, INSTANCE, key, ["echo too-late"]);
    expect(late.stdout).toBe("");
    expect(late.stderr).toContain("Permission denied (publickey)");
    expect(late.code).toBe(255);

    // The refusal came from sshd, not from the tunnel: all three connections got their tunnel, and the
    // only key push was the first.
    const events = await trail(emulator);
    const tunnels = events.filter((event) => event.eventName === "OpenTunnel" && !event.errorCode);
    expect(tunnels).toHaveLength(3);
    expect(await pushes()).toEqual([push]);
  }, 100_000);
});
