import {
  DescribeInstanceConnectEndpointsCommand,
  DescribeInstancesCommand,
  EC2Client,
} from "@aws-sdk/client-ec2";
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { RunningEmulator } from "../../local/emulator/server.ts";
import { startEmulator } from "../../local/emulator/server.ts";
import {
  admin,
  assumeRole,
  BROKER,
  BROKER_ROLE,
  brokerSession,
  clients,
  MALLORY,
  rejection,
  SIGNER_ROLE,
  startTestEmulator,
  TARGET,
  testInventory,
  trail,
} from "./helpers.ts";

const ENDPOINT_ARN = `arn:aws:ec2:us-east-1:${TARGET}:instance-connect-endpoint/eice-0demo00000000001`;

/** The session policy the broker emits for one EICE grant (design.md §4). */
function tunnelPolicy(end: string) {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      {
        Effect: "Allow",
        Action: "ec2-instance-connect:OpenTunnel",
        Resource: ENDPOINT_ARN,
        Condition: {
          NumericEquals: { "ec2-instance-connect:remotePort": "22" },
          IpAddress: { "ec2-instance-connect:privateIpAddress": "10.0.1.10/32" },
          NumericLessThanEquals: { "ec2-instance-connect:maxTunnelDuration": "1800" },
          DateLessThan: { "aws:CurrentTime": end },
        },
      },
    ],
  });
}

let emulator: RunningEmulator;
let url: string;

beforeAll(async () => {
  emulator = await startTestEmulator();
  url = emulator.url;
});
afterAll(() => emulator.close());
beforeEach(() => admin(url, "reset", {}));

describe("GetCallerIdentity", () => {
  it("names an IAM user by its AIDA id", async () => {
    const identity = await clients(url, BROKER).sts.send(new GetCallerIdentityCommand({}));
    expect(identity.Arn).toBe("arn:aws:iam::123456789012:user/access-broker");
    expect(identity.Account).toBe("123456789012");
    expect(identity.UserId).toMatch(/^AIDA[A-Z2-7]{17}$/);
  });

  it("names a role session by AROA…:<session>", async () => {
    const session = await brokerSession(url, "grant-01");
    const identity = await clients(url, session).sts.send(new GetCallerIdentityCommand({}));
    expect(identity.Arn).toBe(`arn:aws:sts::${TARGET}:assumed-role/access-broker/grant-01`);
    expect(identity.UserId).toMatch(/^AROA[A-Z2-7]{17}:grant-01$/);
    expect(identity.Account).toBe(TARGET);
  });
});

