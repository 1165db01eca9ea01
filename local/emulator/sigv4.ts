/**
 * SigV4 verification for the emulator: header-signed requests (`Authorization: AWS4-HMAC-SHA256 …`) and
 * presigned URLs (`X-Amz-Algorithm`, `-Credential`, `-Date`, `-Expires`, `-SignedHeaders`, `-Signature`,
 * `-Security-Token` in the query).
 *
 * The canonical request is built by `@smithy/signature-v4` itself (the SDK's own canonicalization of path,
 * query and headers), restricted to exactly the headers the client said it signed. The string to sign and
 * the HMAC chain are then computed synchronously with node:crypto, because `EmulatorCore.authenticate` is
 * synchronous and the smithy signer only offers a Promise API; tests cross-check both directions against
 * the real SDK signer and the AWS CLI's OpenTunnel test vector (protocols.md §1.2).
 */

import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { HttpRequest } from "@smithy/protocol-http";
import { getCanonicalHeaders, SignatureV4Base } from "@smithy/signature-v4";
import { Sha256 as NodeSha256 } from "../../core/aws/sha256.ts";
import { AuthFailure } from "./contract.ts";

const ALGORITHM = "AWS4-HMAC-SHA256";
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/** SigV4's limit on X-Amz-Expires (one week). */
/** SHA-256 / HMAC in the shape `@smithy/signature-v4` wants (the broker's own implementation). */
export { NodeSha256 };

export const MAX_PRESIGN_SECONDS = 604_800;

/** Exposes smithy's canonical-request builder (protected on the base class). */
class CanonicalRequestBuilder extends SignatureV4Base {
  constructor(service: string, region: string) {
    super({
      service,
      region,
      credentials: { accessKeyId: "", secretAccessKey: "" },
      sha256: NodeSha256,
      applyChecksum: false,
      // S3 signs the path as sent (encoded once, not normalized); every other service double-encodes it.
      uriEscapePath: service !== "s3",
    });
  }
  build(request: HttpRequest, headers: Record<string, string>, payloadHash: string): string {
    return this.createCanonicalRequest(request, headers, payloadHash);
  }
}

/** How a protocol spells authentication failures. */
export type ErrorStyle = "json" | "query" | "ec2" | "s3";

/**
 * EC2 and S3 have their own codes; STS and IAM share the query ones; JSON services (CloudTrail, EIC) the
 * JSON ones.
 */
export function errorStyleFor(service: string | undefined): ErrorStyle {
  if (service === "ec2") return "ec2";
  if (service === "s3") return "s3";
  if (service === "sts" || service === "iam") return "query";
  return "json";
}

export type AuthProblem =
  | "missing"
  | "incomplete"
  | "unknown-key"
  | "bad-token"
  | "signature"
  | "payload-hash"
  | "skew"
  | "url-expired"
  | "expires-range"
  | "token-expired";

const INVALID_TOKEN = "The security token included in the request is invalid.";
const MISMATCH =
  "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

