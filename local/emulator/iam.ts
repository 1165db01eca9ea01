/**
 * IAM for the emulator: the principals of the inventory (users, roles, their inline policies), the
 * credential store (IAM user keys, standing role keys, STS session keys `ASIA…` with token, expiry, role,
 * session name, source identity and session policy), the authorization decision every service asks for,
 * and the IAM API subset the broker uses (inline role/user policies, query protocol, real limits).
 */
import { randomBytes } from "node:crypto";
import type { Caller, ConditionContext, Decision, EmulatorCore, EmulatorService } from "./contract.ts";
import type { EmulatorInventory } from "./inventory.ts";
import { evaluatePolicies, type Policy, parsePolicyText, policySize, type RequestContext } from "./policy.ts";
import type { SigningKey } from "./sigv4.ts";
import { awsService, type CallContext, type ServiceDeps, ServiceError, type XmlObject } from "./wire.ts";

export const IAM_XMLNS = "https://iam.amazonaws.com/doc/2010-05-08/";

/** IAM quotas (IAM User Guide, "IAM and AWS STS quotas"): aggregate inline policy characters, whitespace ignored. */
export const INLINE_LIMIT = { user: 2048, role: 10_240 } as const;
/** The PolicyDocument API string limit (botocore model). */
export const MAX_POLICY_DOCUMENT = 131_072;

export interface InlinePolicy {
  text: string;
  policy: Policy;
}

interface PrincipalBase {
  accountId: string;
  name: string;
  arn: string;
  /** AIDA… / AROA… */
  id: string;
  policies: Map<string, InlinePolicy>;
}

export interface UserEntry extends PrincipalBase {
  kind: "user";
}

export interface RoleEntry extends PrincipalBase {
  kind: "role";
  trust: string[];
  allowSourceIdentity: boolean;
  maxSessionDuration: number;
}

export interface Session {
  role: RoleEntry;
  sessionName: string;
  sourceIdentity?: string;
  createdAt: Date;
  expiresAt: Date;
  /** Inline session policy (AssumeRole `Policy`): effective permissions are the role's ∩ this. */
  policy?: Policy;
}

interface KeyEntry {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  user?: UserEntry;
  session?: Session;
}

export interface IssuedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
  caller: Caller;
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const randomBase32 = (length: number) => [...randomBytes(length)].map((byte) => BASE32[byte % 32]).join("");
const isoSeconds = (date: Date) => date.toISOString().replace(/\.\d{3}Z$/, "Z");
// Standing role keys (inventory `roles[].accessKeys`) never expire in practice.
const STANDING_SESSION_MS = 100 * 365 * 24 * 3600 * 1000;

/** The IAM side of the emulator's world, mutable through the IAM API and STS; `reset()` restores the inventory. */
export class IamDirectory {
  private users = new Map<string, UserEntry>();
  private roles = new Map<string, RoleEntry>();
  private keys = new Map<string, KeyEntry>();

  constructor(
    private readonly inventory: EmulatorInventory,
    private readonly now: () => Date,
  ) {
    this.reset();
  }

  /** Back to the inventory: runtime policy changes and STS sessions are dropped. */
  reset(): void {
    this.users.clear();
    this.roles.clear();
    this.keys.clear();
    const started = this.now();
    for (const account of this.inventory.accounts) {
      for (const user of account.users) {
        const entry: UserEntry = {
          kind: "user",
          accountId: account.id,
          name: user.name,
          arn: user.arn,
          id: user.id,
          policies: new Map(Object.entries(user.policies)),
        };
        this.users.set(entry.arn, entry);
        for (const key of user.accessKeys)
          this.keys.set(key.id, { accessKeyId: key.id, secretAccessKey: key.secret, user: entry });
      }
      for (const role of account.roles) {
        const entry: RoleEntry = {
          kind: "role",
          accountId: account.id,
          name: role.name,
          arn: role.arn,
          id: role.id,
          trust: role.trust,
          allowSourceIdentity: role.allowSourceIdentity,
          maxSessionDuration: role.maxSessionDuration,
          policies: new Map(Object.entries(role.policies)),
        };
        this.roles.set(entry.arn, entry);
        for (const key of role.accessKeys) {
          this.keys.set(key.id, {
            accessKeyId: key.id,
            secretAccessKey: key.secret,
            session: {
              role: entry,
              sessionName: key.sessionName ?? role.name,
              createdAt: started,
              expiresAt: new Date(started.getTime() + STANDING_SESSION_MS),
            },
          });
        }
      }
    }
  }

