import {
  EC2InstanceConnectClient,
  SendSerialConsoleSSHPublicKeyCommand,
  SendSSHPublicKeyCommand,
} from "@aws-sdk/client-ec2-instance-connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { eicService, parseSshPublicKey, SshKeyError } from "../../local/emulator/eic.ts";
import { metadataService } from "../../local/emulator/metadata.ts";
import {
  ACCOUNT,
  DEMO_INSTANCE,
  demoInventory,
  type FakeCore,
  type FakePrincipal,
  fakeCore,
  type GeneratedKey,
  OTHER_INSTANCE,
  REGION,
  STOPPED_INSTANCE,
  serve,
  sessionPrincipal,
  sshKeygen,
  type TestServer,
} from "./eic-fake-core.ts";

// Keys are generated once per run with ssh-keygen; private halves never leave the temp dir.
let keys: Record<"rsa1024" | "rsa2048" | "rsa3072" | "rsa4096" | "ed25519" | "ecdsa", GeneratedKey>;
beforeAll(() => {
  keys = {
    rsa1024: sshKeygen("rsa", 1024),
    rsa2048: sshKeygen("rsa", 2048),
    rsa3072: sshKeygen("rsa", 3072),
    rsa4096: sshKeygen("rsa", 4096),
    ed25519: sshKeygen("ed25519"),
    ecdsa: sshKeygen("ecdsa", 256),
  };
});

describe("parseSshPublicKey", () => {
  it.each([
    ["rsa2048", 2048],
    ["rsa4096", 4096],
    ["ed25519", 256],
  ] as const)("accepts %s with ssh-keygen's SHA256 fingerprint", (name, bits) => {
    const parsed = parseSshPublicKey(keys[name].publicKey);
    expect(parsed.bits).toBe(bits);
    expect(parsed.fingerprint).toBe(keys[name].fingerprint);
    expect(parsed.comment).toBe("test@emulator");
    expect(parsed.line).toBe(keys[name].publicKey);
  });

  it.each([
    ["rsa1024", /RSA key length 1024/],
    ["rsa3072", /RSA key length 3072/],
    ["ecdsa", /Unsupported SSH key type 'ecdsa-sha2-nistp256'/],
  ] as const)("rejects %s", (name, message) => {
    expect(() => parseSshPublicKey(keys[name].publicKey)).toThrow(message);
  });

  it("rejects garbage, lying type labels, trailing blob data and smuggled lines", () => {
    const [, ed] = keys.ed25519.publicKey.split(" ") as [string, string];
    const [, rsa] = keys.rsa2048.publicKey.split(" ") as [string, string];
    const withTrailer = Buffer.concat([Buffer.from(ed, "base64"), Buffer.from([0, 0, 0, 0])]).toString(
      "base64",
    );
    const cases = [
      "not a key at all",
      "ssh-ed25519",
      `ssh-ed25519 ${ed.slice(0, -4)}`,
      `ssh-ed25519 ${ed}!!`,
      `ssh-rsa ${ed}`,
      `ssh-ed25519 ${rsa}`,
      `ssh-ed25519 ${withTrailer}`,
      `ssh-ed25519 ${ed} a\nssh-rsa ${rsa}`,
      `ssh-ed25519 ${ed} comment\u0000`,
    ];
    for (const text of cases) expect(() => parseSshPublicKey(text), text).toThrow(SshKeyError);
  });

  it("accepts an ed25519 line without a comment and ignores surrounding whitespace", () => {
    const [type, blob] = keys.ed25519.publicKey.split(" ") as [string, string];
    const bare = `${type} ${blob}`;
    expect(bare).toHaveLength(80);
    expect(parseSshPublicKey(`  ${bare}\n`).line).toBe(bare);
  });
});

// ---------------------------------------------------------------------------------------------------------

const pusher = sessionPrincipal({
  name: "broker",
  sessionToken: null,
  policies: [
    {
      Statement: [
        {
          Effect: "Allow",
          Action: "ec2-instance-connect:SendSSHPublicKey",
          Resource: `arn:aws:ec2:*:${ACCOUNT}:instance/*`,
          Condition: {
            StringEquals: { "ec2:osuser": ["ec2-user", "ubuntu"], "aws:ResourceTag/env": "demo" },
          },
        },
        {
          Effect: "Allow",
          Action: "ec2-instance-connect:SendSerialConsoleSSHPublicKey",
          Resource: `arn:aws:ec2:*:${ACCOUNT}:instance/${DEMO_INSTANCE}`,
        },
      ],
    },
  ],
});

