/**
 * CloudTrail import throughput (npm run bench -- trail): a corpus of 1,000,000 records in gzip log files
 * (1 % EC2 Instance Connect, the rest typical management events of other services, ~1.4 KB each), then in
 * one run: bare `gunzip + JSON.parse` of the same files (the baseline) and the full import (read, filter,
 * parse, normalize, correlate against 10,000 active grants, write with audit records), each in a child
 * process of its own so that its peak RSS is its own. The import writes through the TrailStore port twice:
 * to the in-memory adapter (the store-independent figure) and to DynamoDB Local.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { Push } from "../../core/access/schema.ts";
import { documentClient } from "../../core/aws/clients.ts";
import { DynamoStore } from "../../core/aws/dynamo/store.ts";
import { ensureTable } from "../../core/aws/dynamo/table.ts";
import type { Info } from "../../core/request/schema.ts";
import { Trail } from "../../core/trail/index.ts";
import { LOCAL_AWS, startDynamoLocal } from "../../local/dynamo.ts";
import { eicRecord, hex, uuid, writeCorpus } from "../helpers/trail-corpus.ts";

const ROOT = resolve(import.meta.dirname, "../..");
export const RECORDS = 1_000_000;
export const GRANTS = 10_000;
const ACCOUNT = "111122223333";
const START = Date.parse("2024-05-01T10:00:00Z");
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

interface World {
  requests: Info[];
  pushes: Push[];
  keys: string[];
}

/** 10,000 active grants (half ssh with a broker push each, half tunnels through EICE), over one day. */
function world(): World {
  const requests: Info[] = [];
  const pushes: Push[] = [];
  const keys: string[] = [];
  for (let n = 0; n < GRANTS; n++) {
    const ulid =
      `01hzx${n.toString(32).padStart(6, "0")}${hex(Math.random, 15).replace(/[ilou]/g, "0")}`.slice(0, 26);
    const ssh = n % 2 === 0;
    const ip = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
    const instanceId = `i-${n.toString(16).padStart(17, "0")}`;
    const startsAt = new Date(START + n * 8_000).toISOString();
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
function eventFor(world: World, n: number, random: () => number): string {
  const index = n % GRANTS;
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

function child(args: string[]): Promise<Record<string, any>> {
  return new Promise((done, fail) =>
    execFile(
      process.execPath,
      ["--import", "tsx", "test/helpers/import-child.ts", ...args],
      { cwd: ROOT, maxBuffer: 1 << 24, env: { ...process.env, LOG_LEVEL: "error" } },
      (error, stdout, stderr) =>
        error
          ? fail(new Error(`${error.message}\n${stderr}`))
          : done(JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}")),
    ),
  );
}

export interface TrailBenchRow {
  run: string;
  records: number;
  seconds: number;
  recordsPerSecond: number;
  peakRssMB: number;
  eicEvents?: number;
  recorded?: number;
  classifications?: Record<string, number>;
}

export interface TrailBenchResult {
  files: number;
  records: number;
  eicRecords: number;
  jsonMB: number;
  gzipMB: number;
  bytesPerRecord: number;
  corpusSeconds: number;
  rows: TrailBenchRow[];
}

/** Progress on stderr while the corpus is written (it takes a while). */
function note(text: string) {
  process.stderr.write(`\r${text}\u001b[K`);
}

export async function benchTrail(
  options: { records?: number; dynamo?: boolean } = {},
): Promise<TrailBenchResult> {
  const records = options.records ?? RECORDS;
  const root = mkdtempSync(join(tmpdir(), "trail-bench-"));
  const dir = join(root, "logs");
  mkdirSync(dir);
  try {
    const bench = world();
    const corpusStarted = performance.now();
    const corpus = await writeCorpus({
      dir,
      records,
      recordsPerFile: 10_000,
      eicRatio: 0.01,
      seed: 7,
      start: new Date(START),
      eic: (n, random) => eventFor(bench, n, random),
      onFile: (written) =>
        note(
          `writing the corpus: ${written.toLocaleString("en-US")} / ${records.toLocaleString("en-US")} records`,
        ),
    });
    note("");
    const corpusSeconds = (performance.now() - corpusStarted) / 1000;
    const gzipBytes = corpus.files.reduce((sum, file) => sum + statSync(file).size, 0);
    const seed = join(root, "seed.json");
    writeFileSync(seed, JSON.stringify({ requests: bench.requests, pushes: bench.pushes }));
    const rows: TrailBenchRow[] = [];
    const row = (run: string, figures: Record<string, any>): TrailBenchRow => ({
      run,
      records: figures.records,
      seconds: figures.seconds,
      recordsPerSecond: figures.records / figures.seconds,
      peakRssMB: figures.peakRssMB,
      ...(figures.result
        ? {
            eicEvents: figures.result.received - figures.result.skipped,
            recorded: figures.result.recorded,
            classifications: figures.result.classifications,
          }
        : {}),
    });
    note("baseline: gunzip + JSON.parse…");
    rows.push(row("gunzip + JSON.parse (baseline)", await child(["--bare", ...corpus.files])));
    note("import → memory store…");
    rows.push(
      row("import → TrailStore port in memory", await child(["--store", "memory", "--seed", seed, dir])),
    );
    if (options.dynamo !== false) {
      note("starting DynamoDB Local and seeding 10,000 grants…");
      const dynamo = await startDynamoLocal();
      try {
        const table = "trail-bench";
        const raw = new DynamoDBClient({ ...LOCAL_AWS, endpoint: dynamo.endpoint });
        await ensureTable(raw, table);
        raw.destroy();
        const store = new DynamoStore(documentClient({ ...LOCAL_AWS, endpoint: dynamo.endpoint }), table);
        const queue = [...bench.requests];
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            for (let request = queue.pop(); request; request = queue.pop()) await store.create(request, []);
          }),
        );
        const pushes = [...bench.pushes];
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            for (let push = pushes.pop(); push; push = pushes.pop()) await store.beginPush(push);
          }),
        );
        note("import → DynamoDB Local…");
        rows.push(
          row(
            "import → DynamoDB Local",
            await child(["--store", "dynamo", "--endpoint", dynamo.endpoint, "--table", table, dir]),
          ),
        );
      } finally {
        await dynamo.stop();
      }
    }
    note("");
    return {
      files: corpus.files.length,
      records: corpus.records,
      eicRecords: corpus.eicRecords,
      jsonMB: corpus.bytes / 1e6,
      gzipMB: gzipBytes / 1e6,
      bytesPerRecord: corpus.bytes / corpus.records,
      corpusSeconds,
      rows,
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
