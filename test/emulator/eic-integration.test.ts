/**
 * SendSSHPublicKey and the metadata endpoint through the real emulator core (SigV4, IAM/STS, CloudTrail,
 * faults, clock), with the official EC2InstanceConnectClient.
 */
import { EC2InstanceConnectClient, SendSSHPublicKeyCommand } from "@aws-sdk/client-ec2-instance-connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { eicService } from "../../local/emulator/eic.ts";
import { metadataService } from "../../local/emulator/metadata.ts";
import type { RunningEmulator } from "../../local/emulator/server.ts";
import { type GeneratedKey, sshKeygen } from "./eic-fake-core.ts";
import {
  ALICE,
  admin,
  brokerSession,
  type Credentials,
  MALLORY,
  rejection,
  startTestEmulator,
  TARGET,
  trail,
} from "./helpers.ts";

const DEMO = "i-0a1b2c3d4e5f60718";

let emulator: RunningEmulator;
let key: GeneratedKey;
let broker: Credentials;

const client = (credentials: Credentials, region = "us-east-1") =>
  new EC2InstanceConnectClient({ endpoint: emulator.url, region, credentials, maxAttempts: 1 });
const push = (
  credentials: Credentials,
  input: { InstanceId?: string; InstanceOSUser?: string; SSHPublicKey?: string },
) => {
  const c = client(credentials);
  return c
    .send(
      new SendSSHPublicKeyCommand({
        InstanceId: DEMO,
        InstanceOSUser: "ec2-user",
        SSHPublicKey: key.publicKey,
        ...input,
      }),
    )
    .finally(() => c.destroy());
};
const activeKeys = (user = "ec2-user", query = "") =>
  fetch(`${emulator.url}/metadata/${DEMO}/managed-ssh-keys/active-keys/${user}/${query}`);

beforeAll(async () => {
  key = sshKeygen("ed25519");
  emulator = await startTestEmulator({
    services: (core) => {
      const eic = eicService(core);
      return [eic, metadataService(core, eic)];
    },
  });
});
beforeEach(async () => {
  await admin(emulator.url, "reset", {});
  broker = await brokerSession(emulator.url, "grant-01TEST");
});
afterAll(async () => {
  await emulator?.close();
});

describe("SendSSHPublicKey through the emulator", () => {
  it("pushes with the broker's role session, serves the key to the instance and logs a real-shaped event", async () => {
    const out = await push(broker, {});
    expect(out).toMatchObject({ Success: true });
    expect(out.$metadata.requestId).toBe(out.RequestId);

    const response = await activeKeys("ec2-user", `?fingerprint=${encodeURIComponent(key.fingerprint)}`);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain(`#Request=${out.RequestId}\n${key.publicKey}\n`);
    expect(text).toContain(`#Caller=arn:aws:sts::${TARGET}:assumed-role/access-broker/grant-01TEST`);

    const [event] = await trail(emulator.url, "SendSSHPublicKey");
    expect(event).toMatchObject({
      eventSource: "ec2-instance-connect.amazonaws.com",
      eventName: "SendSSHPublicKey",
      awsRegion: "us-east-1",
      recipientAccountId: TARGET,
      readOnly: false,
      requestID: out.RequestId,
      userIdentity: {
        type: "AssumedRole",
        arn: `arn:aws:sts::${TARGET}:assumed-role/access-broker/grant-01TEST`,
      },
      requestParameters: { instanceId: DEMO, instanceOSUser: "ec2-user", sSHPublicKey: key.publicKey },
      responseElements: { requestId: out.RequestId, success: true },
    });
    expect(event.errorCode).toBeUndefined();
  });

  it("forgets the key 60 s later in emulator time", async () => {
    await push(broker, {});
    await admin(emulator.url, "clock", { advanceSeconds: 59 });
    expect((await activeKeys()).status).toBe(200);
    await admin(emulator.url, "clock", { advanceSeconds: 1 });
    expect((await activeKeys()).status).toBe(404);
  });

  it("denies a principal without SendSSHPublicKey (AccessDenied in the trail) and hides other accounts' instances", async () => {
    const denied = await rejection(push(ALICE, {}));
    expect(denied.name).toBe("AccessDeniedException");
    expect(denied.message).toMatch(
      new RegExp(
        `is not authorized to perform: ec2-instance-connect:SendSSHPublicKey on resource: arn:aws:ec2:us-east-1:${TARGET}:instance/${DEMO}`,
      ),
    );
    const foreign = await rejection(push(MALLORY, {}));
    expect(foreign.name).toBe("EC2InstanceNotFoundException");
    const events = await trail(emulator.url, "SendSSHPublicKey");
    expect(events.map((e) => e.errorCode)).toEqual(["AccessDenied", "EC2InstanceNotFoundException"]);
    expect(events[0].errorMessage).toBe(denied.message);
    expect(events[0].responseElements).toBeNull();
    expect((await activeKeys()).status).toBe(404);
  });

  it("refuses invalid input with InvalidArgsException and logs it", async () => {
    const rsa1024 = sshKeygen("rsa", 1024).publicKey;
    const error = await rejection(push(broker, { SSHPublicKey: rsa1024 }));
    expect(error.name).toBe("InvalidArgsException");
    const [event] = await trail(emulator.url, "SendSSHPublicKey");
    expect(event).toMatchObject({
      errorCode: "InvalidArgsException",
      requestParameters: { sSHPublicKey: rsa1024 },
    });
  });

  it("refuses a forged signature before doing anything", async () => {
    const error = await rejection(push({ ...broker, secretAccessKey: "forged" }, {}));
    expect(error.$metadata.httpStatusCode).toBe(403);
    expect((await activeKeys()).status).toBe(404);
  });

  it("passes configured faults through to the SDK", async () => {
    await admin(emulator.url, "faults", { operations: { SendSSHPublicKey: { rate: 1, kind: "throttle" } } });
    const error = await rejection(push(broker, {}));
    expect(error.name).toBe("ThrottlingException");
    expect((await trail(emulator.url, "SendSSHPublicKey"))[0]).toMatchObject({
      errorCode: "ThrottlingException",
    });
  });
});
