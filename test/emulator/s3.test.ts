import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gunzipSync } from "node:zlib";
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Sha256 } from "../../core/aws/sha256.ts";
import { checksumOf } from "../../local/emulator/s3.ts";
import type { RunningEmulator } from "../../local/emulator/server.ts";
import {
  ALICE,
  admin,
  BROKER,
  type Credentials,
  clients,
  MALLORY,
  rejection,
  startTestEmulator,
  testInventory,
} from "./helpers.ts";

const ANCHORS = "broker-anchors";
const LOGS = "broker-trail-logs";
const EU = "broker-eu-logs";
const FOREIGN = "target-account-logs";

const s3Policy = {
  Version: "2012-10-17",
  Statement: [
    {
      Effect: "Allow",
      Action: ["s3:GetObject", "s3:PutObject"],
      Resource: [
        `arn:aws:s3:::${ANCHORS}/*`,
        `arn:aws:s3:::${LOGS}/AWSLogs/*`,
        `arn:aws:s3:::${LOGS}/org/*`,
        `arn:aws:s3:::${EU}/*`,
      ],
    },
    { Effect: "Allow", Action: "s3:ListBucket", Resource: `arn:aws:s3:::${LOGS}` },
    // The anchors may be listed under their prefix only.
    {
      Effect: "Allow",
      Action: "s3:ListBucket",
      Resource: `arn:aws:s3:::${ANCHORS}`,
      Condition: { StringLike: { "s3:prefix": "audit-anchors/*" } },
    },
  ],
};

let emulator: RunningEmulator;
let url: string;

beforeAll(async () => {
  emulator = await startTestEmulator({
    inventory: testInventory((document) => {
      document.buckets = [
        {
          name: ANCHORS,
          account: "123456789012",
          region: "us-east-1",
          objectLock: { mode: "COMPLIANCE", days: 1 },
        },
        { name: LOGS, account: "123456789012", region: "us-east-1" },
        { name: EU, account: "123456789012", region: "eu-west-1" },
        { name: FOREIGN, account: "111122223333", region: "us-east-1" },
      ];
      const brokerAccount = document.accounts.find((account: any) => account.id === "123456789012");
      brokerAccount.users.find((user: any) => user.name === "access-broker").policies.s3 = s3Policy;
      // Alice may do anything in S3 by her own policies, but her account owns none of the broker's buckets.
      const target = document.accounts.find((account: any) => account.id === "111122223333");
      target.roles.find((role: any) => role.name === "alice").policies = {
        all: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "*" }] },
      };
    }),
  });
  url = emulator.url;
});
afterAll(() => emulator?.close());
beforeEach(() => admin(url, "reset", {}));

function s3(credentials: Credentials = BROKER, config: Partial<S3ClientConfig> = {}) {
  return new S3Client({
    endpoint: url,
    region: "us-east-1",
    forcePathStyle: true,
    credentials,
    maxAttempts: 1,
    ...config,
  });
}

