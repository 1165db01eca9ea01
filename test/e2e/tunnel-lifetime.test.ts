/**
 * How long an SSH session through an EC2 Instance Connect Endpoint tunnel can live, with everything real:
 * `npm start` (broker, emulator, demo sshd), the `access` CLI and the system OpenSSH client.
 *
 * - The broker presigns every tunnel with maxTunnelDuration = what is left of the grant's window, and the
 *   endpoint cuts the tunnel then: a session cannot outlive its grant by more than a moment.
 * - Revoking a grant stops every new push, tunnel and `access ssh` at once. An already-open tunnel is not
 *   cut: AWS gives the broker no call to close an established EICE tunnel, so it lives on until its
 *   maxTunnelDuration (the grant's original end). That is the documented bound (design §4).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  api,
  emulatorUrl,
  keygen,
  type Run,
  sshThroughProxy,
  token,
  trail,
  type Users,
  users,
} from "../helpers/cli.ts";
import type { TrailRecord } from "../helpers/emulator.ts";
import { type RunningRuntime, startRuntime } from "../helpers/runtime.ts";

const INSTANCE = "i-0a1b2c3d4e5f60718";

let runtime: RunningRuntime;
let emulator: string;
let root: string;
let who: Users;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "access-tunnel-life-"));
  runtime = await startRuntime();
  emulator = emulatorUrl(runtime);
  who = users(runtime.url, root);
  await Promise.all([who.login("alice"), who.login("bob")]);
});

afterAll(async () => {
  await runtime?.stop();
  if (runtime) rmSync(runtime.dataDir, { recursive: true, force: true });
  if (root) rmSync(root, { recursive: true, force: true });
});

/** The successful OpenTunnel records signed by the grant's own signer session. */
async function tunnelsOf(grantId: string): Promise<TrailRecord[]> {
  return (await trail(emulator)).filter(
    (event) =>
      event.eventName === "OpenTunnel" &&
      !event.errorCode &&
      String(event.userIdentity?.arn).endsWith(`/grant-${grantId}`),
  );
}

async function auditOf(requestId: string, type: string) {
  const carol = await token(runtime.url, "carol@example.com");
  const records = await api(
    runtime.url,
    carol,
    "GET",
    `/audit/events?requestId=${requestId}&order=asc&limit=200`,
  );
  return (records.body.items as { type: string; at: string; data: Record<string, any> }[]).filter(
    (record) => record.type === type,
  );
}