describe("AssumeRole", () => {
  it("chains user → access-broker → tunnel signer with a session policy and SourceIdentity", async () => {
    const broker = await brokerSession(url);
    const end = new Date(emulator.core.now().getTime() + 30 * 60_000).toISOString().replace(/\.\d+Z$/, "Z");
    const result = await clients(url, broker).sts.send(
      new AssumeRoleCommand({
        RoleArn: SIGNER_ROLE,
        RoleSessionName: "grant-7f3a",
        SourceIdentity: "alice@example.com",
        Policy: tunnelPolicy(end),
        DurationSeconds: 900,
      }),
    );
    expect(result.AssumedRoleUser?.Arn).toBe(
      `arn:aws:sts::${TARGET}:assumed-role/access-broker-tunnel-signer/grant-7f3a`,
    );
    expect(result.AssumedRoleUser?.AssumedRoleId).toMatch(/^AROA[A-Z2-7]{17}:grant-7f3a$/);
    expect(result.SourceIdentity).toBe("alice@example.com");
    expect(result.PackedPolicySize).toBeGreaterThan(0);
    expect(result.PackedPolicySize).toBeLessThanOrEqual(100);
    expect(result.Credentials?.AccessKeyId).toMatch(/^ASIA/);
    const expiresIn = (result.Credentials?.Expiration?.getTime() ?? 0) - emulator.core.now().getTime();
    expect(expiresIn).toBeGreaterThan(890_000);
    expect(expiresIn).toBeLessThanOrEqual(900_000);

    // The credentials work, and carry the session's identity.
    const signer = {
      accessKeyId: result.Credentials?.AccessKeyId as string,
      secretAccessKey: result.Credentials?.SecretAccessKey as string,
      sessionToken: result.Credentials?.SessionToken as string,
    };
    const identity = await clients(url, signer).sts.send(new GetCallerIdentityCommand({}));
    expect(identity.Arn).toBe(result.AssumedRoleUser?.Arn);

    // Effective permission = the role's policy ∩ the session policy.
    const caller = emulator.core.iam.caller(signer.accessKeyId);
    if (caller === undefined) throw new Error("unknown session");
    expect(caller.session?.sourceIdentity).toBe("alice@example.com");
    const context = {
      "ec2-instance-connect:remotePort": 22,
      "ec2-instance-connect:privateIpAddress": "10.0.1.10",
      "ec2-instance-connect:maxTunnelDuration": 1800,
    };
    const open = (ctx: Record<string, string | number>, resource = ENDPOINT_ARN) =>
      emulator.core.authorize(caller, "ec2-instance-connect:OpenTunnel", resource, ctx);
    expect(open(context)).toEqual({ allowed: true });
    expect(open({ ...context, "ec2-instance-connect:remotePort": 3389 })).toMatchObject({
      allowed: false,
      reason: "session-policy",
    });
    expect(open({ ...context, "ec2-instance-connect:privateIpAddress": "10.0.1.11" })).toMatchObject({
      reason: "session-policy",
    });
    expect(open({ ...context, "ec2-instance-connect:maxTunnelDuration": 3600 })).toMatchObject({
      reason: "session-policy",
    });
    // The role allows every endpoint of the account; the session policy only this one.
    expect(
      open(context, ENDPOINT_ARN.replace("eice-0demo00000000001", "eice-0other0000000001")),
    ).toMatchObject({
      reason: "session-policy",
    });
    // Not an action the role allows at all.
    expect(emulator.core.authorize(caller, "ec2:DescribeInstances", "*", {})).toMatchObject({
      reason: "no-allow",
    });
    // aws:CurrentTime comes from the emulator clock: past the grant's end, the same request is refused.
    await admin(url, "clock", { advanceSeconds: 14 * 60 });
    expect(open(context)).toEqual({ allowed: true });
    await admin(url, "clock", { advanceSeconds: 16 * 60 + 1 });
    expect(open(context)).toMatchObject({ allowed: false });
  });

  it("limits the returned credentials by the session policy through the SDK", async () => {
    const limited = await assumeRole(url, BROKER, {
      RoleArn: BROKER_ROLE,
      Policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: { Effect: "Allow", Action: "ec2:DescribeInstanceConnectEndpoints", Resource: "*" },
      }),
    });
    const { ec2 } = clients(url, limited);
    const endpoints = await ec2.send(new DescribeInstanceConnectEndpointsCommand({}));
    expect(endpoints.InstanceConnectEndpoints?.map((e) => e.InstanceConnectEndpointId)).toEqual([
      "eice-0demo00000000001",
    ]);
    const error = await rejection(ec2.send(new DescribeInstancesCommand({})));
    expect(error.name).toBe("UnauthorizedOperation");
    expect(error.message).toMatch(/no session policy allows the ec2:DescribeInstances action/);
  });

  it("refuses principals the role does not trust, and roles that do not exist", async () => {
    const mallory = await rejection(
      clients(url, MALLORY).sts.send(new AssumeRoleCommand({ RoleArn: BROKER_ROLE, RoleSessionName: "x1" })),
    );
    expect(mallory.name).toBe("AccessDenied");
    expect(mallory.$metadata.httpStatusCode).toBe(403);
    // The signer trusts only the access-broker role, not the broker's user.
    const direct = await rejection(
      clients(url, BROKER).sts.send(new AssumeRoleCommand({ RoleArn: SIGNER_ROLE, RoleSessionName: "x2" })),
    );
    expect(direct.name).toBe("AccessDenied");
    const missing = await rejection(
      clients(url, BROKER).sts.send(
        new AssumeRoleCommand({ RoleArn: "arn:aws:iam::111122223333:role/nope", RoleSessionName: "x3" }),
      ),
    );
    expect(missing.name).toBe("AccessDenied");
    const events = await trail(url, "AssumeRole");
    expect(events.filter((e) => e.errorCode === "AccessDenied")).toHaveLength(6); // each in both accounts
  });

  it("refuses SourceIdentity when the trust does not allow sts:SetSourceIdentity", async () => {
    const error = await rejection(
      clients(url, BROKER).sts.send(
        new AssumeRoleCommand({ RoleArn: BROKER_ROLE, RoleSessionName: "xx", SourceIdentity: "alice" }),
      ),
    );
    expect(error.name).toBe("AccessDenied");
    expect(error.message).toMatch(/sts:SetSourceIdentity/);
  });

  it.each([
    [
      "a 1-character session name",
      { RoleSessionName: "a" },
      "ValidationError",
      /roleSessionName.*greater than or equal to 2/,
    ],
    [
      "a session name with a space",
      { RoleSessionName: "has space" },
      "ValidationError",
      /regular expression pattern/,
    ],
    [
      "a 65-character session name",
      { RoleSessionName: "x".repeat(65) },
      "ValidationError",
      /less than or equal to 64/,
    ],
    ["an aws: source identity", { SourceIdentity: "aws:alice" }, "ValidationError", /aws:/],
    ["a 1-character source identity", { SourceIdentity: "a" }, "ValidationError", /sourceIdentity/],
    ["899 seconds", { DurationSeconds: 899 }, "ValidationError", /900/],
    [
      "more than the role's MaxSessionDuration",
      { DurationSeconds: 7200 },
      "ValidationError",
      /MaxSessionDuration/,
    ],
    ["a policy that is not JSON", { Policy: "{not json" }, "MalformedPolicyDocumentException", /valid JSON/],
    [
      "a policy without Resource",
      { Policy: JSON.stringify({ Statement: { Effect: "Allow", Action: "*" } }) },
      "MalformedPolicyDocumentException",
      /resources/,
    ],
    [
      "a policy over 2048 characters",
      {
        Policy: JSON.stringify({
          Statement: { Effect: "Allow", Action: "*", Resource: "*", Sid: "x".repeat(2100) },
        }),
      },
      "ValidationError",
      /2048/,
    ],
  ])("refuses %s", async (_label, input, name, message) => {
    const error = await rejection(
      clients(url, BROKER).sts.send(
        new AssumeRoleCommand({ RoleArn: BROKER_ROLE, RoleSessionName: "valid", ...input }),
      ),
    );
    expect(error.name).toBe(name);
    expect(error.message).toMatch(message);
  });

  it("makes session credentials expire on emulator time (ExpiredToken)", async () => {
    const session = await brokerSession(url);
    await admin(url, "clock", { advanceSeconds: 3601 });
    // The SDK first sees its clock as skewed, corrects it from the Date header, retries, and gets ExpiredToken.
    const sts = new STSClient({ endpoint: url, region: "us-east-1", credentials: session, maxAttempts: 2 });
    const error = await rejection(sts.send(new GetCallerIdentityCommand({})));
    expect(error.name).toMatch(/^ExpiredToken/);
  });
});

