/**
 * STS for the emulator (query protocol, https://sts.amazonaws.com/doc/2011-06-15/): `AssumeRole` with
 * inline session policy, `SourceIdentity`, role chaining limits and the role's trust list, and
 * `GetCallerIdentity`. Limits and errors follow the botocore model and the IAM User Guide (protocols.md §4.4).
 *
 * Stricter than AWS in one respect, on purpose: the caller always needs `sts:AssumeRole` on the role ARN in
 * its identity policies, also within one account where AWS would let a trust policy naming the principal suffice.
 */
import type { Caller, EmulatorCore, EmulatorService } from "./contract.ts";
import { checkPolicyDocument, type IamDirectory, type RoleEntry } from "./iam.ts";
import type { Policy } from "./policy.ts";
import { policySize } from "./policy.ts";
import { awsService, type CallContext, type ServiceDeps, ServiceError, type XmlObject } from "./wire.ts";

export const STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/";
const SESSION_NAME = /^[\w+=,.@-]*$/;
const ROLE_ARN = /^arn:aws:iam::(\d{12}):role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]{1,64})$/;
/** Role chaining caps sessions at one hour (IAM User Guide, "Role chaining"). */
const CHAINED_MAX_SECONDS = 3600;
const SESSION_POLICY_MAX = 2048;

const isoSeconds = (date: Date) => date.toISOString().replace(/\.\d{3}Z$/, "Z");

function validation(field: string, value: string | undefined, rule: string): ServiceError {
  const shown = value === undefined ? "null" : `'${value.slice(0, 200)}'`;
  return new ServiceError(
    400,
    "ValidationError",
    `1 validation error detected: Value ${shown} at '${field}' failed to satisfy constraint: Member must ${rule}`,
  );
}

/** Does the role's trust list admit this caller? */
function trusts(role: RoleEntry, caller: Caller): boolean {
  const principalArn = caller.type === "AssumedRole" ? caller.session?.roleArn : caller.arn;
  return role.trust.some(
    (entry) =>
      entry === "*" ||
      entry === caller.accountId ||
      entry === `arn:aws:iam::${caller.accountId}:root` ||
      entry === principalArn ||
      // A trust entry may also name the exact assumed-role session ARN.
      entry === caller.arn,
  );
}