/** A request signed by hand (smithy's signer, as the SDK signs), for what SDKs will not send. */
async function signed(
  method: string,
  path: string,
  options: {
    body?: Buffer;
    headers?: Record<string, string>;
    credentials?: Credentials;
    region?: string;
    query?: Record<string, string>;
  } = {},
) {
  const target = new URL(url);
  const body = options.body ?? Buffer.alloc(0);
  const request = new HttpRequest({
    method,
    protocol: "http:",
    hostname: target.hostname,
    port: Number(target.port),
    path,
    query: options.query ?? {},
    headers: {
      host: target.host,
      "x-amz-content-sha256": sha256Hex(body),
      ...options.headers,
    },
    body,
  });
  const signer = new SignatureV4({
    service: "s3",
    region: options.region ?? "us-east-1",
    credentials: options.credentials ?? BROKER,
    sha256: Sha256,
    uriEscapePath: false,
  });
  const signedRequest = (await signer.sign(request)) as HttpRequest;
  const search = new URLSearchParams(options.query ?? {}).toString();
  const response = await fetch(`${url}${path}${search ? `?${search}` : ""}`, {
    method,
    headers: signedRequest.headers,
    ...(method === "PUT" ? { body } : {}),
  });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

const sha256Hex = (data: Buffer) => createHash("sha256").update(data).digest("hex");
const codeOf = (xml: string) => /<Code>([^<]*)<\/Code>/.exec(xml)?.[1];

describe("objects through the SDK", () => {
  it("puts, gets and lists objects whose keys need encoding, verifying checksums both ways", async () => {
    const client = s3();
    const key = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/a b+c%d(é)~*'!.json";
    const body = Buffer.from('{"Records":[]}');
    const put = await client.send(
      new PutObjectCommand({ Bucket: LOGS, Key: key, Body: body, ContentType: "application/json" }),
    );
    // The SDK's default integrity header (CRC32) was checked and echoed.
    expect(put.ChecksumCRC32).toBe(checksumOf("crc32", body));
    expect(put.ETag).toBe(`"${createHash("md5").update(body).digest("hex")}"`);
    const got = await client.send(new GetObjectCommand({ Bucket: LOGS, Key: key }));
    expect(got.ContentType).toBe("application/json");
    expect(got.ContentLength).toBe(body.length);
    expect(got.ChecksumCRC32).toBe(checksumOf("crc32", body));
    expect(await got.Body?.transformToString()).toBe('{"Records":[]}');
    expect(emulator.core.s3.get(LOGS, key)?.size).toBe(body.length);

    const listed = await client.send(new ListObjectsV2Command({ Bucket: LOGS, Prefix: "AWSLogs/" }));
    expect(listed.Contents?.map((object) => object.Key)).toEqual([key]);
    expect(listed.Contents?.[0]).toMatchObject({
      Size: body.length,
      ETag: put.ETag,
      StorageClass: "STANDARD",
    });
    client.destroy();
  });

  it("pages ListObjectsV2 with continuation tokens, start-after, delimiters and URL encoding", async () => {
    const keys = ["audit-anchors/3", "audit-anchors/1", "audit-anchors/2", "audit-anchors/sub/x", "other/y"];
    for (const key of keys) emulator.core.s3.put(ANCHORS, key, Buffer.from(key));
    const client = s3();
    const page1 = await client.send(
      new ListObjectsV2Command({ Bucket: ANCHORS, Prefix: "audit-anchors/", MaxKeys: 2 }),
    );
    expect(page1.Contents?.map((object) => object.Key)).toEqual(["audit-anchors/1", "audit-anchors/2"]);
    expect(page1).toMatchObject({ IsTruncated: true, KeyCount: 2, MaxKeys: 2 });
    const page2 = await client.send(
      new ListObjectsV2Command({
        Bucket: ANCHORS,
        Prefix: "audit-anchors/",
        MaxKeys: 2,
        ContinuationToken: page1.NextContinuationToken,
      }),
    );
    expect(page2.Contents?.map((object) => object.Key)).toEqual(["audit-anchors/3", "audit-anchors/sub/x"]);
    expect(page2.IsTruncated).toBe(false);

    const folders = await client.send(
      new ListObjectsV2Command({
        Bucket: ANCHORS,
        Prefix: "audit-anchors/",
        Delimiter: "/",
        StartAfter: "audit-anchors/1",
      }),
    );
    expect(folders.Contents?.map((object) => object.Key)).toEqual(["audit-anchors/2", "audit-anchors/3"]);
    expect(folders.CommonPrefixes).toEqual([{ Prefix: "audit-anchors/sub/" }]);

    // Outside the prefixes its policy allows, listing is refused.
    const refused = await rejection(
      client.send(new ListObjectsV2Command({ Bucket: ANCHORS, Prefix: "other/" })),
    );
    expect(refused.name).toBe("AccessDenied");

    emulator.core.s3.put(ANCHORS, "audit-anchors/a b&c", Buffer.from("x"));
    const encoded = await signed("GET", `/${ANCHORS}`, {
      query: { "list-type": "2", prefix: "audit-anchors/a", "encoding-type": "url" },
    });
    expect(encoded.status).toBe(200);
    expect(encoded.text).toContain("<Key>audit-anchors%2Fa%20b%26c</Key>");
    expect(encoded.text).toContain("<EncodingType>url</EncodingType>");
    client.destroy();
  });

  it("keeps every version in an Object Lock bucket, under its default retention, and wants integrity headers", async () => {
    const client = s3();
    const first = await client.send(
      new PutObjectCommand({
        Bucket: ANCHORS,
        Key: "audit-anchors/h.json",
        Body: "1",
        ChecksumAlgorithm: "SHA256",
      }),
    );
    const second = await client.send(
      new PutObjectCommand({
        Bucket: ANCHORS,
        Key: "audit-anchors/h.json",
        Body: "2",
        ChecksumAlgorithm: "SHA256",
      }),
    );
    expect(first.VersionId).toBeTruthy();
    expect(second.VersionId).not.toBe(first.VersionId);
    expect(
      emulator.core.s3.versions(ANCHORS, "audit-anchors/h.json").map((version) => version.versionId),
    ).toEqual([second.VersionId, first.VersionId]);
    const got = await client.send(new GetObjectCommand({ Bucket: ANCHORS, Key: "audit-anchors/h.json" }));
    expect(await got.Body?.transformToString()).toBe("2");
    expect(got.ObjectLockMode).toBe("COMPLIANCE");
    expect(got.ObjectLockRetainUntilDate?.getTime()).toBeGreaterThan(Date.now() + 23 * 3_600_000);
    expect(got.ChecksumSHA256).toBe(checksumOf("sha256", Buffer.from("2")));
    const old = await client.send(
      new GetObjectCommand({ Bucket: ANCHORS, Key: "audit-anchors/h.json", VersionId: first.VersionId }),
    );
    expect(await old.Body?.transformToString()).toBe("1");

    // An SDK told to send checksums only when an operation requires them sends none for PutObject.
    const bare = s3(BROKER, { requestChecksumCalculation: "WHEN_REQUIRED" });
    const refused = await rejection(
      bare.send(new PutObjectCommand({ Bucket: ANCHORS, Key: "audit-anchors/x", Body: "3" })),
    );
    expect(refused.name).toBe("InvalidRequest");
    expect(refused.message).toMatch(/Content-MD5 OR x-amz-checksum- HTTP header is required/);
    await bare.send(new PutObjectCommand({ Bucket: LOGS, Key: "AWSLogs/plain", Body: "3" }));
    const retention = await rejection(
      client.send(
        new PutObjectCommand({
          Bucket: LOGS,
          Key: "AWSLogs/locked",
          Body: "4",
          ObjectLockMode: "COMPLIANCE",
          ObjectLockRetainUntilDate: new Date(Date.now() + 3_600_000),
        }),
      ),
    );
    expect(retention.message).toMatch(/missing Object Lock Configuration/);
    client.destroy();
    bare.destroy();
  });

  it("streams large objects with backpressure, and serves byte ranges", async () => {
    const chunk = Buffer.alloc(64 * 1024, "x");
    const chunks = 2048; // 128 MB, produced on demand
    let produced = 0;
    emulator.core.s3.put(LOGS, "AWSLogs/big.json", {
      size: chunk.length * chunks,
      open: () =>
        Readable.from(
          (function* () {
            for (let n = 0; n < chunks; n++) {
              produced += chunk.length;
              yield chunk;
            }
          })(),
        ),
    });
    const client = s3();
    const got = await client.send(new GetObjectCommand({ Bucket: LOGS, Key: "AWSLogs/big.json" }));
    expect(got.ContentLength).toBe(chunk.length * chunks);
    const body = (got.Body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    let read = (await body.next()).value?.length ?? 0;
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The emulator stopped producing once the socket buffers filled: a reader that does not read holds
    // no more than a few megabytes in flight.
    expect(produced).toBeLessThan(32 * 1024 * 1024);
    for (let next = await body.next(); !next.done; next = await body.next()) read += next.value.length;
    expect(read).toBe(chunk.length * chunks);

    const ranged = await client.send(
      new GetObjectCommand({ Bucket: LOGS, Key: "AWSLogs/big.json", Range: "bytes=100-199" }),
    );
    expect(ranged.ContentRange).toBe(`bytes 100-199/${chunk.length * chunks}`);
    expect((await ranged.Body?.transformToByteArray())?.length).toBe(100);
    const tooFar = await rejection(
      client.send(
        new GetObjectCommand({
          Bucket: LOGS,
          Key: "AWSLogs/big.json",
          Range: `bytes=${chunk.length * chunks}-`,
        }),
      ),
    );
    expect(tooFar.name).toBe("InvalidRange");
    client.destroy();
  });
});

describe("refusals, in S3's words", () => {
  it("authenticates like S3: bad signature, unknown key, unsigned, skewed, expired presigned URLs", async () => {
    const wrongSecret = await rejection(
      s3({ ...BROKER, secretAccessKey: "wrong" }).send(
        new GetObjectCommand({ Bucket: LOGS, Key: "AWSLogs/x" }),
      ),
    );
    expect(wrongSecret.name).toBe("SignatureDoesNotMatch");
    expect(wrongSecret.$metadata.httpStatusCode).toBe(403);
    const unknown = await rejection(
      s3({ accessKeyId: "AKIAUNKNOWNUNKNOWN00", secretAccessKey: "x" }).send(
        new GetObjectCommand({ Bucket: LOGS, Key: "AWSLogs/x" }),
      ),
    );
    expect(unknown.name).toBe("InvalidAccessKeyId");

    const anonymous = await fetch(`${url}/${LOGS}/AWSLogs/x`);
    expect(anonymous.status).toBe(403);
    expect(codeOf(await anonymous.text())).toBe("AccessDenied");
    // An unsigned request for a path that is no bucket is not S3's to answer.
    const elsewhere = await fetch(`${url}/no-such-bucket/key`);
    expect(codeOf(await elsewhere.text())).not.toBe("AccessDenied");

    emulator.core.s3.put(LOGS, "AWSLogs/p.json", Buffer.from("presigned"));
    const presigner = new SignatureV4({
      service: "s3",
      region: "us-east-1",
      credentials: BROKER,
      sha256: Sha256,
      uriEscapePath: false,
    });
    const target = new URL(url);
    const presign = (signingDate: Date, expiresIn: number) =>
      presigner.presign(
        // smithy's signer and the SDK's HttpRequest type come from two @smithy/types copies.
        new HttpRequest({
          method: "GET",
          protocol: "http:",
          hostname: target.hostname,
          port: Number(target.port),
          path: `/${LOGS}/AWSLogs/p.json`,
          // Presigned S3 URLs never sign the payload (S3's presigner says so with this header).
          headers: { host: target.host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
        }) as Parameters<typeof presigner.presign>[0],
        { signingDate, expiresIn },
      ) as Promise<HttpRequest>;
    const urlOf = (request: HttpRequest) =>
      `${url}${request.path}?${new URLSearchParams(request.query as Record<string, string>).toString()}`;
    const fresh = await fetch(urlOf(await presign(new Date(), 60)));
    expect(await fresh.text()).toBe("presigned");
    const expired = await fetch(urlOf(await presign(new Date(Date.now() - 120_000), 60)));
    expect(expired.status).toBe(403);
    expect(await expired.text()).toMatch(/<Code>AccessDenied<\/Code><Message>Request has expired/);

    const skewed = await rejection(
      s3(BROKER, { systemClockOffset: -3_600_000, maxAttempts: 1 }).send(
        new GetObjectCommand({ Bucket: LOGS, Key: "AWSLogs/p.json" }),
      ),
    );
    expect(skewed.name).toBe("RequestTimeTooSkewed");
  });

  it("authorizes like S3: policies, missing keys, other accounts' buckets, regions", async () => {
    const broker = s3();
    // The broker may get objects under AWSLogs/ and list the bucket: a missing key is a 404.
    expect(
      (await rejection(broker.send(new GetObjectCommand({ Bucket: LOGS, Key: "AWSLogs/none" })))).name,
    ).toBe("NoSuchKey");
    // Without s3:ListBucket on the bucket, S3 does not say whether the key exists.
    const eu = s3(BROKER, { region: "eu-west-1" });
    expect((await rejection(eu.send(new GetObjectCommand({ Bucket: EU, Key: "none" })))).name).toBe(
      "AccessDenied",
    );
    // Nor when that permission holds only under a condition a GetObject does not meet.
    expect(
      (await rejection(broker.send(new GetObjectCommand({ Bucket: ANCHORS, Key: "audit-anchors/none" }))))
        .name,
    ).toBe("AccessDenied");
    // Outside the policy's resources.
    expect(
      (await rejection(broker.send(new GetObjectCommand({ Bucket: LOGS, Key: "elsewhere/x" })))).name,
    ).toBe("AccessDenied");
    // Mallory has no S3 permissions; Alice has s3:* but the bucket belongs to another account.
    expect(
      (await rejection(s3(MALLORY).send(new GetObjectCommand({ Bucket: LOGS, Key: "AWSLogs/x" })))).name,
    ).toBe("AccessDenied");
    expect(
      (await rejection(s3(ALICE).send(new PutObjectCommand({ Bucket: LOGS, Key: "AWSLogs/x", Body: "x" }))))
        .name,
    ).toBe("AccessDenied");
    emulator.core.s3.put(FOREIGN, "log", Buffer.from("x"));
    expect(
      await (
        await s3(ALICE).send(new GetObjectCommand({ Bucket: FOREIGN, Key: "log" }))
      ).Body?.transformToString(),
    ).toBe("x");
    const missingBucket = await rejection(
      broker.send(new GetObjectCommand({ Bucket: "no-such-bucket", Key: "k" })),
    );
    expect(missingBucket.name).toBe("NoSuchBucket");
    // Asked in the wrong region: S3's redirect, which an SDK told to follow redirects follows.
    emulator.core.s3.put(EU, "k", Buffer.from("from eu-west-1"));
    const wrongRegion = await rejection(broker.send(new GetObjectCommand({ Bucket: EU, Key: "k" })));
    expect(wrongRegion.name).toBe("PermanentRedirect");
    expect(wrongRegion.$metadata.httpStatusCode).toBe(301);
    expect(wrongRegion.$response?.headers?.["x-amz-bucket-region"]).toBe("eu-west-1");
    const following = s3(BROKER, { followRegionRedirects: true });
    const redirected = await following.send(new GetObjectCommand({ Bucket: EU, Key: "k" }));
    expect(await redirected.Body?.transformToString()).toBe("from eu-west-1");
    following.destroy();
    const head = await rejection(broker.send(new HeadObjectCommand({ Bucket: LOGS, Key: "AWSLogs/none" })));
    expect(head.$metadata.httpStatusCode).toBe(404);
    broker.destroy();
    eu.destroy();
  });

  it("checks payload hashes, Content-MD5 and checksums, and refuses what it does not emulate", async () => {
    const body = Buffer.from("{}");
    const badHash = await signed("PUT", `/${LOGS}/AWSLogs/h`, {
      body,
      headers: { "x-amz-content-sha256": sha256Hex(Buffer.from("other")) },
    });
    expect(badHash.status).toBe(400);
    expect(codeOf(badHash.text)).toBe("XAmzContentSHA256Mismatch");
    const unsignedPayload = await signed("PUT", `/${LOGS}/AWSLogs/u`, {
      body,
      headers: { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
    });
    expect(unsignedPayload.status).toBe(200);
    const badMd5 = await signed("PUT", `/${LOGS}/AWSLogs/m`, {
      body,
      headers: { "content-md5": Buffer.alloc(16).toString("base64") },
    });
    expect(codeOf(badMd5.text)).toBe("BadDigest");
    const badCrc = await signed("PUT", `/${LOGS}/AWSLogs/c`, {
      body,
      headers: { "x-amz-checksum-crc32c": checksumOf("crc32c", Buffer.from("other")) },
    });
    expect(badCrc.text).toMatch(/<Code>BadDigest<\/Code><Message>The CRC32C you specified/);
    const goodCrc = await signed("PUT", `/${LOGS}/AWSLogs/c`, {
      body,
      headers: { "x-amz-checksum-crc32c": checksumOf("crc32c", body) },
    });
    expect(goodCrc.status).toBe(200);
    // CRC32C of "123456789" is E3069283 (RFC 3720 check value).
    expect(Buffer.from(checksumOf("crc32c", Buffer.from("123456789")), "base64").toString("hex")).toBe(
      "e3069283",
    );
    const chunked = await signed("PUT", `/${LOGS}/AWSLogs/s`, {
      body,
      headers: { "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER" },
    });
    expect(chunked.status).toBe(501);
    const noHash = await fetch(`${url}/${LOGS}/AWSLogs/x`, {
      headers: {
        authorization: `AWS4-HMAC-SHA256 Credential=${BROKER.accessKeyId}/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00`,
      },
    });
    expect(await noHash.text()).toMatch(/Missing required header for this request: x-amz-content-sha256/);
    const subresource = await signed("GET", `/${LOGS}/AWSLogs/x`, { query: { tagging: "" } });
    expect(subresource.status).toBe(501);
    expect(codeOf(subresource.text)).toBe("NotImplemented");
    expect(emulator.core.s3.get(LOGS, "AWSLogs/m")).toBeUndefined();
  });

  it("injects throttling as SlowDown", async () => {
    await admin(url, "faults", { operations: { "s3:GetObject": { rate: 1, kind: "throttle" } } });
    const throttled = await rejection(s3().send(new GetObjectCommand({ Bucket: LOGS, Key: "AWSLogs/x" })));
    expect(throttled.name).toBe("SlowDown");
    expect(throttled.$metadata.httpStatusCode).toBe(503);
  });
});

describe("buckets in the inventory", () => {
  it("validates names and keeps them unique across accounts", () => {
    const withBuckets = (buckets: unknown[]) => () =>
      testInventory((document) => {
        document.buckets = buckets;
      });
    expect(withBuckets([{ name: "UPPER", account: "123456789012", region: "us-east-1" }])).toThrow(
      /buckets\[0\]\.name: must be an S3 bucket name/,
    );
    expect(
      withBuckets([
        { name: "same", account: "123456789012", region: "us-east-1" },
        { name: "same", account: "111122223333", region: "eu-west-1" },
      ]),
    ).toThrow(/duplicate bucket 'same'/);
    expect(
      withBuckets([
        {
          name: "locked",
          account: "123456789012",
          region: "us-east-1",
          objectLock: { mode: "SOMETIMES", days: 1 },
        },
      ]),
    ).toThrow(/objectLock\.mode/);
  });
});

describe("CloudTrail log files delivered to a bucket", () => {
  it("writes the trail so far as gzip log files at CloudTrail's keys, each record once", async () => {
    await clients(url, BROKER).sts.send(new GetCallerIdentityCommand({}));
    const { keys } = await admin(url, "s3/deliver-trail", { bucket: LOGS, prefix: "org/" });
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(
      /^org\/AWSLogs\/123456789012\/CloudTrail\/us-east-1\/\d{4}\/\d{2}\/\d{2}\/123456789012_CloudTrail_us-east-1_\d{8}T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz$/,
    );
    const got = await s3().send(new GetObjectCommand({ Bucket: LOGS, Key: keys[0] }));
    const file = JSON.parse(
      gunzipSync(Buffer.from((await got.Body?.transformToByteArray()) ?? [])).toString(),
    );
    expect(file.Records.map((record: any) => record.eventName)).toEqual(["GetCallerIdentity"]);
    expect((await admin(url, "s3/deliver-trail", { bucket: LOGS })).keys).toEqual([]);
    await expect(admin(url, "s3/deliver-trail", { bucket: "no-such-bucket" })).rejects.toThrow(/400/);
    await admin(url, "reset", {});
    expect(emulator.core.s3.list(LOGS)).toEqual([]);
  });
});

// The Debian awscli (2.9), a second real client (botocore's signer, Content-MD5, its own path encoding).
const AWS = "/usr/bin/aws";

describe.runIf(existsSync(AWS))("the AWS CLI against the emulator's S3", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "s3-cli-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const cli = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        AWS,
        ["--endpoint-url", url, "--no-cli-pager", "--output", "json", ...args],
        {
          timeout: 30_000,
          env: {
            PATH: process.env.PATH,
            HOME: dir,
            AWS_ACCESS_KEY_ID: BROKER.accessKeyId,
            AWS_SECRET_ACCESS_KEY: BROKER.secretAccessKey,
            AWS_DEFAULT_REGION: "us-east-1",
            AWS_CONFIG_FILE: "/dev/null",
            AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
            AWS_EC2_METADATA_DISABLED: "true",
          },
        },
        (error, stdout, stderr) =>
          resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  it("s3api put-object (into Object Lock), s3 cp both ways, list-objects-v2, errors", async () => {
    const file = join(dir, "log.json");
    writeFileSync(file, '{"Records":[]}');
    const put = await cli([
      "s3api",
      "put-object",
      "--bucket",
      ANCHORS,
      "--key",
      "audit-anchors/a b+c.json",
      "--body",
      file,
    ]);
    expect(put.code, put.stderr).toBe(0);
    expect(JSON.parse(put.stdout).VersionId).toBeTruthy();
    const up = await cli(["s3", "cp", file, `s3://${LOGS}/AWSLogs/dir with space/log.json`]);
    expect(up.code, up.stderr).toBe(0);
    const down = await cli([
      "s3",
      "cp",
      `s3://${LOGS}/AWSLogs/dir with space/log.json`,
      join(dir, "back.json"),
    ]);
    expect(down.code, down.stderr).toBe(0);
    expect(readFileSync(join(dir, "back.json"), "utf8")).toBe('{"Records":[]}');
    const listed = await cli(["s3api", "list-objects-v2", "--bucket", ANCHORS, "--prefix", "audit-anchors/"]);
    expect(JSON.parse(listed.stdout).Contents.map((object: any) => object.Key)).toEqual([
      "audit-anchors/a b+c.json",
    ]);
    const presigned = await cli(["s3", "presign", `s3://${LOGS}/AWSLogs/dir with space/log.json`]);
    expect(await (await fetch(presigned.stdout.trim())).text()).toBe('{"Records":[]}');
    const missing = await cli([
      "s3api",
      "get-object",
      "--bucket",
      LOGS,
      "--key",
      "AWSLogs/none",
      join(dir, "x"),
    ]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/NoSuchKey/);
  });
});
