import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import type { Context } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it, vi } from "vitest";
import { parseConfig } from "../../core/policy/yaml.ts";
import * as Trail from "../../core/trail/index.ts";
import { createTestBroker, DEMO_CONFIG_TEXT, requestBody, type TestBroker } from "../helpers/broker.ts";
import { ALICE_KEYS, BROKER_KEYS } from "../helpers/emulator.ts";
import {
  DEMO_INSTANCE,
  eventually,
  MALLORY_KEYS,
  makeKey,
  sendKey,
  startTrailEmulator,
  type TrailEmulator,
} from "../helpers/trail.ts";
import { eicRecord, otherRecord, rng, uuid } from "../helpers/trail-corpus.ts";

/**
 * The three trail Lambda handlers themselves (functions/trail-*.ts), wired from the environment exactly as
 * in Lambda (compiled policy file, table name, the SDK's endpoint and credential settings), against
 * DynamoDB Local and the emulator: EventBridge deliveries of real EC2 Instance Connect calls, a scheduled
 * LookupEvents backfill, and the CloudTrail log files the emulator delivers to its S3 bucket.
 */

const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const CAROL = "carol@example.com";
/** The organization trail's bucket, in the broker's account (bucket policies are not emulated). */
const TRAIL_BUCKET = "org-cloudtrail-logs";
/** A prefix that needs URL-encoding in S3 notifications (space, plus). */
const PREFIX = "trail logs+2024";
/** Audit chain heads, as infra/storage.ts creates the bucket: Object Lock, compliance mode. */
const ANCHOR_BUCKET = "broker-audit-anchors";

let emulator: TrailEmulator;
let broker: TestBroker;
let dir: string;
const keys: { publicKey: string; cleanup: () => void }[] = [];
let aliceKey: string;
let malloryKey: string;

type Handlers = {
  events: (event: unknown, context: Context) => Promise<Trail.IngestResult>;
  backfill: typeof import("../../functions/trail-backfill.ts").handler;
  importer: typeof import("../../functions/trail-import.ts").handler;
};
let handlers: Handlers;

beforeAll(async () => {
  emulator = await startTrailEmulator({
    inventory: (document) => {
      document.buckets = [
        { name: TRAIL_BUCKET, account: "123456789012", region: "us-east-1" },
        {
          name: ANCHOR_BUCKET,
          account: "123456789012",
          region: "us-east-1",
          objectLock: { mode: "COMPLIANCE", days: 1 },
        },
      ];
      // What infra/trail.ts grants the import function (GetObject under AWSLogs/ of the trail's prefix),
      // plus ListBucket so that S3 tells a missing object from a forbidden one.
      const user = document.accounts
        .find((account: any) => account.id === "123456789012")
        .users.find((candidate: any) => candidate.name === "access-broker");
      user.policies.trail = {
        Version: "2012-10-17",
        Statement: [
          {
            Effect: "Allow",
            Action: "s3:GetObject",
            Resource: `arn:aws:s3:::${TRAIL_BUCKET}/${PREFIX}/AWSLogs/*`,
          },
          { Effect: "Allow", Action: "s3:ListBucket", Resource: `arn:aws:s3:::${TRAIL_BUCKET}` },
          // What infra/functions.ts grants the API (read) and the sweeper (write) on the anchors.
          { Effect: "Allow", Action: "s3:ListBucket", Resource: `arn:aws:s3:::${ANCHOR_BUCKET}` },
          {
            Effect: "Allow",
            Action: ["s3:GetObject", "s3:PutObject"],
            Resource: `arn:aws:s3:::${ANCHOR_BUCKET}/audit-anchors/*`,
          },
        ],
      };
      // The staging account's broker role may not read CloudTrail: its backfill fails, the others go on.
      const staging = document.accounts.find((account: any) => account.id === "444455556666");
      const statements = staging.roles.find((role: any) => role.name === "access-broker").policies.broker
        .Statement;
      staging.roles.find((role: any) => role.name === "access-broker").policies.broker.Statement =
        statements.filter((statement: any) => statement.Action !== "cloudtrail:LookupEvents");
    },
  });
  keys.push(makeKey("alice@laptop"), makeKey("mallory@evil"));
  aliceKey = keys[0]?.publicKey ?? "";
  malloryKey = keys[1]?.publicKey ?? "";
  dir = mkdtempSync(join(tmpdir(), "trail-handlers-"));
  // What `npm run deploy` ships: the policy compiled to JSON (scripts/compile-config.ts).
  writeFileSync(join(dir, "access.json"), JSON.stringify(parseConfig(DEMO_CONFIG_TEXT)));
  Object.assign(process.env, {
    ACCESS_CONFIG: join(dir, "access.json"),
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: BROKER_KEYS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: BROKER_KEYS.secretAccessKey,
    // The SDK's standard endpoint settings: every AWS service is the emulator, DynamoDB is DynamoDB Local.
    AWS_ENDPOINT_URL: emulator.url,
    AWS_ENDPOINT_URL_DYNAMODB: inject("dynamoEndpoint"),
  });
  delete process.env.AWS_SESSION_TOKEN;
  delete process.env.SLACK_BOT_TOKEN;
  delete process.env.ACCESS_ANCHOR_BUCKET;
});

