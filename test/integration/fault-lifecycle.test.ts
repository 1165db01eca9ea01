/**
 * A day of grants under a flaky AWS: 20 % of every AWS call the broker makes (STS, EC2, EC2 Instance
 * Connect, IAM — the emulator's `*` rule) is throttled or fails with a 5xx, from a seeded die. A dozen
 * requests go through their whole lifecycle over the in-process API against DynamoDB Local, with a client
 * that retries 429/503 answers (bounded) the way the CLI's users would. Afterwards nothing may be left
 * half-done, and the audit log must describe exactly the AWS calls that succeeded — per CloudTrail.
 *
 * It runs twice: with the product's retry policy (6 attempts: the SDK rides out nearly every fault, and
 * CloudTrail fills with failed attempts that must not be audited), and with one attempt, so that every
 * fault reaches the API and the failure paths (429s, failed push intents, IAM side effects healed by the
 * reconciler) are taken many times.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Audit } from "../../core/audit/index.ts";
import * as Grant from "../../core/grant/index.ts";
import type { Request } from "../../core/request/index.ts";
import { dueAt } from "../../core/request/lifecycle.ts";
import { createTestBroker, DEMO_CONFIG_TEXT, type Response, type TestBroker } from "../helpers/broker.ts";
import { startTestEmulator, type TestEmulator, type TrailRecord } from "../helpers/emulator.ts";
import { makeKey, type TestKey } from "../helpers/keys.ts";

const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const CAROL = "carol@example.com";
const DAVE = "dave@example.com";
const DEMO = "i-0a1b2c3d4e5f60718";
const DEMO_IAM = "i-0c0ffee0c0ffee0ee";
const STAGING = "i-0fedcba9876543210";
const ALICE_ROLE = "arn:aws:iam::111122223333:role/alice";
/** A client gives up after this many tries of one call. */
const CLIENT_TRIES = 12;

let emulator: TestEmulator;
let key: TestKey;
let publicKey: string;

beforeAll(async () => {
  emulator = await startTestEmulator();
  key = makeKey("alice@laptop");
  publicKey = key.publicKey;
});

afterAll(async () => {
  await emulator?.close();
  key?.cleanup();
});

interface Plan {
  name: string;
  requester: string;
  body: Record<string, unknown>;
  approvers: string[];
  /** What happens to the request after it is made, and how it must end. */
  fate: "expired" | "revoked" | "timed-out" | "denied" | "cancelled";
  pushes?: number;
  tunnels?: number;
  /** A grant whose window is short: it expires at the first sweep, and later calls are refused. */
  short?: boolean;
}

const ssh = (instanceId: string, durationSeconds: number, extra: Record<string, unknown> = {}) => ({
  instanceId,
  method: "ssh",
  osUser: "ec2-user",
  durationSeconds,
  reason: "faults: day of grants",
  ...extra,
});
const tunnel = (durationSeconds: number) => ({
  instanceId: DEMO,
  method: "tunnel",
  port: 22,
  durationSeconds,
  reason: "faults: tunnel",
});

const plan = (
  name: string,
  body: Record<string, unknown>,
  approvers: string[],
  fate: Plan["fate"],
  extra: Partial<Plan> = {},
): Plan => ({ name, requester: ALICE, body, approvers, fate, ...extra });

const PLANS: Plan[] = [
  plan("ssh-1", ssh(DEMO, 1800), [BOB], "expired", { pushes: 2, tunnels: 1 }),
  plan("ssh-2", ssh(DEMO, 1800), [DAVE], "revoked", { pushes: 2, tunnels: 1 }),
  plan("ssh-short", ssh(DEMO, 600), [BOB], "expired", { pushes: 1, short: true }),
  plan("ssh-4", ssh(DEMO, 1200), [BOB], "expired", { pushes: 1, tunnels: 1 }),
  plan("tunnel-1", tunnel(1800), [BOB], "revoked", { tunnels: 2 }),
  plan("tunnel-short", tunnel(600), [DAVE], "expired", { tunnels: 1, short: true }),
  plan("iam-1", ssh(DEMO_IAM, 1800), [BOB], "revoked"),
  plan("iam-short", ssh(DEMO_IAM, 600), [BOB], "expired", { short: true }),
  plan("iam-3", ssh(DEMO_IAM, 1800), [DAVE], "expired"),
  plan("staging", ssh(STAGING, 3600, { ticket: "INC-42" }), [BOB, DAVE], "expired", { pushes: 2 }),
  plan("pending", ssh(DEMO, 1800), [], "timed-out"),
  plan("denied", ssh(DEMO, 1800), [], "denied"),
  plan("cancelled", ssh(DEMO, 1800), [], "cancelled"),
];

