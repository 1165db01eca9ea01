/**
 * A bulk-import world for the trail benchmark and the batched-ingest tests: active grants (half ssh with a
 * broker push each, half tunnels through EICE) and the EC2 Instance Connect records their use would leave
 * (80 % use of a grant, 10 % unbrokered, 10 % denied), plus seeding them into a DynamoDB store.
 */
import { randomBytes } from "node:crypto";
import type { Push } from "../../core/access/schema.ts";
import type { DynamoStore } from "../../core/aws/dynamo/store.ts";
import type { Info } from "../../core/request/schema.ts";
import * as Trail from "../../core/trail/index.ts";
import { eicRecord, hex, uuid } from "./trail-corpus.ts";

export const ACCOUNT = "111122223333";
export const START = Date.parse("2024-05-01T10:00:00Z");
const BROKER = {
  type: "AssumedRole",
  principalId: "AROABROKERROLE000001:access-broker",
  arn: `arn:aws:sts::${ACCOUNT}:assumed-role/access-broker/access-broker`,
  accountId: ACCOUNT,
  accessKeyId: "ASIABROKERSESSION001",
  sessionContext: {
    sessionIssuer: {
      type: "Role",
      arn: `arn:aws:iam::${ACCOUNT}:role/access-broker`,
      accountId: ACCOUNT,
      userName: "access-broker",
    },
  },
};
const MALLORY = {
  type: "IAMUser",
  arn: `arn:aws:iam::${ACCOUNT}:user/mallory`,
  accountId: ACCOUNT,
  userName: "mallory",
};

/** An ed25519 public key line with a random key (valid wire format, so fingerprints are real). */
function randomKey(): string {
  const type = Buffer.from("ssh-ed25519");
  const blob = Buffer.alloc(4 + type.length + 4 + 32);
  blob.writeUInt32BE(type.length, 0);
  type.copy(blob, 4);
  blob.writeUInt32BE(32, 4 + type.length);
  randomBytes(32).copy(blob, 8 + type.length);
  return `ssh-ed25519 ${blob.toString("base64")} user@laptop`;
}

export interface World {
  requests: Info[];
  pushes: Push[];
  keys: string[];
}

/** `grants` active grants (half ssh with a broker push each, half tunnels through EICE), 8 s apart. */
export function world(grants: number, start = START): World {
  const requests: Info[] = [];
  const pushes: Push[] = [];
  const keys: string[] = [];
  for (let n = 0; n < grants; n++) {
    const ulid =
      `01hzx${n.toString(32).padStart(6, "0")}${hex(Math.random, 15).replace(/[ilou]/g, "0")}`.slice(0, 26);
    const ssh = n % 2 === 0;
    const ip = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
    const instanceId = `i-${n.toString(16).padStart(17, "0")}`;
    const startsAt = new Date(start + n * 8_000).toISOString();
    const request: Info = {
      id: `req_${ulid}`,
      grantId: `gr_${ulid}`,
      status: "active",
      version: 3,
      requester: `user${n % 500}@example.com`,
      instanceId,
      account: ACCOUNT,
      region: "us-east-1",
      target: "demo",
      method: ssh ? "ssh" : "tunnel",
      ...(ssh ? { osUser: "ec2-user" } : { port: 22 }),
      durationSeconds: 3_600,
      reason: "bench",
      ruleId: "dev-demo",
      network: {
        vpcId: "vpc-0demo0000000001",
        subnetId: "subnet-0demo000000001a",
        privateIp: ip,
        route: { type: "eice", endpointId: "eice-0demo00000000001", dnsName: "eice.example", ip },
        resolvedAt: startsAt,
      },
      breakGlass: false,
      approvalsRequired: 1,
      approvalsFrom: ["group:sre-leads"],
      approvals: [{ by: "bob@example.com", at: startsAt }],
      createdAt: startsAt,
      pendingUntil: startsAt,
      startsAt,
      endsAt: new Date(Date.parse(startsAt) + 3_600_000).toISOString(),
      extendedSeconds: 0,
    };
    requests.push(request);
    const key = randomKey();
    keys.push(key);
    if (ssh) {
      const pushedAt = new Date(Date.parse(startsAt) + 60_000).toISOString();
      pushes.push({
        id: `push_${ulid}`,
        grantId: request.grantId,
        requestId: request.id,
        status: "pushed",
        requestedBy: request.requester,
        instanceId,
        osUser: "ec2-user",
        account: ACCOUNT,
        region: "us-east-1",
        keyType: "ssh-ed25519",
        fingerprint: Trail.keyFingerprint(key).fingerprint ?? "",
        createdAt: pushedAt,
        pushedAt,
      });
    }
  }
  return { requests, pushes, keys };
}

/** The n-th EC2 Instance Connect event: 80 % use of a grant (push or tunnel), 10 % unbrokered, 10 % denied. */
export function eventFor(world: World, n: number, random: () => number): string {
  const index = n % world.requests.length;
  const request = world.requests[index] as Info;
  const time = new Date(Date.parse(request.startsAt ?? "") + 60_000).toISOString().replace(/\.\d{3}Z$/, "Z");
  const base = { eventId: uuid(random), time, account: ACCOUNT, region: "us-east-1" };
  const kind = n % 10;
  if (kind === 8)
    return eicRecord({
      ...base,
      identity: MALLORY,
      kind: "push",
      instanceId: request.instanceId,
      osUser: "root",
      publicKey: randomKey(),
    });
  if (kind === 9)
    return eicRecord({
      ...base,
      identity: MALLORY,
      kind: "push",
      instanceId: request.instanceId,
      osUser: "root",
      publicKey: randomKey(),
      errorCode: "AccessDenied",
    });
  if (request.method === "ssh")
    return eicRecord({
      ...base,
      identity: BROKER,
      kind: "push",
      instanceId: request.instanceId,
      osUser: "ec2-user",
      publicKey: world.keys[index] as string,
    });
  const session = `grant-${request.grantId}`;
  return eicRecord({
    ...base,
    identity: {
      type: "AssumedRole",
      arn: `arn:aws:sts::${ACCOUNT}:assumed-role/access-broker-tunnel-signer/${session}`,
      principalId: `AROASIGNER:${session}`,
      accountId: ACCOUNT,
      sessionContext: {
        sessionIssuer: { type: "Role", arn: `arn:aws:iam::${ACCOUNT}:role/access-broker-tunnel-signer` },
        sourceIdentity: request.requester,
      },
    },
    kind: "tunnel",
    endpointId: "eice-0demo00000000001",
    privateIp: request.network?.route.type === "eice" ? request.network.route.ip : "",
    remotePort: 22,
    maxTunnelDuration: 1_800,
  });
}

/** Writes the world's grants and pushes to the table, as the broker would have. */
export async function seed(store: DynamoStore, world: World, concurrency = 16): Promise<void> {
  const requests = [...world.requests];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let request = requests.pop(); request; request = requests.pop()) await store.create(request, []);
    }),
  );
  const pushes = [...world.pushes];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let push = pushes.pop(); push; push = pushes.pop()) await store.beginPush(push);
    }),
  );
}
