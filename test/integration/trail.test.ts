import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Audit } from "../../core/audit/index.ts";
import { AwsClients } from "../../core/aws/clients.ts";
import { CloudTrailLookup } from "../../core/aws/cloudtrail.ts";
import * as Trail from "../../core/trail/index.ts";
import { createTestBroker, DEMO_CONFIG_TEXT, requestBody, type TestBroker } from "../helpers/broker.ts";
import { ALICE_KEYS } from "../helpers/emulator.ts";
import {
  aliceTunnelUrl,
  DEMO_INSTANCE,
  eventually,
  IAM_INSTANCE,
  MALLORY_KEYS,
  makeKey,
  openTunnel,
  sendKey,
  startTrailEmulator,
  type TrailEmulator,
} from "../helpers/trail.ts";

const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const CAROL = "carol@example.com";
const EIC = "ec2-instance-connect.amazonaws.com";

let emulator: TrailEmulator;
let broker: TestBroker;
const keys: { publicKey: string; cleanup: () => void }[] = [];
let aliceKey: string;
let malloryKey: string;

beforeAll(async () => {
  emulator = await startTrailEmulator();
  keys.push(makeKey("alice@laptop"), makeKey("mallory@evil"));
  aliceKey = keys[0]?.publicKey ?? "";
  malloryKey = keys[1]?.publicKey ?? "";
});

afterAll(async () => {
  await emulator?.close();
  for (const key of keys) key.cleanup();
});

beforeEach(async () => {
  await emulator.reset();
  broker = await createTestBroker(DEMO_CONFIG_TEXT, { aws: emulator.aws });
});

async function grant(body: Record<string, unknown>) {
  const created = await broker.call(ALICE, "POST", "/requests", { body: requestBody(body) });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const approved = await broker.call(BOB, "POST", `/requests/${created.body.id}/approve`);
  expect(approved.body.status).toBe("active");
  return approved.body as { id: string; grantId: string };
}

/** The EC2 Instance Connect events the emulator recorded, oldest first. */
const eicEvents = async () => (await emulator.trail()).filter((event) => event.eventSource === EIC);

/** Runs `action` and returns the EC2 Instance Connect events it made the emulator record. */
async function recorded(action: () => Promise<unknown>): Promise<Record<string, any>[]> {
  const before = new Set((await eicEvents()).map((event) => event.eventID));
  await action();
  return (await eicEvents()).filter((event) => !before.has(event.eventID));
}

const trailTypes = () =>
  broker
    .call(CAROL, "GET", "/audit/events", { query: { order: "asc", limit: "200" } })
    .then((response) =>
      (response.body.items as { type: string }[]).filter((record) => record.type.startsWith("trail.")),
    );

async function classificationOf(eventId: string) {
  return (await broker.deps.trail?.get(eventId))?.verdict;
}