  user(accountId: string, name: string): UserEntry | undefined {
    return this.users.get(`arn:aws:iam::${accountId}:user/${name}`);
  }

  role(accountId: string, name: string): RoleEntry | undefined {
    return this.roles.get(`arn:aws:iam::${accountId}:role/${name}`);
  }

  roleByArn(arn: string): RoleEntry | undefined {
    return this.roles.get(arn);
  }

  /** What SigV4 verification needs to know about an access key. */
  signingKey(accessKeyId: string): SigningKey | undefined {
    const entry = this.keys.get(accessKeyId);
    if (entry === undefined) return undefined;
    return {
      secretAccessKey: entry.secretAccessKey,
      ...(entry.sessionToken === undefined ? {} : { sessionToken: entry.sessionToken }),
      ...(entry.sessionToken === undefined || entry.session === undefined
        ? {}
        : { expiresAt: entry.session.expiresAt }),
    };
  }

  session(accessKeyId: string): Session | undefined {
    return this.keys.get(accessKeyId)?.session;
  }

  /** The identity behind an access key, shaped like CloudTrail's userIdentity. */
  caller(accessKeyId: string): Caller | undefined {
    const entry = this.keys.get(accessKeyId);
    if (entry === undefined) return undefined;
    if (entry.user !== undefined) {
      return {
        type: "IAMUser",
        accountId: entry.user.accountId,
        arn: entry.user.arn,
        principalId: entry.user.id,
        accessKeyId,
        userName: entry.user.name,
      };
    }
    const session = entry.session as Session;
    const { role } = session;
    return {
      type: "AssumedRole",
      accountId: role.accountId,
      arn: `arn:aws:sts::${role.accountId}:assumed-role/${role.name}/${session.sessionName}`,
      principalId: `${role.id}:${session.sessionName}`,
      accessKeyId,
      session: {
        roleArn: role.arn,
        roleName: role.name,
        roleId: role.id,
        sessionName: session.sessionName,
        ...(session.sourceIdentity === undefined ? {} : { sourceIdentity: session.sourceIdentity }),
        createdAt: isoSeconds(session.createdAt),
        expiresAt: isoSeconds(session.expiresAt),
      },
    };
  }

  /** Issues STS session credentials for `role` (AssumeRole has already checked everything). */
  createSession(
    role: RoleEntry,
    options: { sessionName: string; durationSeconds: number; sourceIdentity?: string; policy?: Policy },
  ): IssuedCredentials {
    const now = this.now();
    this.prune(now);
    const accessKeyId = `ASIA${randomBase32(16)}`;
    const secretAccessKey = randomBytes(30).toString("base64");
    // Real tokens are long opaque base64 blobs beginning "IQoJb3JpZ2luX2Vj"; the content is not meaningful.
    const sessionToken = `IQoJb3JpZ2luX2VjE${randomBytes(180).toString("base64")}`;
    const session: Session = {
      role,
      sessionName: options.sessionName,
      createdAt: now,
      expiresAt: new Date(now.getTime() + options.durationSeconds * 1000),
      ...(options.sourceIdentity === undefined ? {} : { sourceIdentity: options.sourceIdentity }),
      ...(options.policy === undefined ? {} : { policy: options.policy }),
    };
    this.keys.set(accessKeyId, { accessKeyId, secretAccessKey, sessionToken, session });
    return {
      accessKeyId,
      secretAccessKey,
      sessionToken,
      expiration: session.expiresAt,
      caller: this.caller(accessKeyId) as Caller,
    };
  }