function assumeRole(iam: IamDirectory) {
  return {
    readOnly: true,
    run(ctx: CallContext): XmlObject {
      const { caller, params } = ctx;
      const roleArn = params.get("RoleArn");
      const sessionName = params.get("RoleSessionName");
      const policyText = params.get("Policy");
      const durationText = params.get("DurationSeconds");
      const sourceIdentity = params.get("SourceIdentity");
      ctx.trail.requestParameters = {
        roleArn,
        roleSessionName: sessionName,
        ...(durationText === undefined ? {} : { durationSeconds: Number(durationText) }),
        ...(policyText === undefined ? {} : { policy: policyText }),
        ...(sourceIdentity === undefined ? {} : { sourceIdentity }),
      };

      if (roleArn === undefined) throw validation("roleArn", roleArn, "not be null");
      if (roleArn.length < 20 || roleArn.length > 2048)
        throw validation("roleArn", roleArn, "have length between 20 and 2048");
      if (sessionName === undefined) throw validation("roleSessionName", sessionName, "not be null");
      if (sessionName.length < 2)
        throw validation("roleSessionName", sessionName, "have length greater than or equal to 2");
      if (sessionName.length > 64)
        throw validation("roleSessionName", sessionName, "have length less than or equal to 64");
      if (!SESSION_NAME.test(sessionName))
        throw validation("roleSessionName", sessionName, "satisfy regular expression pattern: [\\w+=,.@-]*");
      let durationSeconds = 3600;
      if (durationText !== undefined) {
        durationSeconds = /^\d{1,6}$/.test(durationText) ? Number(durationText) : Number.NaN;
        if (!(durationSeconds >= 900))
          throw validation("durationSeconds", durationText, "have value greater than or equal to 900");
        if (durationSeconds > 43_200)
          throw validation("durationSeconds", durationText, "have value less than or equal to 43200");
      }
      if (sourceIdentity !== undefined) {
        if (sourceIdentity.length < 2)
          throw validation("sourceIdentity", sourceIdentity, "have length greater than or equal to 2");
        if (sourceIdentity.length > 64)
          throw validation("sourceIdentity", sourceIdentity, "have length less than or equal to 64");
        if (!SESSION_NAME.test(sourceIdentity))
          throw validation(
            "sourceIdentity",
            sourceIdentity,
            "satisfy regular expression pattern: [\\w+=,.@-]*",
          );
        if (sourceIdentity.toLowerCase().startsWith("aws:"))
          throw new ServiceError(
            400,
            "ValidationError",
            "SourceIdentity cannot start with the prefix 'aws:'",
          );
      }
      let sessionPolicy: Policy | undefined;
      let packedPolicySize: number | undefined;
      if (policyText !== undefined) {
        if (policyText.length > SESSION_POLICY_MAX)
          throw validation("policy", policyText, `have length less than or equal to ${SESSION_POLICY_MAX}`);
        try {
          sessionPolicy = checkPolicyDocument(policyText, "policy", SESSION_POLICY_MAX);
        } catch (error) {
          if (error instanceof ServiceError && error.code === "MalformedPolicyDocument") {
            throw new ServiceError(
              400,
              "MalformedPolicyDocument",
              `The policy is not in the valid JSON format. ${error.message}`,
            );
          }
          throw error;
        }
        // AWS packs policies in a binary form; whitespace-free characters over the 2048 budget is a fair proxy.
        packedPolicySize = Math.max(1, Math.ceil((policySize(policyText) * 100) / SESSION_POLICY_MAX));
        if (packedPolicySize > 100)
          throw new ServiceError(
            400,
            "PackedPolicyTooLarge",
            `Packed size of the policy is ${packedPolicySize}% of the limit`,
          );
      }

      const match = ROLE_ARN.exec(roleArn);
      const roleAccount = match?.[1];
      if (roleAccount !== undefined) ctx.trail.accountIds = [roleAccount, caller.accountId];
      const role = iam.roleByArn(roleArn);
      ctx.trail.resources = [
        { accountId: roleAccount ?? caller.accountId, type: "AWS::IAM::Role", ARN: roleArn },
      ];
      const denied = () =>
        new ServiceError(
          403,
          "AccessDenied",
          `User: ${caller.arn} is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`,
        );

      ctx.authorize("sts:AssumeRole", roleArn);
      // AWS answers AccessDenied for a missing role too: it does not reveal which roles exist.
      if (match === null || role === undefined || !trusts(role, caller)) throw denied();

      const chained = caller.type === "AssumedRole";
      if (durationSeconds > role.maxSessionDuration) {
        throw new ServiceError(
          400,
          "ValidationError",
          "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        );
      }
      if (chained && durationSeconds > CHAINED_MAX_SECONDS) {
        throw new ServiceError(
          400,
          "ValidationError",
          "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        );
      }

      // SourceIdentity persists through chained sessions and cannot be changed once set.
      const inherited = caller.session?.sourceIdentity;
      if (inherited !== undefined && sourceIdentity !== undefined && sourceIdentity !== inherited) {
        throw new ServiceError(
          403,
          "AccessDenied",
          `User: ${caller.arn} is not authorized to perform: sts:SetSourceIdentity on resource: ${roleArn}: the source identity of a session cannot be changed`,
        );
      }
      const effectiveSourceIdentity = sourceIdentity ?? inherited;
      if (effectiveSourceIdentity !== undefined) {
        const setDenied = () =>
          new ServiceError(
            403,
            "AccessDenied",
            `User: ${caller.arn} is not authorized to perform: sts:SetSourceIdentity on resource: ${roleArn}`,
          );
        if (!role.allowSourceIdentity) throw setDenied();
        if (sourceIdentity !== undefined && inherited === undefined) {
          const decision = ctx.core.authorize(caller, "sts:SetSourceIdentity", roleArn, {});
          if (!decision.allowed) throw new ServiceError(403, "AccessDenied", decision.message);
        }
      }

      const issued = iam.createSession(role, {
        sessionName,
        durationSeconds,
        ...(effectiveSourceIdentity === undefined ? {} : { sourceIdentity: effectiveSourceIdentity }),
        ...(sessionPolicy === undefined ? {} : { policy: sessionPolicy }),
      });
      const assumedRoleId = `${role.id}:${sessionName}`;
      const assumedArn = issued.caller.arn;
      ctx.trail.responseElements = {
        credentials: {
          accessKeyId: issued.accessKeyId,
          sessionToken: issued.sessionToken,
          expiration: isoSeconds(issued.expiration),
        },
        assumedRoleUser: { assumedRoleId, arn: assumedArn },
        ...(packedPolicySize === undefined ? {} : { packedPolicySize }),
        ...(effectiveSourceIdentity === undefined ? {} : { sourceIdentity: effectiveSourceIdentity }),
      };
      return {
        Credentials: {
          AccessKeyId: issued.accessKeyId,
          SecretAccessKey: issued.secretAccessKey,
          SessionToken: issued.sessionToken,
          Expiration: issued.expiration,
        },
        AssumedRoleUser: { AssumedRoleId: assumedRoleId, Arn: assumedArn },
        PackedPolicySize: packedPolicySize,
        SourceIdentity: effectiveSourceIdentity,
      };
    },
  };
}

/** STS: AssumeRole and GetCallerIdentity. */
export function stsService(core: EmulatorCore, iam: IamDirectory, deps: ServiceDeps): EmulatorService {
  return awsService(
    core,
    {
      signingName: "sts",
      eventSource: "sts.amazonaws.com",
      protocol: "query",
      xmlns: STS_XMLNS,
      accessDenied: (message) => new ServiceError(403, "AccessDenied", message),
      operations: {
        AssumeRole: assumeRole(iam),
        GetCallerIdentity: {
          readOnly: true,
          // Needs no permission: even a principal denied everything may ask who it is.
          run: (ctx) => ({
            Arn: ctx.caller.arn,
            UserId: ctx.caller.principalId,
            Account: ctx.caller.accountId,
          }),
        },
      },
    },
    deps,
  );
}
