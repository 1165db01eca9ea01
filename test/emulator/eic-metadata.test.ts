import type { IncomingMessage, ServerResponse } from "node:http";
import { EC2InstanceConnectClient, SendSSHPublicKeyCommand } from "@aws-sdk/client-ec2-instance-connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { eicService } from "../../local/emulator/eic.ts";
import { isLoopback, metadataService } from "../../local/emulator/metadata.ts";
import {
  ACCOUNT,
  DEMO_INSTANCE,
  demoInventory,
  type FakeCore,
  fakeCore,
  type GeneratedKey,
  serve,
  sessionPrincipal,
  sshKeygen,
  type TestServer,
} from "./eic-fake-core.ts";

const pusher = sessionPrincipal({
  name: "broker",
  policies: [
    {
      Statement: [
        {
          Effect: "Allow",
          Action: "ec2-instance-connect:SendSSHPublicKey",
          Resource: `arn:aws:ec2:*:${ACCOUNT}:instance/*`,
        },
      ],
    },
  ],
});

let core: FakeCore;
let eic: ReturnType<typeof eicService>;
let server: TestServer;
let client: EC2InstanceConnectClient;
let ed: GeneratedKey;
let rsa: GeneratedKey;

beforeAll(async () => {
  ed = sshKeygen("ed25519", undefined, "alice@laptop");
  rsa = sshKeygen("rsa", 2048, "");
  core = fakeCore({ inventory: demoInventory(), principals: [pusher] });
  eic = eicService(core);
  server = await serve([eic, metadataService(core, eic)]);
  client = new EC2InstanceConnectClient({
    region: "us-east-1",
    endpoint: server.url,
    maxAttempts: 1,
    credentials: {
      accessKeyId: pusher.accessKeyId,
      secretAccessKey: pusher.secretAccessKey,
      sessionToken: pusher.sessionToken as string,
    },
  });
});
beforeEach(() => eic.keys.clear());
afterAll(async () => {
  client.destroy();
  await server.close();
});

const push = (publicKey: string, user = "ec2-user") =>
  client.send(
    new SendSSHPublicKeyCommand({ InstanceId: DEMO_INSTANCE, InstanceOSUser: user, SSHPublicKey: publicKey }),
  );
const activeKeys = (user = "ec2-user", query = "", init?: RequestInit) =>
  fetch(`${server.url}/metadata/${DEMO_INSTANCE}/managed-ssh-keys/active-keys/${user}/${query}`, init);

describe("metadata endpoint", () => {
  it("serves each live key as a record like the real blob, then 404 once the 60 s are over", async () => {
    expect((await activeKeys()).status).toBe(404);
    const first = await push(ed.publicKey);
    core.advance(10_000);
    const second = await push(rsa.publicKey);
    const expiry = (ms: number) => Math.floor(ms / 1000);
    const pushedAt = core.now().getTime();

    const response = await activeKeys();
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await response.text()).toBe(
      [
        `#Timestamp=${expiry(pushedAt - 10_000 + 60_000)}`,
        `#Instance=${DEMO_INSTANCE}`,
        `#Caller=${pusher.caller.arn}`,
        `#Request=${first.RequestId}`,
        ed.publicKey,
        "",
        `#Timestamp=${expiry(pushedAt + 60_000)}`,
        `#Instance=${DEMO_INSTANCE}`,
        `#Caller=${pusher.caller.arn}`,
        `#Request=${second.RequestId}`,
        rsa.publicKey,
        "",
      ].join("\n"),
    );
    expect((await activeKeys("ubuntu")).status).toBe(404);

    core.advance(50_000);
    const onlyRsa = await (await activeKeys()).text();
    expect(onlyRsa).not.toContain(ed.publicKey);
    expect(onlyRsa).toContain(rsa.publicKey);
    core.advance(10_000);
    expect((await activeKeys()).status).toBe(404);
  });

  it("filters by the fingerprint sshd passes as %f, encoded or not", async () => {
    await push(ed.publicKey);
    await push(rsa.publicKey);
    const matching = await activeKeys("ec2-user", `?fingerprint=${encodeURIComponent(rsa.fingerprint)}`);
    expect(matching.status).toBe(200);
    const text = await matching.text();
    expect(text).toContain(rsa.publicKey);
    expect(text).not.toContain(ed.publicKey);
    // A raw '+' in a query decodes to ' '; fingerprints never contain spaces, so it is mapped back.
    const raw = await activeKeys("ec2-user", `?fingerprint=${ed.fingerprint.replaceAll("/", "%2F")}`);
    expect(raw.status).toBe(200);
    expect(await raw.text()).toContain(ed.publicKey);
    const unknown = await activeKeys(
      "ec2-user",
      "?fingerprint=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    expect(unknown.status).toBe(404);
  });

  it("answers HEAD with the status only (the real script probes first)", async () => {
    expect((await activeKeys("ec2-user", "", { method: "HEAD" })).status).toBe(404);
    await push(ed.publicKey);
    const head = await activeKeys("ec2-user", "", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });

  it("refuses other methods and leaves other paths to other services", async () => {
    expect((await activeKeys("ec2-user", "", { method: "POST", body: "x" })).status).toBe(405);
    expect((await fetch(`${server.url}/metadata/${DEMO_INSTANCE}/instance-id`)).status).toBe(404);
  });

  it("answers loopback clients only", async () => {
    expect(["127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"].every(isLoopback)).toBe(true);
    expect(["10.0.0.5", "::ffff:10.0.0.5", "fe80::1", "", undefined].some(isLoopback)).toBe(false);

    await push(ed.publicKey);
    const service = metadataService(core, eic);
    let status = 0;
    let body = "";
    const response = {
      writeHead(code: number) {
        status = code;
        return this;
      },
      end(text?: string) {
        body = text ?? "";
      },
      setHeader() {},
    } as unknown as ServerResponse;
    const request = {
      method: "GET",
      url: `/metadata/${DEMO_INSTANCE}/managed-ssh-keys/active-keys/ec2-user/`,
      headers: {},
      socket: { remoteAddress: "::ffff:10.0.1.10" },
    } as unknown as IncomingMessage;
    expect(await service.handle(request, Buffer.alloc(0), response)).toBe(true);
    expect(status).toBe(403);
    expect(body).not.toContain("ssh-");
  });
});