const TERMINAL = new Set(["expired", "revoked", "timed-out", "denied", "cancelled"]);

describe.each([
  { attempts: 6, what: "the product's retry policy (6 attempts)" },
  { attempts: 1, what: "a single attempt per AWS call" },
])("20 % throttling and 5xx on every AWS call, with $what", ({ attempts }) => {
  let broker: TestBroker;
  /** Every answer the client saw, retried ones included. */
  const answers: { call: string; status: number }[] = [];
  /** Successful answers to POST /grants/{id}/ssh-key and /tunnel, by grant. */
  const pushed = new Map<string, string[]>();
  const tunnels = new Map<string, number>();

  /** A client that retries 429 and 503 (what the API answers while AWS is busy), at most CLIENT_TRIES times. */
  async function call(
    user: string,
    method: string,
    path: string,
    options: Parameters<TestBroker["call"]>[3] = {},
  ): Promise<Response> {
    for (let attempt = 1; ; attempt++) {
      const answer = await broker.call(user, method, path, options);
      answers.push({
        call: `${method} ${path.replace(/[a-z]{2,3}_[0-9a-z]{26}/, "{id}")}`,
        status: answer.status,
      });
      if ((answer.status !== 429 && answer.status !== 503) || attempt === CLIENT_TRIES) return answer;
    }
  }

  async function push(grantId: string): Promise<Response> {
    const answer = await call(ALICE, "POST", `/grants/${grantId}/ssh-key`, { body: { publicKey } });
    if (answer.status === 200) pushed.set(grantId, [...(pushed.get(grantId) ?? []), answer.body.requestId]);
    return answer;
  }

  async function openTunnel(grantId: string): Promise<Response> {
    const answer = await call(ALICE, "POST", `/grants/${grantId}/tunnel`, { body: {} });
    if (answer.status === 200) tunnels.set(grantId, (tunnels.get(grantId) ?? 0) + 1);
    return answer;
  }

  /** The sweeper, run until nothing is due and the reconciler had nothing fail (bounded). */
  async function sweepUntilSettled(): Promise<void> {
    for (let round = 0; round < 20; round++) {
      const result = await Grant.sweepAll(broker.deps);
      const due = await broker.store.listDue(broker.clock.now, 100);
      if (due.length === 0 && result.iam.failed === 0) return;
    }
    throw new Error("the sweeper did not settle in 20 rounds");
  }

  const byName = new Map<string, Request.Info>();
  const itemOf = (name: string) => byName.get(name) as Request.Info;
  const grantOf = (name: string) => itemOf(name).grantId;

  /** An AWS read of our own (faults stay on): retried until it gets through. */
  async function policiesOfAlice(): Promise<string[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        const names = await broker.deps.iam.list(ALICE_ROLE);
        return names.filter((name) => name.startsWith(Grant.POLICY_PREFIX)).sort();
      } catch (error) {
        if (attempt === CLIENT_TRIES) throw error;
      }
    }
  }

  /** Consistency after a sweep: live grants inside their window, every unsettled request due, IAM = live grants. */
  async function expectConsistent(): Promise<void> {
    const now = broker.clock.now.getTime();
    const all = (await broker.store.listAll({ limit: 100 })).items;
    const unsettled = all.filter((item) => !TERMINAL.has(item.status));
    for (const item of unsettled) {
      // A request not yet settled has its next transition due (else nothing would ever settle it)…
      expect(dueAt(item), item.id).toBeDefined();
      // …and a live grant is inside its window.
      if (item.status === "active") expect(Date.parse(item.endsAt ?? ""), item.id).toBeGreaterThan(now);
    }
    const due = await broker.store.listDue(new Date(now + 86_400_000), 100);
    expect(due.map((item) => item.id).sort()).toEqual(unsettled.map((item) => item.id).sort());
    const liveIam = unsettled.filter((item) => item.status === "active" && item.grantMode === "iam");
    expect(await policiesOfAlice()).toEqual(liveIam.map((item) => Grant.policyName(item.grantId)).sort());
  }

  it("drives a dozen requests through their lifecycle while AWS misbehaves", async () => {
    await emulator.reset();
    broker = await createTestBroker(DEMO_CONFIG_TEXT, { aws: emulator.aws, awsMaxAttempts: attempts });
    await emulator.faults({
      seed: 20_260_000 + attempts,
      operations: {
        "*": [
          { rate: 0.1, kind: "throttle" },
          // Of the calls not throttled, 1 in 9 fails with a 500: 10 % + 10 % overall.
          { rate: 1 / 9, kind: "5xx" },
        ],
      },
    });

    // Requests: each describes its instance (EC2) as the account's broker role (STS) first.
    for (const plan of PLANS) {
      const created = await call(plan.requester, "POST", "/requests", {
        body: plan.body,
        headers: { "idempotency-key": `faults-${attempts}-${plan.name}` },
      });
      expect(created.status, `${plan.name}: ${JSON.stringify(created.body)}`).toBe(201);
      expect(created.body.network, plan.name).toBeDefined();
      let item = created.body as Request.Info;
      for (const approver of plan.approvers) {
        const approved = await call(approver, "POST", `/requests/${item.id}/approve`);
        expect(approved.status, `${plan.name}: ${JSON.stringify(approved.body)}`).toBe(200);
        item = approved.body;
      }
      if (plan.fate === "denied") item = (await call(BOB, "POST", `/requests/${item.id}/deny`)).body;
      if (plan.fate === "cancelled") item = (await call(ALICE, "POST", `/requests/${item.id}/cancel`)).body;
      byName.set(plan.name, item);
    }
    for (const plan of PLANS) {
      const item = itemOf(plan.name);
      expect(item.status, plan.name).toBe(
        plan.approvers.length > 0 ? "active" : plan.fate === "timed-out" ? "pending" : plan.fate,
      );
    }

    // Keys and tunnels, then three revocations (one of them an IAM-mode grant).
    for (const plan of PLANS) {
      const grantId = grantOf(plan.name);
      for (let i = 0; i < (plan.pushes ?? 0); i++) expect((await push(grantId)).status, plan.name).toBe(200);
      for (let i = 0; i < (plan.tunnels ?? 0); i++)
        expect((await openTunnel(grantId)).status, plan.name).toBe(200);
    }
    for (const name of ["ssh-2", "tunnel-1", "iam-1"]) {
      const grantId = grantOf(name);
      const revoked = await call(name === "ssh-2" ? ALICE : BOB, "POST", `/grants/${grantId}/revoke`, {
        body: { reason: "faults: done early" },
      });
      expect(revoked.body.status, name).toBe("revoked");
    }

    // 700 s later the short grants have ended: the sweeper expires them (and removes the IAM policy).
    broker.clock.advance(700);
    await sweepUntilSettled();
    for (const plan of PLANS.filter((p) => p.short))
      expect((await broker.store.get(itemOf(plan.name).id))?.status).toBe("expired");
    await expectConsistent();
    expect(await policiesOfAlice()).toEqual([Grant.policyName(grantOf("iam-3"))]);
    const refused = await push(grantOf("ssh-short"));
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("grant.not_active");
    expect((await openTunnel(grantOf("tunnel-short"))).status).toBe(409);
    expect((await openTunnel(grantOf("ssh-2"))).status).toBe(409);
    // The grants still live keep working.
    expect((await push(grantOf("ssh-1"))).status).toBe(200);
    expect((await openTunnel(grantOf("ssh-4"))).status).toBe(200);

    // Past every end and every pending timeout.
    broker.clock.advance(4000);
    await sweepUntilSettled();
    await emulator.faults({});
  });

  it("leaves every request in its final state, with nothing due, stuck or left in IAM", async () => {
    const now = broker.clock.now;
    const all = (await broker.store.listAll({ limit: 100 })).items;
    expect(all).toHaveLength(PLANS.length);
    for (const plan of PLANS) {
      const item = await broker.store.get(itemOf(plan.name).id);
      expect(item?.status, plan.name).toBe(plan.fate);
    }
    for (const item of all) expect(TERMINAL.has(item.status), `${item.id} is ${item.status}`).toBe(true);
    expect(await broker.store.listDue(new Date(now.getTime() + 86_400_000), 100)).toEqual([]);
    // Every push intent was settled one way or the other.
    for (const item of all)
      for (const intent of await broker.store.listPushes(item.id))
        expect(["pushed", "failed"], `${intent.id}`).toContain(intent.status);
    // No broker policy outlives its grant on alice's role.
    const left = (await broker.deps.iam.list(ALICE_ROLE)).filter((name) =>
      name.startsWith(Grant.POLICY_PREFIX),
    );
    expect(left).toEqual([]);
    expect((await broker.call(CAROL, "GET", "/audit/verify")).body.ok).toBe(true);
  });

  it("audits exactly the AWS calls that succeeded, per CloudTrail", async () => {
    const records: Audit.Info[] = [];
    for await (const record of broker.store.walk()) records.push(record);
    const of = (type: string) => records.filter((record) => record.type === type);
    const trail = await emulator.trail();
    const ok = (name: string) => trail.filter((event) => event.eventName === name && !event.errorCode);
    const failed = trail.filter((event) => event.errorCode);

    // The faults did happen, at about the configured rate, on several kinds of call.
    const calls = trail.filter((event) => event.eventSource !== "cloudtrail.amazonaws.com");
    const failedOps = new Set(failed.map((event) => event.eventName));
    expect(failed.length / calls.length).toBeGreaterThan(0.1);
    expect(failedOps.size).toBeGreaterThanOrEqual(3);
    // Nothing failed but the injected faults (and deleting a policy whose put had failed: NoSuchEntity).
    expect(
      failed.filter(
        (event) =>
          !/Throttling|RequestLimitExceeded|Internal(Failure|Error)|ServiceUnavailable|NoSuchEntity/.test(
            String(event.errorCode),
          ),
      ),
    ).toEqual([]);
    if (attempts === 1) expect(answers.filter((answer) => answer.status === 429).length).toBeGreaterThan(0);
    expect(answers.filter((answer) => answer.status >= 500)).toEqual([]);

    // Key pushes: one audit record per successful SendSSHPublicKey, with the same AWS request ids, which are
    // also what the client was told.
    const keyPushes = of("grant.key_pushed");
    const sent = ok("SendSSHPublicKey");
    expect(keyPushes).toHaveLength(sent.length);
    expect(keyPushes.map((record) => record.data.awsRequestId).sort()).toEqual(
      sent.map((event) => event.requestID).sort(),
    );
    expect([...pushed.values()].flat().sort()).toEqual(sent.map((event) => event.requestID).sort());
    // Failed pushes left a failed intent and no record.
    for (const item of (await broker.store.listAll({ limit: 100 })).items) {
      const intents = await broker.store.listPushes(item.id);
      const audited = keyPushes.filter((record) => record.subject === item.id);
      expect(
        intents
          .filter((intent) => intent.status === "pushed")
          .map((i) => i.awsRequestId)
          .sort(),
      ).toEqual(audited.map((record) => record.data.awsRequestId).sort());
    }

    // Tunnels: one record per successful AssumeRole of the signer as `grant-<id>`, with its access key id.
    const signerSessions = ok("AssumeRole").filter((event) =>
      String(event.requestParameters?.roleSessionName).startsWith("grant-"),
    );
    const authorized = of("grant.tunnel_authorized");
    expect(authorized).toHaveLength(signerSessions.length);
    const grants = new Set(authorized.map((record) => String(record.data.grantId)));
    for (const grantId of grants) {
      const sessions = signerSessions.filter(
        (event) => event.requestParameters?.roleSessionName === `grant-${grantId}`,
      );
      const records = authorized.filter((record) => record.data.grantId === grantId);
      expect(records.map((record) => record.data.accessKeyId).sort(), grantId).toEqual(
        sessions.map((event) => event.responseElements?.credentials?.accessKeyId).sort(),
      );
      expect(records, grantId).toHaveLength(tunnels.get(grantId) ?? 0);
      for (const event of sessions) expect(event.requestParameters?.sourceIdentity).toBe(ALICE);
    }
    expect(grants.size).toBe(tunnels.size);

    // IAM grant mode: a record per policy really put, and per policy really deleted.
    const policyEvents = (name: string) =>
      ok(name).filter((event: TrailRecord) =>
        String(event.requestParameters?.policyName).startsWith(Grant.POLICY_PREFIX),
      );
    const attached = of("grant.iam_policy_attached");
    const removed = of("grant.iam_policy_removed");
    expect(attached.map((record) => record.data.policyName).sort()).toEqual(
      policyEvents("PutRolePolicy")
        .map((event) => event.requestParameters?.policyName)
        .sort(),
    );
    expect(removed.map((record) => record.data.policyName).sort()).toEqual(
      policyEvents("DeleteRolePolicy")
        .map((event) => event.requestParameters?.policyName)
        .sort(),
    );
    // Each IAM grant's policy, if it was ever put, was removed exactly once (by the revoke or expiry, or by
    // the reconciler when that failed).
    for (const name of ["iam-1", "iam-short", "iam-3"]) {
      const policy = Grant.policyName(grantOf(name));
      const puts = attached.filter((record) => record.data.policyName === policy).length;
      expect(
        removed.filter((record) => record.data.policyName === policy),
        name,
      ).toHaveLength(Math.min(puts, 1));
    }
  });
});
