/**
 * CloudTrail import throughput (npm run bench -- trail): a corpus of 1,000,000 records in gzip log files
 * (1 % EC2 Instance Connect, the rest typical management events of other services, ~1.4 KB each), then in
 * one run: bare `gunzip + JSON.parse` of the same files (the baseline) and the full import (read, filter,
 * parse, normalize, correlate against 10,000 active grants, write with audit records), each in a child
 * process of its own so that its peak RSS is its own. The import writes through the TrailStore port twice:
 * to the in-memory adapter (the store-independent figure) and to DynamoDB Local.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { documentClient } from "../../core/aws/clients.ts";
import { DynamoStore } from "../../core/aws/dynamo/store.ts";
import { ensureTable } from "../../core/aws/dynamo/table.ts";
import { LOCAL_AWS, startDynamoLocal } from "../../local/dynamo.ts";
import { writeCorpus } from "../helpers/trail-corpus.ts";
import { eventFor, START, seed, world } from "../helpers/trail-world.ts";

const ROOT = resolve(import.meta.dirname, "../..");
export const RECORDS = 1_000_000;
export const GRANTS = 10_000;

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
  /** CPU time of the importing process, and of DynamoDB Local's JVM during the import (Linux). */
  cpuSeconds?: number;
  storeCpuSeconds?: number;
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

/**
 * CPU seconds a process has used (user + system, /proc on Linux): DynamoDB Local's JVM does the store's
 * share of the import, on the same cores as the importer.
 */
function jvmCpuSeconds(pid: number | undefined): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
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
    const bench = world(GRANTS);
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
    const seedFile = join(root, "seed.json");
    writeFileSync(seedFile, JSON.stringify({ requests: bench.requests, pushes: bench.pushes }));
    const rows: TrailBenchRow[] = [];
    const row = (run: string, figures: Record<string, any>): TrailBenchRow => ({
      run,
      records: figures.records,
      seconds: figures.seconds,
      recordsPerSecond: figures.records / figures.seconds,
      peakRssMB: figures.peakRssMB,
      cpuSeconds: figures.cpuSeconds,
      storeCpuSeconds: figures.storeCpuSeconds,
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
      row("import → TrailStore port in memory", await child(["--store", "memory", "--seed", seedFile, dir])),
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
        await seed(store, bench);
        note("import → DynamoDB Local…");
        const storeCpu = jvmCpuSeconds(dynamo.process.pid);
        const figures = await child([
          "--store",
          "dynamo",
          "--endpoint",
          dynamo.endpoint,
          "--table",
          table,
          dir,
        ]);
        const storeCpuAfter = jvmCpuSeconds(dynamo.process.pid);
        rows.push(
          row("import → DynamoDB Local", {
            ...figures,
            ...(storeCpu !== undefined && storeCpuAfter !== undefined
              ? { storeCpuSeconds: storeCpuAfter - storeCpu }
              : {}),
          }),
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
