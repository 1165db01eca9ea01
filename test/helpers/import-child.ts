/**
 * Imports CloudTrail log files in a process of its own, so that its peak RSS is the import's alone
 * (the 100 MB import test and `npm run bench -- trail`). Prints one JSON line with the figures.
 *
 *   node --import tsx test/helpers/import-child.ts --store dynamo --endpoint <url> --table <name> <file>…
 *   node --import tsx test/helpers/import-child.ts --store memory --seed <grants.json> <file>…
 *   node --import tsx test/helpers/import-child.ts --bare <file>…      (gunzip + JSON.parse only)
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { gunzipSync } from "node:zlib";
import type { Push } from "../../core/access/schema.ts";
import { documentClient } from "../../core/aws/clients.ts";
import { DynamoStore } from "../../core/aws/dynamo/store.ts";
import { DynamoTrailStore } from "../../core/aws/dynamo/trail-store.ts";
import { parseConfig } from "../../core/policy/yaml.ts";
import type { Info } from "../../core/request/schema.ts";
import * as Trail from "../../core/trail/index.ts";
import { MemoryTrailStore } from "../../core/trail/memory.ts";
import { LOCAL_AWS } from "../../local/dynamo.ts";
import { DEMO_CONFIG_TEXT } from "./config.ts";

const { values, positionals } = parseArgs({
  options: {
    store: { type: "string", default: "memory" },
    endpoint: { type: "string" },
    table: { type: "string" },
    seed: { type: "string" },
    bare: { type: "boolean", default: false },
  },
  allowPositionals: true,
});

const rssMB = () => process.memoryUsage().rss / 1e6;
const peakMB = () => (process.resourceUsage().maxRSS * 1024) / 1e6;
const cpuSeconds = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
};

if (values.bare) {
  const baseline = rssMB();
  const cpu = process.cpuUsage();
  const started = performance.now();
  let records = 0;
  let bytes = 0;
  for (const file of positionals) {
    const text = gunzipSync(readFileSync(file)).toString("utf8");
    bytes += text.length;
    records += (JSON.parse(text) as { Records: unknown[] }).Records.length;
  }
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(
    `${JSON.stringify({ records, bytes, seconds, cpuSeconds: cpuSeconds(cpu), baselineRssMB: baseline, peakRssMB: peakMB() })}\n`,
  );
  process.exit(0);
}

const config = parseConfig(DEMO_CONFIG_TEXT);
let trail: Trail.TrailStore;
let store: string;
if (values.store === "dynamo") {
  if (!values.endpoint || !values.table)
    throw new Error("--endpoint and --table are required with --store dynamo");
  const document = documentClient({ ...LOCAL_AWS, endpoint: values.endpoint });
  trail = new DynamoTrailStore(new DynamoStore(document, values.table), document, values.table);
  store = "DynamoDB Local";
} else {
  const memory = new MemoryTrailStore();
  if (values.seed) {
    const seed = JSON.parse(readFileSync(values.seed, "utf8")) as { requests: Info[]; pushes: Push[] };
    for (const request of seed.requests) memory.putRequest(request);
    for (const push of seed.pushes) memory.putPush(push);
  }
  trail = memory;
  store = "memory (TrailStore port)";
}

const deps: Trail.Deps = { config, trail };
const cache = new Trail.LookupCache();
const files = await Trail.listLogFiles(positionals);
const baseline = rssMB();
const cpu = process.cpuUsage();
const summary = await Trail.importFiles(files, (records) =>
  Trail.ingest(deps, records, { source: "import", cache }),
);
process.stdout.write(
  `${JSON.stringify({
    store,
    records: summary.stats.records,
    bytes: summary.stats.bytes,
    inputBytes: summary.stats.inputBytes,
    candidates: summary.stats.candidates,
    result: summary.result,
    failedFiles: summary.failedFiles,
    errors: summary.files.flatMap((file) => (file.error ? [`${file.path}: ${file.error}`] : [])),
    seconds: summary.seconds,
    cpuSeconds: cpuSeconds(cpu),
    baselineRssMB: baseline,
    peakRssMB: peakMB(),
  })}\n`,
);
process.exit(0);