// [status, code, default message]; the codes the SDKs classify as clock-skew errors (SignatureDoesNotMatch,
// InvalidSignatureException, RequestExpired, AuthFailure) are what real services answer to skewed clocks.
const CODES: Record<ErrorStyle, Record<AuthProblem, [number, string, string?]>> = {
  json: {
    missing: [403, "MissingAuthenticationTokenException", "Missing Authentication Token"],
    incomplete: [400, "IncompleteSignatureException"],
    "unknown-key": [403, "UnrecognizedClientException", INVALID_TOKEN],
    "bad-token": [403, "UnrecognizedClientException", INVALID_TOKEN],
    signature: [403, "InvalidSignatureException", MISMATCH],
    "payload-hash": [403, "InvalidSignatureException", MISMATCH],
    skew: [403, "InvalidSignatureException"],
    "url-expired": [403, "InvalidSignatureException"],
    "expires-range": [400, "AuthorizationQueryParametersError"],
    "token-expired": [403, "ExpiredTokenException", "The security token included in the request is expired"],
  },
  query: {
    missing: [403, "MissingAuthenticationToken", "Request is missing Authentication Token"],
    incomplete: [400, "IncompleteSignature"],
    "unknown-key": [403, "InvalidClientTokenId", INVALID_TOKEN],
    "bad-token": [403, "InvalidClientTokenId", INVALID_TOKEN],
    signature: [403, "SignatureDoesNotMatch", MISMATCH],
    "payload-hash": [403, "SignatureDoesNotMatch", MISMATCH],
    skew: [403, "SignatureDoesNotMatch"],
    "url-expired": [403, "SignatureDoesNotMatch"],
    "expires-range": [400, "AuthorizationQueryParametersError"],
    "token-expired": [403, "ExpiredToken", "The security token included in the request is expired"],
  },
  ec2: {
    missing: [401, "AuthFailure", "AWS was not able to validate the provided access credentials"],
    incomplete: [400, "IncompleteSignature"],
    "unknown-key": [401, "AuthFailure", "AWS was not able to validate the provided access credentials"],
    "bad-token": [401, "AuthFailure", "AWS was not able to validate the provided access credentials"],
    signature: [401, "AuthFailure", "AWS was not able to validate the provided access credentials"],
    "payload-hash": [401, "AuthFailure", "AWS was not able to validate the provided access credentials"],
    skew: [400, "RequestExpired"],
    "url-expired": [400, "RequestExpired"],
    "expires-range": [400, "AuthorizationQueryParametersError"],
    "token-expired": [400, "RequestExpired", "Request has expired."],
  },
  // S3's REST-XML codes (S3 API Reference, "Error responses").
  s3: {
    missing: [403, "AccessDenied", "Access Denied"],
    incomplete: [400, "AuthorizationHeaderMalformed"],
    "unknown-key": [
      403,
      "InvalidAccessKeyId",
      "The AWS Access Key Id you provided does not exist in our records.",
    ],
    "bad-token": [400, "InvalidToken", "The provided token is malformed or otherwise invalid."],
    signature: [
      403,
      "SignatureDoesNotMatch",
      "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
    ],
    "payload-hash": [
      400,
      "XAmzContentSHA256Mismatch",
      "The provided 'x-amz-content-sha256' header does not match what was computed.",
    ],
    skew: [
      403,
      "RequestTimeTooSkewed",
      "The difference between the request time and the current time is too large.",
    ],
    "url-expired": [403, "AccessDenied", "Request has expired"],
    "expires-range": [400, "AuthorizationQueryParametersError"],
    "token-expired": [400, "ExpiredToken", "The provided token has expired."],
  },
};

/** The AuthFailure a service of `style` answers for `problem`. */
export function authFailure(style: ErrorStyle, problem: AuthProblem, detail?: string): AuthFailure {
  const [status, code, fixed] = CODES[style][problem];
  return new AuthFailure(status, code, fixed ?? detail ?? code);
}

/** What the credential store knows about an access key. */
export interface SigningKey {
  secretAccessKey: string;
  /** STS session keys only: the token requests must carry. */
  sessionToken?: string;
  /** STS session keys only. */
  expiresAt?: Date;
}

export interface SignedRequest {
  method: string;
  /** The Host the client signed (may differ from the TCP peer, e.g. an EICE DNS name). */
  host: string;
  /** The path as sent on the wire (still percent-encoded), without the query. */
  path: string;
  /** Decoded query parameters; repeated keys as arrays. */
  query: Record<string, string | string[]>;
  /** Lower-case header names. */
  headers: Record<string, string | string[] | undefined>;
  body: Uint8Array | string | undefined;
  presigned: boolean;
  /** Presigned only: the largest X-Amz-Expires accepted. */
  maxExpiresSeconds?: number;
}