afterAll(async () => {
  await emulator?.close();
  for (const key of keys) key.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  await emulator.reset();
  broker = await createTestBroker(DEMO_CONFIG_TEXT, { aws: emulator.aws });
  process.env.ACCESS_TABLE_NAME = broker.table;
  // Each test is a fresh Lambda container: deps, clients and role sessions are built anew from the env.
  vi.resetModules();
  handlers = {
    events: (await import("../../functions/trail-events.ts")).handler as Handlers["events"],
    backfill: (await import("../../functions/trail-backfill.ts")).handler,
    importer: (await import("../../functions/trail-import.ts")).handler,
  };
});

const lambdaContext = (remainingMs = 60_000) =>
  ({
    awsRequestId: randomUUID(),
    getRemainingTimeInMillis: () => remainingMs,
  }) as unknown as Context;

/** Mallory's standing permission: an EC2 Instance Connect call no grant explains. */
const malloryPush = () =>
  sendKey(emulator, MALLORY_KEYS, { instanceId: DEMO_INSTANCE, osUser: "ec2-user", publicKey: malloryKey });

/** Alice's own role may not push keys: AWS refuses it. */
const deniedPush = () =>
  sendKey(emulator, ALICE_KEYS, { instanceId: DEMO_INSTANCE, osUser: "ec2-user", publicKey: aliceKey });

/** Alice asks, Bob approves, the broker pushes her key. */
async function brokeredPush(): Promise<string> {
  const created = await broker.call(ALICE, "POST", "/requests", { body: requestBody() });
  const approved = await broker.call(BOB, "POST", `/requests/${created.body.id}/approve`);
  expect(approved.body.status).toBe("active");
  const pushed = await broker.call(ALICE, "POST", `/grants/${approved.body.grantId}/ssh-key`, {
    body: { publicKey: aliceKey },
  });
  expect(pushed.status, JSON.stringify(pushed.body)).toBe(200);
  return approved.body.id;
}

/**
 * The EC2 Instance Connect events the emulator logged so far (oldest first), with their EventBridge
 * deliveries in the same order (they arrive asynchronously, in any order).
 */
async function eicEvents(count: number) {
  const records = (await emulator.trail()).filter(
    (record) => record.eventSource === "ec2-instance-connect.amazonaws.com",
  );
  expect(records).toHaveLength(count);
  const delivered = await eventually(
    () => emulator.delivered,
    (list) => list.length >= count,
  );
  const envelopes = records.map((record) => {
    const envelope = delivered.find((candidate) => candidate.detail?.eventID === record.eventID);
    if (!envelope) throw new Error(`no EventBridge delivery of ${record.eventID}`);
    return envelope;
  });
  return { records, envelopes, ids: records.map((record) => record.eventID as string) };
}

const observation = (eventId: string) => broker.deps.trail?.get(eventId);

async function stored() {
  const page = await broker.deps.trail?.list({}, { limit: 200 });
  return page?.items ?? [];
}

async function observedAudit() {
  const response = await broker.call(CAROL, "GET", "/audit/events", {
    query: { order: "asc", limit: "200" },
  });
  return (response.body.items as { type: string; data: { eventId: string; source: string } }[]).filter(
    (record) => record.type === "trail.observed",
  );
}

const headSeq = async () => (await broker.store.head()).seq;