describe("AssumeRole with a world that allows more", () => {
  let wide: RunningEmulator;
  beforeAll(async () => {
    wide = await startEmulator({
      inventory: testInventory((document) => {
        const target = document.accounts.find((a: any) => a.id === TARGET);
        const broker = target.roles.find((r: any) => r.name === "access-broker");
        broker.allowSourceIdentity = true;
        broker.maxSessionDuration = 43200;
        const signer = target.roles.find((r: any) => r.name === "access-broker-tunnel-signer");
        signer.maxSessionDuration = 43200;
        // The broker user may also set a source identity on the broker role.
        const brokerUser = document.accounts.find((a: any) => a.id === "123456789012").users[0];
        brokerUser.policies["assume-target-roles"].Statement[0].Action = [
          "sts:AssumeRole",
          "sts:SetSourceIdentity",
        ];
      }),
    });
  });
  afterAll(() => wide.close());

  it("allows long first sessions but caps chained ones at one hour", async () => {
    const long = await assumeRole(wide.url, BROKER, { RoleArn: BROKER_ROLE, DurationSeconds: 7200 });
    const chained = await rejection(
      clients(wide.url, long).sts.send(
        new AssumeRoleCommand({ RoleArn: SIGNER_ROLE, RoleSessionName: "chained", DurationSeconds: 3601 }),
      ),
    );
    expect(chained.name).toBe("ValidationError");
    expect(chained.message).toMatch(/role chaining/);
    await assumeRole(wide.url, long, { RoleArn: SIGNER_ROLE, DurationSeconds: 3600 });
  });

  it("keeps a source identity through the chain and refuses to change it", async () => {
    const withIdentity = await assumeRole(wide.url, BROKER, {
      RoleArn: BROKER_ROLE,
      SourceIdentity: "alice",
    });
    const inherited = await assumeRole(wide.url, withIdentity, {
      RoleArn: SIGNER_ROLE,
      RoleSessionName: "inherit",
    });
    expect(wide.core.iam.caller(inherited.accessKeyId)?.session?.sourceIdentity).toBe("alice");
    const changed = await rejection(
      clients(wide.url, withIdentity).sts.send(
        new AssumeRoleCommand({ RoleArn: SIGNER_ROLE, RoleSessionName: "change", SourceIdentity: "mallory" }),
      ),
    );
    expect(changed.name).toBe("AccessDenied");
  });

  it("requires sts:SetSourceIdentity in the caller's own policy", async () => {
    // In the demo world the broker role may set a source identity on the signer; here a session policy takes it away.
    const broker = await assumeRole(wide.url, BROKER, {
      RoleArn: BROKER_ROLE,
      Policy: JSON.stringify({ Statement: { Effect: "Allow", Action: "sts:AssumeRole", Resource: "*" } }),
    });
    const error = await rejection(
      clients(wide.url, broker).sts.send(
        new AssumeRoleCommand({ RoleArn: SIGNER_ROLE, RoleSessionName: "ss", SourceIdentity: "alice" }),
      ),
    );
    expect(error.name).toBe("AccessDenied");
    expect(error.message).toMatch(/sts:SetSourceIdentity/);
  });
});

describe("regions", () => {
  it("a role session works against EC2 in any region but sees only that region", async () => {
    const session = await brokerSession(emulator.url);
    const eu = new EC2Client({
      endpoint: emulator.url,
      region: "eu-west-1",
      credentials: session,
      maxAttempts: 1,
    });
    const result = await eu.send(new DescribeInstancesCommand({}));
    expect(result.Reservations).toEqual([]);
  });
});
