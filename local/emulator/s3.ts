/**
 * S3 for the emulator: the object calls the broker makes — GetObject (CloudTrail log files, streamed),
 * PutObject and ListObjectsV2 (audit anchors in an Object Lock bucket) — plus HeadObject, on S3's REST-XML
 * wire protocol, path-style (`/<bucket>/<key>`: what SDKs send with an endpoint override and
 * `forcePathStyle`, and what they fall back to for an IP-address endpoint).
 *
 * As S3 does it: SigV4 in the header (payload hash or UNSIGNED-PAYLOAD) or presigned; IAM identity policies
 * (`s3:GetObject`, `s3:PutObject`, `s3:ListBucket` with `s3:prefix`); a missing key is AccessDenied unless
 * the caller may list the bucket; Content-MD5 and `x-amz-checksum-*` verified and checksums returned with
 * `x-amz-checksum-mode: ENABLED`; Object Lock buckets keep every version under its retention and refuse
 * uploads without an integrity header; single byte ranges; a request signed for another region than the
 * bucket's is redirected (301 with `x-amz-bucket-region`).
 *
 * Not emulated, answered `NotImplemented`: bucket policies and ACLs (only the bucket's own account reaches
 * it), multipart and aws-chunked uploads, deletes, bucket-level and other subresource calls. Object calls are
 * data events, which management-event trails do not log, so nothing here goes to the emulator's trail.
 *
 * `S3Store.put` seeds objects in-process, including large ones produced on demand from a stream, and
 * `deliverTrail` writes the emulator's CloudTrail records as CloudTrail log files, as a trail delivering to
 * a bucket does.
 */
import { createHash, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline, Readable } from "node:stream";
import { crc32, gzipSync } from "node:zlib";
import { AuthFailure, type Caller, type EmulatorCore, type EmulatorService } from "./contract.ts";
import type { InventoryBucket } from "./inventory.ts";
import {
  type ClassifiedRequest,
  classify,
  escapeXml,
  type ServiceDeps,
  sourceIp,
  type XmlObject,
  xmlDocument,
} from "./wire.ts";

export const S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/";
/** The largest single PUT the emulator takes (S3: 5 GB). Larger test objects are seeded with `put()`. */
export const MAX_PUT_BYTES = 16 * 1024 * 1024;
/** S3's limit on key length, in UTF-8 bytes. */
const MAX_KEY_BYTES = 1024;
const MAX_LIST_KEYS = 1000;

export type ChecksumAlgorithm = "crc32" | "crc32c" | "sha1" | "sha256";
const CHECKSUMS: readonly ChecksumAlgorithm[] = ["crc32", "crc32c", "sha1", "sha256"];

export interface StoredObject {
  bucket: string;
  key: string;
  size: number;
  /** Quoted, as S3 sends it. */
  etag: string;
  lastModified: Date;
  contentType: string;
  /** Base64 checksums the uploader sent (and the emulator verified). */
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
  /** Versioned buckets (Object Lock) only. */
  versionId?: string;
  retention?: { mode: "COMPLIANCE" | "GOVERNANCE"; until: Date };
  body: Buffer | (() => Readable);
}

/** Bytes, or a stream opened anew for every read (test objects larger than memory should hold). */
export type ObjectSource = Buffer | { size: number; open: () => Readable };

/**
 * An error S3 answers with; `fields` are extra children of `<Error>` (Key, BucketName, Endpoint…), `headers`
 * extra response headers.
 */
export class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: Record<string, string> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "S3Error";
  }
}

const noSuchBucket = (bucket: string) =>
  new S3Error(404, "NoSuchBucket", "The specified bucket does not exist", { BucketName: bucket });
const accessDenied = () => new S3Error(403, "AccessDenied", "Access Denied");
const notImplemented = (what: string) =>
  new S3Error(501, "NotImplemented", `${what} is not implemented by the emulator`);