/** An S3 "ObjectCreated:Put" notification (direct to Lambda, or the body of an SNS/SQS message). */
function s3Notification(objects: { key: string; bucket?: string }[]) {
  // Form encoding as S3 does it: "+" for a space, "%2B" for a plus, "/" left alone.
  const encode = (key: string) => encodeURIComponent(key).replace(/%20/g, "+").replace(/%2F/g, "/");
  return {
    Records: objects.map((object) => ({
      eventVersion: "2.1",
      eventSource: "aws:s3",
      awsRegion: "us-east-1",
      eventTime: new Date().toISOString(),
      eventName: "ObjectCreated:Put",
      userIdentity: { principalId: "AWS:AROAEXAMPLE:regionalDeliverySession" },
      requestParameters: { sourceIPAddress: "203.0.113.10" },
      responseElements: {
        "x-amz-request-id": "C3D13FE58DE4C810",
        "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
      },
      s3: {
        s3SchemaVersion: "1.0",
        configurationId: "cloudtrail-logs",
        bucket: {
          name: object.bucket ?? TRAIL_BUCKET,
          ownerIdentity: { principalId: "A3NL1KOZZKExample" },
          arn: `arn:aws:s3:::${object.bucket ?? TRAIL_BUCKET}`,
        },
        object: {
          key: encode(object.key),
          size: 1024,
          eTag: "d41d8cd98f00b204e9800998ecf8427e",
          sequencer: "0055AED6DCD90281E5",
        },
      },
    })),
  };
}

/** S3's "Object Created" event on EventBridge (what infra/trail.ts routes): the key as it is. */
function objectCreated(key: string) {
  return {
    version: "0",
    id: randomUUID(),
    "detail-type": "Object Created",
    source: "aws.s3",
    account: "123456789012",
    time: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
    region: "us-east-1",
    resources: [`arn:aws:s3:::${TRAIL_BUCKET}`],
    detail: {
      version: "0",
      bucket: { name: TRAIL_BUCKET },
      object: { key, size: 1024, etag: "d41d8cd98f00b204e9800998ecf8427e", sequencer: "617f08299329d189" },
      "request-id": "N4N7GDK58NMKJ12R",
      requester: "123456789012",
      "source-ip-address": "203.0.113.10",
      reason: "PutObject",
    },
  };
}

/** What SST's cron (EventBridge) hands the backfill. */
const scheduledEvent = () => ({
  version: "0",
  id: randomUUID(),
  "detail-type": "Scheduled Event",
  source: "aws.events",
  account: "123456789012",
  time: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
  region: "us-east-1",
  resources: ["arn:aws:events:us-east-1:123456789012:rule/access-broker-TrailBackfillCron"],
  detail: {},
});

/** The emulator's trail so far as CloudTrail log files in the bucket (one per account and region). */
async function deliverLogFiles(): Promise<string[]> {
  return (await emulator.admin("s3/deliver-trail", { bucket: TRAIL_BUCKET, prefix: PREFIX })).keys;
}

