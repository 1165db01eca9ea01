import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import type { Anchor, AnchorStore } from "../audit/anchor.ts";
import type { Credentials, CredentialsProvider } from "./credentials.ts";
import { Sha256 } from "./sha256.ts";

/**
 * The three S3 calls the broker makes (GetObject of CloudTrail log files, PutObject and ListObjectsV2 of
 * audit anchors), signed with SigV4 over fetch. The project does not carry @aws-sdk/client-s3 for three
 * calls; swapping this for it later changes nothing outside this file.
 */
export interface S3Options {
  region: string;
  credentials: Credentials | CredentialsProvider;
  /** Path-style endpoint override (tests); default `https://<bucket>.s3.<region>.amazonaws.com`. */
  endpoint?: string;
  fetch?: typeof fetch;
}

function encodeKey(key: string): string {
  return key
    .split("/")
    .map((part) =>
      encodeURIComponent(part).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
    )
    .join("/");
}

export class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = code || "S3Error";
  }
}

export class S3 {
  private readonly signer: SignatureV4;
  private readonly fetch: typeof fetch;

  constructor(private readonly options: S3Options) {
    this.signer = new SignatureV4({
      service: "s3",
      region: options.region,
      credentials: options.credentials,
      sha256: Sha256,
      uriEscapePath: false,
      applyChecksum: true,
    });
    this.fetch = options.fetch ?? fetch;
  }

  private url(bucket: string, key: string, query: Record<string, string> = {}): URL {
    const base = this.options.endpoint
      ? `${this.options.endpoint.replace(/\/$/, "")}/${bucket}/`
      : `https://${bucket}.s3.${this.options.region}.amazonaws.com/`;
    const url = new URL(`${base}${encodeKey(key)}`);
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
    return url;
  }

  private async send(method: "GET" | "PUT", url: URL, body?: Buffer, headers: Record<string, string> = {}) {
    const query: Record<string, string> = {};
    for (const [name, value] of url.searchParams) query[name] = value;
    const request = new HttpRequest({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path: url.pathname,
      query,
      headers: {
        host: url.host,
        "x-amz-content-sha256": createHash("sha256")
          .update(body ?? Buffer.alloc(0))
          .digest("hex"),
        ...headers,
      },
      body,
    });
    const signed = await this.signer.sign(request);
    const response = await this.fetch(url, {
      method,
      headers: signed.headers as Record<string, string>,
      ...(body ? { body } : {}),
    });
    if (!response.ok) {
      const text = await response.text();
      const code = /<Code>([^<]+)<\/Code>/.exec(text)?.[1] ?? `HTTP${response.status}`;
      const message = /<Message>([^<]+)<\/Message>/.exec(text)?.[1] ?? text.slice(0, 200);
      throw new S3Error(response.status, code, `S3 ${method} ${url.pathname}: ${code}: ${message}`);
    }
    return response;
  }

  /** The object's bytes as a stream (CloudTrail log files can be large). */
  async getObject(bucket: string, key: string): Promise<AsyncIterable<Uint8Array>> {
    const response = await this.send("GET", this.url(bucket, key));
    if (!response.body) return Readable.from([]);
    return Readable.fromWeb(response.body as import("node:stream/web").ReadableStream<Uint8Array>);
  }

  /** PutObject with Content-MD5, which S3 requires for buckets with Object Lock. */
  async putObject(bucket: string, key: string, body: Buffer, contentType: string): Promise<void> {
    const response = await this.send("PUT", this.url(bucket, key), body, {
      "content-type": contentType,
      "content-md5": createHash("md5").update(body).digest("base64"),
      "content-length": String(body.length),
    });
    await response.arrayBuffer();
  }

  /** Keys under `prefix`, in S3's (lexicographic) order. */
  async listKeys(bucket: string, prefix: string, maxKeys: number): Promise<string[]> {
    const response = await this.send(
      "GET",
      this.url(bucket, "", { "list-type": "2", prefix, "max-keys": String(maxKeys) }),
    );
    const text = await response.text();
    return [...text.matchAll(/<Key>([^<]+)<\/Key>/g)].map((match) =>
      (match[1] as string)
        .replace(/&amp;/g, "&")
        .replace(/&lt;/g, "<")
        .replace(/&gt;/g, ">")
        .replace(/&quot;/g, '"')
        .replace(/&apos;/g, "'"),
    );
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
