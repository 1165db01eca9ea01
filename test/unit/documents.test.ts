import { describe, expect, it } from "vitest";
import { Documents } from "../../core/access/index.ts";
import * as Grant from "../../core/grant/index.ts";
import { parseConfig } from "../../core/policy/yaml.ts";
import type { Info } from "../../core/request/schema.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";

const END = new Date("2026-11-21T10:30:00.750Z");
const ENDPOINT_ARN = "arn:aws:ec2:us-east-1:111122223333:instance-connect-endpoint/eice-0demo00000000001";

describe("the tunnel signer's session policy", () => {
  const policy = Documents.tunnelSessionPolicy({
    endpointArn: ENDPOINT_ARN,
    remotePort: 22,
    ip: "10.0.1.10",
    maxTunnelDuration: 1800,
    notAfter: END,
  });

  it("allows only OpenTunnel on the endpoint, to one IP and port, bounded in duration and time", () => {
    expect(JSON.parse(policy)).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "OpenTunnelForGrant",
          Effect: "Allow",
          Action: "ec2-instance-connect:OpenTunnel",
          Resource: ENDPOINT_ARN,
          Condition: {
            NumericEquals: { "ec2-instance-connect:remotePort": "22" },
            IpAddress: { "ec2-instance-connect:privateIpAddress": "10.0.1.10/32" },
            NumericLessThanEquals: { "ec2-instance-connect:maxTunnelDuration": "1800" },
            // Rounded down to the second: never later than the grant's end.
            DateLessThan: { "aws:CurrentTime": "2026-11-21T10:30:00Z" },
          },
        },
      ],
    });
  });

  it("stays far below STS's 2,048-character limit, even with the longest values", () => {
    expect(policy.length).toBeLessThan(Documents.SESSION_POLICY_MAX_CHARS / 2);
    const longest = Documents.tunnelSessionPolicy({
      endpointArn: `arn:aws-us-gov:ec2:us-gov-west-1:111122223333:instance-connect-endpoint/eice-${"f".repeat(40)}`,
      remotePort: 65_535,
      ip: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
      maxTunnelDuration: 3600,
      notAfter: END,
    });
    expect(longest.length).toBeLessThan(Documents.SESSION_POLICY_MAX_CHARS / 2);
    expect(JSON.parse(longest).Statement[0].Condition.IpAddress).toEqual({
      "ec2-instance-connect:privateIpAddress": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
    });
  });

  it("refuses a maxTunnelDuration EICE would not accept", () => {
    for (const maxTunnelDuration of [0, 3601, 1.5])
      expect(() =>
        Documents.tunnelSessionPolicy({
          endpointArn: ENDPOINT_ARN,
          remotePort: 22,
          ip: "10.0.0.1",
          maxTunnelDuration,
          notAfter: END,
        }),
      ).toThrow(RangeError);
  });
});