describe("functions/trail-events.ts (EventBridge)", () => {
  it("stores each delivered call once, classified, however often EventBridge delivers it", async () => {
    const requestId = await brokeredPush();
    await malloryPush();
    await deniedPush();
    const { envelopes, ids } = await eicEvents(3);
    const [brokered, unbrokered, denied] = ids;

    const first = await handlers.events(envelopes[0], lambdaContext());
    expect(first).toMatchObject({ received: 1, recorded: 1, classifications: { brokered: 1 } });
    // At least once: the same event again, and all three as one batch.
    expect(await handlers.events(envelopes[0], lambdaContext())).toMatchObject({
      recorded: 0,
      duplicates: 1,
    });
    expect(await handlers.events(envelopes, lambdaContext())).toMatchObject({
      received: 3,
      recorded: 2,
      duplicates: 1,
      classifications: { unbrokered: 1, "denied-attempt": 1 },
    });

    expect(await observation(brokered as string)).toMatchObject({
      source: "eventbridge",
      verdict: { classification: "brokered", requestId, matchedBy: "push" },
    });
    expect((await observation(unbrokered as string))?.verdict.classification).toBe("unbrokered");
    expect((await observation(denied as string))?.verdict.classification).toBe("denied-attempt");
    expect((await observedAudit()).map((record) => record.data.eventId).sort()).toEqual([...ids].sort());
    expect((await broker.call(CAROL, "GET", "/audit/verify")).body).toMatchObject({ ok: true });
  });

  it("keeps a malformed detail as unparsed and skips events that are no CloudTrail call, without failing the batch", async () => {
    await malloryPush();
    const { envelopes, ids } = await eicEvents(1);
    const good = envelopes[0] as Record<string, any>;
    const noTime = {
      ...good,
      id: randomUUID(),
      detail: { ...good.detail, eventID: randomUUID(), eventTime: undefined },
    };
    const notARecord = { ...good, id: randomUUID(), detail: "SendSSHPublicKey by someone" };
    const scheduled = scheduledEvent();
    const s3Event = objectCreated("AWSLogs/x.json.gz");

    const result = await handlers.events(
      [scheduled, notARecord, good, noTime, s3Event, null],
      lambdaContext(),
    );
    expect(result).toMatchObject({
      received: 6,
      skipped: 3,
      recorded: 3,
      classifications: { unbrokered: 1, unparsed: 2 },
    });
    expect((await observation(ids[0] as string))?.verdict.classification).toBe("unbrokered");
    const missingTime = await observation(noTime.detail.eventID);
    expect(missingTime).toMatchObject({
      event: { kind: "unparsed", reason: expect.stringMatching(/eventTime/) },
    });
    // The envelope itself is the evidence for a detail that is no record; its content hash is its id.
    const wrapped = await observation(Trail.contentId(notARecord));
    expect(wrapped?.event.kind).toBe("unparsed");
    expect(JSON.parse(wrapped?.raw ?? "{}")).toMatchObject({
      id: notARecord.id,
      detail: "SendSSHPublicKey by someone",
    });
    expect((await stored()).length).toBe(3);

    // Redelivered, the unparsed ones are duplicates too; nothing but skipped events: nothing written.
    expect(await handlers.events([notARecord, noTime], lambdaContext())).toMatchObject({
      recorded: 0,
      duplicates: 2,
    });
    const before = await headSeq();
    expect(await handlers.events(scheduled, lambdaContext())).toMatchObject({
      received: 1,
      skipped: 1,
      recorded: 0,
    });
    expect(await handlers.events("not even an object", lambdaContext())).toMatchObject({
      skipped: 1,
      recorded: 0,
    });
    expect(await headSeq()).toBe(before);
  });
});

describe("functions/trail-backfill.ts (scheduled LookupEvents)", () => {
  it("reads each account's events as its broker role, stores what EventBridge missed and checkpoints", async () => {
    await malloryPush();
    await deniedPush();
    const { envelopes, ids } = await eicEvents(2);
    // EventBridge delivered only the first; the backfill finds the other.
    await handlers.events(envelopes[0], lambdaContext());

    const results = await handlers.backfill(scheduledEvent(), lambdaContext(120_000));
    // 444455556666's broker role may not call LookupEvents: that account fails alone (and is logged).
    expect(results.map((result) => result.scope)).toEqual([{ account: "111122223333", region: "us-east-1" }]);
    expect(results[0]).toMatchObject({
      complete: true,
      events: 2,
      result: { recorded: 1, duplicates: 1, classifications: { "denied-attempt": 1 } },
    });
    expect((await observation(ids[1] as string))?.source).toBe("lookup");
    expect((await observation(ids[0] as string))?.source).toBe("eventbridge");
    const checkpoint = await broker.deps.trail?.getCheckpoint("111122223333#us-east-1");
    expect(checkpoint?.completedUntil).toBeDefined();
    expect(checkpoint?.run).toBeUndefined();
    expect(await broker.deps.trail?.getCheckpoint("444455556666#eu-west-1")).toMatchObject({
      run: expect.any(Object),
    });
    // The calls it made were the broker role's, as CloudTrail logged them.
    const lookups = (await emulator.trail()).filter((record) => record.eventName === "LookupEvents");
    expect(lookups.map((record) => record.userIdentity?.arn)).toContain(
      "arn:aws:sts::111122223333:assumed-role/access-broker/access-broker",
    );

    // The next run resumes from the checkpoint and records nothing twice.
    await emulator.advance(1);
    const again = await handlers.backfill(scheduledEvent(), lambdaContext(120_000));
    expect(again[0]?.result).toMatchObject({ recorded: 0 });
    expect(await observedAudit()).toHaveLength(2);
  });

  it("stops before the Lambda timeout and leaves the run to the next invocation", async () => {
    await malloryPush();
    await eicEvents(1);
    // 10 s of budget: the handler keeps 10 s in reserve, so it makes no call at all.
    const results = await handlers.backfill(scheduledEvent(), lambdaContext(10_000));
    expect(results[0]).toMatchObject({ pages: 0, complete: false });
    expect((await broker.deps.trail?.getCheckpoint("111122223333#us-east-1"))?.run).toBeDefined();
    expect(await stored()).toEqual([]);
  });
});

