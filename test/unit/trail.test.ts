import { readdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import type { Push } from "../../core/access/schema.ts";
import * as Audit from "../../core/audit/index.ts";
import { matches as matchesAudit } from "../../core/audit/store.ts";
import type { Config } from "../../core/policy/index.ts";
import { parseConfig } from "../../core/policy/yaml.ts";
import type { Info } from "../../core/request/schema.ts";
import * as Trail from "../../core/trail/index.ts";
import { MemoryTrailStore } from "../../core/trail/memory.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";

const FIXTURES = new URL("../fixtures/cloudtrail/", import.meta.url);
const fixture = (name: string): Record<string, any> =>
  JSON.parse(readFileSync(new URL(name, FIXTURES), "utf8"));
/** `ssh-keygen -l -E sha256` of the keys in the fixtures. */
const ALICE_FINGERPRINT = "SHA256:i23Tp0ixG9n7+G9opd+IXhQcUIFYgTb/jDsoeY8Hr8M";
const MALLORY_FINGERPRINT = "SHA256:nIQKIr7DmkDEqGx1DYNB0Pxcwz0YKykrkRLzJwg1i1A";

const config: Config = parseConfig(DEMO_CONFIG_TEXT);

/** A grant as the broker stores it (the fixtures' world: 10:00–10:30 on 2024-05-01). */
function grant(ulid: string, overrides: Partial<Info> = {}): Info {
  return {
    id: `req_${ulid}`,
    grantId: `gr_${ulid}`,
    status: "active",
    version: 3,
    requester: "alice@example.com",
    instanceId: "i-0a1b2c3d4e5f60718",
    account: "111122223333",
    region: "us-east-1",
    target: "demo",
    method: "ssh",
    osUser: "ec2-user",
    durationSeconds: 1800,
    reason: "debug",
    ruleId: "dev-demo",
    network: {
      vpcId: "vpc-0demo0000000001",
      subnetId: "subnet-0demo000000001a",
      privateIp: "10.0.1.10",
      route: {
        type: "eice",
        endpointId: "eice-0demo00000000001",
        dnsName: "eice-0demo00000000001.ec2-instance-connect-endpoint.us-east-1.amazonaws.com",
        ip: "10.0.1.10",
      },
      resolvedAt: "2024-05-01T09:59:00.000Z",
    },
    breakGlass: false,
    approvalsRequired: 1,
    approvalsFrom: ["group:sre-leads"],
    approvals: [{ by: "bob@example.com", at: "2024-05-01T10:00:00.000Z" }],
    createdAt: "2024-05-01T09:59:00.000Z",
    pendingUntil: "2024-05-01T10:29:00.000Z",
    startsAt: "2024-05-01T10:00:00.000Z",
    endsAt: "2024-05-01T10:30:00.000Z",
    extendedSeconds: 0,
    ...overrides,
  };
}

const SSH_GRANT = grant("01hzx3k4m5n6p7q8r9s0t1v2w3");
const TUNNEL_GRANT = grant("01hzx3k4m5n6p7q8r9s0t1v2x3", { method: "tunnel", osUser: undefined, port: 22 });
const IAM_GRANT = grant("01hzx3k4m5n6p7q8r9s0t1v2y3", {
  instanceId: "i-0c0ffee0c0ffee0ee",
  target: "demo-iam",
  ruleId: "dev-demo-iam",
  grantMode: "iam",
  awsPrincipal: "arn:aws:iam::111122223333:role/alice",
});
const PUSH: Push = {
  id: "push_01hzx3k4m5n6p7q8r9s0t1v2z3",
  grantId: SSH_GRANT.grantId,
  requestId: SSH_GRANT.id,
  status: "pushed",
  requestedBy: "alice@example.com",
  instanceId: "i-0a1b2c3d4e5f60718",
  osUser: "ec2-user",
  account: "111122223333",
  region: "us-east-1",
  keyType: "ssh-ed25519",
  fingerprint: ALICE_FINGERPRINT,
  createdAt: "2024-05-01T10:04:59.500Z",
  pushedAt: "2024-05-01T10:04:59.800Z",
  awsRequestId: "0a0b0c0d-0f1a-4a6e-9a43-1d2e3f4a5b01",
};

function world(options: { push?: boolean } = {}) {
  const store = new MemoryTrailStore();
  for (const request of [SSH_GRANT, TUNNEL_GRANT, IAM_GRANT]) store.putRequest(request);
  if (options.push !== false) store.putPush(PUSH);
  const deps: Trail.Deps = { config, trail: store, clock: () => new Date("2024-05-01T12:00:00Z") };
  return { store, deps };
}

describe("normalization", () => {
  it("reads the current SendSSHPublicKey shape and fingerprints the logged key like ssh-keygen", () => {
    const event = Trail.normalize(fixture("push-brokered.json"));
    expect(event).toMatchObject({
      kind: "key-push",
      eventId: "5b1c7a7e-0f1a-4a6e-9a43-1d2e3f4a5b01",
      eventTime: "2024-05-01T10:05:00.000Z",
      account: "111122223333",
      region: "us-east-1",
      instanceId: "i-0a1b2c3d4e5f60718",
      osUser: "ec2-user",
      fingerprint: ALICE_FINGERPRINT,
      keyType: "ssh-ed25519",
      identity: {
        type: "AssumedRole",
        sessionName: "access-broker",
        principalArn: "arn:aws:iam::111122223333:role/access-broker",
      },
    });
  });

  it("reads the 2018 documentation's field names (osUser, SSHKey.publicKey, a trailing space)", () => {
    expect(Trail.normalize(fixture("push-2018-shape.json"))).toMatchObject({
      kind: "key-push",
      eventName: "SendSSHPublicKey",
      osUser: "ec2-user",
      fingerprint: ALICE_FINGERPRINT,
    });
    const flat = fixture("push-2018-shape.json");
    flat.requestParameters = {
      instanceId: "i-0a1b2c3d4e5f60718",
      osUser: "ec2-user",
      "SSHKey.publicKey": flat.requestParameters.SSHKey.publicKey,
    };
    expect(Trail.normalize(flat)).toMatchObject({ fingerprint: ALICE_FINGERPRINT });
  });

  it("reads OpenTunnel with maxTunnelDuration as a string, or absent", () => {
    expect(Trail.normalize(fixture("tunnel-brokered.json"))).toMatchObject({
      kind: "tunnel",
      endpointId: "eice-0demo00000000001",
      privateIp: "10.0.1.10",
      remotePort: 22,
      maxTunnelDuration: 1200,
      identity: { sessionName: "grant-gr_01hzx3k4m5n6p7q8r9s0t1v2x3", sourceIdentity: "alice@example.com" },
    });
    const bare = Trail.normalize(fixture("tunnel-no-duration-federated.json"));
    expect(bare).toMatchObject({ kind: "tunnel", remotePort: 22 });
    expect(bare).not.toHaveProperty("maxTunnelDuration");
  });

  it("flattens every userIdentity type", () => {
    expect(Trail.normalize(fixture("push-denied.json"))).toMatchObject({
      errorCode: "AccessDenied",
      fingerprint: MALLORY_FINGERPRINT,
      identity: {
        type: "IAMUser",
        principalArn: "arn:aws:iam::111122223333:user/mallory",
        userName: "mallory",
      },
    });
    expect(Trail.normalize(fixture("tunnel-no-duration-federated.json"))).toMatchObject({
      identity: { type: "FederatedUser", principalArn: "arn:aws:iam::111122223333:user/federation-broker" },
    });
    expect(Trail.normalize(fixture("serial-console-root.json"))).toMatchObject({
      kind: "serial-push",
      serialPort: 0,
      identity: { type: "Root", principalArn: "arn:aws:iam::111122223333:root" },
    });
    expect(Trail.normalize(fixture("push-aws-service-govcloud.json"))).toMatchObject({
      region: "us-gov-west-1",
      instanceId: "i-0123abcd",
      identity: { type: "AWSService", invokedBy: "ssm.amazonaws.com" },
    });
    // A role with a path: the issuer ARN keeps it, the session ARN does not.
    expect(
      Trail.identityOf({
        type: "AssumedRole",
        arn: "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0123/alice@example.com",
        principalId: "AROAEXAMPLE:alice@example.com",
        sessionContext: {
          sessionIssuer: {
            arn: "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123",
          },
        },
      }),
    ).toMatchObject({
      sessionName: "alice@example.com",
      principalArn: "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123",
    });
  });

  it("keeps what it cannot understand as unparsed, with a reason, and never throws", () => {
    expect(Trail.normalize(fixture("unparsed-no-parameters.json"))).toEqual({
      kind: "unparsed",
      eventId: "5b1c7a7e-0f1a-4a6e-9a43-1d2e3f4a5b11",
      eventTime: "2024-05-01T10:15:00.000Z",
      eventName: "SendSSHPublicKey",
      account: "111122223333",
      region: "us-east-1",
      reason: "SendSSHPublicKey without requestParameters.instanceId",
    });
    expect(Trail.normalize(fixture("unparsed-no-time.json"))).toMatchObject({
      kind: "unparsed",
      reason: expect.stringContaining("eventTime"),
    });
    for (const junk of [null, 42, "text", [], { eventSource: "ec2-instance-connect.amazonaws.com" }]) {
      const event = Trail.normalize(junk);
      expect(event.kind).toBe("unparsed");
      expect(event.eventId).toMatch(/^sha256-[0-9a-f]{64}$/);
    }
    expect(Trail.normalize({ a: 1 }).eventId).toBe(Trail.normalize({ a: 1 }).eventId);
  });

  it("tells EC2 Instance Connect records from other services' ones", () => {
    expect(Trail.isInstanceConnect(fixture("push-brokered.json"))).toBe(true);
    expect(
      Trail.isInstanceConnect({
        eventSource: "ec2.amazonaws.com",
        eventName: "CreateInstanceConnectEndpoint",
      }),
    ).toBe(false);
    // A record without an eventSource is kept (as unparsed) rather than dropped.
    expect(Trail.isInstanceConnect({ eventName: "OpenTunnel" })).toBe(true);
  });
});

async function classify(name: string, options: { push?: boolean } = {}) {
  const { deps } = world(options);
  return Trail.correlate({ config, lookup: deps.trail }, Trail.normalize(fixture(name)));
}

describe("correlation and classification (fixtures)", () => {
  it("brokered: a push the broker made, by its push record (fingerprint, instance, OS user, time)", async () => {
    expect(await classify("push-brokered.json")).toMatchObject({
      classification: "brokered",
      requestId: SSH_GRANT.id,
      grantId: SSH_GRANT.grantId,
      pushId: PUSH.id,
      matchedBy: "push",
      requester: "alice@example.com",
    });
    expect(await classify("push-2018-shape.json")).toMatchObject({
      classification: "brokered",
      pushId: PUSH.id,
    });
  });

  it("brokered: a tunnel opened by the grant's signer session", async () => {
    expect(await classify("tunnel-brokered.json")).toMatchObject({
      classification: "brokered",
      grantId: TUNNEL_GRANT.grantId,
      matchedBy: "session",
      // Whose grant and which instance, for `GET /audit/trail?user=&instance=` (the event names neither).
      requester: TUNNEL_GRANT.requester,
      instanceId: TUNNEL_GRANT.instanceId,
    });
  });

  it("constraint-mismatch: the grant's session tunnelling to another IP and port", async () => {
    const verdict = await classify("tunnel-constraint-mismatch.json");
    expect(verdict).toMatchObject({ classification: "constraint-mismatch", grantId: TUNNEL_GRANT.grantId });
    expect(verdict.reasons.join("\n")).toMatch(/private IP 10\.0\.1\.99.*\n.*port 3389/);
  });

  it("outside-window: the IAM-mode principal pushing an hour after its grant ended", async () => {
    const verdict = await classify("push-iam-outside-window.json");
    expect(verdict).toMatchObject({
      classification: "outside-window",
      grantId: IAM_GRANT.grantId,
      matchedBy: "iam-principal",
    });
    expect(verdict.reasons[0]).toContain("outside the grant's window");
  });

  it("denied-attempt: anything AWS refused", async () => {
    expect(await classify("push-denied.json")).toMatchObject({
      classification: "denied-attempt",
      reasons: [expect.stringContaining("AccessDenied")],
    });
  });

  it("unbrokered: keys and tunnels no grant accounts for, serial console, any identity type", async () => {
    for (const name of [
      "push-unbrokered.json",
      "tunnel-no-duration-federated.json",
      "serial-console-root.json",
      "push-aws-service-govcloud.json",
    ])
      expect((await classify(name)).classification, name).toBe("unbrokered");
    // Without its push record the broker's own push is unbrokered until that record shows up.
    expect((await classify("push-brokered.json", { push: false })).classification).toBe("unbrokered");
  });

  it("unparsed: records it could not understand", async () => {
    expect(await classify("unparsed-no-time.json")).toMatchObject({ classification: "unparsed" });
  });

  it("constraint-mismatch: a key the broker pushed, pushed again by someone else", async () => {
    const event = Trail.normalize({
      ...fixture("push-brokered.json"),
      eventID: "5b1c7a7e-0f1a-4a6e-9a43-1d2e3f4a5bff",
      userIdentity: fixture("push-unbrokered.json").userIdentity,
    });
    const { deps } = world();
    const verdict = await Trail.correlate({ config, lookup: deps.trail }, event);
    expect(verdict.classification).toBe("constraint-mismatch");
    expect(verdict.reasons.join()).toContain("not the broker role");
  });
});

describe("ingest", () => {
  const all = readdirSync(FIXTURES)
    .filter((name) => name.endsWith(".json") && !name.startsWith("log-"))
    .map((name) => fixture(name));

  it("records each event once with its audit record, however often and in whatever order it arrives", async () => {
    const { store, deps } = world();
    const shuffled = [...all].reverse();
    const first = await Trail.ingest(deps, [...shuffled, ...shuffled, ...shuffled], {
      source: "eventbridge",
    });
    expect(first).toMatchObject({
      received: all.length * 3,
      recorded: all.length,
      duplicates: all.length * 2,
    });
    const again = await Trail.ingest(deps, all, { source: "import" });
    expect(again).toMatchObject({ recorded: 0, duplicates: all.length });
    expect(store.observations.size).toBe(all.length);
    expect(store.audit.map((record) => record.type)).toEqual(all.map(() => "trail.observed"));
    expect(first.classifications).toEqual({
      brokered: 3,
      "constraint-mismatch": 1,
      "outside-window": 1,
      "denied-attempt": 1,
      unbrokered: 4,
      unparsed: 2,
    });
    const verification = await Audit.verify(
      (async function* () {
        yield* store.audit;
      })(),
      { seq: store.audit.length, hash: store.audit.at(-1)?.hash ?? "" },
    );
    expect(verification.ok).toBe(true);
  });

  it("writes the audit record about the request it matched, with the raw record's hash", async () => {
    const { store, deps } = world();
    await Trail.ingest(deps, [fixture("push-brokered.json")], { source: "lookup" });
    const [record] = store.audit;
    expect(record).toMatchObject({
      type: "trail.observed",
      actor: "system",
      subject: SSH_GRANT.id,
      data: { classification: "brokered", pushId: PUSH.id, fingerprint: ALICE_FINGERPRINT, source: "lookup" },
    });
    const observation = await store.get("5b1c7a7e-0f1a-4a6e-9a43-1d2e3f4a5b01");
    expect(observation?.alert).toBe("none");
    expect(JSON.parse(observation?.raw ?? "")).toEqual(fixture("push-brokered.json"));
  });

  it("names whose grant, which instance and which AWS principal in the audit record (GET /audit/events?user=&instance=)", async () => {
    const { store, deps } = world();
    await Trail.ingest(
      deps,
      [
        fixture("push-brokered.json"),
        fixture("tunnel-brokered.json"),
        fixture("push-iam-outside-window.json"),
      ],
      { source: "lookup" },
    );
    const byEvent = new Map(store.audit.map((record) => [record.data.eventId, record.data]));
    // The broker's push: only the grant names alice.
    expect(byEvent.get("5b1c7a7e-0f1a-4a6e-9a43-1d2e3f4a5b01")).toMatchObject({
      requester: "alice@example.com",
      instanceId: SSH_GRANT.instanceId,
    });
    // A tunnel names only endpoint and IP: the instance is its grant's.
    expect(byEvent.get("5b1c7a7e-0f1a-4a6e-9a43-1d2e3f4a5b06")).toMatchObject({
      requester: "alice@example.com",
      sourceIdentity: "alice@example.com",
      instanceId: TUNNEL_GRANT.instanceId,
      principalArn: "arn:aws:iam::111122223333:role/access-broker-tunnel-signer",
    });
    // Her own role: the assumed-role session as principal, the role (her directory awsPrincipal) as principalArn.
    expect(byEvent.get("5b1c7a7e-0f1a-4a6e-9a43-1d2e3f4a5b03")).toMatchObject({
      principal: "arn:aws:sts::111122223333:assumed-role/alice/alice",
      principalArn: "arn:aws:iam::111122223333:role/alice",
      instanceId: IAM_GRANT.instanceId,
    });
    const alice = { email: "alice@example.com", principals: ["arn:aws:iam::111122223333:role/alice"] };
    expect(store.audit.every((record) => matchesAudit(record, { user: alice }))).toBe(true);
    expect(
      store.audit.filter((record) => matchesAudit(record, { instance: IAM_GRANT.instanceId })),
    ).toHaveLength(1);
  });

  it("re-correlates an event that arrived before its push record, once the record exists", async () => {
    const { store, deps } = world({ push: false });
    await Trail.ingest(deps, [fixture("push-brokered.json")], { source: "eventbridge" });
    expect((await store.get("5b1c7a7e-0f1a-4a6e-9a43-1d2e3f4a5b01"))?.verdict.classification).toBe(
      "unbrokered",
    );
    expect(await Trail.recorrelate(deps)).toEqual({ checked: 1, reclassified: 0 });

    store.putPush(PUSH);
    expect(await Trail.recorrelate(deps)).toEqual({ checked: 1, reclassified: 1 });
    const observation = await store.get("5b1c7a7e-0f1a-4a6e-9a43-1d2e3f4a5b01");
    expect(observation).toMatchObject({
      verdict: { classification: "brokered", pushId: PUSH.id },
      alert: "none",
      version: 2,
    });
    expect(store.audit.map((record) => record.type)).toEqual(["trail.observed", "trail.reclassified"]);
    expect(store.audit[1]?.data).toMatchObject({
      from: "unbrokered",
      to: "brokered",
      requester: "alice@example.com",
      instanceId: PUSH.instanceId,
    });
    expect(await Trail.recorrelate(deps)).toEqual({ checked: 0, reclassified: 0 });
  });

  it("accepts LookupEvents' CloudTrailEvent strings and EventBridge envelopes", async () => {
    const { store, deps } = world();
    const envelope = {
      version: "0",
      id: "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
      "detail-type": "AWS API Call via CloudTrail",
      source: "aws.ec2-instance-connect",
      account: "111122223333",
      time: "2024-05-01T10:10:00Z",
      region: "us-east-1",
      resources: [],
      detail: fixture("tunnel-brokered.json"),
    };
    const result = await Trail.ingest(
      deps,
      [...Trail.fromEventBridge(envelope), JSON.stringify(fixture("push-brokered.json"))],
      {
        source: "eventbridge",
      },
    );
    expect(result).toMatchObject({ recorded: 2, classifications: { brokered: 2 } });
    expect(store.observations.size).toBe(2);
    expect(() => Trail.fromEventBridge({ "detail-type": "Scheduled Event", detail: {} })).toThrow(
      /AWS API Call via CloudTrail/,
    );
  });
});

async function collect(
  source: Buffer | Buffer[],
): Promise<{ records: unknown[]; stats: Trail.ScanStats; error?: string }> {
  const stats = Trail.emptyStats();
  const records: unknown[] = [];
  const chunks = Array.isArray(source) ? source : [source];
  try {
    for await (const batch of Trail.scanLog(
      (async function* () {
        yield* chunks;
      })(),
      stats,
    ))
      records.push(...batch);
  } catch (error) {
    return { records, stats, error: (error as Error).message };
  }
  return { records, stats };
}

describe("the log file reader", () => {
  const compact = (records: unknown[]) => Buffer.from(JSON.stringify({ Records: records }));
  const other = (n: number) => ({
    eventVersion: "1.09",
    eventSource: "s3.amazonaws.com",
    eventName: "GetObject",
    eventID: `other-${n}`,
    requestParameters: { key: `{"eventVersion": tricky ] } ${n}` },
  });

  it("parses only the records that mention ec2-instance-connect, in CloudTrail's compact layout", async () => {
    const records = [
      other(1),
      fixture("push-brokered.json"),
      other(2),
      fixture("tunnel-brokered.json"),
      other(3),
    ];
    const { records: found, stats } = await collect(compact(records));
    expect(found).toEqual([fixture("push-brokered.json"), fixture("tunnel-brokered.json")]);
    expect(stats).toMatchObject({ records: 5, candidates: 2, invalid: 0, layout: "compact", gzip: false });
  });

  it("reads gzip, split into chunks anywhere, with the same result", async () => {
    const records = Array.from({ length: 300 }, (_, n) =>
      n % 50 === 7 ? { ...fixture("push-brokered.json"), eventID: `e-${n}` } : other(n),
    );
    const gz = gzipSync(compact(records));
    const pieces: Buffer[] = [];
    for (let at = 0; at < gz.length; at += 333) pieces.push(gz.subarray(at, at + 333));
    const { records: found, stats } = await collect(pieces);
    expect(found.map((record: any) => record.eventID)).toEqual([
      "e-7",
      "e-57",
      "e-107",
      "e-157",
      "e-207",
      "e-257",
    ]);
    expect(stats).toMatchObject({ records: 300, candidates: 6, gzip: true, layout: "compact" });
  });

  it("reads pretty-printed files and bare arrays through the generic scanner", async () => {
    const pretty = readFileSync(new URL("log-file-pretty.json", FIXTURES));
    const { records, stats } = await collect(pretty);
    expect(stats).toMatchObject({ records: 6, layout: "generic" });
    // The EC2 DescribeInstanceConnectEndpoints record mentions the marker too: parsed, then not ingested.
    expect(records.map((record: any) => record.eventSource)).toEqual([
      "ec2-instance-connect.amazonaws.com",
      "ec2.amazonaws.com",
      "ec2-instance-connect.amazonaws.com",
      "ec2-instance-connect.amazonaws.com",
      "ec2-instance-connect.amazonaws.com",
    ]);
    const array = await collect(
      Buffer.from(JSON.stringify([other(1), fixture("tunnel-brokered.json")], null, 1)),
    );
    expect(array.records).toHaveLength(1);
    expect(array.stats.records).toBe(2);
  });

  it("reports a truncated gzip file and keeps the records read before the cut", async () => {
    const records = Array.from({ length: 2_000 }, (_, n) =>
      n % 100 === 0 ? { ...fixture("push-brokered.json"), eventID: `e-${n}` } : other(n),
    );
    const gz = gzipSync(compact(records));
    const { records: found, error } = await collect(gz.subarray(0, Math.floor(gz.length * 0.7)));
    expect(error).toMatch(/^truncated gzip/);
    expect(found.length).toBeGreaterThan(5);
    expect(found.length).toBeLessThan(20);
  });

  it("reports invalid JSON in an EC2 Instance Connect record, and a file that ends early", async () => {
    const text = compact([other(1), fixture("push-brokered.json"), other(2)])
      .toString()
      .replace('"instanceOSUser":"ec2-user"', '"instanceOSUser":ec2-user');
    const broken = await collect(Buffer.from(text));
    expect(broken.records).toEqual([]);
    expect(broken.stats.invalid).toBe(1);
    expect(broken.stats.errors[0]).toMatch(/invalid JSON in the record at byte \d+/);

    const cut = compact([other(1), fixture("push-brokered.json")]).subarray(0, -10);
    expect((await collect(cut)).error).toMatch(/ends early.*truncated/);
    expect((await collect(Buffer.from('{"Records": [ {"a": 1}, '))).error).toMatch(/ends early/);
  });

  it("does not parse records that do not mention the marker, so their syntax errors go unnoticed", async () => {
    const text = `{"Records":[{"eventVersion":"1.0", broken},${JSON.stringify(fixture("push-brokered.json"))}]}`;
    const { records, stats } = await collect(Buffer.from(text));
    expect(records).toHaveLength(1);
    expect(stats.invalid).toBe(0);
  });
});

describe("alerts", () => {
  function sink() {
    const sent: Trail.Alert[] = [];
    return { sent, alerts: { send: async (alert: Trail.Alert) => void sent.push(alert) } };
  }

  it("groups pending events by classification, one message per slot, unbrokered after the grace period", async () => {
    const { store, deps } = world();
    const { sent, alerts } = sink();
    let now = new Date("2024-05-01T12:00:00Z");
    const timed = { ...deps, clock: () => now, alerts };
    await Trail.ingest(
      timed,
      readdirSync(FIXTURES)
        .filter((n) => !n.startsWith("log-"))
        .map(fixture),
      { source: "import" },
    );
    const first = await Trail.dispatchAlerts(timed);
    expect(sent.map((alert) => [alert.classification, alert.count]).sort()).toEqual([
      ["constraint-mismatch", 1],
      ["denied-attempt", 1],
      ["outside-window", 1],
      ["unparsed", 2],
    ]);
    expect(first).toMatchObject({ sent: 4, events: 5, deferred: 4 });

    now = new Date(now.getTime() + 121_000);
    await Trail.ingest(timed, [{ ...fixture("push-denied.json"), eventID: "another-denied" }], {
      source: "import",
    });
    const second = await Trail.dispatchAlerts(timed);
    // Same 5-minute slot: the denied attempt waits; the unbrokered events have their own, unused slot.
    expect(second).toMatchObject({ sent: 1, events: 4, deferred: 1 });
    expect(sent.at(-1)).toMatchObject({ classification: "unbrokered", count: 4 });
    expect(sent.at(-1)?.text).toMatch(/^4 EC2 Instance Connect events not brokered/);

    now = new Date(now.getTime() + 300_000);
    expect(await Trail.dispatchAlerts(timed)).toMatchObject({ sent: 1, events: 1, deferred: 0 });
    expect(await Trail.dispatchAlerts(timed)).toEqual({ sent: 0, events: 0, deferred: 0 });
    expect(store.audit.filter((record) => record.type === "trail.alert_sent")).toHaveLength(6);
  });

  it("sends nothing for classifications switched off in settings.alerts.on", async () => {
    const quiet = parseConfig(
      DEMO_CONFIG_TEXT.replace("settings:\n", "settings:\n  alerts: { on: [unbrokered], grace: 0 }\n"),
    );
    expect(quiet.settings.alerts).toEqual({ on: ["unbrokered"], every: 300, grace: 0 });
    const { store } = world();
    const { sent, alerts } = sink();
    const deps = { config: quiet, trail: store, alerts, clock: () => new Date("2024-05-01T12:00:00Z") };
    await Trail.ingest(deps, [fixture("push-denied.json"), fixture("push-unbrokered.json")], {
      source: "import",
    });
    await Trail.dispatchAlerts(deps);
    expect(sent.map((alert) => alert.classification)).toEqual(["unbrokered"]);
    expect((await store.get("5b1c7a7e-0f1a-4a6e-9a43-1d2e3f4a5b04"))?.alert).toBe("none");
  });
});

describe("S3 log file notifications (functions/trail-import.ts)", () => {
  const log = (records: unknown[]) => gzipSync(Buffer.from(JSON.stringify({ Records: records })));

  it("reads the log files of S3 and EventBridge notifications, skipping digests", () => {
    const key =
      "AWSLogs/o-abcdefghij/111122223333/CloudTrail/us-east-1/2024/05/01/x_CloudTrail_us-east-1_20240501T1005Z_AbC.json.gz";
    expect(
      Trail.objectsOf({
        Records: [
          { s3: { bucket: { name: "trail" }, object: { key } } },
          {
            s3: {
              bucket: { name: "trail" },
              object: { key: "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/d.json.gz" },
            },
          },
          { s3: { bucket: { name: "trail" }, object: { key: "AWSLogs/my+notes%3A.txt" } } },
        ],
      }),
    ).toEqual([{ bucket: "trail", key }]);
    expect(
      Trail.objectsOf({
        "detail-type": "Object Created",
        source: "aws.s3",
        detail: { bucket: { name: "trail" }, object: { key } },
      }),
    ).toEqual([{ bucket: "trail", key }]);
    expect(() => Trail.objectsOf({ hello: "world" })).toThrow(/S3 event notification/);
  });

  it("imports each object, reports one that cannot be read and goes on with the others", async () => {
    const { store, deps } = world();
    const objects = {
      good: log([fixture("push-brokered.json")]),
      cut: log([fixture("push-denied.json")]).subarray(0, 30),
    };
    const reports = await Trail.importObjects(
      deps,
      [
        { bucket: "trail", key: "cut.json.gz" },
        { bucket: "trail", key: "good.json.gz" },
      ],
      async (object) =>
        (async function* () {
          yield object.key.startsWith("good") ? objects.good : objects.cut;
        })(),
    );
    expect(reports[0]).toMatchObject({ key: "cut.json.gz", error: expect.stringMatching(/^truncated gzip/) });
    expect(reports[1]).toMatchObject({ key: "good.json.gz", records: 1, result: { recorded: 1 } });
    expect(store.observations.size).toBe(1);
  });
});

describe("the Slack alert sink", () => {
  it("posts one message per alert to the security channel, with caller-controlled text escaped", async () => {
    const posted: { channel: string; message: { text: string; blocks: unknown[] } }[] = [];
    const { slackAlertSink } = await import("../../core/trail/slack-sink.ts");
    const sink = slackAlertSink(
      {
        postMessage: async (channel, message) => {
          posted.push({ channel, message });
          return { channel: "C1", ts: "1.1" };
        },
        update: async () => {},
        openView: async () => {},
        respond: async () => {},
      },
      "#security-alerts",
    );
    const { store } = world({ push: false });
    const deps = { config, trail: store, clock: () => new Date("2024-05-01T12:00:00Z") };
    const unbrokered = fixture("push-unbrokered.json");
    const odd = {
      ...unbrokered,
      eventID: "odd",
      userIdentity: { ...unbrokered.userIdentity, arn: "arn:aws:iam::111122223333:user/<!channel>" },
    };
    await Trail.ingest(deps, [fixture("push-unbrokered.json"), odd], { source: "import" });
    const observations = await store.pendingAlerts(10);
    await sink.send(Trail.alertOf("unbrokered", observations));
    expect(posted).toHaveLength(1);
    expect(posted[0]?.channel).toBe("#security-alerts");
    expect(posted[0]?.message.text).toMatch(/^2 EC2 Instance Connect events not brokered/);
    expect(JSON.stringify(posted[0]?.message.blocks)).toContain("mallory");
    expect(JSON.stringify(posted[0]?.message.blocks)).toContain("user/&lt;!channel&gt;");
    expect(JSON.stringify(posted[0]?.message.blocks)).not.toContain("<!channel>");
  });
});
