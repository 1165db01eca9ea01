import { describe, expect, it } from "vitest";
import {
  evaluatePolicies,
  globMatch,
  ipInCidr,
  type Policy,
  parsePolicyObject,
  parsePolicyText,
  policySize,
  type RequestContext,
} from "../../local/emulator/policy.ts";

function policy(document: unknown): Policy {
  const parsed = parsePolicyObject(document);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.policy;
}

const ENDPOINT = "arn:aws:ec2:us-east-1:111122223333:instance-connect-endpoint/eice-0demo00000000001";

/** One Allow statement for OpenTunnel with `condition`, evaluated against `context`. */
function allows(condition: Record<string, Record<string, unknown>>, context: RequestContext): boolean {
  const p = policy({
    Version: "2012-10-17",
    Statement: {
      Effect: "Allow",
      Action: "ec2-instance-connect:OpenTunnel",
      Resource: ENDPOINT,
      Condition: condition,
    },
  });
  return (
    evaluatePolicies([p], { action: "ec2-instance-connect:OpenTunnel", resource: ENDPOINT, context }) ===
    "allow"
  );
}

describe("actions and resources", () => {
  const p = policy({
    Version: "2012-10-17",
    Statement: [
      { Effect: "Allow", Action: ["ec2:Describe*", "sts:AssumeRol?"], Resource: "*" },
      {
        Effect: "Allow",
        Action: "ec2-instance-connect:SendSSHPublicKey",
        Resource: "arn:aws:ec2:*:111122223333:instance/*",
      },
    ],
  });
  const decide = (action: string, resource = "*") => evaluatePolicies([p], { action, resource, context: {} });

  it("matches actions case-insensitively with * and ?", () => {
    expect(decide("ec2:DescribeInstances")).toBe("allow");
    expect(decide("EC2:describeinstanceconnectendpoints")).toBe("allow");
    expect(decide("sts:AssumeRole")).toBe("allow");
    expect(decide("sts:AssumeRoles")).toBe("none");
    expect(decide("ec2:RunInstances")).toBe("none");
  });

  it("matches resources case-sensitively with wildcards", () => {
    const action = "ec2-instance-connect:SendSSHPublicKey";
    expect(decide(action, "arn:aws:ec2:us-east-1:111122223333:instance/i-0a1b2c3d4e5f60718")).toBe("allow");
    expect(decide(action, "arn:aws:ec2:us-east-1:444455556666:instance/i-0a1b2c3d4e5f60718")).toBe("none");
    expect(decide(action, "ARN:aws:ec2:us-east-1:111122223333:instance/i-0a1b2c3d4e5f60718")).toBe("none");
  });

  it("lets an explicit Deny win over any Allow, in any policy", () => {
    const deny = policy({ Statement: { Effect: "Deny", Action: "ec2:DescribeInstances", Resource: "*" } });
    expect(evaluatePolicies([p, deny], { action: "ec2:DescribeInstances", resource: "*", context: {} })).toBe(
      "deny",
    );
    expect(evaluatePolicies([deny], { action: "ec2:DescribeImages", resource: "*", context: {} })).toBe(
      "none",
    );
  });

  it("supports NotAction and NotResource", () => {
    const q = policy({
      Statement: { Effect: "Allow", NotAction: "iam:*", NotResource: "arn:aws:s3:::secret/*" },
    });
    expect(
      evaluatePolicies([q], {
        action: "ec2:DescribeInstances",
        resource: "arn:aws:s3:::public/x",
        context: {},
      }),
    ).toBe("allow");
    expect(evaluatePolicies([q], { action: "iam:PutRolePolicy", resource: "*", context: {} })).toBe("none");
    expect(
      evaluatePolicies([q], { action: "s3:GetObject", resource: "arn:aws:s3:::secret/x", context: {} }),
    ).toBe("none");
  });

  it("globMatch treats regex characters literally", () => {
    expect(globMatch("a.b", "a.b")).toBe(true);
    expect(globMatch("a.b", "axb")).toBe(false);
    expect(globMatch("(x)+", "(x)+")).toBe(true);
  });
});

