import { createHash } from "node:crypto";
import type { S3Client } from "@aws-sdk/client-s3";
import type { Anchor, AnchorStore } from "../audit/anchor.ts";
import { NotFoundError } from "../error.ts";
import { RETRY } from "./clients.ts";
import type { Credentials, CredentialsProvider } from "./credentials.ts";
import { errorName, rethrowAws } from "./errors.ts";

/**
 * The S3 calls the broker makes — GetObject of CloudTrail log files (streamed), PutObject and ListObjectsV2
 * of audit anchors — through the official SDK. The SDK is imported on the first call (with code splitting it
 * is a chunk of its own): an API cold start for anything but `GET /audit/verify` or a report never loads or
 * parses it. functions/s3-deps.ts keeps it out of the functions that never reach S3 at all.
 */
export interface S3Options {
  /** Default: AWS_REGION (set by Lambda), else us-east-1. */
  region?: string;
  /** Default: the SDK's provider chain (the function's role in Lambda). */
  credentials?: Credentials | CredentialsProvider;
  /**
   * Overrides the endpoint (the local emulator in tests). Without it the SDK's own settings apply
   * (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`). Either way an overridden endpoint is addressed path-style
   * (`<endpoint>/<bucket>/<key>`): `<bucket>.<endpoint host>` resolves nowhere for emulators and proxies.
   */
  endpoint?: string;
  /** Overrides RETRY.maxAttempts (tests that inject faults on purpose). */
  maxAttempts?: number;
}

/** The SDK's environment endpoint settings, as it reads them (AWS SDKs and Tools Reference Guide). */
function environmentEndpoint(): string | undefined {
  if (process.env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS?.toLowerCase() === "true") return undefined;
  return process.env.AWS_ENDPOINT_URL_S3?.trim() || process.env.AWS_ENDPOINT_URL?.trim() || undefined;
}

export class S3 {
  private client: Promise<{ sdk: typeof import("@aws-sdk/client-s3"); client: S3Client }> | undefined;

  constructor(private readonly options: S3Options = {}) {}

  private connect() {
    this.client ??= import("@aws-sdk/client-s3").then((sdk) => {
      const endpoint = this.options.endpoint;
      const client = new sdk.S3Client({
        region: this.options.region ?? process.env.AWS_REGION ?? "us-east-1",
        maxAttempts: this.options.maxAttempts ?? RETRY.maxAttempts,
        retryMode: RETRY.retryMode,
        // An organization's trail bucket often lives in another region than the broker: follow S3's redirect.
        followRegionRedirects: true,
        ...(endpoint ? { endpoint } : {}),
        ...(endpoint || environmentEndpoint() ? { forcePathStyle: true } : {}),
        ...(this.options.credentials ? { credentials: this.options.credentials } : {}),
      });
      return { sdk, client };
    });
    return this.client;
  }

  /**
   * The object's bytes as they arrive: a CloudTrail log file of any size is read in bounded memory, and a
   * reader that stops reading stops the download. A missing object or bucket is a NotFoundError; throttling
   * and 5xx that outlived the SDK's retries a `throttled` AppError; anything else (AccessDenied…) an error
   * with the SDK's as its cause.
   */
  async getObject(bucket: string, key: string): Promise<AsyncIterable<Uint8Array>> {
    const { sdk, client } = await this.connect();
    try {
      const output = await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: key }));
      return (output.Body as AsyncIterable<Uint8Array> | undefined) ?? (async function* () {})();
    } catch (error) {
      const name = errorName(error);
      if (name === "NoSuchKey" || name === "NoSuchBucket")
        throw new NotFoundError("s3.not_found", `s3://${bucket}/${key}: ${name}`);
      rethrowAws(error, `S3 GetObject s3://${bucket}/${key}`);
    }
  }

  /**
   * PutObject with Content-MD5 and a SHA-256 checksum. A bucket with Object Lock refuses uploads without an
   * integrity header, and the SDK adds its own checksum only when its settings ask for it
   * (`AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED` turns that off for PutObject), so both are explicit.
   */
  async putObject(bucket: string, key: string, body: Buffer, contentType: string): Promise<void> {
    const { sdk, client } = await this.connect();
    try {
      await client.send(
        new sdk.PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentType: contentType,
          ContentMD5: createHash("md5").update(body).digest("base64"),
          ChecksumAlgorithm: "SHA256",
        }),
      );
    } catch (error) {
      rethrowAws(error, `S3 PutObject s3://${bucket}/${key}`);
    }
  }

  /** Keys under `prefix`, in S3's (UTF-8 binary) order, at most `maxKeys` (≤ 1000: one page). */
  async listKeys(bucket: string, prefix: string, maxKeys: number): Promise<string[]> {
    const { sdk, client } = await this.connect();
    try {
      const output = await client.send(
        new sdk.ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: maxKeys }),
      );
      return (output.Contents ?? []).flatMap((object) => (object.Key === undefined ? [] : [object.Key]));
    } catch (error) {
      rethrowAws(error, `S3 ListObjectsV2 s3://${bucket}/${prefix}`);
    }
  }

  destroy(): void {
    this.client?.then(({ client }) => client.destroy()).catch(() => undefined);
    this.client = undefined;
  }
}

const MAX_SEQ = 10 ** 12;

/**
 * Audit anchors in an S3 bucket with Object Lock (compliance mode, default retention set on the bucket in
 * infra/storage.ts): one immutable object per anchored head, `<prefix><MAX−seq>-<seq>.json`, so that the
 * first key S3 lists is the latest anchor and nothing is ever overwritten.
 */
export class S3AnchorStore implements AnchorStore {
  readonly location: string;

  constructor(
    private readonly s3: S3,
    private readonly bucket: string,
    private readonly prefix = "audit-anchors/",
  ) {
    this.location = `s3://${bucket}/${prefix}`;
  }

  static keyOf(prefix: string, seq: number): string {
    return `${prefix}${String(MAX_SEQ - seq).padStart(13, "0")}-${seq}.json`;
  }

  async append(anchor: Anchor): Promise<void> {
    await this.s3.putObject(
      this.bucket,
      S3AnchorStore.keyOf(this.prefix, anchor.seq),
      Buffer.from(JSON.stringify(anchor)),
      "application/json",
    );
  }

  async latest(): Promise<Anchor | undefined> {
    const [key] = await this.s3.listKeys(this.bucket, this.prefix, 1);
    if (!key) return undefined;
    const chunks: Buffer[] = [];
    for await (const chunk of await this.s3.getObject(this.bucket, key)) chunks.push(Buffer.from(chunk));
    const anchor = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Anchor;
    return { seq: Number(anchor.seq), hash: String(anchor.hash), at: String(anchor.at) };
  }
}
