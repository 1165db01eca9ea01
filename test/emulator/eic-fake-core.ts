/**
 * Test doubles for the EIC/EICE emulator services while the real core is elsewhere: a small
 * `EmulatorCore` (real SigV4 verification with @smithy/signature-v4, a minimal IAM evaluator, a movable
 * clock, a recorded trail, one-shot faults), an HTTP server that mounts services like the emulator does,
 * a presigner that builds OpenTunnel URLs exactly like the AWS CLI, and `ssh-keygen` public keys.
 */

import { execFileSync } from "node:child_process";
import { createHash, createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import {
  AuthFailure,
  type Caller,
  type ConditionContext,
  type Decision,
  type EmulatorCore,
  type EmulatorService,
  type Inventory,
  type TrailInput,
} from "../../local/emulator/contract.ts";
import { NodeSha256 } from "../../local/emulator/sigv4.ts";

// ---------------------------------------------------------------------------------------------------------
// A minimal IAM evaluator: enough condition operators to check what the services put in the context.

type ConditionValue = string | number | (string | number)[];
export interface Statement {
  Effect: "Allow" | "Deny";
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, ConditionValue>>;
}
export interface PolicyDocument {
  Version?: string;
  Statement: Statement[];
}

const list = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

function glob(pattern: string, value: string, ignoreCase: boolean): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${source}$`, ignoreCase ? "i" : "").test(value);
}

function ipv4ToInt(ip: string): number | undefined {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + p, 0);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split("/");
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  const a = ipv4ToInt(ip);
  const b = ipv4ToInt(base ?? "");
  if (a === undefined || b === undefined) return false;
  const size = 2 ** (32 - bits);
  return Math.floor(a / size) === Math.floor(b / size);
}

function conditionHolds(
  operator: string,
  expected: ConditionValue,
  actual: string | number | undefined,
): boolean {
  if (actual === undefined) return false;
  const values = list(expected).map(String);
  const text = String(actual);
  switch (operator) {
    case "StringEquals":
      return values.includes(text);
    case "StringLike":
      return values.some((v) => glob(v, text, false));
    case "NumericEquals":
      return values.some((v) => Number(v) === Number(actual));
    case "NumericLessThanEquals":
      return values.some((v) => Number(actual) <= Number(v));
    case "NumericLessThan":
      return values.some((v) => Number(actual) < Number(v));
    case "IpAddress":
      return values.some((v) => inCidr(text, v));
    case "DateLessThan":
      return values.some((v) => Date.parse(text) < Date.parse(v));
    case "DateGreaterThan":
      return values.some((v) => Date.parse(text) > Date.parse(v));
    default:
      throw new Error(`fake IAM: unsupported condition operator ${operator}`);
  }
}

/** "allow", "deny" (explicit) or "none" for one set of policies. */
export function evaluate(
  policies: PolicyDocument[],
  action: string,
  resource: string,
  context: ConditionContext,
): "allow" | "deny" | "none" {
  let allowed = false;
  for (const policy of policies) {
    for (const statement of policy.Statement) {
      if (!list(statement.Action).some((a) => glob(a, action, true))) continue;
      if (!list(statement.Resource).some((r) => glob(r, resource, false))) continue;
      const conditions = Object.entries(statement.Condition ?? {});
      const holds = conditions.every(([operator, keys]) =>
        Object.entries(keys).every(([key, expected]) => conditionHolds(operator, expected, context[key])),
      );
      if (!holds) continue;
      if (statement.Effect === "Deny") return "deny";
      allowed = true;
    }
  }
  return allowed ? "allow" : "none";
}

// ---------------------------------------------------------------------------------------------------------
// The fake core

export interface FakePrincipal {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  caller: Caller;
  policies: PolicyDocument[];
  sessionPolicy?: PolicyDocument;
}

export interface FakeCore extends EmulatorCore {
  trail: TrailInput[];
  /** What `authorize` was asked, newest last. */
  authorizations: { action: string; resource: string; context: ConditionContext }[];
  advance(ms: number): void;
  failNext(operation: string, fault: { status: number; code: string; message: string }): void;
  upstreams: Map<string, { host: string; port: number }>;
}

function credentialOf(text: string) {
  const [accessKeyId, date, region, service, terminator] = text.split("/");
  if (terminator !== "aws4_request" || !accessKeyId || !date || !region || !service) return undefined;
  return { accessKeyId, date, region, service };
}

function parseAmzDate(text: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (m === null) throw new AuthFailure(400, "IncompleteSignature", "X-Amz-Date is malformed");
  return new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
}

const rfc3986 = (text: string) =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const sha256Hex = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");
const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data).digest();

/** SigV4 signature (hex) of a request, computed synchronously (the contract's authenticate is sync). */
export function sigv4Signature(input: {
  secretAccessKey: string;
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  signedHeaders: string[];
  payloadHash: string;
  amzDate: string;
  scope: { date: string; region: string; service: string };
}): string {
  const canonicalQuery = Object.entries(input.query)
    .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const canonicalHeaders = [...input.signedHeaders]
    .sort()
    .map((name) => `${name}:${(input.headers[name] ?? "").trim().replace(/\s+/g, " ")}\n`)
    .join("");
  const canonicalPath = input.path.split("/").map(rfc3986).join("/");
  const canonicalRequest = [
    input.method,
    canonicalPath,
    canonicalQuery,
    canonicalHeaders,
    [...input.signedHeaders].sort().join(";"),
    input.payloadHash,
  ].join("\n");
  const scope = `${input.scope.date}/${input.scope.region}/${input.scope.service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", input.amzDate, scope, sha256Hex(canonicalRequest)].join("\n");
  const key = hmac(
    hmac(
      hmac(hmac(`AWS4${input.secretAccessKey}`, input.scope.date), input.scope.region),
      input.scope.service,
    ),
    "aws4_request",
  );
  return createHmac("sha256", key).update(stringToSign).digest("hex");
}

export function fakeCore(input: {
  inventory: Inventory;
  principals: FakePrincipal[];
  start?: Date;
  upstreams?: Record<string, { host: string; port: number }>;
}): FakeCore {
  let now = (input.start ?? new Date("2026-03-01T12:00:00Z")).getTime();
  const faults = new Map<string, { status: number; code: string; message: string }>();
  const trail: TrailInput[] = [];
  const authorizations: FakeCore["authorizations"] = [];
  const upstreams = new Map(Object.entries(input.upstreams ?? {}));
  const principal = (accessKeyId: string) => {
    const found = input.principals.find((p) => p.accessKeyId === accessKeyId);
    if (found === undefined) {
      throw new AuthFailure(
        403,
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
      );
    }
    return found;
  };
  const mismatch = () =>
    new AuthFailure(
      403,
      "SignatureDoesNotMatch",
      "The request signature we calculated does not match the signature you provided.",
    );

  return {
    trail,
    authorizations,
    upstreams,
    inventory: input.inventory,
    now: () => new Date(now),
    advance(ms) {
      now += ms;
    },
    failNext(operation, fault) {
      faults.set(operation, fault);
    },
    faults: {
      async inject(operation) {
        const fault = faults.get(operation);
        faults.delete(operation);
        return fault;
      },
    },
    upstream: (name) => upstreams.get(name),
    recordTrail: (event) => {
      trail.push(event);
    },
    authenticate(request) {
      let credentialText: string;
      let signature: string;
      let signedHeaders: string[];
      let amzDate: string;
      let token: string | undefined;
      let query = request.query;
      let payloadHash: string;
      if (request.presigned) {
        const q = request.query;
        if (q["X-Amz-Algorithm"] !== "AWS4-HMAC-SHA256" || !q["X-Amz-Signature"] || !q["X-Amz-Credential"]) {
          throw new AuthFailure(403, "AccessDenied", "Missing or malformed SigV4 query parameters");
        }
        credentialText = q["X-Amz-Credential"];
        signature = q["X-Amz-Signature"];
        signedHeaders = (q["X-Amz-SignedHeaders"] ?? "").split(";");
        amzDate = q["X-Amz-Date"] ?? "";
        token = q["X-Amz-Security-Token"];
        const expires = Number(q["X-Amz-Expires"]);
        if (!Number.isInteger(expires) || expires < 1 || expires > (request.maxExpiresSeconds ?? 604_800)) {
          throw new AuthFailure(
            403,
            "AccessDenied",
            `X-Amz-Expires must be at most ${request.maxExpiresSeconds}`,
          );
        }
        if (now > parseAmzDate(amzDate).getTime() + expires * 1000) {
          throw new AuthFailure(403, "AccessDenied", "Request has expired");
        }
        query = Object.fromEntries(Object.entries(q).filter(([k]) => k !== "X-Amz-Signature"));
        payloadHash = sha256Hex("");
      } else {
        const m =
          /^AWS4-HMAC-SHA256 Credential=([^,]+), ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]+)$/.exec(
            request.headers.authorization ?? "",
          );
        if (m === null)
          throw new AuthFailure(403, "MissingAuthenticationToken", "Missing Authentication Token");
        credentialText = m[1] as string;
        signedHeaders = (m[2] as string).split(";");
        signature = m[3] as string;
        amzDate = request.headers["x-amz-date"] ?? "";
        token = request.headers["x-amz-security-token"];
        payloadHash = request.headers["x-amz-content-sha256"] ?? sha256Hex(request.body);
      }
      const credential = credentialOf(credentialText);
      if (credential === undefined)
        throw new AuthFailure(403, "IncompleteSignature", "Malformed credential scope");
      const p = principal(credential.accessKeyId);
      if ((p.sessionToken ?? "") !== (token ?? "")) {
        throw new AuthFailure(
          403,
          "InvalidClientTokenId",
          "The security token included in the request is invalid.",
        );
      }
      const expected = sigv4Signature({
        secretAccessKey: p.secretAccessKey,
        method: request.method,
        path: request.path,
        query,
        headers: { ...request.headers, host: request.host },
        signedHeaders,
        payloadHash,
        amzDate,
        scope: credential,
      });
      if (expected !== signature) throw mismatch();
      return { caller: p.caller, region: credential.region, service: credential.service };
    },
    authorize(caller, action, resource, context) {
      authorizations.push({ action, resource, context });
      const p = input.principals.find((x) => x.caller.arn === caller.arn);
      const full = { ...context, "aws:CurrentTime": new Date(now).toISOString() };
      const identity = evaluate(p?.policies ?? [], action, resource, full);
      const session =
        p?.sessionPolicy === undefined ? "allow" : evaluate([p.sessionPolicy], action, resource, full);
      const deny = (reason: "explicit-deny" | "no-allow" | "session-policy"): Decision => ({
        allowed: false,
        reason,
        message: reason,
      });
      if (identity === "deny" || session === "deny") return deny("explicit-deny");
      if (identity !== "allow") return deny("no-allow");
      if (session !== "allow") return deny("session-policy");
      return { allowed: true };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Serving services the way the emulator's server does

export interface TestServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** One HTTP port; each request goes to the first service that handles it, upgrades likewise. */
export async function serve(services: EmulatorService[]): Promise<TestServer> {
  const server = createServer((request: IncomingMessage, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", async () => {
      const body = Buffer.concat(chunks);
      for (const service of services) if (await service.handle(request, body, response)) return;
      response.writeHead(404).end("no service\n");
    });
  });
  server.on("upgrade", async (request, socket, head) => {
    for (const service of services) if (await service.upgrade?.(request, socket, head)) return;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    async close() {
      for (const service of services) await service.close?.();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// OpenTunnel URLs, presigned like the AWS CLI (protocols.md §1.1–1.2)

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/**
 * `wss://<dnsName>/openTunnel?…` signed by @smithy/signature-v4: service `ec2-instance-connect`, only the
 * `host` header signed, empty-body payload hash, X-Amz-Expires 60, operation parameters first in the CLI's
 * order and X-Amz-Signature last. Returns the path+query to request from the emulator with `Host: dnsName`.
 */
export async function presignOpenTunnel(input: {
  credentials: Credentials;
  region: string;
  dnsName: string;
  endpointId: string;
  remotePort: number | string;
  privateIpAddress: string;
  maxTunnelDuration?: number | string;
  signingDate?: Date;
  expiresIn?: number;
}): Promise<{ url: string; pathAndQuery: string }> {
  const params: Record<string, string> = {
    instanceConnectEndpointId: input.endpointId,
    remotePort: String(input.remotePort),
    privateIpAddress: input.privateIpAddress,
  };
  if (input.maxTunnelDuration !== undefined) params.maxTunnelDuration = String(input.maxTunnelDuration);
  const signer = new SignatureV4({
    credentials: input.credentials,
    region: input.region,
    service: "ec2-instance-connect",
    sha256: NodeSha256,
  });
  const signed = await signer.presign(
    new HttpRequest({
      method: "GET",
      protocol: "wss:",
      hostname: input.dnsName,
      path: "/openTunnel",
      query: { ...params },
      headers: { host: input.dnsName },
    }),
    {
      expiresIn: input.expiresIn ?? 60,
      ...(input.signingDate === undefined ? {} : { signingDate: input.signingDate }),
    },
  );
  const signedQuery = signed.query ?? {};
  const auth = Object.entries(signedQuery)
    .filter(([k]) => !(k in params) && k !== "X-Amz-Signature")
    .map(([k, v]): [string, string] => [k, String(v)]);
  const ordered: [string, string][] = [
    ...Object.entries(params),
    ...auth,
    ["X-Amz-Signature", String(signedQuery["X-Amz-Signature"])],
  ];
  const query = ordered.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
  const pathAndQuery = `/openTunnel?${query}`;
  return { url: `wss://${input.dnsName}${pathAndQuery}`, pathAndQuery };
}

// ---------------------------------------------------------------------------------------------------------
// Keys from ssh-keygen (private halves deleted at once; nothing is written outside a temp dir)

export interface GeneratedKey {
  publicKey: string;
  /** `SHA256:…` as `ssh-keygen -l -E sha256` prints it. */
  fingerprint: string;
  bits: number;
}

export function sshKeygen(
  type: "rsa" | "ed25519" | "ecdsa",
  bits?: number,
  comment = "test@emulator",
): GeneratedKey {
  const dir = mkdtempSync(join(tmpdir(), "eic-key-"));
  try {
    const file = join(dir, "key");
    execFileSync(
      "ssh-keygen",
      [
        "-q",
        "-t",
        type,
        ...(bits === undefined ? [] : ["-b", String(bits)]),
        "-N",
        "",
        "-C",
        comment,
        "-f",
        file,
      ],
      { stdio: "ignore" },
    );
    rmSync(file);
    const publicKey = readFileSync(`${file}.pub`, "utf8").trim();
    const [bitsText, fingerprint] = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", `${file}.pub`], {
      encoding: "utf8",
    }).split(" ");
    return { publicKey, fingerprint: fingerprint as string, bits: Number(bitsText) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------
// A world shaped like local/demo/inventory.yaml

export const ACCOUNT = "111122223333";
export const REGION = "us-east-1";
export const DEMO_INSTANCE = "i-0a1b2c3d4e5f60718";
export const DEMO_IP = "10.0.1.10";
export const OTHER_INSTANCE = "i-0c0ffee0c0ffee0ee";
export const OTHER_IP = "10.0.2.20";
export const STOPPED_INSTANCE = "i-0deadbeef00000005";
export const STOPPED_IP = "10.0.1.99";
export const ENDPOINT_ID = "eice-0demo00000000001";
export const DNS_NAME = `${ENDPOINT_ID}.ec2-instance-connect-endpoint.${REGION}.amazonaws.com`;
export const FIPS_DNS_NAME = `${ENDPOINT_ID}.fips.ec2-instance-connect-endpoint.${REGION}.amazonaws.com`;

export function demoInventory(): Inventory {
  const base = {
    account: ACCOUNT,
    region: REGION,
    vpcId: "vpc-0demo0000000001",
    platform: "linux" as const,
  };
  return {
    instances: [
      {
        ...base,
        id: DEMO_INSTANCE,
        availabilityZone: "us-east-1a",
        subnetId: "subnet-0demo000000001a",
        privateIp: DEMO_IP,
        state: "running",
        tags: { Name: "demo", env: "demo" },
        ports: { "22": "demo-sshd", "3389": "demo-rdp" },
      },
      {
        ...base,
        id: OTHER_INSTANCE,
        availabilityZone: "us-east-1b",
        subnetId: "subnet-0demo000000001b",
        privateIp: OTHER_IP,
        state: "running",
        tags: { Name: "demo-iam", env: "prod" },
        ports: { "22": "demo-sshd" },
      },
      {
        ...base,
        id: STOPPED_INSTANCE,
        availabilityZone: "us-east-1a",
        subnetId: "subnet-0demo000000001a",
        privateIp: STOPPED_IP,
        state: "stopped",
        tags: { Name: "stopped" },
        ports: { "22": "demo-sshd" },
      },
      {
        id: "i-0fedcba9876543210",
        account: "444455556666",
        region: "eu-west-1",
        availabilityZone: "eu-west-1a",
        vpcId: "vpc-0stag0000000001",
        subnetId: "subnet-0stag000000001a",
        privateIp: "172.31.5.6",
        platform: "linux",
        state: "running",
        tags: {},
        ports: {},
      },
    ],
    endpoints: [
      {
        id: ENDPOINT_ID,
        account: ACCOUNT,
        region: REGION,
        vpcId: "vpc-0demo0000000001",
        subnetId: "subnet-0demo000000001a",
        state: "create-complete",
        dnsName: DNS_NAME,
        fipsDnsName: FIPS_DNS_NAME,
      },
    ],
  };
}

/** An assumed-role session principal (like the broker's per-grant signer session). */
export function sessionPrincipal(input: {
  name: string;
  policies: PolicyDocument[];
  sessionPolicy?: PolicyDocument;
  accountId?: string;
  sessionToken?: string | null;
}): FakePrincipal {
  const accountId = input.accountId ?? ACCOUNT;
  const roleName = "access-broker-tunnel-signer";
  return {
    accessKeyId: `ASIA${input.name.toUpperCase().padEnd(16, "X").slice(0, 16)}`,
    secretAccessKey: `secret-${input.name}`,
    ...(input.sessionToken === null ? {} : { sessionToken: input.sessionToken ?? `token-${input.name}` }),
    policies: input.policies,
    ...(input.sessionPolicy === undefined ? {} : { sessionPolicy: input.sessionPolicy }),
    caller: {
      type: "AssumedRole",
      accountId,
      arn: `arn:aws:sts::${accountId}:assumed-role/${roleName}/${input.name}`,
      principalId: `AROAEXAMPLEROLEID0001:${input.name}`,
      accessKeyId: `ASIA${input.name.toUpperCase().padEnd(16, "X").slice(0, 16)}`,
      session: {
        roleArn: `arn:aws:iam::${accountId}:role/${roleName}`,
        roleName,
        roleId: "AROAEXAMPLEROLEID0001",
        sessionName: input.name,
        createdAt: "2026-03-01T11:59:00Z",
        expiresAt: "2026-03-01T13:00:00Z",
      },
    },
  };
}

export const credentialsOf = (p: FakePrincipal): Credentials => ({
  accessKeyId: p.accessKeyId,
  secretAccessKey: p.secretAccessKey,
  ...(p.sessionToken === undefined ? {} : { sessionToken: p.sessionToken }),
});