describe("condition operators", () => {
  it("StringEquals and StringLike; several values are ORed", () => {
    expect(
      allows({ StringEquals: { "ec2:osuser": ["ec2-user", "ubuntu"] } }, { "ec2:osuser": "ubuntu" }),
    ).toBe(true);
    expect(allows({ StringEquals: { "ec2:osuser": "ec2-user" } }, { "ec2:osuser": "root" })).toBe(false);
    expect(allows({ StringEquals: { "ec2:osuser": "ec2-user" } }, { "ec2:osuser": "EC2-USER" })).toBe(false);
    expect(
      allows({ StringLike: { "aws:userid": "AROA*:grant-??" } }, { "aws:userid": "AROAXYZ:grant-42" }),
    ).toBe(true);
    expect(
      allows({ StringLike: { "aws:userid": "AROA*:grant-??" } }, { "aws:userid": "AROAXYZ:grant-421" }),
    ).toBe(false);
  });

  it("looks condition keys up case-insensitively", () => {
    expect(allows({ StringEquals: { "EC2:OsUser": "ubuntu" } }, { "ec2:osuser": "ubuntu" })).toBe(true);
  });

  it("NumericEquals, NumericLessThanEquals, NumericLessThan", () => {
    const port = "ec2-instance-connect:remotePort";
    const duration = "ec2-instance-connect:maxTunnelDuration";
    expect(allows({ NumericEquals: { [port]: "22" } }, { [port]: 22 })).toBe(true);
    expect(allows({ NumericEquals: { [port]: "22" } }, { [port]: "3389" })).toBe(false);
    expect(allows({ NumericLessThanEquals: { [duration]: "1800" } }, { [duration]: 1800 })).toBe(true);
    expect(allows({ NumericLessThanEquals: { [duration]: "1800" } }, { [duration]: 1801 })).toBe(false);
    expect(allows({ NumericLessThan: { [duration]: 1800 } }, { [duration]: 1800 })).toBe(false);
    expect(allows({ NumericLessThan: { [duration]: 1800 } }, { [duration]: 1799 })).toBe(true);
    expect(allows({ NumericEquals: { [port]: "22" } }, { [port]: "twenty-two" })).toBe(false);
  });

  it("IpAddress with /32, wider CIDRs and IPv6", () => {
    const ip = "ec2-instance-connect:privateIpAddress";
    expect(allows({ IpAddress: { [ip]: "10.0.1.10/32" } }, { [ip]: "10.0.1.10" })).toBe(true);
    expect(allows({ IpAddress: { [ip]: "10.0.1.10/32" } }, { [ip]: "10.0.1.11" })).toBe(false);
    expect(allows({ IpAddress: { [ip]: "10.0.1.0/31" } }, { [ip]: "10.0.1.1" })).toBe(true);
    expect(allows({ IpAddress: { [ip]: "10.0.1.0/31" } }, { [ip]: "10.0.1.2" })).toBe(false);
    expect(allows({ IpAddress: { [ip]: "2001:db8::/32" } }, { [ip]: "2001:db8:0:1::5" })).toBe(true);
    expect(allows({ IpAddress: { [ip]: "2001:db8::1/128" } }, { [ip]: "2001:db8::2" })).toBe(false);
    expect(allows({ IpAddress: { [ip]: "10.0.0.0/8" } }, { [ip]: "2001:db8::1" })).toBe(false);
    expect(
      allows({ NotIpAddress: { "aws:SourceIp": "203.0.113.0/24" } }, { "aws:SourceIp": "127.0.0.1" }),
    ).toBe(true);
    expect(ipInCidr("::ffff:127.0.0.1", "127.0.0.0/8")).toBe(true);
    expect(ipInCidr("not-an-ip", "0.0.0.0/0")).toBe(false);
  });

  it("DateLessThan and DateGreaterThan on aws:CurrentTime", () => {
    const window = {
      DateGreaterThan: { "aws:CurrentTime": "2025-01-01T10:00:00Z" },
      DateLessThan: { "aws:CurrentTime": "2025-01-01T11:00:00Z" },
    };
    expect(allows(window, { "aws:CurrentTime": "2025-01-01T10:30:00Z" })).toBe(true);
    expect(allows(window, { "aws:CurrentTime": "2025-01-01T11:00:00Z" })).toBe(false);
    expect(allows(window, { "aws:CurrentTime": "2025-01-01T09:59:59Z" })).toBe(false);
    expect(
      allows({ DateLessThan: { "aws:CurrentTime": "2025-01-01T11:00:00Z" } }, { "aws:EpochTime": 1 }),
    ).toBe(false);
    expect(allows({ DateLessThan: { "aws:EpochTime": "1735729200" } }, { "aws:EpochTime": 1735729199 })).toBe(
      true,
    );
  });

  it("a missing key makes a condition false, except negated, IfExists and Null", () => {
    expect(allows({ StringEquals: { "ec2:osuser": "ec2-user" } }, {})).toBe(false);
    expect(allows({ NumericLessThanEquals: { "ec2-instance-connect:maxTunnelDuration": "60" } }, {})).toBe(
      false,
    );
    expect(allows({ StringNotEquals: { "aws:SourceIdentity": "mallory" } }, {})).toBe(true);
    expect(allows({ StringEqualsIfExists: { "aws:SourceIdentity": "alice" } }, {})).toBe(true);
    expect(
      allows({ StringEqualsIfExists: { "aws:SourceIdentity": "alice" } }, { "aws:SourceIdentity": "bob" }),
    ).toBe(false);
    expect(allows({ Null: { "aws:SourceIdentity": "true" } }, {})).toBe(true);
    expect(allows({ Null: { "aws:SourceIdentity": "false" } }, { "aws:SourceIdentity": "alice" })).toBe(true);
  });

  it("ANDs several keys and several operators", () => {
    const both = {
      NumericEquals: { "ec2-instance-connect:remotePort": "22" },
      IpAddress: { "ec2-instance-connect:privateIpAddress": "10.0.1.10/32" },
    };
    expect(
      allows(both, {
        "ec2-instance-connect:remotePort": 22,
        "ec2-instance-connect:privateIpAddress": "10.0.1.10",
      }),
    ).toBe(true);
    expect(
      allows(both, {
        "ec2-instance-connect:remotePort": 22,
        "ec2-instance-connect:privateIpAddress": "10.0.1.11",
      }),
    ).toBe(false);
    expect(
      allows(
        { StringEquals: { "ec2:osuser": "ec2-user", "aws:SourceIdentity": "alice" } },
        { "ec2:osuser": "ec2-user", "aws:SourceIdentity": "bob" },
      ),
    ).toBe(false);
  });

  it("a Deny with a condition applies only when the condition holds", () => {
    const p = policy({
      Statement: [
        { Effect: "Allow", Action: "*", Resource: "*" },
        {
          Effect: "Deny",
          Action: "*",
          Resource: "*",
          Condition: { DateGreaterThan: { "aws:CurrentTime": "2025-01-01T00:00:00Z" } },
        },
      ],
    });
    const at = (time: string) =>
      evaluatePolicies([p], {
        action: "ec2:DescribeInstances",
        resource: "*",
        context: { "aws:CurrentTime": time },
      });
    expect(at("2024-12-31T23:59:59Z")).toBe("allow");
    expect(at("2025-01-01T00:00:01Z")).toBe("deny");
  });
});