describe("functions/trail-import.ts (S3 log files)", () => {
  it("imports the files of S3 notifications with URL-encoded keys, and of EventBridge Object Created", async () => {
    await malloryPush();
    await deniedPush();
    const { ids } = await eicEvents(2);
    const logged = (await emulator.trail()).length;
    const [key, ...others] = await deliverLogFiles();
    // Only the target account logs EC2 Instance Connect; the broker account's file holds STS calls.
    expect(key).toMatch(
      new RegExp(`^${PREFIX.replace("+", "\\+")}/AWSLogs/(111122223333|123456789012)/CloudTrail/`),
    );
    const files = [key as string, ...others];
    const notification = s3Notification([
      ...files.map((name) => ({ key: name })),
      { key: `${PREFIX}/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/05/01/digest.json.gz` },
      { key: `${PREFIX}/AWSLogs/111122223333/notes.txt` },
    ]);
    expect(JSON.stringify(notification)).toContain("trail+logs%2B2024/AWSLogs/");

    const reports = await handlers.importer(notification);
    // Digests and other objects are not read.
    expect(reports.map((report) => report.key).sort()).toEqual([...files].sort());
    expect(reports.every((report) => report.error === undefined)).toBe(true);
    const total = reports.reduce((sum, report) => sum + report.result.recorded, 0);
    expect(total).toBe(2);
    // Every record of every file was read (and all but the EC2 Instance Connect ones skipped unparsed).
    expect(reports.reduce((sum, report) => sum + report.records, 0)).toBe(logged);
    for (const id of ids) expect((await observation(id))?.source).toBe("import");

    // The same files through EventBridge (keys as they are): all known already.
    for (const file of files) {
      const [report] = await handlers.importer(objectCreated(file));
      expect(report?.result.recorded).toBe(0);
      expect(report?.error).toBeUndefined();
    }
    expect(await observedAudit()).toHaveLength(2);
  });

  it("refuses events that are no S3 notification, or whose keys do not decode, before writing anything", async () => {
    await malloryPush();
    const [key] = await deliverLogFiles();
    const before = await headSeq();
    const refusal = async (event: unknown) => {
      try {
        await handlers.importer(event);
      } catch (error) {
        return error as { code?: string; message: string };
      }
      throw new Error("expected the handler to refuse the event");
    };
    expect(await refusal({ hello: "world" })).toMatchObject({
      code: "trail.invalid_notification",
      message: "not an S3 event notification",
    });
    expect(await refusal(scheduledEvent())).toMatchObject({ code: "trail.invalid_notification" });
    // A good file first, then a key that is not URL-encoded: the good one is not imported either.
    const mixed = s3Notification([{ key: key as string }, { key: "x" }]);
    (mixed.Records[1] as any).s3.object.key = `${PREFIX}/AWSLogs/100%.json.gz`;
    expect((await refusal(mixed)).message).toMatch(/is not URL-encoded as S3 notifications encode keys/);
    expect(await headSeq()).toBe(before);
    expect(await stored()).toEqual([]);
  });

  it("reports missing and broken files and goes on; throws on what a retry may fix", async () => {
    const random = rng(7);
    const eic = (id: string) =>
      eicRecord({
        eventId: id,
        time: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
        account: "111122223333",
        region: "us-east-1",
        identity: {
          type: "IAMUser",
          arn: "arn:aws:iam::111122223333:user/mallory",
          accountId: "111122223333",
          userName: "mallory",
        },
        kind: "push",
        instanceId: DEMO_INSTANCE,
        osUser: "ec2-user",
        publicKey: malloryKey,
      });
    const file = (ids: string[]) =>
      gzipSync(`{"Records":[${[otherRecord(random, "2024-05-01T10:00:00Z"), ...ids.map(eic)].join(",")}]}`);
    const base = `${PREFIX}/AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01`;
    const whole = file(Array.from({ length: 400 }, (_, n) => `cut-${n}`));
    emulator.running.core.s3.put(
      TRAIL_BUCKET,
      `${base}/cut.json.gz`,
      whole.subarray(0, Math.floor(whole.length * 0.6)),
    );
    emulator.running.core.s3.put(TRAIL_BUCKET, `${base}/good.json.gz`, file(["good-1", "good-2"]));

    const reports = await handlers.importer(
      s3Notification([
        { key: `${base}/gone.json.gz` },
        { key: `${base}/cut.json.gz` },
        { key: `${base}/good.json.gz` },
      ]),
    );
    expect(reports.map((report) => [report.key.slice(base.length + 1), report.error ?? "ok"])).toEqual([
      ["gone.json.gz", expect.stringMatching(/NoSuchKey/)],
      ["cut.json.gz", expect.stringMatching(/truncated gzip/)],
      ["good.json.gz", "ok"],
    ]);
    // The records before the cut were imported.
    expect(reports[1]?.result.recorded).toBeGreaterThan(0);
    expect(reports[1]?.result.recorded).toBeLessThan(400);
    expect(reports[2]?.result).toMatchObject({ recorded: 2, classifications: { unbrokered: 2 } });

    // Outside what the function may read: AccessDenied may be a policy being fixed, so the event is retried.
    emulator.running.core.s3.put(TRAIL_BUCKET, "elsewhere/AWSLogs/x.json.gz", file(["elsewhere"]));
    await expect(handlers.importer(objectCreated("elsewhere/AWSLogs/x.json.gz"))).rejects.toThrow(
      /S3 GetObject s3:\/\/org-cloudtrail-logs\/elsewhere\/AWSLogs\/x\.json\.gz failed: AccessDenied/,
    );
    // S3 still failing after the SDK's retries: a retryable error, nothing half-done.
    await emulator.admin("faults", { operations: { "s3:GetObject": { rate: 1, kind: "5xx" } } });
    await expect(handlers.importer(objectCreated(`${base}/good.json.gz`))).rejects.toMatchObject({
      kind: "throttled",
      code: "aws.unavailable",
    });
    await emulator.admin("faults", {});
    expect(await observation("elsewhere")).toBeUndefined();
  }, 120_000);

  it("streams a large plain log file from S3 in bounded memory", async () => {
    const random = rng(11);
    // ~1.4 MB of other services' records, repeated: 192 MB of JSON, produced as it is read.
    const block = Buffer.from(
      `${Array.from({ length: 1000 }, () => otherRecord(random, "2024-05-01T10:00:00Z")).join(",")},`,
    );
    const repeats = Math.ceil((192 * 1024 * 1024) / block.length);
    const ids = Array.from({ length: 5 }, () => uuid(random));
    const eic = ids.map((id) =>
      Buffer.from(
        `${eicRecord({
          eventId: id,
          time: "2024-05-01T10:00:00Z",
          account: "111122223333",
          region: "us-east-1",
          identity: {
            type: "IAMUser",
            arn: "arn:aws:iam::111122223333:user/mallory",
            accountId: "111122223333",
          },
          kind: "push",
          instanceId: DEMO_INSTANCE,
          osUser: "ec2-user",
          publicKey: malloryKey,
        })},`,
      ),
    );
    const head = Buffer.from('{"Records":[');
    const tail = Buffer.from(`${otherRecord(random, "2024-05-01T10:00:00Z")}]}`);
    const step = Math.floor(repeats / eic.length);
    function* parts() {
      yield head;
      for (let n = 0; n < repeats; n++) {
        yield block;
        const spliced = n % step === 0 ? eic[n / step] : undefined;
        if (spliced) yield spliced;
      }
      yield tail;
    }
    let size = 0;
    for (const part of parts()) size += part.length;
    const key = `${PREFIX}/AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/big.json`;
    emulator.running.core.s3.put(TRAIL_BUCKET, key, { size, open: () => Readable.from(parts()) });

    const baseline = process.memoryUsage();
    let peak = 0;
    const sampler = setInterval(() => {
      const now = process.memoryUsage();
      peak = Math.max(peak, now.heapUsed + now.arrayBuffers - baseline.heapUsed - baseline.arrayBuffers);
    }, 10);
    const [report] = await handlers.importer(s3Notification([{ key }]));
    clearInterval(sampler);
    expect(report).toMatchObject({
      records: repeats * 1000 + eic.length + 1,
      result: { recorded: eic.length },
    });
    expect(report?.error).toBeUndefined();
    // Buffering the object (or its text) would hold 192 MB or more at once.
    expect(peak).toBeLessThan(96 * 1024 * 1024);
  }, 300_000);
});

