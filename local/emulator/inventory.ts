/**
 * The emulator's world, read from YAML (`local/demo/inventory.yaml`): accounts with their IAM users and
 * roles (trust, inline policies, access keys), EC2 instances, EC2 Instance Connect Endpoints and S3 buckets.
 * The schema fills in what AWS would compute: ARNs, unique ids (`AIDA…`/`AROA…`, stable per ARN),
 * endpoint DNS names, the endpoint's availability zone.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { parse as parseYaml } from "yaml";
import * as z from "zod";
import type { Inventory, InventoryEndpoint, InventoryInstance } from "./contract.ts";
import { type Policy, parsePolicyObject } from "./policy.ts";

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** A stable IAM-style unique id (`AIDA…`, `AROA…`: prefix + 17 characters) derived from `seed`. */
export function stableId(prefix: string, seed: string, length = 17): string {
  const digest = createHash("sha256").update(seed).digest();
  let out = prefix;
  for (let i = 0; out.length < prefix.length + length; i++) out += BASE32[(digest[i] as number) % 32];
  return out;
}

/** Lower-case hex derived from `seed`, for EC2-style ids (`r-…`, `eni-…`). */
export function stableHex(seed: string, length = 17): string {
  return createHash("sha256").update(seed).digest("hex").slice(0, length);
}

const AccountId = z.string().regex(/^\d{12}$/, "must be a 12-digit AWS account id");
const IamName = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[\w+=,.@-]+$/, "may contain only letters, digits and _+=,.@-");
const Region = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, "must be a region name like us-east-1");

const PolicyObject = z.unknown().transform((value, ctx) => {
  const parsed = parsePolicyObject(value);
  if (!parsed.ok) {
    ctx.addIssue({ code: "custom", message: parsed.message });
    return z.NEVER;
  }
  return { text: JSON.stringify(value), policy: parsed.policy };
});
const Policies = z.record(IamName(128), PolicyObject).default({});

const AccessKey = z.strictObject({
  id: z.string().regex(/^[A-Z0-9]{16,128}$/, "must be 16-128 upper-case letters and digits"),
  secret: z.string().min(8),
  /** For keys on a role: the session name its calls show (default: the role name). */
  sessionName: z
    .string()
    .regex(/^[\w+=,.@-]{2,64}$/)
    .optional(),
});

const User = z.strictObject({
  name: IamName(64),
  accessKeys: z.array(AccessKey).default([]),
  policies: Policies,
});

const Role = z.strictObject({
  name: IamName(64),
  /**
   * Who may assume the role: principal ARNs (`arn:aws:iam::<acct>:user/<n>`, `…:role/<n>`),
   * `arn:aws:iam::<acct>:root` or a bare account id (any principal of that account), or `*`.
   */
  trust: z.array(z.string().min(1)).default([]),
  /** The trust policy also allows `sts:SetSourceIdentity`. */
  allowSourceIdentity: z.boolean().default(false),
  /** MaxSessionDuration, seconds (AWS default 3600, at most 43200). */
  maxSessionDuration: z.number().int().min(3600).max(43200).default(3600),
  policies: Policies,
  /**
   * Emulator convenience (AWS roles have no access keys): long-lived keys that act as a standing
   * session of this role, like credentials a person gets from SSO.
   */
  accessKeys: z.array(AccessKey).default([]),
});

const Account = z.strictObject({
  id: AccountId,
  users: z.array(User).default([]),
  roles: z.array(Role).default([]),
});

const STATES = ["pending", "running", "stopping", "stopped", "shutting-down", "terminated"] as const;

const Instance = z.strictObject({
  id: z.string().regex(/^i-[0-9a-f]{8,17}$/, "must look like i-0123456789abcdef0"),
  account: AccountId,
  region: Region,
  availabilityZone: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+[a-z]$/),
  vpcId: z.string().regex(/^vpc-[0-9a-z]+$/),
  subnetId: z.string().regex(/^subnet-[0-9a-z]+$/),
  privateIp: z
    .string()
    .refine((ip) => isIP(ip) === 4, "must be an IPv4 address")
    .optional(),
  ipv6: z
    .string()
    .refine((ip) => isIP(ip) === 6, "must be an IPv6 address")
    .optional(),
  publicIp: z
    .string()
    .refine((ip) => isIP(ip) === 4, "must be an IPv4 address")
    .optional(),
  platform: z.enum(["linux", "windows"]).default("linux"),
  state: z.enum(STATES).default("running"),
  tags: z.record(z.string(), z.string()).default({}),
  /** remote port → upstream name (see `startEmulator({ upstreams })`). */
  ports: z.record(z.string().regex(/^\d{1,5}$/, "must be a port number"), z.string()).default({}),
  instanceType: z.string().default("t3.micro"),
  imageId: z.string().default("ami-0abcdef1234567890"),
  launchTime: z.iso.datetime().default("2024-01-01T00:00:00Z"),
});

