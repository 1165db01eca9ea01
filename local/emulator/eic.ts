/**
 * EC2 Instance Connect: `SendSSHPublicKey` and `SendSerialConsoleSSHPublicKey` over the AWS JSON 1.1
 * protocol (`POST /`, `X-Amz-Target: AWSEC2InstanceConnectService.<Operation>`), so the official
 * `@aws-sdk/client-ec2-instance-connect` client works unchanged. Pushed keys live in memory for 60 s of
 * emulator time, where the metadata service (`metadata.ts`) serves them to the demo instance's sshd.
 *
 * Facts it follows: shared/reference/protocols.md §2 (API model constraints, errors, 60 s lifetime) and §3.1
 * (CloudTrail record shape); EC2 User Guide "Connect using your own key and SSH client" (RSA 2048/4096 and
 * ED25519 only).
 */
import { createHash, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import * as z from "zod";
import {
  type Authenticated,
  AuthFailure,
  type Caller,
  type ConditionContext,
  type Decision,
  type EmulatorCore,
  type EmulatorService,
  type InventoryInstance,
} from "./contract.ts";

export const EIC_EVENT_SOURCE = "ec2-instance-connect.amazonaws.com";
const TARGET_PREFIX = "AWSEC2InstanceConnectService.";
const JSON_CONTENT_TYPE = "application/x-amz-json-1.1";
const DEFAULT_KEY_TTL_SECONDS = 60;

// ---------------------------------------------------------------------------------------------------------
// OpenSSH public keys

export type SshKeyType = "ssh-rsa" | "ssh-ed25519";

/** A parsed, accepted OpenSSH public key line. */
export interface SshPublicKey {
  type: SshKeyType;
  /** Modulus size for RSA, 256 for Ed25519 (what `ssh-keygen -l` prints). */
  bits: number;
  /** `SHA256:<unpadded base64>` of the wire-format blob, as OpenSSH prints it. */
  fingerprint: string;
  /** The key blob, base64 as written in the line. */
  base64: string;
  comment?: string;
  /** `<type> <base64>[ <comment>]`, whitespace normalised; what an authorized_keys line holds. */
  line: string;
}

export class SshKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SshKeyError";
  }
}

/** `SHA256:<base64 without padding>` of a key blob, identical to `ssh-keygen -l -E sha256`. */
export function sshFingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** Reads the RFC 4251 string-length-prefixed fields of an SSH wire-format key blob. */
class WireReader {
  private offset = 0;
  constructor(private readonly buffer: Buffer) {}

  string(): Buffer {
    if (this.buffer.length - this.offset < 4) throw new SshKeyError("SSH public key blob is truncated");
    const length = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    if (length > this.buffer.length - this.offset) throw new SshKeyError("SSH public key blob is truncated");
    const value = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  /** An mpint that must be positive; returns its magnitude without leading zero bytes. */
  positiveMpint(name: string): Buffer {
    const value = this.string();
    if (value.length === 0 || ((value[0] as number) & 0x80) !== 0) {
      throw new SshKeyError(`SSH public key has an invalid RSA ${name}`);
    }
    let start = 0;
    while (start < value.length && value[start] === 0) start++;
    if (start === value.length) throw new SshKeyError(`SSH public key has an invalid RSA ${name}`);
    return value.subarray(start);
  }

  end(): void {
    if (this.offset !== this.buffer.length) throw new SshKeyError("SSH public key blob has trailing data");
  }
}

function bitLength(magnitude: Buffer): number {
  const top = magnitude[0] as number;
  return (magnitude.length - 1) * 8 + (32 - Math.clz32(top));
}

/** RSA moduli and Ed25519 are what EC2 Instance Connect accepts (EC2 User Guide, key requirements). */
const ACCEPTED_RSA_BITS = new Set([2048, 4096]);
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Parses one OpenSSH public key line (`<type> <base64> [comment]`) and accepts only what EC2 Instance
 * Connect supports: `ssh-rsa` with a 2048- or 4096-bit modulus, or `ssh-ed25519`. Throws SshKeyError.
 */
export function parseSshPublicKey(text: string): SshPublicKey {
  const trimmed = text.trim();
  // A newline would let one "key" smuggle a second authorized_keys line (with options) into metadata.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused.
  if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(trimmed)) {
    throw new SshKeyError("SSH public key must be a single line");
  }
  const [type, base64, ...rest] = trimmed.split(/[ \t]+/);
  if (type === undefined || base64 === undefined) {
    throw new SshKeyError("SSH public key must be '<type> <base64> [comment]'");
  }
  if (type !== "ssh-rsa" && type !== "ssh-ed25519") {
    throw new SshKeyError(
      `Unsupported SSH key type '${type.slice(0, 64)}': use ssh-rsa (2048 or 4096) or ssh-ed25519`,
    );
  }
  if (!BASE64.test(base64) || base64.length % 4 !== 0)
    throw new SshKeyError("SSH public key is not valid base64");
  const blob = Buffer.from(base64, "base64");
  if (blob.toString("base64") !== base64) throw new SshKeyError("SSH public key is not valid base64");

