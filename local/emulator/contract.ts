/**
 * The seams inside the local AWS emulator, so its services can be built and tested separately.
 * `core` (server, SigV4, IAM/STS, CloudTrail, faults, EC2) implements these; `eic` and `eice`
 * (SendSSHPublicKey, instance metadata, OpenTunnel websocket) use them.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";

/** Who made a call, as SigV4 + the credential store established it. Mirrors CloudTrail's userIdentity. */
export interface Caller {
  type: "IAMUser" | "AssumedRole";
  accountId: string;
  /** arn:aws:iam::<acct>:user/<name> or arn:aws:sts::<acct>:assumed-role/<role>/<session> */
  arn: string;
  /** AIDA… for users, AROA…:<session> for role sessions */
  principalId: string;
  accessKeyId: string;
  userName?: string;
  session?: {
    roleArn: string;
    roleName: string;
    roleId: string;
    sessionName: string;
    sourceIdentity?: string;
    createdAt: string;
    expiresAt: string;
  };
}

/** The request context IAM conditions are evaluated against (`aws:CurrentTime` is always added). */
export type ConditionContext = Record<string, string | number | undefined>;

export type Decision =
  | { allowed: true }
  | { allowed: false; reason: "explicit-deny" | "no-allow" | "session-policy" | "expired"; message: string };

export interface TrailInput {
  eventSource: string; // e.g. "ec2-instance-connect.amazonaws.com"
  eventName: string; // e.g. "SendSSHPublicKey", "OpenTunnel"
  region: string;
  /** The account the call was made in (the resource's account). */
  accountId: string;
  caller: Caller | undefined;
  sourceIPAddress: string;
  userAgent?: string;
  requestParameters: Record<string, unknown> | null;
  responseElements: Record<string, unknown> | null;
  requestId: string;
  errorCode?: string;
  errorMessage?: string;
  resources?: { accountId: string; type: string; ARN: string }[];
  readOnly: boolean;
  /** Host header the client sent (CloudTrail tlsDetails.clientProvidedHostHeader). */
  host?: string;
}

export interface Faults {
  /**
   * Decides whether `operation` (e.g. "SendSSHPublicKey", "OpenTunnel", "AssumeRole") should fail or be
   * delayed right now. Resolves after any injected latency; returns the injected error, if any.
   */
  inject(operation: string): Promise<{ status: number; code: string; message: string } | undefined>;
}

export interface Authenticated {
  caller: Caller;
  region: string;
  service: string;
}

export interface EmulatorCore {
  /** Emulator time (tests may move it); every expiry and `aws:CurrentTime` uses it. */
  now(): Date;
  /**
   * Verifies a header-signed or presigned SigV4 request against the known credentials (IAM user keys,
   * live STS sessions). `host` must be the Host the client signed. Throws AuthFailure.
   */
  authenticate(request: {
    method: string;
    host: string;
    path: string;
    query: Record<string, string>;
    headers: Record<string, string>;
    body: Buffer;
    presigned: boolean;
    /** For presigned URLs: the maximum X-Amz-Expires accepted (EICE: 60). */
    maxExpiresSeconds?: number;
  }): Authenticated;
  /** Identity policies of the caller's principal ∩ its session policy, explicit deny wins. */
  authorize(caller: Caller, action: string, resourceArn: string, context: ConditionContext): Decision;
  recordTrail(event: TrailInput): void;
  faults: Faults;
  inventory: Inventory;
  /** Resolves an `instances[].ports` target name (e.g. "demo-sshd") to host:port, if configured. */
  upstream(name: string): { host: string; port: number } | undefined;
}

export class AuthFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "AuthFailure";
  }
}

/** A service mounted on the emulator's one HTTP port. */
export interface EmulatorService {
  /** Return true when the request was handled. */
  handle(request: IncomingMessage, body: Buffer, response: ServerResponse): Promise<boolean>;
  /** WebSocket / upgrade requests (EICE). Return true when handled. */
  upgrade?(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<boolean>;
  close?(): Promise<void>;
  /** Drop runtime state (pushed keys, open tunnels, …); called by `POST /_emulator/reset`. */
  reset?(): void | Promise<void>;
}

export interface InventoryInstance {
  id: string;
  account: string;
  region: string;
  availabilityZone: string;
  vpcId: string;
  subnetId: string;
  privateIp?: string;
  ipv6?: string;
  publicIp?: string;
  platform: "linux" | "windows";
  state: "pending" | "running" | "stopping" | "stopped" | "shutting-down" | "terminated";
  tags: Record<string, string>;
  /** remote port → upstream name (see EmulatorCore.upstream) */
  ports: Record<string, string>;
}

export interface InventoryEndpoint {
  id: string;
  account: string;
  region: string;
  vpcId: string;
  subnetId: string;
  state: string;
  dnsName: string;
  fipsDnsName: string;
}

export interface Inventory {
  instances: InventoryInstance[];
  endpoints: InventoryEndpoint[];
}
