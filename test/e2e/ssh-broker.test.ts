/**
 * The whole path with nothing faked: the broker API (DynamoDB Local) with the production AWS adapters
 * pointed at the local emulator, the emulator's EIC/EICE/metadata services, the demo instance's sshd asking
 * the emulator for keys, and the `access` CLI driving the real OpenSSH client.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../core/policy/yaml.ts";
import {
  type DemoInstance,
  demoInstanceIds,
  keyFingerprint,
  startDemoInstance,
} from "../../local/demo-instance.ts";
import { type DynamoLocal, freePort, startDynamoLocal } from "../../local/dynamo.ts";
import { eicService } from "../../local/emulator/eic.ts";
import { eiceService } from "../../local/emulator/eice.ts";
import { loadInventory } from "../../local/emulator/inventory.ts";
import { metadataService } from "../../local/emulator/metadata.ts";
import { type RunningEmulator, startEmulator } from "../../local/emulator/server.ts";
import { createDevIssuer } from "../../local/issuer.ts";
import { localDeps } from "../../local/runtime.ts";
import { createDevServer, listen } from "../../local/server.ts";
import { BROKER_KEYS, DEMO_INVENTORY } from "../helpers/emulator.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const BIN = join(ROOT, "cli/bin.js");
const INSTANCE = "i-0a1b2c3d4e5f60718";

const temps: string[] = [];
const temp = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
};

let dynamo: DynamoLocal;
let emulator: RunningEmulator;
let demo: DemoInstance;
let server: Server;
let api: string;
const homes: Record<string, string> = {};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The real `access` bin as `who`, with the emulator's EICE address (what /dev/login will hand out). */
function access(who: string, argv: string[], options: { onStderr?: (text: string) => void } = {}) {
  homes[who] ??= temp(`access-broker-e2e-${who}-`);
  const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("ACCESS_")));
  return new Promise<Run>((done) => {
    const child = spawn(process.execPath, [BIN, ...argv], {
      cwd: ROOT,
      env: { ...clean, XDG_CONFIG_HOME: homes[who], ACCESS_EICE_ENDPOINT: `ws://127.0.0.1:${emulator.port}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
      options.onStderr?.(stderr);
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 25_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  dynamo = await startDynamoLocal();
  const inventory = loadInventory(DEMO_INVENTORY);
  // The emulator forwards EICE tunnels to the demo sshd, and sshd asks the emulator for keys: fix sshd's
  // port first, start the emulator with it, then sshd with the emulator's URL.
  const sshdPort = await freePort();
  emulator = await startEmulator({
    inventory,
    upstreams: { "demo-sshd": { host: "127.0.0.1", port: sshdPort } },
    services: (core) => {
      const eic = eicService(core);
      return [eic, eiceService(core, { sweepIntervalMs: 200 }), metadataService(core, eic)];
    },
  });
  demo = await startDemoInstance({
    port: sshdPort,
    metadataUrl: emulator.url,
    instanceIds: demoInstanceIds(inventory.instances),
    dataDir: join(temp("access-broker-e2e-demo-"), "demo-instance"),
  });
  const config = parseConfig(readFileSync(join(ROOT, "local/demo/access.yaml"), "utf8"));
  const deps = await localDeps(config, dynamo.endpoint, "ssh-e2e", {
    endpoint: emulator.url,
    credentials: BROKER_KEYS,
    clock: () => emulator.core.now(),
  });
  const issuer = await createDevIssuer("http://127.0.0.1/dev");
  server = createDevServer({ deps, issuer, port: 0 }).server;
  api = `http://127.0.0.1:${await listen(server, 0)}`;
  for (const user of ["alice", "bob"]) {
    const login = await access(user, ["login", "--user", `${user}@example.com`, "--api", api]);
    expect(login.code, login.stderr).toBe(0);
  }
});

afterAll(async () => {
  await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
  await demo?.stop();
  await emulator?.close();
  await dynamo?.stop();
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

describe("access ssh against the broker, the emulator and the demo instance", () => {
  let grantId: string;

  it("asks for access, waits while bob approves, then runs the command on the instance through EICE", async () => {
    let requestId: string | undefined;
    let approved: Promise<Run> | undefined;
    const ssh = access(
      "alice",
      [
        "ssh",
        INSTANCE,
        "--for",
        "30m",
        "--reason",
        "e2e: read the logs",
        "-o",
        "BatchMode=yes",
        "--",
        "echo ok; id -un",
      ],
      {
        onStderr: (text) => {
          requestId ??= /request +(req_[0-9a-z]+)/.exec(text)?.[1];
          if (requestId && !approved && text.includes("waiting for 1 approval"))
            approved = access("bob", ["approve", requestId, "--comment", "go ahead"]);
        },
      },
    );
    const result = await ssh;
    expect((await approved)?.code).toBe(0);
    expect(result.stderr).toContain("waiting for 1 approval from group:sre-leads");
    expect(result.stderr).toMatch(
      /connecting to i-0a1b2c3d4e5f60718 as ec2-user through eice-0demo00000000001/,
    );
    expect(result.stdout).toBe("ok\nec2-user\n");
    expect(result.code).toBe(0);
    grantId = /grant (gr_[0-9a-z]+)/.exec(result.stderr)?.[1] as string;
    expect(grantId).toMatch(/^gr_/);

    // What AWS would have logged: the broker's push of the very key sshd accepted, and the tunnel it signed.
    const trail = emulator.core.trail.all() as {
      eventName: string;
      errorCode?: string;
      requestParameters?: Record<string, unknown> | null;
    }[];
    const ok = trail.filter((event) => !event.errorCode);
    expect(ok.map((event) => event.eventName)).toEqual(
      expect.arrayContaining(["SendSSHPublicKey", "OpenTunnel"]),
    );
    const accepted =
      /Accepted publickey for ec2-user from 127\.0\.0\.1 port \d+ ssh2: ED25519 (SHA256:\S+)/.exec(
        demo.logs(),
      )?.[1];
    const pushed = ok
      .filter((event) => event.eventName === "SendSSHPublicKey")
      .map((event) => keyFingerprint(String(event.requestParameters?.sSHPublicKey)));
    expect(pushed).toContain(accepted);
  });

  it("a second access ssh reuses the active grant and passes the remote exit code", async () => {
    const result = await access("alice", ["ssh", INSTANCE, "-o", "BatchMode=yes", "--", "exit 7"]);
    expect(result.stderr).toContain(`grant ${grantId}`);
    expect(result.code).toBe(7);
  });

  it("a pushed key stops working once its 60 s in instance metadata are over", async () => {
    // Push our own key (as `access ssh --identity-file` would), then use it twice with plain ssh.
    const dir = temp("access-broker-e2e-key-");
    const key = join(dir, "id_ed25519");
    await new Promise((done) =>
      spawn("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key], { stdio: "ignore" }).on(
        "close",
        done,
      ),
    );
    const push = await access("alice", ["ssh", grantId, "-i", key, "-o", "BatchMode=yes", "--", "true"]);
    expect(push.code).toBe(0);
    const plain = () =>
      new Promise<Run>((done) => {
        const child = spawn(
          "ssh",
          [
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-i",
            key,
            "-p",
            String(demo.port),
            "-l",
            "ec2-user",
            "127.0.0.1",
            "echo still here",
          ],
          { stdio: ["ignore", "pipe", "pipe"] },
        );
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (chunk) => {
          stdout += chunk;
        });
        child.stderr.on("data", (chunk) => {
          stderr += chunk;
        });
        child.on("close", (code) => done({ code, stdout, stderr }));
      });
    expect((await plain()).stdout).toBe("still here\n");
    // 61 s later (emulator time) the key has left instance metadata: sshd finds nothing for it.
    await fetch(`${emulator.url}/_emulator/clock`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ advanceSeconds: 61 }),
    });
    const late = await plain();
    expect(late.code).toBe(255);
    expect(late.stderr).toContain("Permission denied (publickey)");
  });
});