describe("policy documents", () => {
  it.each([
    ["not JSON", "{", /invalid Json/],
    ["no Statement", JSON.stringify({ Version: "2012-10-17" }), /Syntax errors/],
    [
      "bad Effect",
      JSON.stringify({ Statement: { Effect: "Maybe", Action: "*", Resource: "*" } }),
      /Syntax errors/,
    ],
    ["no Resource", JSON.stringify({ Statement: { Effect: "Allow", Action: "*" } }), /resources/],
    [
      "a Principal",
      JSON.stringify({ Statement: { Effect: "Allow", Principal: "*", Action: "*", Resource: "*" } }),
      /Syntax/,
    ],
    [
      "an unknown operator",
      JSON.stringify({
        Statement: { Effect: "Allow", Action: "*", Resource: "*", Condition: { StringSorta: { a: "b" } } },
      }),
      /Unknown condition operator/,
    ],
    [
      "a bad CIDR",
      JSON.stringify({
        Statement: {
          Effect: "Allow",
          Action: "*",
          Resource: "*",
          Condition: { IpAddress: { a: "10.0.0.0/33" } },
        },
      }),
      /IP addresses/,
    ],
    ["a bad version", JSON.stringify({ Version: "2020-01-01", Statement: [] }), /Syntax/],
  ])("rejects %s", (_label, text, message) => {
    const parsed = parsePolicyText(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.message).toMatch(message);
  });

  it("counts size without whitespace, as IAM does", () => {
    expect(policySize('{ "a" :\n\t"b" }')).toBe('{"a":"b"}'.length);
  });
});