function shuffle<T>(items: T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

describe("trail events from the emulator, after real grants", () => {
  it("classifies each kind, delivered by EventBridge three times and out of order", async () => {
    // brokered: alice's key pushed by the broker under her ssh grant
    const ssh = await grant({});
    const [brokeredPush] = await recorded(async () => {
      const pushed = await broker.call(ALICE, "POST", `/grants/${ssh.grantId}/ssh-key`, {
        body: { publicKey: aliceKey },
      });
      expect(pushed.status, JSON.stringify(pushed.body)).toBe(200);
    });
    // brokered: a tunnel through the grant's signer session
    const tunnel = await grant({ method: "tunnel", osUser: undefined, port: 22 });
    const [brokeredTunnel] = await recorded(async () => {
      const authorized = await broker.call(ALICE, "POST", `/grants/${tunnel.grantId}/tunnel`, { body: {} });
      expect(authorized.status, JSON.stringify(authorized.body)).toBe(200);
      expect(await openTunnel(emulator, authorized.body.url)).toBe(101);
    });
    // unbrokered: mallory's standing permission, no grant
    const [unbrokered] = await recorded(async () => {
      expect(
        await sendKey(emulator, MALLORY_KEYS, {
          instanceId: DEMO_INSTANCE,
          osUser: "ec2-user",
          publicKey: malloryKey,
        }),
      ).not.toMatch(/Exception/);
    });
    // denied-attempt: alice's own role has no SendSSHPublicKey on the demo instance
    const [denied] = await recorded(async () => {
      expect(
        await sendKey(emulator, ALICE_KEYS, {
          instanceId: DEMO_INSTANCE,
          osUser: "ec2-user",
          publicKey: aliceKey,
        }),
      ).toBe("AccessDeniedException");
    });
    // outside-window (IAM grant mode): the grant is revoked, deleting its policy fails, alice pushes later
    const iam = await grant({ instanceId: IAM_INSTANCE });
    await emulator.admin("faults", { operations: { DeleteRolePolicy: { rate: 1, kind: "5xx" } } });
    expect((await broker.call(ALICE, "POST", `/grants/${iam.grantId}/revoke`)).status).toBe(200);
    await emulator.admin("faults", {});
    await emulator.advance(120);
    const [outside] = await recorded(async () => {
      expect(
        await sendKey(emulator, ALICE_KEYS, {
          instanceId: IAM_INSTANCE,
          osUser: "ec2-user",
          publicKey: aliceKey,
        }),
      ).not.toMatch(/Exception/);
    });
    // constraint-mismatch: alice's IAM tunnel grant is for 10.0.2.20; her standing permission takes her to 10.0.1.10
    broker.clock.advance(120);
    await grant({ instanceId: IAM_INSTANCE, method: "tunnel", osUser: undefined, port: 22 });
    const [mismatch] = await recorded(async () => {
      expect(
        await openTunnel(
          emulator,
          await aliceTunnelUrl(emulator, { privateIp: "10.0.1.10", remotePort: 22, maxTunnelDuration: 600 }),
        ),
      ).toBe(101);
    });

    const all = await eicEvents();
    expect(all).toHaveLength(6);
    const envelopes = await eventually(
      () => emulator.delivered,
      (list) => list.length >= all.length,
    );
    expect(envelopes.map((envelope) => envelope.detail.eventID).sort()).toEqual(
      all.map((event) => event.eventID).sort(),
    );
    expect(envelopes[0]).toMatchObject({
      "detail-type": "AWS API Call via CloudTrail",
      source: "aws.ec2-instance-connect",
    });

    // The EventBridge target's code path, each event delivered three times, shuffled, some concurrently.
    const deliveries = shuffle([...envelopes, ...envelopes, ...envelopes]);
    const results = await Promise.all(
      deliveries.map((envelope) => Trail.receive(broker.deps as Trail.Deps, envelope)),
    );
    expect(results.reduce((sum, result) => sum + (result?.recorded ?? 0), 0)).toBe(6);
    expect(results.reduce((sum, result) => sum + (result?.duplicates ?? 0), 0)).toBe(12);

    expect(await classificationOf(brokeredPush?.eventID)).toMatchObject({
      classification: "brokered",
      requestId: ssh.id,
      matchedBy: "push",
    });
    expect(await classificationOf(brokeredTunnel?.eventID)).toMatchObject({
      classification: "brokered",
      grantId: tunnel.grantId,
      matchedBy: "session",
    });
    expect(await classificationOf(unbrokered?.eventID)).toMatchObject({ classification: "unbrokered" });
    expect(await classificationOf(denied?.eventID)).toMatchObject({ classification: "denied-attempt" });
    expect(await classificationOf(outside?.eventID)).toMatchObject({
      classification: "outside-window",
      grantId: iam.grantId,
      matchedBy: "iam-principal",
    });
    const mismatched = await classificationOf(mismatch?.eventID);
    expect(mismatched).toMatchObject({ classification: "constraint-mismatch", matchedBy: "iam-principal" });
    expect(mismatched?.reasons.join()).toContain("private IP 10.0.1.10, the grant is for 10.0.2.20");

    // One audit record per event, in the one chain, which still verifies.
    expect((await trailTypes()).map((record) => record.type)).toEqual(Array(6).fill("trail.observed"));
    expect((await broker.call(CAROL, "GET", "/audit/verify")).body).toMatchObject({ ok: true });
    const listed = await broker.call(CAROL, "GET", "/audit/trail", {
      query: { classification: "unbrokered" },
    });
    expect(listed.body.items.map((item: any) => item.eventId)).toEqual([unbrokered?.eventID]);
    expect((await broker.call(ALICE, "GET", "/audit/trail")).status).toBe(404);
  });

  it("re-correlates an event ingested before its push record existed", async () => {
    const ssh = await grant({});
    const [event] = await recorded(() =>
      broker.call(ALICE, "POST", `/grants/${ssh.grantId}/ssh-key`, { body: { publicKey: aliceKey } }),
    );
    // A second broker has the grant but not (yet) the push: the event arrives first there.
    const other = await createTestBroker(DEMO_CONFIG_TEXT);
    const item = await broker.store.get(ssh.id);
    const [push] = await broker.store.listPushes(ssh.id);
    if (!item || !push) throw new Error("no grant or push");
    await other.store.create(item, []);
    const first = await Trail.ingest(other.deps as Trail.Deps, [event], { source: "eventbridge" });
    expect(first.classifications).toEqual({ unbrokered: 1 });
    expect(await Trail.recorrelate(other.deps as Trail.Deps)).toEqual({ checked: 1, reclassified: 0 });

    await other.store.beginPush({ ...push, status: "intent", pushedAt: undefined, awsRequestId: undefined });
    const second = await Trail.recorrelate(other.deps as Trail.Deps);
    expect(second).toEqual({ checked: 1, reclassified: 1 });
    expect((await other.deps.trail?.get(event?.eventID))?.verdict).toMatchObject({
      classification: "brokered",
      pushId: push.id,
    });
    const types = (await other.store.list({ order: "asc" }, { limit: 10 })).items.map(
      (record) => record.type,
    );
    expect(types).toEqual(["trail.observed", "trail.reclassified"]);
    expect(await Trail.recorrelate(other.deps as Trail.Deps)).toEqual({ checked: 0, reclassified: 0 });
  });
});

describe("the LookupEvents backfill", () => {
  it("pages within 2 TPS through throttling, survives a crash mid-run and resumes from its checkpoint", async () => {
    for (let n = 0; n < 23; n++)
      await sendKey(emulator, MALLORY_KEYS, {
        instanceId: DEMO_INSTANCE,
        osUser: "ec2-user",
        publicKey: malloryKey,
      });
    expect(await eicEvents()).toHaveLength(23);
    await emulator.admin("faults", {
      seed: 7,
      operations: { LookupEvents: { rate: 0.3, kind: "throttle" } },
    });

    // One attempt per call: throttling reaches the backfill's own backoff instead of the SDK's retries.
    const clients = new AwsClients(broker.deps.config.settings.aws.accounts, {
      ...emulator.aws,
      maxAttempts: 1,
    });
    const lookup = new CloudTrailLookup(clients);
    const trail = broker.deps.trail as Trail.TrailStore;
    let saves = 0;
    let crash = true;
    const crashing: Trail.TrailStore = Object.create(trail);
    crashing.putCheckpoint = async (key, checkpoint, version) => {
      // The run saves its range first, then after each page; die after the third page was ingested.
      if (crash && ++saves === 4) throw new Error("crash: the process died before saving the checkpoint");
      return trail.putCheckpoint(key, checkpoint, version);
    };
    const calls: number[] = [];
    const deps: Trail.BackfillDeps = {
      ...(broker.deps as Trail.Deps),
      clock: () => emulator.running.core.now(),
      trail: crashing,
      lookupEvents: {
        page: (scope, input) => {
          calls.push(Date.now());
          return lookup.page(scope, input);
        },
      },
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.min(ms, 700))),
    };
    const scope = { account: "111122223333", region: "us-east-1" };
    const options = { maxResults: 5, minIntervalMs: 500, maxThrottles: 50 };
    await expect(Trail.backfill(deps, scope, options)).rejects.toThrow(/crash/);
    const saved = await trail.getCheckpoint(Trail.checkpointKey(scope));
    expect(saved?.run).toMatchObject({ pages: 2, nextToken: expect.any(String) });
    expect((await trail.list({}, { limit: 100 })).items).toHaveLength(15);

    crash = false;
    const resumed = await Trail.backfill(deps, scope, options);
    expect(resumed).toMatchObject({ complete: true, pages: 3 });
    // Page 3 was ingested before the crash: replayed, it is all duplicates.
    expect(resumed.result).toMatchObject({ recorded: 8, duplicates: 5 });
    expect((await trail.list({}, { limit: 100 })).items).toHaveLength(23);
    expect((await trail.getCheckpoint(Trail.checkpointKey(scope)))?.run).toBeUndefined();

    // At most two calls in any second, throttled ones included.
    for (let i = 2; i < calls.length; i++)
      expect((calls[i] as number) - (calls[i - 2] as number)).toBeGreaterThanOrEqual(990);
    const throttled = (await emulator.trail()).filter(
      (event) => event.eventName === "LookupEvents" && event.errorCode,
    );
    expect(throttled.length).toBeGreaterThan(0);

    // The next run starts where this one ended, minus the overlap for late delivery: nothing new.
    await emulator.admin("faults", {});
    const next = await Trail.backfill({ ...deps, trail }, scope, options);
    expect(next).toMatchObject({ complete: true, result: { recorded: 0 } });
  });
});