describe("three sources, one store", () => {
  it("EventBridge, the backfill and the log files record every event once, whichever comes first", async () => {
    const requestId = await brokeredPush();
    await malloryPush();
    await deniedPush();
    const { envelopes, ids } = await eicEvents(3);

    // EventBridge delivers the second event only (delivery is best effort).
    await handlers.events(envelopes[1], lambdaContext());
    // The backfill finds the other two; then the log files arrive with all three.
    const [backfilled] = await handlers.backfill(scheduledEvent(), lambdaContext(120_000));
    expect(backfilled?.result).toMatchObject({ recorded: 2, duplicates: 1 });
    const files = await deliverLogFiles();
    const reports = await handlers.importer(s3Notification(files.map((key) => ({ key }))));
    expect(reports.reduce((sum, report) => sum + report.result.duplicates, 0)).toBe(3);
    expect(reports.reduce((sum, report) => sum + report.result.recorded, 0)).toBe(0);
    // And EventBridge redelivers everything, late.
    expect(await handlers.events(envelopes, lambdaContext())).toMatchObject({ recorded: 0, duplicates: 3 });

    const all = await stored();
    expect(all.map((item) => item.eventId).sort()).toEqual([...ids].sort());
    expect(Object.fromEntries(all.map((item) => [item.eventId, item.source]))).toEqual({
      [ids[0] as string]: "lookup",
      [ids[1] as string]: "eventbridge",
      [ids[2] as string]: "lookup",
    });
    expect(all.find((item) => item.eventId === ids[0])?.verdict).toMatchObject({
      classification: "brokered",
      requestId,
    });
    const audit = await observedAudit();
    expect(audit.map((record) => record.data.eventId).sort()).toEqual([...ids].sort());
    const listed = await broker.call(CAROL, "GET", "/audit/trail", { query: { limit: "50" } });
    expect(listed.body.items).toHaveLength(3);
    expect((await broker.call(CAROL, "GET", "/audit/verify")).body).toMatchObject({ ok: true });
  }, 120_000);
});

