import { EC2Client } from "@aws-sdk/client-ec2";
import { EC2InstanceConnectClient, SendSSHPublicKeyCommand } from "@aws-sdk/client-ec2-instance-connect";
import { DeleteRolePolicyCommand, IAMClient, NoSuchEntityException } from "@aws-sdk/client-iam";
import {
  ConflictException,
  CreateScheduleCommand,
  DeleteScheduleCommand,
  ResourceNotFoundException,
  SchedulerClient,
  ThrottlingException,
  UpdateScheduleCommand,
} from "@aws-sdk/client-scheduler";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, describe, expect, it } from "vitest";
import { AwsClients, RETRY } from "../../core/aws/clients.ts";
import { RoleSessions } from "../../core/aws/credentials.ts";
import { IamPolicyAdapter, parsePrincipalArn } from "../../core/aws/iam-grants.ts";
import { EicKeyPusher } from "../../core/aws/instance-connect.ts";
import { atExpression, EventBridgeScheduler, scheduleName } from "../../core/aws/scheduler.ts";
import { parseConfig } from "../../core/policy/yaml.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";

// Narrow tests of error handling at the SDK boundary; the real wire behaviour is tested against the emulator.
const GRANT = "gr_01m7y9ms5fjay2j5d0d4qd3wev";
const meta = { $metadata: {}, Message: "" };
// One mock per client class: a second mockClient() of the same class would replace the first one's stub.
const sts = mockClient(STSClient);
afterEach(() => sts.reset());

describe("EventBridge Scheduler adapter", () => {
  const scheduler = mockClient(SchedulerClient);
  afterEach(() => scheduler.reset());
  const adapter = new EventBridgeScheduler(new SchedulerClient({ region: "us-east-1" }), {
    targetArn: "arn:aws:lambda:us-east-1:123456789012:function:expire",
    roleArn: "arn:aws:iam::123456789012:role/scheduler",
    group: "grants",
  });

  it("creates a one-time schedule at the grant's end that deletes itself and invokes expire with the grant id", async () => {
    scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: "arn" });
    await adapter.upsert(GRANT, new Date("2026-11-21T10:30:00.250Z"));
    const [call] = scheduler.commandCalls(CreateScheduleCommand);
    expect(call?.args[0].input).toMatchObject({
      Name: `grant-${GRANT}`,
      GroupName: "grants",
      ScheduleExpression: "at(2026-11-21T10:30:01)",
      ScheduleExpressionTimezone: "UTC",
      FlexibleTimeWindow: { Mode: "OFF" },
      ActionAfterCompletion: "DELETE",
      Target: {
        Arn: "arn:aws:lambda:us-east-1:123456789012:function:expire",
        RoleArn: "arn:aws:iam::123456789012:role/scheduler",
        Input: JSON.stringify({ grantId: GRANT }),
      },
    });
    expect(scheduleName(GRANT)).toMatch(/^[0-9a-zA-Z-_.]{1,64}$/);
  });

  it("moves an existing schedule (extension, retry) instead of failing", async () => {
    scheduler.on(CreateScheduleCommand).rejects(new ConflictException({ message: "exists", ...meta }));
    scheduler.on(UpdateScheduleCommand).resolves({ ScheduleArn: "arn" });
    await adapter.upsert(GRANT, new Date("2026-11-21T11:00:00.000Z"));
    expect(scheduler.commandCalls(UpdateScheduleCommand)[0]?.args[0].input.ScheduleExpression).toBe(
      "at(2026-11-21T11:00:00)",
    );
  });

  it("treats a schedule that is already gone as deleted, and surfaces other failures", async () => {
    scheduler
      .on(DeleteScheduleCommand)
      .rejectsOnce(new ResourceNotFoundException({ message: "gone", ...meta }));
    await expect(adapter.remove(GRANT)).resolves.toBeUndefined();
    scheduler.on(DeleteScheduleCommand).rejects(new ThrottlingException({ message: "slow down", ...meta }));
    await expect(adapter.remove(GRANT)).rejects.toBeInstanceOf(ThrottlingException);
  });

  it("rounds the end up to the second, so the schedule never fires early", () => {
    expect(atExpression(new Date("2026-11-21T10:30:00.000Z"))).toBe("at(2026-11-21T10:30:00)");
    expect(atExpression(new Date("2026-11-21T10:30:00.001Z"))).toBe("at(2026-11-21T10:30:01)");
  });
});