  const reader = new WireReader(blob);
  const innerType = reader.string().toString("latin1");
  if (innerType !== type) {
    throw new SshKeyError(
      `SSH public key type '${type}' does not match its blob ('${innerType.slice(0, 64)}')`,
    );
  }
  let bits: number;
  if (type === "ssh-rsa") {
    const exponent = reader.positiveMpint("exponent");
    const modulus = reader.positiveMpint("modulus");
    reader.end();
    if (
      ((exponent[exponent.length - 1] as number) & 1) === 0 ||
      (exponent.length === 1 && exponent[0] === 1)
    ) {
      throw new SshKeyError("SSH public key has an invalid RSA exponent");
    }
    bits = bitLength(modulus);
    if (!ACCEPTED_RSA_BITS.has(bits)) {
      throw new SshKeyError(`Unsupported RSA key length ${bits}: only 2048 and 4096 bits are supported`);
    }
  } else {
    const key = reader.string();
    reader.end();
    if (key.length !== 32) throw new SshKeyError("SSH public key has an invalid ed25519 key length");
    bits = 256;
  }
  const comment = rest.length > 0 ? rest.join(" ") : undefined;
  return {
    type,
    bits,
    fingerprint: sshFingerprint(blob),
    base64,
    ...(comment === undefined ? {} : { comment }),
    line: comment === undefined ? `${type} ${base64}` : `${type} ${base64} ${comment}`,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Request validation, exactly the API model's constraints (botocore ec2-instance-connect 2018-04-02)

const INSTANCE_ID = /^i-[a-f0-9]+$/;
const OS_USER =
  /(^[A-Za-z_][A-Za-z0-9@._-]{0,30}[A-Za-z0-9$_-]?$)|(^(?=.{2,32}$)[0-9]{1,32}[A-Za-z@._-][A-Za-z0-9@._-]*[A-Za-z0-9$_-]?$)/;
const AVAILABILITY_ZONE = /^(\w+-){2,3}\d+\w+$/;

function constrained(member: string, min: number, max: number, pattern?: RegExp) {
  const text = z.string({ error: `Value at '${member}' must be a string` });
  const sized = text
    .min(min, { error: `Value at '${member}' failed to satisfy constraint: length must be at least ${min}` })
    .max(max, { error: `Value at '${member}' failed to satisfy constraint: length must be at most ${max}` });
  if (pattern === undefined) return sized;
  return sized.regex(pattern, {
    error: `Value at '${member}' failed to satisfy constraint: must match pattern ${pattern.source}`,
  });
}

export const SendSSHPublicKeyInput = z.object({
  InstanceId: constrained("instanceId", 10, 32, INSTANCE_ID),
  InstanceOSUser: constrained("instanceOSUser", 1, 32, OS_USER),
  SSHPublicKey: constrained("sshPublicKey", 80, 4096),
  AvailabilityZone: constrained("availabilityZone", 6, 32, AVAILABILITY_ZONE).optional(),
});
export type SendSSHPublicKeyInput = z.infer<typeof SendSSHPublicKeyInput>;

export const SendSerialConsoleSSHPublicKeyInput = z.object({
  InstanceId: constrained("instanceId", 10, 32, INSTANCE_ID),
  SSHPublicKey: constrained("sshPublicKey", 80, 4096),
  SerialPort: z
    .number({ error: "Value at 'serialPort' must be an integer" })
    .int({ error: "Value at 'serialPort' must be an integer" })
    .min(0, { error: "Value at 'serialPort' failed to satisfy constraint: only port 0 is supported" })
    .max(0, { error: "Value at 'serialPort' failed to satisfy constraint: only port 0 is supported" })
    .optional(),
});
export type SendSerialConsoleSSHPublicKeyInput = z.infer<typeof SendSerialConsoleSSHPublicKeyInput>;

// ---------------------------------------------------------------------------------------------------------
// Key store

export type PushOperation = "SendSSHPublicKey" | "SendSerialConsoleSSHPublicKey";

/** One accepted push; lives until `expiresAt` of emulator time. */
export interface PushedKey {
  operation: PushOperation;
  instanceId: string;
  /** The OS user the key is for (SendSSHPublicKey only). */
  osUser?: string;
  /** The serial port (SendSerialConsoleSSHPublicKey only). */
  serialPort?: number;
  key: SshPublicKey;
  requestId: string;
  callerArn: string;
  pushedAt: Date;
  expiresAt: Date;
}

/** The instance-metadata side of EC2 Instance Connect: what was pushed, read with emulator time. */
export interface KeyStore {
  /** Live SSH keys for an instance's OS user (oldest first); a key is live while now < expiresAt. */
  active(instanceId: string, osUser: string): PushedKey[];
  /** Every live key, SSH and serial console. */
  list(): PushedKey[];
  /** Forget every key (tests). */
  clear(): void;
}

function createKeyStore(now: () => Date): KeyStore & { add(key: PushedKey): void } {
  let keys: PushedKey[] = [];
  const live = () => {
    const at = now().getTime();
    keys = keys.filter((key) => key.expiresAt.getTime() > at);
    return keys;
  };
  return {
    add(key) {
      live().push(key);
    },
    active(instanceId, osUser) {
      return live().filter(
        (key) =>
          key.operation === "SendSSHPublicKey" && key.instanceId === instanceId && key.osUser === osUser,
      );
    },
    list() {
      return [...live()];
    },
    clear() {
      keys = [];
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Errors (HTTP statuses from the SDK's error schema; AccessDeniedException is the common, unmodeled one)

/** A refusal with its HTTP status, wire error code and (where it differs) CloudTrail errorCode. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** CloudTrail's errorCode where it differs from the wire error (IAM denials show as "AccessDenied"). */
    readonly trailCode: string = code,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

const invalidArgs = (message: string) => new ApiError(400, "InvalidArgsException", message);

/** The IAM message real services return ("User: … is not authorized to perform: … on resource: … because …"). */
export function accessDeniedMessage(
  caller: Caller,
  action: string,
  resource: string,
  decision: Decision,
): string {
  if (decision.allowed) return "";
  if (decision.message.startsWith("User: ")) return decision.message;
  const head = `User: ${caller.arn} is not authorized to perform: ${action} on resource: ${resource}`;
  switch (decision.reason) {
    case "explicit-deny":
      return `${head} with an explicit deny in an identity-based policy`;
    case "session-policy":
      return `${head} because no session policy allows the ${action} action`;
    case "no-allow":
      return `${head} because no identity-based policy allows the ${action} action`;
    default:
      return `${head}: ${decision.message}`;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Small HTTP helpers shared with eice.ts / metadata.ts

/** Node's header object flattened to lowercase name → value (repeated headers comma-joined). */
export function flatHeaders(request: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue;
    headers[name.toLowerCase()] = Array.isArray(value) ? value.join(",") : value;
  }
  return headers;
}

/** The client's address as CloudTrail shows it (IPv4-mapped IPv6 unwrapped). */
export function sourceAddress(request: IncomingMessage): string {
  const address = request.socket.remoteAddress ?? "";
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}

export function instanceArn(instance: InventoryInstance): string {
  return `arn:aws:ec2:${instance.region}:${instance.account}:instance/${instance.id}`;
}

/** `aws:ResourceTag/<k>` and `ec2:ResourceTag/<k>` condition keys for a resource's tags. */
export function resourceTagContext(tags: Record<string, string> | undefined): ConditionContext {
  const context: ConditionContext = {};
  for (const [key, value] of Object.entries(tags ?? {})) {
    context[`aws:ResourceTag/${key}`] = value;
    context[`ec2:ResourceTag/${key}`] = value;
  }
  return context;
}

// ---------------------------------------------------------------------------------------------------------
// The service

export interface EicOptions {
  /** How long a pushed key stays in instance metadata, in seconds of emulator time. Default 60. */
  keyTtlSeconds?: number;
}

export type EicService = EmulatorService & { keys: KeyStore };

interface Attempt {
  operation: PushOperation;
  requestId: string;
  auth?: Authenticated;
  /** Where the event is recorded: the instance's account/region once known. */
  trailAccount?: { accountId: string; region: string };
  requestParameters: Record<string, unknown> | null;
}

/** EC2 Instance Connect (`SendSSHPublicKey`, `SendSerialConsoleSSHPublicKey`) on the emulator's port. */
export function eicService(core: EmulatorCore, options: EicOptions = {}): EicService {
  const ttlMs = (options.keyTtlSeconds ?? DEFAULT_KEY_TTL_SECONDS) * 1000;
  const keys = createKeyStore(() => core.now());

  function findInstance(id: string, where?: { accountId: string; region: string }) {
    return core.inventory.instances.find(
      (instance) =>
        instance.id === id &&
        (where === undefined || (instance.account === where.accountId && instance.region === where.region)),
    );
  }

  function push(
    attempt: Attempt,
    auth: Authenticated,
    input: {
      instanceId: string;
      sshPublicKey: string;
      availabilityZone?: string;
      osUser?: string;
      serialPort?: number;
    },
  ): void {
    const caller = auth.caller;
    let key: SshPublicKey;
    try {
      key = parseSshPublicKey(input.sshPublicKey);
    } catch (error) {
      if (error instanceof SshKeyError) throw invalidArgs(error.message);
      throw error;
    }
    const instance = findInstance(input.instanceId, { accountId: caller.accountId, region: auth.region });
    if (instance === undefined) {
      throw new ApiError(404, "EC2InstanceNotFoundException", `Instance ${input.instanceId} was not found`);
    }
    attempt.trailAccount = { accountId: instance.account, region: instance.region };
    // [I] The model says nothing about a mismatched AZ; the AZ once routed the push, so a wrong one
    // cannot find the instance.
    if (input.availabilityZone !== undefined && input.availabilityZone !== instance.availabilityZone) {
      throw new ApiError(
        404,
        "EC2InstanceNotFoundException",
        `Instance ${input.instanceId} was not found in ${input.availabilityZone}`,
      );
    }
    if (instance.state !== "running") {
      throw new ApiError(
        400,
        "EC2InstanceStateInvalidException",
        `Instance ${instance.id} is ${instance.state}: connecting to an instance that is not running is not supported`,
      );
    }
    const action = `ec2-instance-connect:${attempt.operation}`;
    const resource = instanceArn(instance);
    const context: ConditionContext = resourceTagContext(instance.tags);
    if (input.osUser !== undefined) context["ec2:osuser"] = input.osUser;
    const decision = core.authorize(caller, action, resource, context);
    if (!decision.allowed) {
      throw new ApiError(
        400,
        "AccessDeniedException",
        accessDeniedMessage(caller, action, resource, decision),
        "AccessDenied",
      );
    }
    const pushedAt = core.now();
    keys.add({
      operation: attempt.operation,
      instanceId: instance.id,
      ...(input.osUser === undefined ? {} : { osUser: input.osUser }),
      ...(attempt.operation === "SendSerialConsoleSSHPublicKey" ? { serialPort: input.serialPort ?? 0 } : {}),
      key,
      requestId: attempt.requestId,
      callerArn: caller.arn,
      pushedAt,
      expiresAt: new Date(pushedAt.getTime() + ttlMs),
    });
  }

  function validate<T>(schema: z.ZodType<T>, body: unknown): T {
    const parsed = schema.safeParse(body);
    if (parsed.success) return parsed.data;
    const messages = parsed.error.issues.map((issue) =>
      issue.code === "invalid_type" && issue.input === undefined
        ? `Missing required parameter '${issue.path.join(".")}'`
        : issue.message,
    );
    throw invalidArgs(
      `${messages.length} validation error${messages.length === 1 ? "" : "s"} detected: ${messages.join("; ")}`,
    );
  }

  async function run(attempt: Attempt, request: IncomingMessage, rawBody: Buffer): Promise<void> {
    let body: unknown;
    try {
      body = rawBody.length === 0 ? {} : JSON.parse(rawBody.toString("utf8"));
    } catch {
      body = undefined;
    }
    const record =
      typeof body === "object" && body !== null && !Array.isArray(body)
        ? (body as Record<string, unknown>)
        : undefined;
    attempt.requestParameters = record === undefined ? null : trailParameters(attempt.operation, record);
    const claimedInstance =
      typeof record?.InstanceId === "string" ? findInstance(record.InstanceId) : undefined;
    if (claimedInstance !== undefined) {
      // Until authentication says otherwise, an attempt on a known instance is logged in its account.
      attempt.trailAccount = { accountId: claimedInstance.account, region: claimedInstance.region };
    }

    const url = new URL(request.url ?? "/", "http://emulator");
    const auth = core.authenticate({
      method: request.method ?? "POST",
      host: request.headers.host ?? "",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: flatHeaders(request),
      body: rawBody,
      presigned: false,
    });
    attempt.auth = auth;
    attempt.trailAccount = { accountId: auth.caller.accountId, region: auth.region };
    if (auth.service !== "ec2-instance-connect") {
      throw new ApiError(
        403,
        "InvalidSignatureException",
        `Credential should be scoped to correct service: 'ec2-instance-connect'.`,
      );
    }
    const fault = await core.faults.inject(attempt.operation);
    if (fault !== undefined) throw new ApiError(fault.status, fault.code, fault.message);
    if (record === undefined)
      throw new ApiError(400, "SerializationException", "Request body is not a JSON object");

    if (attempt.operation === "SendSSHPublicKey") {
      const input = validate(SendSSHPublicKeyInput, record);
      push(attempt, auth, {
        instanceId: input.InstanceId,
        osUser: input.InstanceOSUser,
        sshPublicKey: input.SSHPublicKey,
        ...(input.AvailabilityZone === undefined ? {} : { availabilityZone: input.AvailabilityZone }),
      });
    } else {
      const input = validate(SendSerialConsoleSSHPublicKeyInput, record);
      push(attempt, auth, {
        instanceId: input.InstanceId,
        sshPublicKey: input.SSHPublicKey,
        ...(input.SerialPort === undefined ? {} : { serialPort: input.SerialPort }),
      });
    }
  }

  function record(
    attempt: Attempt,
    request: IncomingMessage,
    outcome: { error?: { code: string; message: string } },
  ): void {
    const where = attempt.trailAccount;
    // An unauthenticated call naming no known instance has no account to be logged in.
    if (where === undefined) return;
    const userAgent = request.headers["user-agent"];
    core.recordTrail({
      eventSource: EIC_EVENT_SOURCE,
      eventName: attempt.operation,
      region: where.region,
      accountId: where.accountId,
      caller: attempt.auth?.caller,
      sourceIPAddress: sourceAddress(request),
      ...(userAgent === undefined ? {} : { userAgent }),
      requestParameters: attempt.requestParameters,
      responseElements: outcome.error === undefined ? { requestId: attempt.requestId, success: true } : null,
      requestId: attempt.requestId,
      ...(outcome.error === undefined
        ? {}
        : { errorCode: outcome.error.code, errorMessage: outcome.error.message }),
      readOnly: false,
      ...(request.headers.host === undefined ? {} : { host: request.headers.host }),
    });
  }

  return {
    keys,
    reset() {
      keys.clear();
    },
    async handle(request: IncomingMessage, body: Buffer, response: ServerResponse): Promise<boolean> {
      const target = request.headers["x-amz-target"];
      if (request.method !== "POST" || typeof target !== "string" || !target.startsWith(TARGET_PREFIX)) {
        return false;
      }
      const requestId = randomUUID();
      const operation = target.slice(TARGET_PREFIX.length);
      if (operation !== "SendSSHPublicKey" && operation !== "SendSerialConsoleSSHPublicKey") {
        sendJson(response, requestId, 400, {
          __type: "UnknownOperationException",
          message: `Unknown operation ${operation.slice(0, 100)}`,
        });
        return true;
      }
      const attempt: Attempt = { operation, requestId, requestParameters: null };
      try {
        await run(attempt, request, body);
      } catch (error) {
        const failure =
          error instanceof ApiError
            ? error
            : error instanceof AuthFailure
              ? new ApiError(error.status, error.code, error.message)
              : new ApiError(500, "ServiceException", "The service encountered an error. Try again.");
        if (!(error instanceof ApiError || error instanceof AuthFailure)) {
          process.stderr.write(`emulator eic: ${attempt.operation} failed: ${String(error)}\n`);
        }
        sendJson(response, requestId, failure.status, { __type: failure.code, Message: failure.message });
        record(attempt, request, { error: { code: failure.trailCode, message: failure.message } });
        return true;
      }
      sendJson(response, requestId, 200, { RequestId: requestId, Success: true });
      record(attempt, request, {});
      return true;
    },
  };
}

/** CloudTrail's requestParameters for a push: note the real records' odd casing `sSHPublicKey`. */
function trailParameters(operation: PushOperation, body: Record<string, unknown>): Record<string, unknown> {
  // Whatever the caller sent is logged, bounded so a garbage request cannot bloat the trail.
  const bounded = (value: unknown) =>
    typeof value === "string" && value.length > MAX_TRAIL_STRING ? value.slice(0, MAX_TRAIL_STRING) : value;
  const parameters: Record<string, unknown> = { instanceId: bounded(body.InstanceId) };
  if (operation === "SendSSHPublicKey") parameters.instanceOSUser = bounded(body.InstanceOSUser);
  else if (body.SerialPort !== undefined) parameters.serialPort = bounded(body.SerialPort);
  parameters.sSHPublicKey = bounded(body.SSHPublicKey);
  if (body.AvailabilityZone !== undefined) parameters.availabilityZone = bounded(body.AvailabilityZone);
  return parameters;
}

const MAX_TRAIL_STRING = 8192;

function sendJson(response: ServerResponse, requestId: string, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    "Content-Type": JSON_CONTENT_TYPE,
    "Content-Length": Buffer.byteLength(text),
    "x-amzn-RequestId": requestId,
  });
  response.end(text);
}
