import {
  DeleteRolePolicyCommand,
  DeleteUserPolicyCommand,
  IAMClient,
  ListRolePoliciesCommand,
  ListUserPoliciesCommand,
  PutRolePolicyCommand,
  PutUserPolicyCommand,
} from "@aws-sdk/client-iam";
import type { Grant } from "../grant/index.ts";
import type { AwsClients } from "./clients.ts";
import { errorName } from "./errors.ts";

/** `arn:aws:iam::<account>:role/<path/>name` → account, kind and name (the last path segment). */
export function parsePrincipalArn(arn: string): { account: string; kind: "role" | "user"; name: string } {
  const match = /^arn:[\w-]+:iam::(\d{12}):(role|user)\/(?:[\w+=,.@/-]*\/)?([\w+=,.@-]+)$/.exec(arn);
  if (!match) throw new Error(`not an IAM role or user ARN: ${arn}`);
  return { account: match[1] as string, kind: match[2] as "role" | "user", name: match[3] as string };
}

/**
 * Grant.IamPolicies: inline policies on a person's own role or user, written as the broker role of the
 * principal's account (PutRolePolicy/PutUserPolicy, DeleteRolePolicy/DeleteUserPolicy, List*Policies).
 */
export class IamPolicyAdapter implements Grant.IamPolicies {
  constructor(private readonly aws: AwsClients) {}

  async put(principalArn: string, policyName: string, document: string): Promise<void> {
    const { account, kind, name } = parsePrincipalArn(principalArn);
    const client = this.aws.inAccount(IAMClient, account, this.aws.homeRegion);
    if (kind === "role")
      await client.send(
        new PutRolePolicyCommand({ RoleName: name, PolicyName: policyName, PolicyDocument: document }),
      );
    else
      await client.send(
        new PutUserPolicyCommand({ UserName: name, PolicyName: policyName, PolicyDocument: document }),
      );
  }

  async remove(principalArn: string, policyName: string): Promise<boolean> {
    const { account, kind, name } = parsePrincipalArn(principalArn);
    const client = this.aws.inAccount(IAMClient, account, this.aws.homeRegion);
    try {
      if (kind === "role")
        await client.send(new DeleteRolePolicyCommand({ RoleName: name, PolicyName: policyName }));
      else await client.send(new DeleteUserPolicyCommand({ UserName: name, PolicyName: policyName }));
      return true;
    } catch (error) {
      if (errorName(error) === "NoSuchEntityException") return false;
      throw error;
    }
  }

  async list(principalArn: string): Promise<string[]> {
    const { account, kind, name } = parsePrincipalArn(principalArn);
    const client = this.aws.inAccount(IAMClient, account, this.aws.homeRegion);
    const names: string[] = [];
    let marker: string | undefined;
    do {
      const page =
        kind === "role"
          ? await client.send(new ListRolePoliciesCommand({ RoleName: name, Marker: marker }))
          : await client.send(new ListUserPoliciesCommand({ UserName: name, Marker: marker }));
      names.push(...(page.PolicyNames ?? []));
      marker = page.IsTruncated ? page.Marker : undefined;
    } while (marker);
    return names;
  }
}