// CRC32C (Castagnoli) for `x-amz-checksum-crc32c`; node:zlib has only CRC32.
const CRC32C_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32c(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = (CRC32C_TABLE[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const uint32 = (value: number) => {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value >>> 0);
  return out;
};

/** The base64 checksum S3 puts in `x-amz-checksum-<algorithm>`. */
export function checksumOf(algorithm: ChecksumAlgorithm, data: Buffer): string {
  if (algorithm === "crc32") return uint32(crc32(data)).toString("base64");
  if (algorithm === "crc32c") return uint32(crc32c(data)).toString("base64");
  return createHash(algorithm).update(data).digest("base64");
}

/** S3 lists keys in UTF-8 binary order. */
const byKey = (a: { key: string }, b: { key: string }) =>
  Buffer.compare(Buffer.from(a.key), Buffer.from(b.key));

/** The objects of the inventory's buckets, in memory. */
export class S3Store {
  private objects = new Map<string, Map<string, StoredObject[]>>();
  private deliveredRecords = new Map<string, number>();
  private versionSeq = 0;

  constructor(
    private readonly buckets: readonly InventoryBucket[],
    private readonly now: () => Date,
  ) {}

  bucket(name: string): InventoryBucket | undefined {
    return this.buckets.find((bucket) => bucket.name === name);
  }

  /**
   * Stores an object as PutObject would (a new version in Object Lock buckets, under the bucket's default
   * retention unless `retention` is given); no permission checks. Throws S3Error for an unknown bucket.
   */
  put(
    bucketName: string,
    key: string,
    source: ObjectSource,
    options: {
      contentType?: string;
      checksums?: Partial<Record<ChecksumAlgorithm, string>>;
      retention?: StoredObject["retention"];
    } = {},
  ): StoredObject {
    const bucket = this.bucket(bucketName);
    if (!bucket) throw noSuchBucket(bucketName);
    const now = this.now();
    const buffered = Buffer.isBuffer(source);
    const lock = bucket.objectLock;
    const object: StoredObject = {
      bucket: bucketName,
      key,
      size: buffered ? source.length : source.size,
      // A streamed source is never read whole, so its ETag is opaque (as multipart uploads' are).
      etag: `"${buffered ? createHash("md5").update(source).digest("hex") : `${randomBytes(16).toString("hex")}-1`}"`,
      lastModified: now,
      contentType: options.contentType ?? "binary/octet-stream",
      checksums: options.checksums ?? {},
      ...(lock
        ? {
            versionId: `${(++this.versionSeq).toString(36).padStart(8, "0")}.${randomBytes(12).toString("base64url")}`,
          }
        : {}),
      ...(options.retention
        ? { retention: options.retention }
        : lock
          ? { retention: { mode: lock.mode, until: new Date(now.getTime() + lock.days * 86_400_000) } }
          : {}),
      body: buffered ? source : source.open,
    };
    let keys = this.objects.get(bucketName);
    if (!keys) {
      keys = new Map();
      this.objects.set(bucketName, keys);
    }
    // Without versioning a PUT replaces the object; with it (Object Lock), the older versions stay.
    keys.set(key, lock ? [object, ...(keys.get(key) ?? [])] : [object]);
    return object;
  }

  /** The current version of an object. */
  get(bucket: string, key: string): StoredObject | undefined {
    return this.objects.get(bucket)?.get(key)?.[0];
  }

  /** Every version of an object, newest first. */
  versions(bucket: string, key: string): StoredObject[] {
    return [...(this.objects.get(bucket)?.get(key) ?? [])];
  }

  /** Current versions whose key starts with `prefix`, in S3's order. */
  list(bucket: string, prefix = ""): StoredObject[] {
    const keys = this.objects.get(bucket);
    if (!keys) return [];
    return [...keys.values()]
      .map((versions) => versions[0] as StoredObject)
      .filter((object) => object.key.startsWith(prefix))
      .sort(byKey);
  }

  /**
   * A trail delivering to `bucket` (CloudTrail User Guide, "Finding your CloudTrail log files"): the records
   * not yet delivered there, one gzip `{"Records":[…]}` file per account and region at
   * `<prefix>/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz`.
   */
  deliverTrail(records: readonly Record<string, unknown>[], bucket: string, prefix = ""): string[] {
    if (!this.bucket(bucket)) throw noSuchBucket(bucket);
    const from = this.deliveredRecords.get(bucket) ?? 0;
    this.deliveredRecords.set(bucket, records.length);
    const groups = new Map<string, Record<string, unknown>[]>();
    for (const record of records.slice(from)) {
      const group = `${String(record.recipientAccountId)}|${String(record.awsRegion)}`;
      groups.set(group, [...(groups.get(group) ?? []), record]);
    }
    const now = this.now().toISOString();
    const day = `${now.slice(0, 4)}/${now.slice(5, 7)}/${now.slice(8, 10)}`;
    const stamp = `${now.slice(0, 4)}${now.slice(5, 7)}${now.slice(8, 10)}T${now.slice(11, 13)}${now.slice(14, 16)}Z`;
    const base = prefix.replace(/^\/+|\/+$/g, "");
    const keys: string[] = [];
    for (const [group, batch] of groups) {
      const [account, region] = group.split("|") as [string, string];
      const unique = randomBytes(12).toString("base64url").replace(/[-_]/g, "0").slice(0, 16);
      const key = `${base ? `${base}/` : ""}AWSLogs/${account}/CloudTrail/${region}/${day}/${account}_CloudTrail_${region}_${stamp}_${unique}.json.gz`;
      const body = gzipSync(JSON.stringify({ Records: batch }));
      this.put(bucket, key, body, { contentType: "application/json" });
      keys.push(key);
    }
    return keys;
  }

  reset(): void {
    this.objects.clear();
    this.deliveredRecords.clear();
  }
}

// ---------------------------------------------------------------------------------------------------------
// The wire protocol

type Operation = "GetObject" | "HeadObject" | "PutObject" | "ListObjectsV2";

/** Query parameters that name a subresource (`?acl`, `?retention`…): calls the emulator does not serve. */
const SUBRESOURCES = new Set([
  "acl",
  "attributes",
  "cors",
  "delete",
  "lifecycle",
  "legal-hold",
  "location",
  "object-lock",
  "policy",
  "restore",
  "retention",
  "tagging",
  "uploadId",
  "uploads",
  "versioning",
  "versions",
]);

function operationOf(method: string, key: string, query: Record<string, string | string[]>): Operation {
  const subresource = Object.keys(query).find((name) => SUBRESOURCES.has(name));
  if (subresource !== undefined) throw notImplemented(`The ?${subresource.slice(0, 32)} subresource`);
  if (key === "") {
    if (method === "GET" && query["list-type"] === "2") return "ListObjectsV2";
    if (method === "GET") throw notImplemented("ListObjects (version 1)");
    throw notImplemented(`${method.slice(0, 16)} on a bucket`);
  }
  if (method === "GET") return "GetObject";
  if (method === "HEAD") return "HeadObject";
  if (method === "PUT") {
    if (query.partNumber !== undefined) throw notImplemented("UploadPart");
    return "PutObject";
  }
  throw notImplemented(`${method.slice(0, 16)} on an object`);
}

/** `/bucket/key…` (path style) → bucket and decoded key; undefined when the path is not valid. */
function parsePath(path: string): { bucket: string; key: string } | undefined {
  const rest = path.startsWith("/") ? path.slice(1) : path;
  const slash = rest.indexOf("/");
  try {
    return {
      bucket: decodeURIComponent(slash < 0 ? rest : rest.slice(0, slash)),
      key: slash < 0 ? "" : decodeURIComponent(rest.slice(slash + 1)),
    };
  } catch {
    return undefined;
  }
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** `Range: bytes=a-b | a- | -n` → inclusive bounds, undefined without a (usable) header. Throws InvalidRange. */
function rangeOf(header: string | undefined, size: number): { start: number; end: number } | undefined {
  const match = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null) return undefined;
  const [, from = "", to = ""] = match;
  if (from === "" && to === "") return undefined;
  const unsatisfiable = () =>
    new S3Error(416, "InvalidRange", "The requested range is not satisfiable", {
      RangeRequested: header as string,
      ActualObjectSize: String(size),
    });
  if (from === "") {
    const suffix = Number(to);
    if (suffix === 0 || size === 0) throw unsatisfiable();
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(from);
  if (start >= size) throw unsatisfiable();
  return { start, end: to === "" ? size - 1 : Math.min(Number(to), size - 1) };
}

/** Bytes `start..end` (inclusive) of a stream. */
async function* sliced(source: Readable, start: number, end: number): AsyncGenerator<Buffer> {
  let offset = 0;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    const next = offset + chunk.length;
    if (next > start && offset <= end) yield chunk.subarray(Math.max(0, start - offset), end - offset + 1);
    offset = next;
    if (offset > end) break;
  }
  source.destroy();
}

function bodyOf(object: StoredObject, range?: { start: number; end: number }): Readable {
  if (Buffer.isBuffer(object.body))
    return Readable.from([range ? object.body.subarray(range.start, range.end + 1) : object.body]);
  const stream = object.body();
  return range ? Readable.from(sliced(stream, range.start, range.end)) : stream;
}

const listToken = (after: string, commonPrefix: boolean) =>
  Buffer.from(JSON.stringify({ after, commonPrefix })).toString("base64");

function parseListToken(token: string): { after: string; commonPrefix: boolean } {
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64").toString("utf8"));
    if (typeof parsed?.after === "string" && typeof parsed?.commonPrefix === "boolean") return parsed;
  } catch {
    // answered below
  }
  throw new S3Error(400, "InvalidArgument", "The continuation token provided is incorrect", {
    ArgumentName: "continuation-token",
  });
}

/** S3 in an emulator: see the top of this file. */
export function s3Service(core: EmulatorCore, store: S3Store, deps: ServiceDeps): EmulatorService {
  const requestIdOf = () => randomBytes(8).toString("hex").toUpperCase();

  function headersFor(requestId: string): Record<string, string> {
    return { "x-amz-request-id": requestId, "x-amz-id-2": randomBytes(48).toString("base64") };
  }

  function sendError(response: ServerResponse, method: string, requestId: string, error: S3Error): void {
    if (response.headersSent) {
      response.destroy();
      return;
    }
    // HEAD responses carry no body: the status is all a client learns.
    if (method === "HEAD") {
      response.writeHead(error.status, { ...headersFor(requestId), ...error.headers, "Content-Length": 0 });
      response.end();
      return;
    }
    const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${escapeXml(error.code)}</Code><Message>${escapeXml(error.message)}</Message>${Object.entries(
      error.fields,
    )
      .map(([name, value]) => `<${name}>${escapeXml(value)}</${name}>`)
      .join("")}<RequestId>${requestId}</RequestId></Error>`;
    response.writeHead(error.status, {
      ...headersFor(requestId),
      ...error.headers,
      "Content-Type": "application/xml",
      "Content-Length": Buffer.byteLength(body),
    });
    response.end(body);
  }

  function allowed(caller: Caller, action: string, resource: string, request: IncomingMessage, extra = {}) {
    return core.authorize(caller, action, resource, { "aws:SourceIp": sourceIp(request), ...extra }).allowed;
  }

  function objectHeaders(object: StoredObject): Record<string, string | number> {
    return {
      "Content-Type": object.contentType,
      ETag: object.etag,
      "Last-Modified": object.lastModified.toUTCString(),
      "Accept-Ranges": "bytes",
      // S3 encrypts every new object with SSE-S3 unless told otherwise.
      "x-amz-server-side-encryption": "AES256",
      ...(object.versionId ? { "x-amz-version-id": object.versionId } : {}),
      ...(object.retention
        ? {
            "x-amz-object-lock-mode": object.retention.mode,
            "x-amz-object-lock-retain-until-date": object.retention.until.toISOString(),
          }
        : {}),
    };
  }

  /** What every operation gets: the request, who made it, the bucket, the key. */
  interface Call {
    request: IncomingMessage;
    classified: ClassifiedRequest;
    response: ServerResponse;
    requestId: string;
    caller: Caller;
    bucket: InventoryBucket;
    key: string;
  }

  function getObject(call: Call, head: boolean): void {
    const { request, response, requestId, caller, bucket, key } = call;
    const { headers, query } = call.classified;
    if (!allowed(caller, "s3:GetObject", `arn:aws:s3:::${bucket.name}/${key}`, request)) throw accessDenied();
    const versionId = single(query.versionId);
    const object = versionId
      ? store.versions(bucket.name, key).find((version) => version.versionId === versionId)
      : store.get(bucket.name, key);
    if (!object) {
      // Without s3:ListBucket, S3 does not tell a missing key from a forbidden one.
      if (!allowed(caller, "s3:ListBucket", `arn:aws:s3:::${bucket.name}`, request)) throw accessDenied();
      throw versionId
        ? new S3Error(404, "NoSuchVersion", "The specified version does not exist.", {
            Key: key,
            VersionId: versionId,
          })
        : new S3Error(404, "NoSuchKey", "The specified key does not exist.", { Key: key });
    }
    const range = rangeOf(headers.range, object.size);
    const checksum =
      !range && headers["x-amz-checksum-mode"]?.toUpperCase() === "ENABLED"
        ? CHECKSUMS.find((algorithm) => object.checksums[algorithm] !== undefined)
        : undefined;
    const length = range ? range.end - range.start + 1 : object.size;
    response.writeHead(range ? 206 : 200, {
      ...headersFor(requestId),
      ...objectHeaders(object),
      "Content-Length": length,
      ...(range ? { "Content-Range": `bytes ${range.start}-${range.end}/${object.size}` } : {}),
      ...(checksum
        ? {
            [`x-amz-checksum-${checksum}`]: object.checksums[checksum] as string,
            "x-amz-checksum-type": "FULL_OBJECT",
          }
        : {}),
    });
    if (head) {
      response.end();
      return;
    }
    // Streamed with backpressure: a reader that stops reading stops the emulator reading the source.
    pipeline(bodyOf(object, range), response, () => undefined);
  }

  function putObject(call: Call, body: Buffer): void {
    const { request, response, requestId, caller, bucket, key } = call;
    const { headers } = call.classified;
    if (!allowed(caller, "s3:PutObject", `arn:aws:s3:::${bucket.name}/${key}`, request)) throw accessDenied();
    const md5Header = headers["content-md5"];
    if (md5Header !== undefined) {
      const given = Buffer.from(md5Header, "base64");
      if (given.length !== 16 || given.toString("base64") !== md5Header.trim())
        throw new S3Error(400, "InvalidDigest", "The Content-MD5 you specified is not valid.");
      if (!given.equals(createHash("md5").update(body).digest()))
        throw new S3Error(400, "BadDigest", "The Content-MD5 you specified did not match what we received.", {
          ExpectedDigest: md5Header,
          CalculatedDigest: createHash("md5").update(body).digest("base64"),
        });
    }
    const checksumHeaders = Object.keys(headers).filter((name) =>
      /^x-amz-checksum-(?!mode$|type$)/.test(name),
    );
    if (checksumHeaders.length > 1)
      throw new S3Error(
        400,
        "InvalidRequest",
        "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
      );
    const checksums: Partial<Record<ChecksumAlgorithm, string>> = {};
    const [checksumHeader] = checksumHeaders;
    if (checksumHeader !== undefined) {
      const algorithm = checksumHeader.slice("x-amz-checksum-".length) as ChecksumAlgorithm;
      if (!CHECKSUMS.includes(algorithm)) throw notImplemented(`The ${algorithm.slice(0, 16)} checksum`);
      const computed = checksumOf(algorithm, body);
      if (computed !== headers[checksumHeader])
        throw new S3Error(
          400,
          "BadDigest",
          `The ${algorithm.toUpperCase()} you specified did not match the calculated checksum.`,
        );
      checksums[algorithm] = computed;
    }
    const sdkAlgorithm = headers["x-amz-sdk-checksum-algorithm"]?.toLowerCase();
    if (sdkAlgorithm !== undefined && checksumHeader !== `x-amz-checksum-${sdkAlgorithm}`)
      throw new S3Error(
        400,
        "InvalidRequest",
        "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.",
      );

    const lockMode = headers["x-amz-object-lock-mode"];
    const lockUntil = headers["x-amz-object-lock-retain-until-date"];
    let retention: StoredObject["retention"];
    if (lockMode !== undefined || lockUntil !== undefined) {
      if (!bucket.objectLock)
        throw new S3Error(400, "InvalidRequest", "Bucket is missing Object Lock Configuration");
      if (lockMode === undefined || lockUntil === undefined)
        throw new S3Error(
          400,
          "InvalidArgument",
          "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied",
        );
      if (lockMode !== "COMPLIANCE" && lockMode !== "GOVERNANCE")
        throw new S3Error(400, "InvalidArgument", "Unknown wormMode directive.");
      const until = new Date(lockUntil);
      if (Number.isNaN(until.getTime()) || until.getTime() <= core.now().getTime())
        throw new S3Error(400, "InvalidArgument", "The retain until date must be in the future!");
      if (!allowed(caller, "s3:PutObjectRetention", `arn:aws:s3:::${bucket.name}/${key}`, request))
        throw accessDenied();
      retention = { mode: lockMode, until };
    }
    // S3 User Guide, "Using S3 Object Lock": uploads under a retention period must prove their integrity.
    if (bucket.objectLock && md5Header === undefined && checksumHeader === undefined)
      throw new S3Error(
        400,
        "InvalidRequest",
        "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters",
      );
    const object = store.put(bucket.name, key, body, {
      contentType: headers["content-type"] ?? "binary/octet-stream",
      checksums,
      ...(retention ? { retention } : {}),
    });
    response.writeHead(200, {
      ...headersFor(requestId),
      ETag: object.etag,
      "x-amz-server-side-encryption": "AES256",
      ...(object.versionId ? { "x-amz-version-id": object.versionId } : {}),
      ...(checksumHeader
        ? { [checksumHeader]: checksums[checksumHeader.slice(15) as ChecksumAlgorithm] }
        : {}),
      "Content-Length": 0,
    });
    response.end();
  }

  function listObjects(call: Call): void {
    const { request, response, requestId, caller, bucket } = call;
    const { query } = call.classified;
    const prefix = single(query.prefix) ?? "";
    const delimiter = single(query.delimiter) ?? "";
    const encoding = single(query["encoding-type"]);
    if (encoding !== undefined && encoding !== "url")
      throw new S3Error(400, "InvalidArgument", "Invalid Encoding Method specified in Request", {
        ArgumentName: "encoding-type",
      });
    const maxKeysText = single(query["max-keys"]);
    const maxKeys = maxKeysText === undefined ? MAX_LIST_KEYS : Number(maxKeysText);
    if (!/^\d{1,10}$/.test(maxKeysText ?? "0") || !Number.isSafeInteger(maxKeys))
      throw new S3Error(400, "InvalidArgument", "Provided max-keys not an integer or within integer range", {
        ArgumentName: "max-keys",
      });
    const continuation = single(query["continuation-token"]);
    const startAfter = single(query["start-after"]);
    if (
      !allowed(caller, "s3:ListBucket", `arn:aws:s3:::${bucket.name}`, request, {
        "s3:prefix": prefix,
        ...(delimiter ? { "s3:delimiter": delimiter } : {}),
        "s3:max-keys": Math.min(maxKeys, MAX_LIST_KEYS),
      })
    )
      throw accessDenied();
    const position = continuation
      ? parseListToken(continuation)
      : startAfter
        ? { after: startAfter, commonPrefix: false }
        : undefined;
    const after = position ? Buffer.from(position.after) : undefined;
    const entries: ({ object: StoredObject } | { commonPrefix: string })[] = [];
    const seenPrefixes = new Set<string>();
    for (const object of store.list(bucket.name, prefix)) {
      if (after && Buffer.compare(Buffer.from(object.key), after) <= 0) continue;
      if (position?.commonPrefix && object.key.startsWith(position.after)) continue;
      const cut = delimiter ? object.key.indexOf(delimiter, prefix.length) : -1;
      if (cut >= 0) {
        const commonPrefix = object.key.slice(0, cut + delimiter.length);
        if (!seenPrefixes.has(commonPrefix)) {
          seenPrefixes.add(commonPrefix);
          entries.push({ commonPrefix });
        }
      } else entries.push({ object });
    }
    const limit = Math.min(maxKeys, MAX_LIST_KEYS);
    const page = entries.slice(0, limit);
    const truncated = entries.length > page.length;
    const last = page.at(-1);
    const encode = (text: string) => (encoding === "url" ? encodeURIComponent(text) : text);
    const children: XmlObject = {
      Name: bucket.name,
      Prefix: encode(prefix),
      ...(delimiter ? { Delimiter: encode(delimiter) } : {}),
      MaxKeys: limit,
      ...(encoding ? { EncodingType: encoding } : {}),
      KeyCount: page.length,
      IsTruncated: truncated,
      Contents: page.flatMap((entry) =>
        "object" in entry
          ? [
              {
                Key: encode(entry.object.key),
                LastModified: entry.object.lastModified.toISOString(),
                ETag: entry.object.etag,
                ChecksumAlgorithm: CHECKSUMS.find((name) => entry.object.checksums[name])?.toUpperCase(),
                Size: entry.object.size,
                StorageClass: "STANDARD",
              },
            ]
          : [],
      ),
      CommonPrefixes: page.flatMap((entry) =>
        "commonPrefix" in entry ? [{ Prefix: encode(entry.commonPrefix) }] : [],
      ),
      ...(continuation ? { ContinuationToken: continuation } : {}),
      ...(truncated && last
        ? {
            NextContinuationToken:
              "object" in last ? listToken(last.object.key, false) : listToken(last.commonPrefix, true),
          }
        : {}),
      ...(startAfter ? { StartAfter: encode(startAfter) } : {}),
    };
    const body = xmlDocument("ListBucketResult", S3_XMLNS, children);
    response.writeHead(200, {
      ...headersFor(requestId),
      "Content-Type": "application/xml",
      "Content-Length": Buffer.byteLength(body),
    });
    response.end(body);
  }

  return {
    async handle(request: IncomingMessage, body: Buffer, response: ServerResponse): Promise<boolean> {
      const classified = classify(request, body);
      const target = parsePath(classified.path);
      // Signed for s3, or unsigned to a bucket that exists: anything else belongs to another service.
      if (classified.scope === undefined) {
        if (target === undefined || target.bucket === "" || !store.bucket(target.bucket)) return false;
      } else if (classified.scope.service !== "s3") return false;
      const { method, headers, query } = classified;
      const requestId = requestIdOf();
      try {
        if (target === undefined) throw new S3Error(400, "InvalidURI", "Couldn't parse the specified URI.");
        const presigned = headers.authorization === undefined && query["X-Amz-Signature"] !== undefined;
        if (classified.scope === undefined) {
          throw headers.authorization === undefined && !presigned
            ? accessDenied()
            : new S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed.");
        }
        if (!presigned) {
          const payload = headers["x-amz-content-sha256"];
          if (payload === undefined)
            throw new S3Error(
              400,
              "InvalidRequest",
              "Missing required header for this request: x-amz-content-sha256",
            );
          if (payload.startsWith("STREAMING-"))
            throw notImplemented("aws-chunked upload (STREAMING-… payload)");
        }
        const auth = core.authenticate({
          method,
          host: headers.host ?? "",
          path: classified.path,
          query: classified.query as Record<string, string>,
          headers,
          body,
          presigned,
        });
        if (target.bucket === "") throw notImplemented("ListBuckets");
        const operation = operationOf(method, target.key, query);
        const bucket = store.bucket(target.bucket);
        if (!bucket) throw noSuchBucket(target.bucket);
        // The emulator's one endpoint stands for every regional one: a request signed for another region
        // is one sent to the wrong regional endpoint, which S3 answers with a redirect naming the bucket's.
        if (auth.region !== bucket.region)
          throw new S3Error(
            301,
            "PermanentRedirect",
            "The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.",
            { Bucket: bucket.name, Endpoint: `${bucket.name}.s3.${bucket.region}.amazonaws.com` },
            { "x-amz-bucket-region": bucket.region },
          );
        if (Buffer.byteLength(target.key) > MAX_KEY_BYTES)
          throw new S3Error(400, "KeyTooLongError", "Your key is too long");
        const fault = await deps.inject(operation, "s3");
        if (fault !== undefined)
          throw fault.code === "ThrottlingException"
            ? new S3Error(503, "SlowDown", "Please reduce your request rate.")
            : new S3Error(500, "InternalError", "We encountered an internal error. Please try again.");
        // No bucket policies: another account's bucket is out of reach whatever the caller's own policies say.
        if (auth.caller.accountId !== bucket.account) throw accessDenied();
        const call: Call = {
          request,
          classified,
          response,
          requestId,
          caller: auth.caller,
          bucket,
          key: target.key,
        };
        if (operation === "ListObjectsV2") listObjects(call);
        else if (operation === "PutObject") putObject(call, body);
        else getObject(call, operation === "HeadObject");
      } catch (error) {
        if (error instanceof S3Error) sendError(response, method, requestId, error);
        else if (error instanceof AuthFailure)
          sendError(response, method, requestId, new S3Error(error.status, error.code, error.message));
        else {
          process.stderr.write(`emulator: s3 request failed: ${(error as Error)?.stack ?? error}\n`);
          sendError(
            response,
            method,
            requestId,
            new S3Error(500, "InternalError", "We encountered an internal error. Please try again."),
          );
        }
      }
      return true;
    },
  };
}