  /** Forget sessions that expired a day ago (younger ones still answer ExpiredToken, as AWS does). */
  private prune(now: Date): void {
    for (const [id, entry] of this.keys) {
      if (
        entry.sessionToken !== undefined &&
        entry.session &&
        entry.session.expiresAt.getTime() < now.getTime() - 86_400_000
      )
        this.keys.delete(id);
    }
  }

  /** Global condition keys IAM puts in every request context for this caller. */
  private globalContext(caller: Caller, session: Session | undefined): RequestContext {
    const context: RequestContext = {
      "aws:PrincipalAccount": caller.accountId,
      "aws:userid": caller.principalId,
      "aws:PrincipalType": caller.type === "IAMUser" ? "User" : "AssumedRole",
    };
    if (caller.type === "IAMUser") {
      context["aws:PrincipalArn"] = caller.arn;
      if (caller.userName !== undefined) context["aws:username"] = caller.userName;
    } else if (caller.session !== undefined) {
      context["aws:PrincipalArn"] = caller.session.roleArn;
      const sourceIdentity = session?.sourceIdentity ?? caller.session.sourceIdentity;
      if (sourceIdentity !== undefined) context["aws:SourceIdentity"] = sourceIdentity;
    }
    return context;
  }

  /**
   * The caller's identity policies ∩ its session policy, explicit Deny wins, no Allow = implicit deny.
   * `aws:CurrentTime` (ISO 8601) and `aws:EpochTime` always come from the emulator clock.
   */
  authorize(caller: Caller, action: string, resource: string, context: ConditionContext): Decision {
    const now = this.now();
    const entry = this.keys.get(caller.accessKeyId);
    const session = entry?.session;
    const on = resource === "*" ? "" : ` on resource: ${resource}`;
    const head = `User: ${caller.arn} is not authorized to perform: ${action}${on}`;
    if (session !== undefined && session.expiresAt.getTime() <= now.getTime()) {
      return { allowed: false, reason: "expired", message: `${head} because the session has expired` };
    }
    const principal: PrincipalBase | undefined =
      caller.type === "IAMUser"
        ? this.users.get(caller.arn)
        : caller.session === undefined
          ? undefined
          : this.roles.get(caller.session.roleArn);
    const request = {
      action,
      resource,
      context: {
        ...this.globalContext(caller, session),
        ...context,
        "aws:CurrentTime": isoSeconds(now),
        "aws:EpochTime": Math.floor(now.getTime() / 1000),
      },
    };
    const identity = evaluatePolicies(
      [...(principal?.policies.values() ?? [])].map((p) => p.policy),
      request,
    );
    if (identity === "deny") {
      return {
        allowed: false,
        reason: "explicit-deny",
        message: `${head} with an explicit deny in an identity-based policy`,
      };
    }
    const sessionResult =
      session?.policy === undefined ? "allow" : evaluatePolicies([session.policy], request);
    if (sessionResult === "deny") {
      return {
        allowed: false,
        reason: "explicit-deny",
        message: `${head} with an explicit deny in a session policy`,
      };
    }
    if (identity === "none") {
      return {
        allowed: false,
        reason: "no-allow",
        message: `${head} because no identity-based policy allows the ${action} action`,
      };
    }
    if (sessionResult === "none") {
      return {
        allowed: false,
        reason: "session-policy",
        message: `${head} because no session policy allows the ${action} action`,
      };
    }
    return { allowed: true };
  }