describe("broker role sessions", () => {
  it("assumes a role once and reuses it until 5 minutes before it expires", async () => {
    let now = new Date("2026-11-21T10:00:00Z");
    let issued = 0;
    sts.on(AssumeRoleCommand).callsFake(() => ({
      Credentials: {
        AccessKeyId: `ASIA${++issued}`,
        SecretAccessKey: "secret",
        SessionToken: "token",
        Expiration: new Date(now.getTime() + 3_600_000),
      },
    }));
    const sessions = new RoleSessions(new STSClient({ region: "us-east-1" }), () => now);
    const role = "arn:aws:iam::111122223333:role/access-broker";
    const [a, b] = await Promise.all([
      sessions.get(role, "access-broker"),
      sessions.get(role, "access-broker"),
    ]);
    expect(a.accessKeyId).toBe("ASIA1");
    expect(b.accessKeyId).toBe("ASIA1");
    now = new Date("2026-11-21T10:54:59Z");
    expect((await sessions.get(role, "access-broker")).accessKeyId).toBe("ASIA1");
    now = new Date("2026-11-21T10:55:00Z");
    expect((await sessions.get(role, "access-broker")).accessKeyId).toBe("ASIA2");
    expect(sts.commandCalls(AssumeRoleCommand).map((call) => call.args[0].input)).toEqual([
      { RoleArn: role, RoleSessionName: "access-broker" },
      { RoleArn: role, RoleSessionName: "access-broker" },
    ]);
  });

  it("builds each client once, with the one retry policy", async () => {
    const clients = new AwsClients(parseConfig(DEMO_CONFIG_TEXT).settings.aws.accounts);
    const ec2 = clients.inAccount(EC2Client, "111122223333", "us-east-1");
    expect(clients.inAccount(EC2Client, "111122223333", "us-east-1")).toBe(ec2);
    expect(clients.inAccount(EC2Client, "444455556666", "eu-west-1")).not.toBe(ec2);
    expect(clients.inAccount(STSClient, "111122223333", "us-east-1")).not.toBe(ec2);
    expect(await ec2.config.maxAttempts()).toBe(RETRY.maxAttempts);
    expect(await ec2.config.retryStrategy()).toMatchObject({ mode: "standard" });
    expect(() => clients.inAccount(EC2Client, "999999999999", "us-east-1")).toThrow(/settings.aws.accounts/);
    clients.destroy();
  });
});

describe("SendSSHPublicKey error mapping", () => {
  const eic = mockClient(EC2InstanceConnectClient);
  afterEach(() => eic.reset());
  const pusher = () => {
    sts.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: "ASIA",
        SecretAccessKey: "s",
        SessionToken: "t",
        Expiration: new Date(Date.now() + 3_600_000),
      },
    });
    return new EicKeyPusher(new AwsClients(parseConfig(DEMO_CONFIG_TEXT).settings.aws.accounts));
  };
  const input = {
    account: "111122223333",
    region: "us-east-1",
    instanceId: "i-0a1b2c3d4e5f60718",
    osUser: "ec2-user",
    publicKey: "ssh-ed25519 AAAA",
  };
  const failWith = (name: string, status: number) =>
    Object.assign(new Error("AWS says no: ssh-ed25519 AAAA"), {
      name,
      $metadata: { httpStatusCode: status },
    });

  it.each([
    ["EC2InstanceNotFoundException", 400, "not_found", "target.not_found"],
    ["EC2InstanceStateInvalidException", 400, "conflict", "target.not_running"],
    ["EC2InstanceUnavailableException", 400, "throttled", "target.unavailable"],
    ["InvalidArgsException", 400, "input", "key.rejected"],
    ["ThrottlingException", 400, "throttled", "aws.unavailable"],
    ["ServiceException", 500, "throttled", "aws.unavailable"],
  ])("maps %s (HTTP %i) to a %s error, %s", async (name, status, kind, code) => {
    eic.on(SendSSHPublicKeyCommand).rejects(failWith(name, status));
    const error = await pusher()
      .send(input)
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ kind, code });
    expect((error as Error).message).not.toContain("AAAA");
  });

  it("leaves the broker's own permission failures as internal errors", async () => {
    eic.on(SendSSHPublicKeyCommand).rejects(failWith("AuthException", 403));
    const error = await pusher()
      .send(input)
      .catch((caught: unknown) => caught);
    expect(error).not.toHaveProperty("kind");
    expect((error as Error).message).toMatch(/AuthException/);
  });

  it("returns the RequestId of a successful push", async () => {
    eic.on(SendSSHPublicKeyCommand).resolves({ RequestId: "req-1", Success: true });
    await expect(pusher().send(input)).resolves.toEqual({ requestId: "req-1" });
  });
});

describe("IAM grant policies", () => {
  const iam = mockClient(IAMClient);
  afterEach(() => iam.reset());

  it("reads account, kind and name from role and user ARNs, paths included", () => {
    expect(parsePrincipalArn("arn:aws:iam::111122223333:role/alice")).toEqual({
      account: "111122223333",
      kind: "role",
      name: "alice",
    });
    expect(parsePrincipalArn("arn:aws:iam::111122223333:user/eng/bob")).toEqual({
      account: "111122223333",
      kind: "user",
      name: "bob",
    });
  });

  it("reports a policy that is already gone as not removed", async () => {
    sts.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: "ASIA",
        SecretAccessKey: "s",
        SessionToken: "t",
        Expiration: new Date(Date.now() + 3_600_000),
      },
    });
    iam.on(DeleteRolePolicyCommand).rejects(new NoSuchEntityException({ message: "none", ...meta }));
    const adapter = new IamPolicyAdapter(new AwsClients(parseConfig(DEMO_CONFIG_TEXT).settings.aws.accounts));
    await expect(
      adapter.remove("arn:aws:iam::111122223333:role/alice", `access-broker-grant-${GRANT}`),
    ).resolves.toBe(false);
  });
});