const Endpoint = z.strictObject({
  id: z.string().regex(/^eice-[0-9a-zA-Z_]+$/, "must look like eice-0123456789abcdef0"),
  account: AccountId,
  region: Region,
  vpcId: z.string().regex(/^vpc-[0-9a-z]+$/),
  subnetId: z.string().regex(/^subnet-[0-9a-z]+$/),
  state: z
    .enum([
      "create-in-progress",
      "create-complete",
      "create-failed",
      "delete-in-progress",
      "delete-complete",
      "delete-failed",
      "update-in-progress",
      "update-complete",
      "update-failed",
    ])
    .default("create-complete"),
  availabilityZone: z.string().optional(),
  dnsName: z.string().optional(),
  fipsDnsName: z.string().optional(),
  securityGroupIds: z.array(z.string()).default([]),
  tags: z.record(z.string(), z.string()).default({}),
  preserveClientIp: z.boolean().default(false),
  ipAddressType: z.enum(["ipv4", "dualstack", "ipv6"]).default("ipv4"),
  createdAt: z.iso.datetime().default("2024-01-01T00:00:00Z"),
});

/** An S3 bucket. Only its own account reaches it (bucket policies are not emulated). */
const Bucket = z.strictObject({
  name: z
    .string()
    .regex(
      /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
      "must be an S3 bucket name: 3-63 lower-case letters, digits, dots and hyphens",
    ),
  account: AccountId,
  region: Region,
  /** Object Lock with a default retention (what infra/storage.ts sets on the anchor bucket); implies versioning. */
  objectLock: z
    .strictObject({
      mode: z.enum(["COMPLIANCE", "GOVERNANCE"]),
      days: z.number().int().min(1).max(36_500),
    })
    .optional(),
});
export type InventoryBucket = z.output<typeof Bucket>;

type StoredPolicies = Record<string, { text: string; policy: Policy }>;
type AccessKeyEntry = z.output<typeof AccessKey>;

export interface InventoryUser {
  name: string;
  accountId: string;
  arn: string;
  /** AIDA… */
  id: string;
  accessKeys: AccessKeyEntry[];
  policies: StoredPolicies;
}

export interface InventoryRole {
  name: string;
  accountId: string;
  arn: string;
  /** AROA… */
  id: string;
  trust: string[];
  allowSourceIdentity: boolean;
  maxSessionDuration: number;
  accessKeys: AccessKeyEntry[];
  policies: StoredPolicies;
}

export interface InventoryAccount {
  id: string;
  users: InventoryUser[];
  roles: InventoryRole[];
}

export interface EmulatorInstance extends InventoryInstance {
  instanceType: string;
  imageId: string;
  launchTime: string;
}

export interface EmulatorEndpoint extends InventoryEndpoint {
  arn: string;
  availabilityZone: string;
  securityGroupIds: string[];
  networkInterfaceIds: string[];
  tags: Record<string, string>;
  preserveClientIp: boolean;
  ipAddressType: "ipv4" | "dualstack" | "ipv6";
  createdAt: string;
}

/** The parsed inventory: the contract's `Inventory` plus the IAM side. */
export interface EmulatorInventory extends Inventory {
  accounts: InventoryAccount[];
  instances: EmulatorInstance[];
  endpoints: EmulatorEndpoint[];
  buckets: InventoryBucket[];
}