describe("IAM grant-mode policies", () => {
  const config = parseConfig(DEMO_CONFIG_TEXT);
  const grant = (overrides: Partial<Info> = {}): Info => ({
    id: "req_01m7y9ms5fjay2j5d0d4qd3wev",
    grantId: "gr_01m7y9ms5fjay2j5d0d4qd3wev",
    status: "active",
    version: 3,
    requester: "alice@example.com",
    instanceId: "i-0c0ffee0c0ffee0ee",
    account: "111122223333",
    region: "us-east-1",
    target: "demo-iam",
    method: "ssh",
    osUser: "ec2-user",
    durationSeconds: 1800,
    reason: "debug",
    ruleId: "dev-demo-iam",
    grantMode: "iam",
    awsPrincipal: "arn:aws:iam::111122223333:role/alice",
    breakGlass: false,
    approvalsRequired: 1,
    approvalsFrom: ["group:sre-leads"],
    approvals: [],
    createdAt: "2026-11-21T09:59:00.000Z",
    pendingUntil: "2026-11-21T10:29:00.000Z",
    startsAt: "2026-11-21T10:00:00.000Z",
    endsAt: END.toISOString(),
    extendedSeconds: 0,
    network: {
      vpcId: "vpc-0demo0000000001",
      subnetId: "subnet-0demo000000001b",
      privateIp: "10.0.2.20",
      route: {
        type: "eice",
        endpointId: "eice-0demo00000000001",
        dnsName: "eice-0demo00000000001.ec2-instance-connect-endpoint.us-east-1.amazonaws.com",
        ip: "10.0.2.20",
      },
      resolvedAt: "2026-11-21T09:59:00.000Z",
    },
    ...overrides,
  });

  it("ssh through EICE: SendSSHPublicKey for the instance and OS user, OpenTunnel to port 22, all until the end", () => {
    const document = JSON.parse(Grant.grantPolicy(config, grant()));
    expect(document.Statement).toEqual([
      {
        Sid: "SendSSHPublicKeyForGrant",
        Effect: "Allow",
        Action: "ec2-instance-connect:SendSSHPublicKey",
        Resource: "arn:aws:ec2:us-east-1:111122223333:instance/i-0c0ffee0c0ffee0ee",
        Condition: {
          StringEquals: { "ec2:osuser": "ec2-user" },
          DateLessThan: { "aws:CurrentTime": "2026-11-21T10:30:00Z" },
        },
      },
      {
        Sid: "OpenTunnelForGrant",
        Effect: "Allow",
        Action: "ec2-instance-connect:OpenTunnel",
        Resource: ENDPOINT_ARN,
        Condition: {
          NumericEquals: { "ec2-instance-connect:remotePort": "22" },
          IpAddress: { "ec2-instance-connect:privateIpAddress": "10.0.2.20/32" },
          NumericLessThanEquals: { "ec2-instance-connect:maxTunnelDuration": "1800" },
          DateLessThan: { "aws:CurrentTime": "2026-11-21T10:30:00Z" },
        },
      },
    ]);
  });

  it("ssh to a public instance: SendSSHPublicKey only", () => {
    const network = grant().network;
    if (!network) throw new Error("the fixture has a network");
    const direct = grant({
      network: { ...network, publicIp: "203.0.113.9", route: { type: "direct", host: "203.0.113.9" } },
    });
    const document = JSON.parse(Grant.grantPolicy(config, direct));
    expect(document.Statement.map((statement: { Action: string }) => statement.Action)).toEqual([
      "ec2-instance-connect:SendSSHPublicKey",
    ]);
  });

  it("tunnel: OpenTunnel only, on the grant's port, capped at 3600 s", () => {
    const tunnel = grant({ method: "tunnel", osUser: undefined, port: 22, durationSeconds: 7200 });
    const document = JSON.parse(Grant.grantPolicy(config, tunnel));
    expect(document.Statement).toHaveLength(1);
    expect(document.Statement[0].Action).toBe("ec2-instance-connect:OpenTunnel");
    expect(document.Statement[0].Condition.NumericLessThanEquals).toEqual({
      "ec2-instance-connect:maxTunnelDuration": "3600",
    });
  });

  it("every statement is time-boxed, and the policy fits a user's 2,048-character inline budget", () => {
    const text = Grant.grantPolicy(config, grant());
    for (const statement of JSON.parse(text).Statement)
      expect(statement.Condition.DateLessThan).toEqual({ "aws:CurrentTime": "2026-11-21T10:30:00Z" });
    expect(text.replace(/\s/g, "").length).toBeLessThan(Documents.USER_INLINE_POLICIES_MAX_CHARS / 2);
  });

  it("is named after the grant, within IAM's 128-character policy-name limit", () => {
    const name = Grant.policyName(grant().grantId);
    expect(name).toBe("access-broker-grant-gr_01m7y9ms5fjay2j5d0d4qd3wev");
    expect(name).toMatch(/^[\w+=,.@-]{1,128}$/);
  });
});