describe("an SSH session through an EICE tunnel", () => {
  it("is cut at maxTunnelDuration, which is what was left of the grant's window", async () => {
    // `access ssh` asks for a 15 s grant, waits for bob, then runs a command that would take 2 minutes.
    let requestId: string | undefined;
    let approval: Promise<Run> | undefined;
    const session = await who.access(
      "alice",
      [
        "ssh",
        INSTANCE,
        "--for",
        "15s",
        "--reason",
        "e2e: a short window",
        "-o",
        "BatchMode=yes",
        "--",
        "echo started; sleep 120; echo finished",
      ],
      {
        timeoutMs: 60_000,
        onStderr: (text) => {
          requestId ??= /request +(req_[0-9a-z]+)/.exec(text)?.[1];
          if (requestId && !approval && text.includes("waiting for 1 approval"))
            approval = who.access("bob", ["approve", requestId]);
        },
      },
    );
    expect((await approval)?.code).toBe(0);
    expect(session.stdout).toBe("started\n");
    // ssh lost its connection (255): the command did not finish and nothing killed ssh.
    expect(session.signal).toBeNull();
    expect(session.code).toBe(255);

    const grantId = /grant (gr_[0-9a-z]+)/.exec(session.stderr)?.[1] as string;
    const alice = await token(runtime.url, "alice@example.com");
    const grant = (await api(runtime.url, alice, "GET", `/grants/${grantId}`)).body;
    const startsAt = Date.parse(grant.startsAt);
    const endsAt = Date.parse(grant.endsAt);
    expect(endsAt - startsAt).toBe(15_000);

    // One tunnel, whose CloudTrail record carries the maxTunnelDuration the broker signed: the seconds left.
    const [opened, ...others] = await tunnelsOf(grantId);
    expect(others).toEqual([]);
    const maxTunnelDuration = Number(opened?.requestParameters?.maxTunnelDuration);
    const [authorized] = await auditOf(grant.requestId, "grant.tunnel_authorized");
    expect(authorized?.data.maxTunnelDuration).toBe(maxTunnelDuration);
    expect(maxTunnelDuration).toBe(Math.floor((endsAt - Date.parse(authorized?.at as string)) / 1000));
    expect(maxTunnelDuration).toBeGreaterThan(0);
    expect(maxTunnelDuration).toBeLessThan(15);

    // The session ended when the tunnel reached it (eventTime has whole seconds), i.e. at the grant's end.
    const cutAt = Date.parse(opened?.eventTime as string) + maxTunnelDuration * 1000;
    expect(session.endedAt - cutAt).toBeGreaterThanOrEqual(-500);
    expect(session.endedAt - cutAt).toBeLessThan(5_000);
    expect(session.endedAt).toBeLessThan(endsAt + 5_000);
    expect(session.endedAt).toBeGreaterThan(endsAt - 3_000);
  });

  it("survives a revoke until its maxTunnelDuration, while every new push, tunnel and access ssh is refused", async () => {
    const alice = await token(runtime.url, "alice@example.com");
    const bob = await token(runtime.url, "bob@example.com");
    const created = await api(runtime.url, alice, "POST", "/requests", {
      instanceId: INSTANCE,
      method: "ssh",
      osUser: "ec2-user",
      durationSeconds: 20,
      reason: "e2e: revoked mid-session",
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const approved = await api(runtime.url, bob, "POST", `/requests/${created.body.id}/approve`);
    expect(approved.body.status).toBe("active");
    const grantId = created.body.grantId as string;
    const endsAt = Date.parse(approved.body.endsAt);

    // A session that prints a line every second, with the time each line arrived.
    const ticks: number[] = [];
    let seen = 0;
    let running: () => void = () => {};
    const started = new Promise<void>((done) => {
      running = done;
    });
    const session = who.access(
      "alice",
      ["ssh", grantId, "-o", "BatchMode=yes", "--", "for i in $(seq 1 120); do echo tick $i; sleep 1; done"],
      {
        timeoutMs: 60_000,
        onStdout: (text) => {
          const count = text.split("\n").length - 1;
          for (; seen < count; seen++) ticks.push(Date.now());
          if (seen >= 2) running();
        },
      },
    );
    await started;

    const revoke = await who.access("bob", ["revoke", grantId, "--reason", "e2e: enough"]);
    expect(revoke.code, revoke.stderr).toBe(0);
    const revokedAt = Date.now();
    const trailBefore = (await trail(emulator)).length;
    const grant = (await api(runtime.url, alice, "GET", `/grants/${grantId}`)).body;
    expect(grant.status).toBe("revoked");

    // Nothing new: no key push, no tunnel, no access ssh (by grant or by instance), no ssh through the proxy.
    const key = join(root, "id_after_revoke");
    const { publicKey } = await keygen(key);
    const push = await api(runtime.url, alice, "POST", `/grants/${grantId}/ssh-key`, { publicKey });
    expect(push.status).toBe(409);
    expect(push.body.error).toMatchObject({ code: "grant.not_active", message: "The grant is revoked" });
    const tunnel = await api(runtime.url, alice, "POST", `/grants/${grantId}/tunnel`, {});
    expect(tunnel.status).toBe(409);
    expect(tunnel.body.error.code).toBe("grant.not_active");
    const again = await who.access("alice", ["ssh", grantId, "-o", "BatchMode=yes", "--", "true"]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain(`grant ${grantId} is revoked`);
    const byInstance = await who.access("alice", ["ssh", INSTANCE, "-o", "BatchMode=yes", "--", "true"]);
    expect(byInstance.code).not.toBe(0);
    expect(byInstance.stderr).toContain(`you have no active ssh grant for ${INSTANCE}`);
    const proxied = await sshThroughProxy(who, "alice", grantId, INSTANCE, key, ["true"]);
    expect(proxied.code).toBe(255);
    expect(proxied.stderr).toContain("The grant is revoked");

    // The open session is not cut by the revoke: it keeps printing, then ends at its tunnel's
    // maxTunnelDuration, which is the grant's original end.
    const ended = await session;
    expect(ended.code).toBe(255);
    expect(ended.signal).toBeNull();
    expect(ticks.filter((at) => at > revokedAt + 1_000).length).toBeGreaterThanOrEqual(3);
    const [opened, ...others] = await tunnelsOf(grantId);
    expect(others).toEqual([]);
    const maxTunnelDuration = Number(opened?.requestParameters?.maxTunnelDuration);
    const cutAt = Date.parse(opened?.eventTime as string) + maxTunnelDuration * 1000;
    expect(ended.endedAt - cutAt).toBeGreaterThanOrEqual(-500);
    expect(ended.endedAt - cutAt).toBeLessThan(5_000);
    expect(ended.endedAt).toBeLessThan(endsAt + 5_000);
    // After the revoke the broker made no push, no signer session and no tunnel. (The runtime's sweeper
    // keeps listing IAM policies for its reconciler; that is not about this grant.)
    const afterRevoke = (await trail(emulator))
      .slice(trailBefore)
      .filter(
        (event) =>
          event.eventName === "SendSSHPublicKey" ||
          event.eventName === "OpenTunnel" ||
          (event.eventName === "AssumeRole" && event.requestParameters?.roleSessionName !== "access-broker"),
      )
      .map((event) => event.eventName);
    expect(afterRevoke).toEqual([]);
    const pushes = await auditOf(created.body.id, "grant.key_pushed");
    expect(pushes).toHaveLength(1);
  });
});