function clientFor(server: TestServer, principal: FakePrincipal, region = REGION) {
  return new EC2InstanceConnectClient({
    region,
    endpoint: server.url,
    maxAttempts: 1,
    credentials: {
      accessKeyId: principal.accessKeyId,
      secretAccessKey: principal.secretAccessKey,
      ...(principal.sessionToken === undefined ? {} : { sessionToken: principal.sessionToken }),
    },
  });
}

async function failure(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (error) {
    const e = error as {
      name: string;
      message: string;
      $metadata: { httpStatusCode?: number; requestId?: string };
    };
    return {
      name: e.name,
      message: e.message,
      status: e.$metadata.httpStatusCode,
      requestId: e.$metadata.requestId,
    };
  }
  throw new Error("expected the call to fail");
}

describe("SendSSHPublicKey through the real EC2InstanceConnectClient", () => {
  let core: FakeCore;
  let eic: ReturnType<typeof eicService>;
  let server: TestServer;
  let client: EC2InstanceConnectClient;

  beforeAll(async () => {
    core = fakeCore({ inventory: demoInventory(), principals: [pusher] });
    eic = eicService(core);
    server = await serve([eic, metadataService(core, eic)]);
    client = clientFor(server, pusher);
  });
  afterEach(() => {
    core.trail.length = 0;
    eic.keys.clear();
  });
  afterAll(async () => {
    client.destroy();
    await server.close();
  });

  it("stores the key for 60 s of emulator time and answers {RequestId, Success} with x-amzn-RequestId", async () => {
    const key = keys.ed25519;
    const out = await client.send(
      new SendSSHPublicKeyCommand({
        InstanceId: DEMO_INSTANCE,
        InstanceOSUser: "ec2-user",
        SSHPublicKey: key.publicKey,
      }),
    );
    expect(out.Success).toBe(true);
    expect(out.RequestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(out.$metadata.requestId).toBe(out.RequestId);

    const [stored] = eic.keys.active(DEMO_INSTANCE, "ec2-user");
    expect(stored).toMatchObject({
      instanceId: DEMO_INSTANCE,
      osUser: "ec2-user",
      requestId: out.RequestId,
      callerArn: pusher.caller.arn,
      key: { fingerprint: key.fingerprint, type: "ssh-ed25519" },
    });
    expect(stored?.expiresAt.getTime()).toBe(core.now().getTime() + 60_000);
    expect(eic.keys.active(DEMO_INSTANCE, "ubuntu")).toEqual([]);

    core.advance(59_999);
    expect(eic.keys.active(DEMO_INSTANCE, "ec2-user")).toHaveLength(1);
    core.advance(1);
    expect(eic.keys.active(DEMO_INSTANCE, "ec2-user")).toEqual([]);
  });

  it("authorizes on the instance ARN with ec2:osuser and the instance's tags", async () => {
    await client.send(
      new SendSSHPublicKeyCommand({
        InstanceId: DEMO_INSTANCE,
        InstanceOSUser: "ubuntu",
        SSHPublicKey: keys.rsa4096.publicKey,
        AvailabilityZone: "us-east-1a",
      }),
    );
    expect(core.authorizations.at(-1)).toEqual({
      action: "ec2-instance-connect:SendSSHPublicKey",
      resource: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${DEMO_INSTANCE}`,
      context: {
        "ec2:osuser": "ubuntu",
        "aws:ResourceTag/Name": "demo",
        "ec2:ResourceTag/Name": "demo",
        "aws:ResourceTag/env": "demo",
        "ec2:ResourceTag/env": "demo",
      },
    });
  });

  it("records a real-shaped CloudTrail event for a successful push", async () => {
    const out = await client.send(
      new SendSSHPublicKeyCommand({
        InstanceId: DEMO_INSTANCE,
        InstanceOSUser: "ec2-user",
        SSHPublicKey: keys.rsa2048.publicKey,
      }),
    );
    expect(core.trail).toHaveLength(1);
    const event = core.trail[0];
    expect(event).toMatchObject({
      eventSource: "ec2-instance-connect.amazonaws.com",
      eventName: "SendSSHPublicKey",
      region: REGION,
      accountId: ACCOUNT,
      caller: pusher.caller,
      sourceIPAddress: "127.0.0.1",
      requestParameters: {
        instanceId: DEMO_INSTANCE,
        instanceOSUser: "ec2-user",
        sSHPublicKey: keys.rsa2048.publicKey,
      },
      responseElements: { requestId: out.RequestId, success: true },
      requestId: out.RequestId,
      readOnly: false,
      host: server.url.replace("http://", ""),
    });
    expect(event?.errorCode).toBeUndefined();
    expect(event?.userAgent).toMatch(/aws-sdk-js/);
  });

  const long = (n: number) =>
    `${keys.rsa2048.publicKey} ${"x".repeat(n - keys.rsa2048.publicKey.length - 1)}`;
  type Override = Partial<
    Record<"InstanceId" | "InstanceOSUser" | "SSHPublicKey" | "AvailabilityZone", string>
  >;
  it.each<[string, Override, RegExp]>([
    ["an instance id with upper-case hex", { InstanceId: "i-0A1B2C3D4E5F60718" }, /instanceId/],
    ["a too-short instance id", { InstanceId: "i-0a1b2c3" }, /instanceId.*at least 10/],
    ["an OS user starting with '-'", { InstanceOSUser: "-root" }, /instanceOSUser/],
    ["an OS user of 33 characters", { InstanceOSUser: "a".repeat(33) }, /instanceOSUser.*at most 32/],
    ["an OS user with a space", { InstanceOSUser: "ec2 user" }, /instanceOSUser/],
    ["a 79-character key", { SSHPublicKey: "k".repeat(79) }, /sshPublicKey.*at least 80/],
    ["a 4097-character key", { SSHPublicKey: "LONG-4097" }, /sshPublicKey.*at most 4096/],
    ["a malformed availability zone", { AvailabilityZone: "useast1a" }, /availabilityZone/],
    ["an RSA 1024 key", { SSHPublicKey: "rsa1024" }, /RSA key length 1024/],
    ["an RSA 3072 key", { SSHPublicKey: "rsa3072" }, /RSA key length 3072/],
    ["an ECDSA key", { SSHPublicKey: "ecdsa" }, /Unsupported SSH key type/],
    [
      "garbage of the right length",
      { SSHPublicKey: `ssh-rsa ${"A".repeat(100)}` },
      /not valid base64|truncated|does not match/,
    ],
  ])("refuses %s with InvalidArgsException and logs the attempt", async (_name, override, message) => {
    const named = override.SSHPublicKey as keyof typeof keys | "LONG-4097" | undefined;
    const SSHPublicKey =
      named === "LONG-4097"
        ? long(4097)
        : named !== undefined && named in keys
          ? keys[named as keyof typeof keys].publicKey
          : (override.SSHPublicKey ?? keys.ed25519.publicKey);
    const input = { InstanceId: DEMO_INSTANCE, InstanceOSUser: "ec2-user", ...override, SSHPublicKey };
    const error = await failure(client.send(new SendSSHPublicKeyCommand(input)));
    expect(error).toMatchObject({ name: "InvalidArgsException", status: 400 });
    expect(error.message).toMatch(message);
    expect(eic.keys.list()).toEqual([]);
    expect(core.trail).toHaveLength(1);
    expect(core.trail[0]).toMatchObject({
      errorCode: "InvalidArgsException",
      errorMessage: error.message,
      responseElements: null,
      requestId: error.requestId,
      requestParameters: {
        instanceId: input.InstanceId,
        instanceOSUser: input.InstanceOSUser,
        sSHPublicKey: SSHPublicKey,
      },
    });
  });

  it("accepts a key of exactly 4096 characters (the model's maximum)", async () => {
    const out = await client.send(
      new SendSSHPublicKeyCommand({
        InstanceId: DEMO_INSTANCE,
        InstanceOSUser: "ec2-user",
        SSHPublicKey: long(4096),
      }),
    );
    expect(out.Success).toBe(true);
  });

  it("accepts the model's other OS user form (digits first, then a letter) and a trailing $", async () => {
    for (const user of ["1user", "svc$", "a"]) {
      const policyAllows = await failure(
        client.send(
          new SendSSHPublicKeyCommand({
            InstanceId: DEMO_INSTANCE,
            InstanceOSUser: user,
            SSHPublicKey: keys.ed25519.publicKey,
          }),
        ),
      );
      // Valid input, so it gets as far as IAM, which only allows ec2-user and ubuntu.
      expect(policyAllows.name).toBe("AccessDeniedException");
    }
  });

  it.each([
    ["an unknown instance", "i-0123456789abcdef0", "EC2InstanceNotFoundException", 404],
    ["an instance in another account", "i-0fedcba9876543210", "EC2InstanceNotFoundException", 404],
    ["a stopped instance", STOPPED_INSTANCE, "EC2InstanceStateInvalidException", 400],
  ])("refuses %s", async (_name, instanceId, code, status) => {
    const error = await failure(
      client.send(
        new SendSSHPublicKeyCommand({
          InstanceId: instanceId,
          InstanceOSUser: "ec2-user",
          SSHPublicKey: keys.ed25519.publicKey,
        }),
      ),
    );
    expect(error).toMatchObject({ name: code, status });
    expect(core.trail.at(-1)).toMatchObject({ errorCode: code, accountId: ACCOUNT, caller: pusher.caller });
  });

  it("refuses a mismatched availability zone as not found", async () => {
    const error = await failure(
      client.send(
        new SendSSHPublicKeyCommand({
          InstanceId: DEMO_INSTANCE,
          InstanceOSUser: "ec2-user",
          SSHPublicKey: keys.ed25519.publicKey,
          AvailabilityZone: "us-east-1b",
        }),
      ),
    );
    expect(error.name).toBe("EC2InstanceNotFoundException");
  });

  it("denies an OS user or instance the policy does not allow: AccessDeniedException, AccessDenied in CloudTrail", async () => {
    const byUser = await failure(
      client.send(
        new SendSSHPublicKeyCommand({
          InstanceId: DEMO_INSTANCE,
          InstanceOSUser: "root",
          SSHPublicKey: keys.ed25519.publicKey,
        }),
      ),
    );
    expect(byUser).toMatchObject({ name: "AccessDeniedException", status: 400 });
    expect(byUser.message).toBe(
      `User: ${pusher.caller.arn} is not authorized to perform: ec2-instance-connect:SendSSHPublicKey on resource: ` +
        `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${DEMO_INSTANCE} because no identity-based policy allows the ` +
        "ec2-instance-connect:SendSSHPublicKey action",
    );
    // The other instance is tagged env=prod, so the tag condition fails.
    const byTag = await failure(
      client.send(
        new SendSSHPublicKeyCommand({
          InstanceId: OTHER_INSTANCE,
          InstanceOSUser: "ec2-user",
          SSHPublicKey: keys.ed25519.publicKey,
        }),
      ),
    );
    expect(byTag.name).toBe("AccessDeniedException");
    expect(eic.keys.list()).toEqual([]);
    expect(core.trail.map((e) => [e.errorCode, e.errorMessage])).toEqual([
      ["AccessDenied", byUser.message],
      ["AccessDenied", byTag.message],
    ]);
  });

  it("answers injected faults as the service would, and logs them", async () => {
    core.failNext("SendSSHPublicKey", { status: 429, code: "ThrottlingException", message: "Rate exceeded" });
    const error = await failure(
      client.send(
        new SendSSHPublicKeyCommand({
          InstanceId: DEMO_INSTANCE,
          InstanceOSUser: "ec2-user",
          SSHPublicKey: keys.ed25519.publicKey,
        }),
      ),
    );
    expect(error).toMatchObject({ name: "ThrottlingException", status: 429, message: "Rate exceeded" });
    expect(core.trail.at(-1)).toMatchObject({ errorCode: "ThrottlingException", caller: pusher.caller });
  });

  it("refuses a bad signature without storing anything and logs it in the instance's account", async () => {
    const forged = clientFor(server, { ...pusher, secretAccessKey: "wrong" });
    const error = await failure(
      forged.send(
        new SendSSHPublicKeyCommand({
          InstanceId: DEMO_INSTANCE,
          InstanceOSUser: "ec2-user",
          SSHPublicKey: keys.ed25519.publicKey,
        }),
      ),
    );
    forged.destroy();
    expect(error).toMatchObject({ name: "SignatureDoesNotMatch", status: 403 });
    expect(eic.keys.list()).toEqual([]);
    expect(core.trail.at(-1)).toMatchObject({
      errorCode: "SignatureDoesNotMatch",
      accountId: ACCOUNT,
      caller: undefined,
    });
  });

  it("refuses credentials scoped to another region as not found (instances are regional)", async () => {
    const elsewhere = clientFor(server, pusher, "eu-west-1");
    const error = await failure(
      elsewhere.send(
        new SendSSHPublicKeyCommand({
          InstanceId: DEMO_INSTANCE,
          InstanceOSUser: "ec2-user",
          SSHPublicKey: keys.ed25519.publicKey,
        }),
      ),
    );
    elsewhere.destroy();
    expect(error.name).toBe("EC2InstanceNotFoundException");
  });

  it("pushes serial console keys (SerialPort 0 only), kept apart from SSH keys", async () => {
    const out = await client.send(
      new SendSerialConsoleSSHPublicKeyCommand({
        InstanceId: DEMO_INSTANCE,
        SSHPublicKey: keys.ed25519.publicKey,
      }),
    );
    expect(out.Success).toBe(true);
    expect(eic.keys.list()).toMatchObject([
      { operation: "SendSerialConsoleSSHPublicKey", serialPort: 0, instanceId: DEMO_INSTANCE },
    ]);
    expect(eic.keys.active(DEMO_INSTANCE, "ec2-user")).toEqual([]);
    expect(core.trail.at(-1)).toMatchObject({
      eventName: "SendSerialConsoleSSHPublicKey",
      requestParameters: { instanceId: DEMO_INSTANCE, sSHPublicKey: keys.ed25519.publicKey },
    });
    const error = await failure(
      client.send(
        new SendSerialConsoleSSHPublicKeyCommand({
          InstanceId: DEMO_INSTANCE,
          SSHPublicKey: keys.ed25519.publicKey,
          SerialPort: 1,
        }),
      ),
    );
    expect(error.name).toBe("InvalidArgsException");
  });

  it("answers malformed JSON and unknown operations like a JSON 1.1 service", async () => {
    const post = (target: string, body: string) =>
      fetch(`${server.url}/`, {
        method: "POST",
        headers: { "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target },
        body,
      });
    const unknown = await post("AWSEC2InstanceConnectService.Nope", "{}");
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toMatchObject({ __type: "UnknownOperationException" });
    // Unsigned: authentication fails first, and nothing names an instance, so nothing is logged.
    const unsigned = await post("AWSEC2InstanceConnectService.SendSSHPublicKey", "{not json");
    expect(unsigned.status).toBe(403);
    expect(unsigned.headers.get("x-amzn-requestid")).toMatch(/^[0-9a-f-]{36}$/);
    expect(core.trail).toEqual([]);
    // Other targets are some other service's business.
    expect((await post("AWSCloudTrail_20131101.LookupEvents", "{}")).status).toBe(404);
  });
});

describe("key lifetime", () => {
  it("honours keyTtlSeconds", async () => {
    const core = fakeCore({ inventory: demoInventory(), principals: [pusher] });
    const eic = eicService(core, { keyTtlSeconds: 5 });
    const server = await serve([eic]);
    const client = clientFor(server, pusher);
    try {
      await client.send(
        new SendSSHPublicKeyCommand({
          InstanceId: DEMO_INSTANCE,
          InstanceOSUser: "ec2-user",
          SSHPublicKey: keys.ed25519.publicKey,
        }),
      );
      core.advance(4_999);
      expect(eic.keys.active(DEMO_INSTANCE, "ec2-user")).toHaveLength(1);
      core.advance(1);
      expect(eic.keys.active(DEMO_INSTANCE, "ec2-user")).toHaveLength(0);
    } finally {
      client.destroy();
      await server.close();
    }
  });
});
