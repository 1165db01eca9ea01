import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { anchorHead } from "../../core/audit/anchor.ts";
import { S3, S3AnchorStore } from "../../core/aws/s3.ts";
import { AppError } from "../../core/error.ts";
import { createTestBroker, requestBody } from "../helpers/broker.ts";
import { BROKER_KEYS } from "../helpers/emulator.ts";
import { startTrailEmulator, type TrailEmulator } from "../helpers/trail.ts";

/** core/aws/s3.ts (the official SDK, loaded on first use) against the emulator's S3. */

const ANCHORS = "audit-anchors-bucket";
/** A trail bucket in another region than the broker's. */
const LOGS = "org-trail-eu";
let emulator: TrailEmulator;
const clients: S3[] = [];

beforeAll(async () => {
  emulator = await startTrailEmulator({
    inventory: (document) => {
      // As infra/storage.ts creates it: Object Lock, compliance mode, default retention.
      document.buckets = [
        {
          name: ANCHORS,
          account: "123456789012",
          region: "us-east-1",
          objectLock: { mode: "COMPLIANCE", days: 1 },
        },
        { name: LOGS, account: "123456789012", region: "eu-west-1" },
      ];
      // As infra/functions.ts grants the sweeper (write) and the API (read).
      document.accounts
        .find((account: any) => account.id === "123456789012")
        .users.find((user: any) => user.name === "access-broker").policies.anchors = {
        Version: "2012-10-17",
        Statement: [
          { Effect: "Allow", Action: "s3:ListBucket", Resource: `arn:aws:s3:::${ANCHORS}` },
          {
            Effect: "Allow",
            Action: ["s3:GetObject", "s3:PutObject"],
            Resource: `arn:aws:s3:::${ANCHORS}/audit-anchors/*`,
          },
          { Effect: "Allow", Action: "s3:GetObject", Resource: `arn:aws:s3:::${LOGS}/AWSLogs/*` },
        ],
      };
    },
  });
});
afterAll(() => emulator?.close());
afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  delete process.env.AWS_ENDPOINT_URL_S3;
  await emulator.reset();
});

function s3(options: ConstructorParameters<typeof S3>[0] = {}) {
  const client = new S3({ region: "us-east-1", credentials: BROKER_KEYS, maxAttempts: 2, ...options });
  clients.push(client);
  return client;
}

describe("audit anchors in an Object Lock bucket", () => {
  it("appends one locked object per head, named so that the latest is listed first", async () => {
    const store = new S3AnchorStore(s3({ endpoint: emulator.url }), ANCHORS);
    expect(store.location).toBe(`s3://${ANCHORS}/audit-anchors/`);
    expect(await store.latest()).toBeUndefined();
    await store.append({ seq: 9, hash: "a".repeat(64), at: "2024-05-01T10:00:00.000Z" });
    await store.append({ seq: 120, hash: "b".repeat(64), at: "2024-05-01T10:01:00.000Z" });
    expect(await store.latest()).toEqual({ seq: 120, hash: "b".repeat(64), at: "2024-05-01T10:01:00.000Z" });

    const objects = emulator.running.core.s3.list(ANCHORS);
    expect(objects.map((object) => object.key)).toEqual([
      "audit-anchors/0999999999880-120.json",
      "audit-anchors/0999999999991-9.json",
    ]);
    // Locked under the bucket's default retention; the upload carried its integrity headers.
    expect(objects[0]).toMatchObject({
      contentType: "application/json",
      retention: { mode: "COMPLIANCE" },
      checksums: { sha256: expect.any(String) },
    });
  });

  it("anchors the broker's chain head and verify checks the chain against it", async () => {
    const broker = await createTestBroker(undefined, { aws: emulator.aws });
    broker.deps.anchors = new S3AnchorStore(s3({ endpoint: emulator.url }), ANCHORS);
    const created = await broker.call("alice@example.com", "POST", "/requests", { body: requestBody() });
    expect(created.status).toBe(201);
    const anchored = await anchorHead({ audit: broker.store, anchors: broker.deps.anchors });
    expect(anchored?.seq).toBeGreaterThan(0);
    const verified = await broker.call("carol@example.com", "GET", "/audit/verify");
    expect(verified.body).toMatchObject({
      ok: true,
      anchor: { ok: true, seq: anchored?.seq, location: `s3://${ANCHORS}/audit-anchors/` },
    });
    // Nothing new since: nothing appended.
    expect(await anchorHead({ audit: broker.store, anchors: broker.deps.anchors })).toBeUndefined();
    expect(emulator.running.core.s3.list(ANCHORS)).toHaveLength(1);
  });
});

describe("the S3 adapter", () => {
  it("takes the SDK's endpoint setting and addresses it path-style", async () => {
    // `localhost`, not an IP: virtual-hosted addressing would send the request to `<bucket>.localhost`.
    process.env.AWS_ENDPOINT_URL_S3 = emulator.url.replace("127.0.0.1", "localhost");
    const client = s3();
    await client.putObject(ANCHORS, "audit-anchors/x.json", Buffer.from("{}"), "application/json");
    expect(await client.listKeys(ANCHORS, "audit-anchors/", 10)).toEqual(["audit-anchors/x.json"]);
  });

  it("streams objects and says which failures a retry may fix", async () => {
    const client = s3({ endpoint: emulator.url });
    emulator.running.core.s3.put(ANCHORS, "audit-anchors/big", Buffer.alloc(5 * 1024 * 1024, 7));
    let bytes = 0;
    let chunks = 0;
    for await (const chunk of await client.getObject(ANCHORS, "audit-anchors/big")) {
      bytes += chunk.length;
      chunks++;
    }
    expect(bytes).toBe(5 * 1024 * 1024);
    expect(chunks).toBeGreaterThan(1);

    // A bucket in another region: S3's redirect is followed.
    emulator.running.core.s3.put(LOGS, "AWSLogs/a.json", Buffer.from('{"Records":[]}'));
    const text: Buffer[] = [];
    for await (const chunk of await client.getObject(LOGS, "AWSLogs/a.json")) text.push(Buffer.from(chunk));
    expect(Buffer.concat(text).toString()).toBe('{"Records":[]}');

    await expect(client.getObject(ANCHORS, "audit-anchors/none")).rejects.toMatchObject({
      kind: "not_found",
      code: "s3.not_found",
      message: `s3://${ANCHORS}/audit-anchors/none: NoSuchKey`,
    });
    await expect(client.getObject(ANCHORS, "elsewhere")).rejects.toThrow(
      `S3 GetObject s3://${ANCHORS}/elsewhere failed: AccessDenied`,
    );
    await emulator.admin("faults", { operations: { "s3:PutObject": { rate: 1, kind: "5xx" } } });
    const busy = await client
      .putObject(ANCHORS, "audit-anchors/y", Buffer.from("{}"), "application/json")
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(busy).toBeInstanceOf(AppError);
    expect(busy).toMatchObject({ kind: "throttled", code: "aws.unavailable" });
    expect(emulator.running.core.s3.get(ANCHORS, "audit-anchors/y")).toBeUndefined();
  });
});
