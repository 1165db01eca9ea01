import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningEmulator } from "../../local/emulator/server.ts";
import { allServices } from "../../local/emulator/services.ts";
import {
  ALICE,
  BROKER,
  BROKER_AUDITOR,
  BROKER_ROLE,
  type Credentials,
  startTestEmulator,
  trail,
} from "./helpers.ts";

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

/**
 * A second, independent client of the emulator's EC2 Instance Connect (botocore rather than the JS SDK the
 * broker uses): what IAM allows is pushed and served to the instance, what it does not is refused and
 * still recorded in CloudTrail, as AWS does.
 */
describe.runIf(installed)("the AWS CLI as a second EC2 Instance Connect client", () => {
  const INSTANCE = "i-0a1b2c3d4e5f60718";
  let dir: string;
  const keyPair = (name: string) => {
    const path = join(dir, name);
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path]);
    return { file: `${path}.pub`, line: readFileSync(`${path}.pub`, "utf8").trim() };
  };
  const sendKey = (credentials: Credentials, pub: string, osUser = "ec2-user") =>
    aws(credentials, [
      "ec2-instance-connect",
      "send-ssh-public-key",
      "--instance-id",
      INSTANCE,
      "--instance-os-user",
      osUser,
      "--ssh-public-key",
      `file://${pub}`,
    ]);
  const metadata = async () => {
    const response = await fetch(
      `${emulator.url}/metadata/${INSTANCE}/managed-ssh-keys/active-keys/ec2-user/`,
    );
    return response.status === 200 ? await response.text() : "";
  };

  beforeAll(async () => {
    emulator = await startTestEmulator({ services: allServices() });
    dir = mkdtempSync(join(tmpdir(), "aws-cli-eic-"));
  });
  afterAll(async () => {
    await emulator?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("send-ssh-public-key works with credentials IAM allows, and the instance's metadata serves the key", async () => {
    const assumed = await aws(BROKER, [
      "sts",
      "assume-role",
      "--role-arn",
      BROKER_ROLE,
      "--role-session-name",
      "cli-push",
    ]);
    expect(assumed.code, assumed.stderr).toBe(0);
    const issued = JSON.parse(assumed.stdout).Credentials;
    const session = {
      accessKeyId: issued.AccessKeyId,
      secretAccessKey: issued.SecretAccessKey,
      sessionToken: issued.SessionToken,
    };
    const key = keyPair("broker-session");
    const sent = await sendKey(session, key.file);
    expect(sent.stderr).toBe("");
    const answer = JSON.parse(sent.stdout);
    expect(answer).toEqual({ RequestId: expect.any(String), Success: true });

    const served = await metadata();
    expect(served).toContain(key.line);
    expect(served).toContain(`#Request=${answer.RequestId}`);
    expect(served).toContain("#Caller=arn:aws:sts::111122223333:assumed-role/access-broker/cli-push");
    const [event] = (await trail(emulator.url, "SendSSHPublicKey")).filter(
      (record) => record.requestID === answer.RequestId,
    );
    expect(event).toMatchObject({
      userAgent: expect.stringMatching(/^aws-cli\/2/),
      recipientAccountId: "111122223333",
      // The CLI sends the file as it is, trailing newline included; EIC trims it before storing the key.
      requestParameters: {
        instanceId: INSTANCE,
        instanceOSUser: "ec2-user",
        sSHPublicKey: readFileSync(key.file, "utf8"),
      },
      responseElements: { requestId: answer.RequestId, success: true },
      userIdentity: { type: "AssumedRole", accessKeyId: session.accessKeyId },
    });
    expect(event?.errorCode).toBeUndefined();
  });

  it("send-ssh-public-key without permission is AccessDenied, pushes nothing and is in CloudTrail with its errorCode", async () => {
    // Alice's own role has no standing permissions (IAM grant mode gives her a time-boxed policy).
    const key = keyPair("alice-denied");
    const denied = await sendKey(ALICE, key.file);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/AccessDeniedException/);
    expect(denied.stderr).toContain("is not authorized to perform: ec2-instance-connect:SendSSHPublicKey");
    expect(await metadata()).not.toContain(key.line);
    const failed = (await trail(emulator.url, "SendSSHPublicKey")).filter(
      (record) => record.userIdentity?.accessKeyId === ALICE.accessKeyId,
    );
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({
      errorCode: "AccessDenied",
      errorMessage: expect.stringContaining("ec2-instance-connect:SendSSHPublicKey"),
      userAgent: expect.stringMatching(/^aws-cli\/2/),
      recipientAccountId: "111122223333",
      requestParameters: { instanceId: INSTANCE, instanceOSUser: "ec2-user" },
      responseElements: null,
    });
  });

  it("send-ssh-public-key works for alice once an IAM grant policy allows it, for that OS user only", async () => {
    const session = await aws(BROKER, [
      "sts",
      "assume-role",
      "--role-arn",
      BROKER_ROLE,
      "--role-session-name",
      "cli-iam",
    ]);
    const issued = JSON.parse(session.stdout).Credentials;
    const broker = {
      accessKeyId: issued.AccessKeyId,
      secretAccessKey: issued.SecretAccessKey,
      sessionToken: issued.SessionToken,
    };
    const policy = join(dir, "grant-policy.json");
    writeFileSync(
      policy,
      JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          {
            Effect: "Allow",
            Action: "ec2-instance-connect:SendSSHPublicKey",
            Resource: `arn:aws:ec2:us-east-1:111122223333:instance/${INSTANCE}`,
            Condition: {
              StringEquals: { "ec2:osuser": "ec2-user" },
              DateLessThan: { "aws:CurrentTime": new Date(Date.now() + 3_600_000).toISOString() },
            },
          },
        ],
      }),
    );
    const put = await aws(broker, [
      "iam",
      "put-role-policy",
      "--role-name",
      "alice",
      "--policy-name",
      "access-broker-grant-cli",
      "--policy-document",
      `file://${policy}`,
    ]);
    expect(put.code, put.stderr).toBe(0);
    const key = keyPair("alice-granted");
    const sent = await sendKey(ALICE, key.file);
    expect(sent.stderr).toBe("");
    expect(JSON.parse(sent.stdout).Success).toBe(true);
    expect(await metadata()).toContain(key.line);
    const root = await sendKey(ALICE, key.file, "root");
    expect(root.stderr).toMatch(/AccessDeniedException/);
  });
});

describe.runIf(!installed)("the AWS CLI", () => {
  // npm test and .ci/run install awscli (Debian 2.x); only a machine set up by hand can lack it.
  it("is not tested: /usr/bin/aws (Debian awscli 2.x) is not installed on this machine", () => {
    expect(process.env.CI, "CI must install awscli: apt-get install awscli").toBeFalsy();
  });
});
