/**
 * The IAM policy documents the broker writes: the inline session policy of a per-grant tunnel signer
 * session, and the time-boxed inline policy of IAM grant mode. Pure functions, so the exact conditions and
 * sizes are unit-tested (protocols.md §4.1, §4.2, §4.4).
 */

/** STS: "The plaintext that you use for both inline and managed session policies can't exceed 2,048 characters." */
export const SESSION_POLICY_MAX_CHARS = 2_048;
/** IAM: all inline policies of a user together ≤ 2,048 characters (roles 10,240), whitespace not counted. */
export const USER_INLINE_POLICIES_MAX_CHARS = 2_048;
/** EICE cuts every tunnel at 3600 s at most, and accepts maxTunnelDuration 1–3600. */
export const MAX_TUNNEL_SECONDS = 3_600;

export interface Statement {
  Sid: string;
  Effect: "Allow";
  Action: string;
  Resource: string;
  Condition: Record<string, Record<string, string>>;
}

export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: Statement[];
}

/** `aws` from `arn:aws:iam::…`, so ARNs built for an account follow its partition (aws-cn, aws-us-gov). */
export function partitionOf(arn: string): string {
  return arn.split(":")[1] || "aws";
}

export function instanceArn(partition: string, region: string, account: string, instanceId: string): string {
  return `arn:${partition}:ec2:${region}:${account}:instance/${instanceId}`;
}

export function endpointArn(partition: string, region: string, account: string, endpointId: string): string {
  return `arn:${partition}:ec2:${region}:${account}:instance-connect-endpoint/${endpointId}`;
}

/** One address as a CIDR for the `IpAddress` operator. */
export function hostCidr(ip: string): string {
  return ip.includes(":") ? `${ip}/128` : `${ip}/32`;
}

/**
 * ISO 8601 UTC without milliseconds, as IAM's date examples write it. Rounded down, so a policy never
 * outlives the grant by the fraction of a second.
 */
export function iamTime(date: Date): string {
  return new Date(Math.floor(date.getTime() / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

export interface TunnelConstraints {
  endpointArn: string;
  remotePort: number;
  /** The instance's private IPv4 (or IPv6): the only address the tunnel may reach. */
  ip: string;
  /** Upper bound for the URL's maxTunnelDuration (1–3600). */
  maxTunnelDuration: number;
  /** The grant's end: nothing this statement allows works at or after it. */
  notAfter: Date;
}

/** `OpenTunnel` on one endpoint, to one IP and port, for at most `maxTunnelDuration`, before `notAfter`. */
export function openTunnelStatement(constraints: TunnelConstraints, sid = "OpenTunnelForGrant"): Statement {
  if (
    !Number.isInteger(constraints.maxTunnelDuration) ||
    constraints.maxTunnelDuration < 1 ||
    constraints.maxTunnelDuration > MAX_TUNNEL_SECONDS
  )
    throw new RangeError(`maxTunnelDuration must be 1-${MAX_TUNNEL_SECONDS}`);
  return {
    Sid: sid,
    Effect: "Allow",
    Action: "ec2-instance-connect:OpenTunnel",
    Resource: constraints.endpointArn,
    Condition: {
      NumericEquals: { "ec2-instance-connect:remotePort": String(constraints.remotePort) },
      IpAddress: { "ec2-instance-connect:privateIpAddress": hostCidr(constraints.ip) },
      NumericLessThanEquals: {
        "ec2-instance-connect:maxTunnelDuration": String(constraints.maxTunnelDuration),
      },
      DateLessThan: { "aws:CurrentTime": iamTime(constraints.notAfter) },
    },
  };
}

export interface SendKeyConstraints {
  instanceArn: string;
  osUser: string;
  notAfter: Date;
}

/** `SendSSHPublicKey` for one instance and OS user, before `notAfter`. */
export function sendKeyStatement(
  constraints: SendKeyConstraints,
  sid = "SendSSHPublicKeyForGrant",
): Statement {
  return {
    Sid: sid,
    Effect: "Allow",
    Action: "ec2-instance-connect:SendSSHPublicKey",
    Resource: constraints.instanceArn,
    Condition: {
      StringEquals: { "ec2:osuser": constraints.osUser },
      DateLessThan: { "aws:CurrentTime": iamTime(constraints.notAfter) },
    },
  };
}

/** Compact JSON; IAM and STS count characters of the text as sent. */
export function render(statements: Statement[]): string {
  const document: PolicyDocument = { Version: "2012-10-17", Statement: statements };
  return JSON.stringify(document);
}

/**
 * The inline session policy of a per-grant signer session: the session can open exactly this tunnel and
 * nothing else (the effective permissions are the intersection with the signer role's own policy).
 */
export function tunnelSessionPolicy(constraints: TunnelConstraints): string {
  const text = render([openTunnelStatement(constraints)]);
  if (text.length > SESSION_POLICY_MAX_CHARS)
    throw new RangeError(
      `session policy is ${text.length} characters; STS allows ${SESSION_POLICY_MAX_CHARS}`,
    );
  return text;
}

export interface IamGrantConstraints {
  sendKey?: Omit<SendKeyConstraints, "notAfter">;
  tunnel?: Omit<TunnelConstraints, "notAfter">;
  notAfter: Date;
}

/**
 * The time-boxed inline policy of IAM grant mode. Every statement carries `aws:CurrentTime DateLessThan
 * <end>`, so the policy is inert after the grant's end even if its deletion never runs.
 */
export function iamGrantPolicy(constraints: IamGrantConstraints): string {
  const statements: Statement[] = [];
  if (constraints.sendKey)
    statements.push(sendKeyStatement({ ...constraints.sendKey, notAfter: constraints.notAfter }));
  if (constraints.tunnel)
    statements.push(openTunnelStatement({ ...constraints.tunnel, notAfter: constraints.notAfter }));
  if (statements.length === 0) throw new RangeError("an IAM grant needs at least one statement");
  const text = render(statements);
  // The tightest aggregate limit (users); one grant's policy must leave room for others on the same user.
  if (text.length > USER_INLINE_POLICIES_MAX_CHARS)
    throw new RangeError(
      `IAM grant policy is ${text.length} characters; keep it under ${USER_INLINE_POLICIES_MAX_CHARS}`,
    );
  return text;
}
