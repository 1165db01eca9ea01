import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningEmulator } from "../../local/emulator/server.ts";
import { BROKER, BROKER_AUDITOR, BROKER_ROLE, type Credentials, startTestEmulator } from "./helpers.ts";

// The Debian awscli (2.9): a real botocore client. Not the pyenv `aws` (v1) that may come first on PATH.
const AWS = "/usr/bin/aws";
const installed = existsSync(AWS);

let emulator: RunningEmulator;

function aws(credentials: Credentials, args: string[], region = "us-east-1") {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: "/tmp",
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    AWS_DEFAULT_REGION: region,
    AWS_CONFIG_FILE: "/dev/null",
    AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_PAGER: "",
    ...(credentials.sessionToken === undefined ? {} : { AWS_SESSION_TOKEN: credentials.sessionToken }),
  };
  // Asynchronous on purpose: the emulator answers from this same process.
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      AWS,
      ["--endpoint-url", emulator.url, "--no-cli-pager", "--output", "json", ...args],
      { env, timeout: 20_000 },
      (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

describe.runIf(installed)("the AWS CLI (/usr/bin/aws) against the emulator", () => {
  beforeAll(async () => {
    emulator = await startTestEmulator();
  });
  afterAll(() => emulator?.close());

  it("sts get-caller-identity, assume-role and ec2 describe-instances", async () => {
    const [identity, assumed] = await Promise.all([
      aws(BROKER, ["sts", "get-caller-identity"]),
      aws(BROKER, ["sts", "assume-role", "--role-arn", BROKER_ROLE, "--role-session-name", "cli"]),
    ]);
    expect(identity.stderr).toBe("");
    expect(JSON.parse(identity.stdout)).toMatchObject({
      Account: "123456789012",
      Arn: "arn:aws:iam::123456789012:user/access-broker",
    });
    expect(assumed.code).toBe(0);
    const issued = JSON.parse(assumed.stdout).Credentials;
    const session = {
      accessKeyId: issued.AccessKeyId,
      secretAccessKey: issued.SecretAccessKey,
      sessionToken: issued.SessionToken,
    };

    const [described, missing] = await Promise.all([
      aws(session, ["ec2", "describe-instances", "--filters", "Name=tag:env,Values=demo"]),
      aws(session, ["ec2", "describe-instances", "--instance-ids", "i-0123456789abcdef0"]),
    ]);
    expect(described.stderr).toBe("");
    const instances = JSON.parse(described.stdout).Reservations.flatMap((r: any) => r.Instances);
    expect(instances.map((i: any) => i.InstanceId).sort()).toEqual([
      "i-0a1b2c3d4e5f60718",
      "i-0c0ffee0c0ffee0ee",
    ]);
    expect(instances.find((i: any) => i.InstanceId === "i-0a1b2c3d4e5f60718")).toMatchObject({
      State: { Code: 16, Name: "running" },
      PrivateIpAddress: "10.0.1.10",
      Placement: { AvailabilityZone: "us-east-1a" },
      VpcId: "vpc-0demo0000000001",
    });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/InvalidInstanceID\.NotFound/);
  });

  it("cloudtrail lookup-events sees the CLI's own calls", async () => {
    await aws(BROKER, ["sts", "get-caller-identity"]);
    const result = await aws(BROKER_AUDITOR, [
      "cloudtrail",
      "lookup-events",
      "--lookup-attributes",
      "AttributeKey=EventName,AttributeValue=GetCallerIdentity",
    ]);
    expect(result.stderr).toBe("");
    const events = JSON.parse(result.stdout).Events;
    expect(events.length).toBeGreaterThan(0);
    const record = JSON.parse(events[0].CloudTrailEvent);
    expect(record.userAgent).toMatch(/^aws-cli\/2/);
    expect(record.recipientAccountId).toBe("123456789012");
    expect(record.userIdentity.userName).toBe("access-broker");
  });
});

describe.runIf(!installed)("the AWS CLI", () => {
  // npm test and .ci/run install awscli (Debian 2.x); only a machine set up by hand can lack it.
  it("is not tested: /usr/bin/aws (Debian awscli 2.x) is not installed on this machine", () => {
    expect(process.env.CI, "CI must install awscli: apt-get install awscli").toBeFalsy();
  });
});
