import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { documentClient } from "../../core/aws/clients.ts";
import { DynamoStore } from "../../core/aws/dynamo/store.ts";
import { ensureTable } from "../../core/aws/dynamo/table.ts";
import { parseConfig } from "../../core/policy/yaml.ts";
import type { Request } from "../../core/request/index.ts";
import * as Target from "../../core/target/index.ts";
import { type DynamoLocal, LOCAL_AWS, startDynamoLocal } from "../../local/dynamo.ts";
import { createDevIssuer } from "../../local/issuer.ts";
import { createDevServer, listen } from "../../local/server.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const DEMO_INSTANCE = "i-0a1b2c3d4e5f60718";

let dynamo: DynamoLocal;
let server: Server;
let url: string;
const homes: Record<string, string> = {};

/** The real `access` bin, as a user runs it, logged in as `who` (each user has their own config home). */
function access(who: string, ...argv: string[]) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("ACCESS_")));
  homes[who] ??= mkdtempSync(join(tmpdir(), `access-cli-${who}-`));
  return new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
    execFile(
      process.execPath,
      [join(ROOT, "cli/bin.js"), ...argv],
      { cwd: ROOT, env: { ...env, XDG_CONFIG_HOME: homes[who] } },
      (error, stdout, stderr) => done({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  dynamo = await startDynamoLocal();
  const endpoint = dynamo.endpoint;
  await ensureTable(new DynamoDBClient({ ...LOCAL_AWS, endpoint }), "cli-e2e");
  const store = new DynamoStore(documentClient({ ...LOCAL_AWS, endpoint }), "cli-e2e");
  const config = parseConfig(readFileSync(join(ROOT, "local/demo/access.yaml"), "utf8"));
  const issuer = await createDevIssuer("http://127.0.0.1/dev");
  const deps = { config, requests: store, audit: store, targets: Target.fromPolicy(config) };
  server = createDevServer({ deps, issuer, port: 0 }).server;
  url = `http://127.0.0.1:${await listen(server, 0)}`;
});

afterAll(async () => {
  await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
  await dynamo?.stop();
});

describe("access CLI against the local runtime", () => {
  it("takes a request from login through approval, extension, revocation and audit", async () => {
    for (const user of ["alice", "bob", "carol"]) {
      const login = await access(user, "login", "--user", `${user}@example.com`, "--api", url);
      expect(login, login.stderr).toMatchObject({ code: 0, stderr: "" });
    }

    const tooLong = await access("alice", "request", DEMO_INSTANCE, "--ssh", "--for", "3h", "--reason", "x");
    expect(tooLong.code).toBe(1);
    expect(tooLong.stderr).toContain(
      "[request.violates_rule]\n  durationSeconds: 3h exceeds the rule's maximum of 1h",
    );

    const asked = await access(
      "alice",
      "request",
      DEMO_INSTANCE,
      "--ssh",
      "--for",
      "30m",
      "--reason",
      "debug",
      "--json",
    );
    expect(asked.code, asked.stderr).toBe(0);
    const request = JSON.parse(asked.stdout) as Request.Info;
    expect(request).toMatchObject({ status: "pending", osUser: "ec2-user", approvalsRequired: 1 });

    const inbox = await access("bob", "ls", "--pending");
    expect(inbox.stdout).toContain(request.id);

    const self = await access("alice", "approve", request.id);
    expect(self.code).toBe(1);
    expect(self.stderr).toContain("[request.self_approval]");

    const approved = await access("bob", "approve", request.id, "--comment", "go");
    expect(approved.code).toBe(0);
    expect(approved.stdout).toContain("status:  active");
    expect(approved.stdout).toContain(`grant:   ${request.grantId}`);

    const mine = await access("alice", "grants", "--mine", "--active");
    expect(mine.stdout).toMatch(new RegExp(`${request.grantId} +active +alice@example.com`));

    const extended = await access("alice", "extend", request.grantId, "--for", "15m", "--reason", "more");
    expect(extended.code, extended.stderr).toBe(0);
    expect(extended.stdout).toContain("extension:   +15m requested now, awaiting approval");

    const revoked = await access("bob", "revoke", request.grantId, "--reason", "done", "--json");
    expect(JSON.parse(revoked.stdout)).toMatchObject({ id: request.grantId, status: "revoked" });

    const trail = await access(
      "carol",
      "audit",
      "events",
      "--request",
      request.id,
      "--order",
      "asc",
      "--json",
    );
    const types = (JSON.parse(trail.stdout) as { items: { type: string }[] }).items.map(
      (record) => record.type,
    );
    expect(types).toEqual([
      "request.created",
      "request.approval_recorded",
      "request.approved",
      "grant.activated",
      "grant.extension_requested",
      "grant.revoked",
    ]);

    const verified = await access("carol", "audit", "verify");
    expect(verified.code).toBe(0);
    expect(verified.stdout).toMatch(/^audit chain intact: \d+ records, head #\d+ [0-9a-f]{64}\n$/);

    const forbidden = await access("alice", "audit", "events");
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toContain("[audit.forbidden]");
  });
});