describe("one store for every source", () => {
  it("records each event once whether it came from EventBridge, LookupEvents or a log file", async () => {
    const ssh = await grant({});
    await broker.call(ALICE, "POST", `/grants/${ssh.grantId}/ssh-key`, { body: { publicKey: aliceKey } });
    await sendKey(emulator, MALLORY_KEYS, {
      instanceId: DEMO_INSTANCE,
      osUser: "root",
      publicKey: malloryKey,
    });
    const all = await emulator.trail();
    const envelopes = await eventually(
      () => emulator.delivered,
      (list) => list.length >= 2,
    );
    const deps = broker.deps as Trail.Deps;

    const fromEvents = await Promise.all(envelopes.map((envelope) => Trail.receive(deps, envelope)));
    expect(fromEvents.map((result) => result?.recorded)).toEqual([1, 1]);

    const clients = new AwsClients(broker.deps.config.settings.aws.accounts, emulator.aws);
    const backfilled = await Trail.backfill(
      { ...deps, clock: () => emulator.running.core.now(), lookupEvents: new CloudTrailLookup(clients) },
      { account: "111122223333", region: "us-east-1" },
    );
    expect(backfilled.result).toMatchObject({ recorded: 0, duplicates: 2 });

    const dir = mkdtempSync(join(tmpdir(), "trail-files-"));
    try {
      // Every record the emulator wrote (STS, EC2, CloudTrail calls too), as CloudTrail would deliver it.
      writeFileSync(
        join(dir, "111122223333_CloudTrail_us-east-1_x.json.gz"),
        gzipSync(JSON.stringify({ Records: all })),
      );
      const files = await Trail.listLogFiles([dir]);
      const imported = await Trail.importFiles(files, (records) =>
        Trail.ingest(deps, records, { source: "import" }),
      );
      expect(imported.result).toMatchObject({
        received: all.length,
        skipped: all.length - 2,
        recorded: 0,
        duplicates: 2,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const observed = (await trailTypes()).map((record) => record.type);
    expect(observed).toEqual(["trail.observed", "trail.observed"]);
    const records: Audit.Info[] = [];
    for await (const record of broker.store.walk()) records.push(record);
    expect(new Set(records.filter((r) => r.type === "trail.observed").map((r) => r.data.source))).toEqual(
      new Set(["eventbridge"]),
    );
  });
});