export interface VerifyOptions {
  now: Date;
  lookup(accessKeyId: string): SigningKey | undefined;
  /** Allowed clock difference for header-signed requests (AWS: 5 minutes). */
  maxSkewSeconds?: number;
  /** Force an error style; otherwise chosen from the credential scope's service. */
  style?: ErrorStyle;
}

export interface Verified {
  accessKeyId: string;
  region: string;
  service: string;
  /** X-Amz-Date. */
  signedAt: Date;
}

/** The parts of a SigV4 credential scope, or undefined. */
export interface CredentialScope {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
}

export function parseCredential(text: string): CredentialScope | undefined {
  const parts = text.split("/");
  if (parts.length !== 5 || parts[4] !== "aws4_request") return undefined;
  const [accessKeyId = "", date = "", region = "", service = ""] = parts;
  if (accessKeyId === "" || !/^\d{8}$/.test(date) || region === "" || service === "") return undefined;
  return { accessKeyId, date, region, service };
}

/** Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` into its fields. */
export function parseAuthorization(header: string): Record<string, string> | undefined {
  const trimmed = header.trim();
  if (!trimmed.startsWith(`${ALGORITHM} `)) return undefined;
  const fields: Record<string, string> = {};
  for (const part of trimmed.slice(ALGORITHM.length + 1).split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    fields[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return fields;
}

/** The credential scope a request claims (header or query), without verifying anything. */
export function claimedScope(request: {
  headers: Record<string, string | string[] | undefined>;
  query: Record<string, string | string[]>;
}): CredentialScope | undefined {
  const header = request.headers.authorization;
  if (typeof header === "string") {
    const credential = parseAuthorization(header)?.Credential;
    return credential === undefined ? undefined : parseCredential(credential);
  }
  const credential = request.query["X-Amz-Credential"];
  return typeof credential === "string" ? parseCredential(credential) : undefined;
}

function parseAmzDate(text: string): Date | undefined {
  const m = AMZ_DATE.exec(text);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  const date = new Date(Date.UTC(y as number, (mo as number) - 1, d, h, mi, s));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

const amzDate = (date: Date) =>
  date
    .toISOString()
    .replace(/\.\d{3}Z$/, "Z")
    .replace(/[-:]/g, "");

function sameSecret(a: string, b: string): boolean {
  const left = Buffer.from(a, "utf8");
  const right = Buffer.from(b, "utf8");
  // Length is not secret here (tokens and signatures have public formats); contents are compared in constant time.
  return left.length === right.length && timingSafeEqual(left, right);
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? undefined : value;
}

function sha256Hex(data: Uint8Array | string | undefined): string {
  if (data === undefined || data.length === 0) return EMPTY_SHA256;
  return createHash("sha256").update(data).digest("hex");
}

/** The SigV4 signature of `canonicalRequest`, computed from the secret (the derived-key HMAC chain). */
export function signCanonicalRequest(
  canonicalRequest: string,
  secret: string,
  amzDateText: string,
  scope: CredentialScope,
): string {
  const scopeText = `${scope.date}/${scope.region}/${scope.service}/aws4_request`;
  const stringToSign = `${ALGORITHM}\n${amzDateText}\n${scopeText}\n${sha256Hex(canonicalRequest)}`;
  let key: Buffer = createHmac("sha256", `AWS4${secret}`).update(scope.date).digest();
  for (const part of [scope.region, scope.service, "aws4_request"])
    key = createHmac("sha256", key).update(part).digest();
  return createHmac("sha256", key).update(stringToSign).digest("hex");
}

/** Canonical request of `request` as smithy builds it, over exactly `signedHeaders`. */
export function canonicalRequestOf(
  request: SignedRequest,
  scope: CredentialScope,
  signedHeaders: string[],
  payloadHash: string,
): string {
  const headers: Record<string, string> = {};
  for (const name of signedHeaders) {
    const value = name === "host" ? request.host : request.headers[name];
    if (value === undefined) continue;
    headers[name] = Array.isArray(value) ? value.join(",") : value;
  }
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(request.query)) {
    if (request.presigned && name === "X-Amz-Signature") continue;
    query[name] = value;
  }
  const http = new HttpRequest({
    method: request.method.toUpperCase(),
    protocol: "https:",
    hostname: request.host,
    path: request.path,
    query,
    headers,
  });
  const canonicalHeaders = getCanonicalHeaders(http, undefined, new Set(signedHeaders));
  return new CanonicalRequestBuilder(scope.service, scope.region).build(http, canonicalHeaders, payloadHash);
}

/**
 * Verifies a SigV4 request (header-signed or presigned) against the key store. Checks, in order:
 * well-formedness, known key, session token, signature (constant-time), credential-scope date, clock skew
 * (header-signed) or X-Amz-Expires window (presigned), session expiry. Throws AuthFailure.
 */
export function verifySigV4(request: SignedRequest, options: VerifyOptions): Verified {
  const { now } = options;
  const maxSkewMs = (options.maxSkewSeconds ?? 300) * 1000;
  let style = options.style ?? "json";
  const fail = (problem: AuthProblem, detail?: string): never => {
    throw authFailure(style, problem, detail);
  };

  let credentialText: string | undefined;
  let signedHeadersText: string | undefined;
  let signature: string | undefined;
  let dateText: string | undefined;
  let expiresText: string | undefined;
  let token: string | undefined;

  if (request.presigned) {
    const q = request.query;
    const authKeys = [
      "X-Amz-Algorithm",
      "X-Amz-Credential",
      "X-Amz-Date",
      "X-Amz-SignedHeaders",
      "X-Amz-Signature",
    ];
    if (authKeys.every((key) => q[key] === undefined)) fail("missing");
    credentialText = single(q["X-Amz-Credential"]);
    const scope = credentialText === undefined ? undefined : parseCredential(credentialText);
    if (options.style === undefined && scope !== undefined) style = errorStyleFor(scope.service);
    if (single(q["X-Amz-Algorithm"]) !== ALGORITHM)
      fail("incomplete", `X-Amz-Algorithm only supports "${ALGORITHM}"`);
    signedHeadersText = single(q["X-Amz-SignedHeaders"]);
    signature = single(q["X-Amz-Signature"]);
    dateText = single(q["X-Amz-Date"]);
    expiresText = single(q["X-Amz-Expires"]);
    if (Array.isArray(q["X-Amz-Security-Token"])) fail("incomplete", "X-Amz-Security-Token is repeated");
    token = single(q["X-Amz-Security-Token"]);
    if (expiresText === undefined) fail("incomplete", "X-Amz-Expires is required");
  } else {
    const header = request.headers.authorization;
    if (header === undefined) fail("missing");
    if (typeof header !== "string") return fail("incomplete", "Only one Authorization header is allowed");
    const fields = parseAuthorization(header);
    if (fields === undefined)
      return fail("incomplete", `Authorization header requires the ${ALGORITHM} algorithm`);
    credentialText = fields.Credential;
    const scope = credentialText === undefined ? undefined : parseCredential(credentialText);
    if (options.style === undefined && scope !== undefined) style = errorStyleFor(scope.service);
    signedHeadersText = fields.SignedHeaders;
    signature = fields.Signature;
    const date = request.headers["x-amz-date"];
    dateText = typeof date === "string" ? date : undefined;
    const tokenHeader = request.headers["x-amz-security-token"];
    if (Array.isArray(tokenHeader)) fail("incomplete", "X-Amz-Security-Token is repeated");
    token = typeof tokenHeader === "string" ? tokenHeader : undefined;
  }

  const missing = [
    credentialText === undefined && "Credential",
    signedHeadersText === undefined && "SignedHeaders",
    signature === undefined && "Signature",
    dateText === undefined && (request.presigned ? "X-Amz-Date" : "X-Amz-Date header"),
  ].filter(Boolean);
  if (missing.length > 0) fail("incomplete", `The request is missing ${missing.join(", ")}`);
  const scope = parseCredential(credentialText as string);
  if (scope === undefined)
    return fail("incomplete", `Credential must be <AccessKeyId>/<yyyymmdd>/<region>/<service>/aws4_request`);
  const signedAt = parseAmzDate(dateText as string);
  if (signedAt === undefined) return fail("incomplete", `X-Amz-Date must be in the form yyyyMMddTHHmmssZ`);
  const signedHeaders = (signedHeadersText as string).split(";");
  if (!signedHeaders.includes("host")) fail("incomplete", "SignedHeaders must include host");

  const key = options.lookup(scope.accessKeyId);
  if (key === undefined) return fail("unknown-key");
  if (
    key.sessionToken !== undefined
      ? token === undefined || !sameSecret(token, key.sessionToken)
      : token !== undefined
  )
    fail("bad-token");

  // S3 takes UNSIGNED-PAYLOAD (and presigned URLs never sign the payload); for every other service a declared
  // payload hash the body does not have is a mismatch.
  const s3 = scope.service === "s3";
  let payloadHash = s3 && request.presigned ? UNSIGNED_PAYLOAD : sha256Hex(request.body);
  const contentSha = request.presigned ? undefined : request.headers["x-amz-content-sha256"];
  if (s3 && contentSha === UNSIGNED_PAYLOAD) payloadHash = UNSIGNED_PAYLOAD;
  else if (contentSha !== undefined && contentSha !== payloadHash) fail("payload-hash");
  const canonical = canonicalRequestOf(request, scope, signedHeaders, payloadHash);
  const expected = signCanonicalRequest(canonical, key.secretAccessKey, dateText as string, scope);
  if (!sameSecret((signature as string).toLowerCase(), expected)) fail("signature");
  if (scope.date !== (dateText as string).slice(0, 8)) {
    fail(
      "signature",
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${scope.date}' != '${(dateText as string).slice(0, 8)}'`,
    );
  }

  const nowMs = now.getTime();
  if (request.presigned) {
    const expires = /^\d{1,7}$/.test(expiresText as string) ? Number(expiresText) : Number.NaN;
    const limit = Math.min(MAX_PRESIGN_SECONDS, request.maxExpiresSeconds ?? MAX_PRESIGN_SECONDS);
    if (!(expires >= 1 && expires <= limit))
      fail(
        "expires-range",
        `X-Amz-Expires must be between 1 and ${limit} seconds, not ${String(expiresText).slice(0, 16)}`,
      );
    if (signedAt.getTime() - nowMs > maxSkewMs) {
      fail(
        "skew",
        `Signature not yet current: ${dateText} is still later than ${amzDate(new Date(nowMs + maxSkewMs))} (${amzDate(now)} + 5 min.)`,
      );
    }
    if (signedAt.getTime() + expires * 1000 < nowMs) {
      fail(
        "url-expired",
        `Signature expired: ${dateText} + ${expires} seconds is now earlier than ${amzDate(now)}`,
      );
    }
  } else if (Math.abs(signedAt.getTime() - nowMs) > maxSkewMs) {
    fail(
      "skew",
      signedAt.getTime() < nowMs
        ? `Signature expired: ${dateText} is now earlier than ${amzDate(new Date(nowMs - maxSkewMs))} (${amzDate(now)} - 5 min.)`
        : `Signature not yet current: ${dateText} is still later than ${amzDate(new Date(nowMs + maxSkewMs))} (${amzDate(now)} + 5 min.)`,
    );
  }
  if (key.expiresAt !== undefined && key.expiresAt.getTime() <= nowMs) fail("token-expired");

  return { accessKeyId: scope.accessKeyId, region: scope.region, service: scope.service, signedAt };
}