export const InventoryFile = z
  .strictObject({
    accounts: z.array(Account).default([]),
    instances: z.array(Instance).default([]),
    endpoints: z.array(Endpoint).default([]),
    buckets: z.array(Bucket).default([]),
  })
  .superRefine((file, ctx) => {
    const duplicate = (path: (string | number)[], message: string) =>
      ctx.addIssue({ code: "custom", path, message });
    const seen = new Map<string, string>();
    const once = (kind: string, id: string, path: (string | number)[]) => {
      const key = `${kind}:${id}`;
      if (seen.has(key)) duplicate(path, `duplicate ${kind} '${id}' (also at ${seen.get(key)})`);
      else seen.set(key, path.join("."));
    };
    file.accounts.forEach((account, a) => {
      once("account", account.id, ["accounts", a, "id"]);
      account.users.forEach((user, u) => {
        once(`user in ${account.id}`, user.name, ["accounts", a, "users", u, "name"]);
        user.accessKeys.forEach((key, k) => {
          once("access key", key.id, ["accounts", a, "users", u, "accessKeys", k, "id"]);
        });
      });
      account.roles.forEach((role, r) => {
        once(`role in ${account.id}`, role.name, ["accounts", a, "roles", r, "name"]);
        role.accessKeys.forEach((key, k) => {
          once("access key", key.id, ["accounts", a, "roles", r, "accessKeys", k, "id"]);
        });
      });
    });
    file.instances.forEach((instance, i) => {
      once("instance", instance.id, ["instances", i, "id"]);
      if (!instance.availabilityZone.startsWith(instance.region))
        duplicate(["instances", i, "availabilityZone"], `must be in ${instance.region}`);
    });
    file.endpoints.forEach((endpoint, e) => {
      once("endpoint", endpoint.id, ["endpoints", e, "id"]);
    });
    // Bucket names are global across accounts and regions.
    file.buckets.forEach((bucket, b) => {
      once("bucket", bucket.name, ["buckets", b, "name"]);
    });
  })
  .transform((file): EmulatorInventory => {
    const accounts = file.accounts.map(
      (account): InventoryAccount => ({
        id: account.id,
        users: account.users.map((user) => {
          const arn = `arn:aws:iam::${account.id}:user/${user.name}`;
          return { ...user, accountId: account.id, arn, id: stableId("AIDA", arn) };
        }),
        roles: account.roles.map((role) => {
          const arn = `arn:aws:iam::${account.id}:role/${role.name}`;
          return { ...role, accountId: account.id, arn, id: stableId("AROA", arn) };
        }),
      }),
    );
    const instances = file.instances.map((instance): EmulatorInstance => ({ ...instance }));
    const endpoints = file.endpoints.map((endpoint): EmulatorEndpoint => {
      const sameSubnet = file.instances.find((i) => i.subnetId === endpoint.subnetId);
      return {
        ...endpoint,
        arn: `arn:aws:ec2:${endpoint.region}:${endpoint.account}:instance-connect-endpoint/${endpoint.id}`,
        availabilityZone: endpoint.availabilityZone ?? sameSubnet?.availabilityZone ?? `${endpoint.region}a`,
        dnsName:
          endpoint.dnsName ?? `${endpoint.id}.ec2-instance-connect-endpoint.${endpoint.region}.amazonaws.com`,
        fipsDnsName:
          endpoint.fipsDnsName ??
          `${endpoint.id}.fips.ec2-instance-connect-endpoint.${endpoint.region}.amazonaws.com`,
        networkInterfaceIds: [`eni-${stableHex(endpoint.id)}`],
      };
    });
    return { accounts, instances, endpoints, buckets: file.buckets };
  });

export type InventoryInput = z.input<typeof InventoryFile>;

export class InventoryError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InventoryError";
  }
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path
        .map((part, index) =>
          typeof part === "number" ? `[${part}]` : `${index === 0 ? "" : "."}${String(part)}`,
        )
        .join("");
      return `  ${path || "(root)"}: ${issue.message}`;
    })
    .join("\n");
}

/** Validates an inventory given as an object (tests build their own worlds this way). */
export function buildInventory(input: unknown, source = "inventory"): EmulatorInventory {
  const parsed = InventoryFile.safeParse(input ?? {});
  if (!parsed.success) throw new InventoryError(`${source} is invalid:\n${describeIssues(parsed.error)}`);
  return parsed.data;
}

/** Parses and validates inventory YAML; errors name the path and the reason. */
export function parseInventory(text: string, source = "inventory"): EmulatorInventory {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new InventoryError(`${source} is not valid YAML: ${(error as Error).message}`, { cause: error });
  }
  return buildInventory(document, source);
}

/** Reads, parses and validates an inventory file. */
export function loadInventory(path: string): EmulatorInventory {
  return parseInventory(readFileSync(path, "utf8"), path);
}