  /** Principal of kind `kind` named `name` in `accountId`. */
  principal(kind: "user" | "role", accountId: string, name: string): UserEntry | RoleEntry | undefined {
    return kind === "user" ? this.user(accountId, name) : this.role(accountId, name);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The IAM API (query protocol, https://iam.amazonaws.com/doc/2010-05-08/)

const NAME_PATTERN = /^[\w+=,.@-]+$/;
// The API's character set for policy documents: tab, LF, CR and U+0020–U+00FF.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the model's pattern names these characters.
const DOCUMENT_PATTERN = /^[\u0009\u000A\u000D\u0020-\u00FF]+$/;

function validationError(message: string): ServiceError {
  return new ServiceError(400, "ValidationError", message);
}

function requireParam(ctx: CallContext, name: string): string {
  const value = ctx.params.get(name);
  if (value === undefined) throw validationError(`The request must contain the parameter ${name}`);
  return value;
}

function constraint(field: string, value: string, rule: string): ServiceError {
  return validationError(
    `1 validation error detected: Value '${value.slice(0, 200)}' at '${field}' failed to satisfy constraint: Member must ${rule}`,
  );
}

function nameParam(ctx: CallContext, name: string, max: number): string {
  const value = requireParam(ctx, name);
  const field = name.charAt(0).toLowerCase() + name.slice(1);
  if (value.length < 1) throw constraint(field, value, "have length greater than or equal to 1");
  if (value.length > max) throw constraint(field, value, `have length less than or equal to ${max}`);
  if (!NAME_PATTERN.test(value))
    throw constraint(field, value, "satisfy regular expression pattern: [\\w+=,.@-]+");
  return value;
}

/** Validates a policy document as the IAM API does (length, characters, JSON, grammar). */
export function checkPolicyDocument(
  text: string,
  field = "policyDocument",
  max = MAX_POLICY_DOCUMENT,
): Policy {
  if (text.length < 1) throw constraint(field, text, "have length greater than or equal to 1");
  if (text.length > max) throw constraint(field, text, `have length less than or equal to ${max}`);
  if (!DOCUMENT_PATTERN.test(text))
    throw constraint(
      field,
      text,
      "satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+",
    );
  const parsed = parsePolicyText(text);
  if (!parsed.ok) throw new ServiceError(400, "MalformedPolicyDocument", parsed.message);
  return parsed.policy;
}

function encodeMarker(name: string): string {
  return Buffer.from(name, "utf8").toString("base64url");
}

function listPage(names: string[], ctx: CallContext): XmlObject {
  const maxText = ctx.params.get("MaxItems");
  const maxItems = maxText === undefined ? 100 : Number(maxText);
  if (!Number.isInteger(maxItems) || maxItems < 1 || maxItems > 1000)
    throw constraint("maxItems", maxText ?? "", "have value between 1 and 1000");
  const marker = ctx.params.get("Marker");
  let start = 0;
  if (marker !== undefined) {
    const after = Buffer.from(marker, "base64url").toString("utf8");
    if (marker === "" || encodeMarker(after) !== marker) throw validationError("Invalid Marker");
    start = names.findIndex((name) => name > after);
    if (start < 0) start = names.length;
  }
  const page = names.slice(start, start + maxItems);
  const truncated = start + maxItems < names.length;
  return {
    PolicyNames: { member: page },
    IsTruncated: truncated,
    ...(truncated ? { Marker: encodeMarker(page[page.length - 1] as string) } : {}),
  };
}

/** The IAM query API: Put/Delete/List/Get of inline role and user policies. */
export function iamService(core: EmulatorCore, iam: IamDirectory, deps: ServiceDeps): EmulatorService {
  type Kind = "user" | "role";
  const label = (kind: Kind) => (kind === "user" ? "User" : "Role");

  function target(ctx: CallContext, kind: Kind, action: string) {
    const name = nameParam(ctx, `${label(kind)}Name`, 64);
    const arn = `arn:aws:iam::${ctx.caller.accountId}:${kind}/${name}`;
    ctx.trail.requestParameters = { [`${kind}Name`]: name };
    ctx.authorize(`iam:${action}`, arn);
    const principal = iam.principal(kind, ctx.caller.accountId, name);
    if (principal === undefined)
      throw new ServiceError(404, "NoSuchEntity", `The ${kind} with name ${name} cannot be found.`);
    return principal;
  }

  const put = (kind: Kind) => ({
    readOnly: false,
    run(ctx: CallContext) {
      const action = `Put${label(kind)}Policy`;
      const policyName = nameParam(ctx, "PolicyName", 128);
      const document = requireParam(ctx, "PolicyDocument");
      const principal = target(ctx, kind, action);
      ctx.trail.requestParameters = { [`${kind}Name`]: principal.name, policyName, policyDocument: document };
      const policy = checkPolicyDocument(document);
      let total = policySize(document);
      for (const [name, existing] of principal.policies)
        if (name !== policyName) total += policySize(existing.text);
      const limit = INLINE_LIMIT[kind];
      if (total > limit) {
        throw new ServiceError(
          409,
          "LimitExceeded",
          `Maximum policy size of ${limit} bytes exceeded for ${kind} ${principal.name}`,
        );
      }
      principal.policies.set(policyName, { text: document, policy });
      return undefined;
    },
  });

  const remove = (kind: Kind) => ({
    readOnly: false,
    run(ctx: CallContext) {
      const policyName = nameParam(ctx, "PolicyName", 128);
      const principal = target(ctx, kind, `Delete${label(kind)}Policy`);
      ctx.trail.requestParameters = { [`${kind}Name`]: principal.name, policyName };
      if (!principal.policies.delete(policyName))
        throw new ServiceError(
          404,
          "NoSuchEntity",
          `The ${kind} policy with name ${policyName} cannot be found.`,
        );
      return undefined;
    },
  });

  const list = (kind: Kind) => ({
    readOnly: true,
    run(ctx: CallContext) {
      const principal = target(ctx, kind, `List${label(kind)}Policies`);
      const names = [...principal.policies.keys()].sort();
      return listPage(names, ctx);
    },
  });

  const get = (kind: Kind) => ({
    readOnly: true,
    run(ctx: CallContext): XmlObject {
      const policyName = nameParam(ctx, "PolicyName", 128);
      const principal = target(ctx, kind, `Get${label(kind)}Policy`);
      ctx.trail.requestParameters = { [`${kind}Name`]: principal.name, policyName };
      const policy = principal.policies.get(policyName);
      if (policy === undefined)
        throw new ServiceError(
          404,
          "NoSuchEntity",
          `The ${kind} policy with name ${policyName} cannot be found.`,
        );
      return {
        [`${label(kind)}Name`]: principal.name,
        PolicyName: policyName,
        // IAM returns the document URL-encoded (RFC 3986); clients decode it.
        PolicyDocument: encodeURIComponent(policy.text),
      };
    },
  });

  return awsService(
    core,
    {
      signingName: "iam",
      eventSource: "iam.amazonaws.com",
      protocol: "query",
      xmlns: IAM_XMLNS,
      trailRegion: () => "us-east-1",
      accessDenied: (message) => new ServiceError(403, "AccessDenied", message),
      // CloudTrail spells IAM's modeled errors with their shape names (NoSuchEntityException, …).
      trailErrorCode: (code) =>
        code === "AccessDenied" ||
        code === "ValidationError" ||
        code.endsWith("Exception") ||
        code === "Throttling"
          ? code
          : `${code}Exception`,
      operations: {
        PutRolePolicy: put("role"),
        PutUserPolicy: put("user"),
        DeleteRolePolicy: remove("role"),
        DeleteUserPolicy: remove("user"),
        ListRolePolicies: list("role"),
        ListUserPolicies: list("user"),
        GetRolePolicy: get("role"),
        GetUserPolicy: get("user"),
      },
    },
    deps,
  );
}