describe("audit anchors in S3 (functions/sweeper.ts writes, functions/api.ts reads)", () => {
  it("anchors the chain head in the Object Lock bucket, and verify checks the chain against it", async () => {
    process.env.ACCESS_ANCHOR_BUCKET = ANCHOR_BUCKET;
    try {
      await malloryPush();
      const { envelopes } = await eicEvents(1);
      await handlers.events(envelopes[0], lambdaContext());
      const sweeper = (await import("../../functions/sweeper.ts")).handler;
      const swept = await sweeper();
      const head = await headSeq();
      expect(swept.trail.anchored).toBe(head);
      const [anchor] = emulator.running.core.s3.list(ANCHOR_BUCKET);
      expect(anchor).toMatchObject({ key: expect.stringMatching(/^audit-anchors\/\d{13}-\d+\.json$/) });
      expect(anchor?.retention?.mode).toBe("COMPLIANCE");
      // Nothing new: the next sweep anchors nothing.
      expect((await sweeper()).trail.anchored).toBeUndefined();

      const api = (await import("../../functions/api.ts")).handler;
      const response = (await api(
        {
          version: "2.0",
          routeKey: "$default",
          rawPath: "/audit/verify",
          rawQueryString: "",
          headers: {},
          requestContext: {
            http: {
              method: "GET",
              path: "/audit/verify",
              protocol: "HTTP/1.1",
              sourceIp: "127.0.0.1",
              userAgent: "test",
            },
            requestId: randomUUID(),
            authorizer: { jwt: { claims: { email: CAROL, sub: CAROL, groups: "[security]" }, scopes: [] } },
          },
          isBase64Encoded: false,
        } as never,
        lambdaContext(),
      )) as { statusCode: number; body: string };
      expect(response.statusCode).toBe(200);
      expect(JSON.parse(response.body)).toMatchObject({
        ok: true,
        anchor: { ok: true, seq: head, location: `s3://${ANCHOR_BUCKET}/audit-anchors/` },
      });
    } finally {
      delete process.env.ACCESS_ANCHOR_BUCKET;
    }
  });
});
