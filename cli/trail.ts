/** `access audit import` and `access report`. Loaded only when one of them runs. */
import { writeFileSync } from "node:fs";
import * as Trail from "../core/trail/index.ts";
import { instant } from "./commands.ts";
import { CliError, type Ctx, EXIT } from "./context.ts";
import { resolveCredentials } from "./session.ts";

/** What one `POST /audit/trail` may carry: under the API's 64 KB body limit and its 200-record cap. */
const MAX_BODY_BYTES = 60 * 1024;
const MAX_RECORDS = 200;

export interface ImportOptions {
  /** undefined: a bar when stderr is a terminal. */
  progress?: boolean;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
const number = (n: number) => n.toLocaleString("en-US");

/** A one-line progress bar on stderr, redrawn at most ten times a second. */
export function progressBar(write: (text: string) => void, total: number) {
  const started = performance.now();
  let last = 0;
  let drawn = false;
  return {
    update(done: number, label: string, force = false) {
      const now = performance.now();
      if (!force && now - last < 100) return;
      last = now;
      const share = total > 0 ? Math.min(1, done / total) : 1;
      const width = 30;
      const filled = Math.round(share * width);
      const seconds = (now - started) / 1000;
      const rate = seconds > 0 ? done / seconds : 0;
      write(
        `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}% ` +
          `${mb(done)}/${mb(total)} MB ${mb(rate)} MB/s  ${label.slice(-40)}\u001b[K`,
      );
      drawn = true;
    },
    done() {
      if (drawn) write("\r\u001b[K");
    },
  };
}

/** Posts records in bodies under the API's limits and adds up what the ingest made of them. */
function apiSink(ctx: Ctx): Trail.Sink {
  const client = ctx.api();
  return async (records) => {
    const total = Trail.emptyResult();
    let batch: unknown[] = [];
    let bytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const result = await client.post<Trail.IngestResult>("/audit/trail", { records: batch });
      Trail.addResults(total, result);
      batch = [];
      bytes = 0;
    };
    for (const record of records) {
      const size = Buffer.byteLength(JSON.stringify(record));
      if (size > MAX_BODY_BYTES) {
        // A record this large cannot be sent; keep its id for the summary rather than fail the file.
        total.received++;
        total.skipped++;
        ctx.io.stderr(
          `skipped a ${number(size)}-byte record (event ${String((record as { eventID?: unknown }).eventID)}): larger than the API accepts\n`,
        );
        continue;
      }
      if (batch.length >= MAX_RECORDS || bytes + size > MAX_BODY_BYTES) await flush();
      batch.push(record);
      bytes += size + 1;
    }
    await flush();
    return total;
  };
}

function classifications(result: Trail.IngestResult): string {
  const parts = Object.entries(result.classifications).map(([name, n]) => `${name} ${number(n)}`);
  return parts.length ? parts.join(", ") : "none";
}

/**
 * `access audit import <file|dir…>`: reads CloudTrail log files (gzip or plain, any size; directories
 * searched for *.json[.gz]) here, keeps only the EC2 Instance Connect records, and sends them to the API's
 * ingest. A file that cannot be read is reported and the others go on; exit 1 if any failed.
 */
export async function auditImport(ctx: Ctx, paths: string[], options: ImportOptions): Promise<number> {
  let files: { path: string; bytes: number }[];
  try {
    files = await Trail.listLogFiles(paths);
  } catch (error) {
    throw new CliError(
      `cannot read ${(error as NodeJS.ErrnoException).path ?? paths.join(" ")}: ${(error as Error).message}`,
    );
  }
  if (files.length === 0)
    throw new CliError(`no CloudTrail log files (*.json, *.json.gz) in ${paths.join(" ")}`);
  const total = files.reduce((sum, file) => sum + file.bytes, 0);
  const showBar = options.progress ?? (process.stderr.isTTY === true && !ctx.json);
  const bar = showBar ? progressBar(ctx.io.stderr, total) : undefined;
  const sink = apiSink(ctx);
  const summary = await Trail.importFiles(files, sink, {
    onProgress: (read, file) => bar?.update(read, file),
    onFile: (report) => {
      bar?.done();
      if (!ctx.json) {
        const what = `${number(report.stats.records)} records, ${number(report.result.recorded)} new EC2 Instance Connect events, ${number(report.result.duplicates)} already known`;
        ctx.io.stderr(
          report.error
            ? `error  ${report.path}: ${report.error}; imported: ${what}\n`
            : `ok     ${report.path}: ${what} (${report.seconds.toFixed(1)} s)\n`,
        );
      }
    },
  });
  bar?.done();
  const rate = summary.seconds > 0 ? summary.stats.bytes / summary.seconds : 0;
  ctx.emit(
    {
      files: summary.files.map((file) => ({
        path: file.path,
        records: file.stats.records,
        error: file.error,
        result: file.result,
      })),
      result: summary.result,
      stats: summary.stats,
      failedFiles: summary.failedFiles,
      seconds: summary.seconds,
    },
    () =>
      [
        `imported ${files.length - summary.failedFiles} of ${files.length} file${files.length === 1 ? "" : "s"} in ${summary.seconds.toFixed(1)} s (${mb(summary.stats.inputBytes)} MB read, ${mb(summary.stats.bytes)} MB of JSON, ${mb(rate)} MB/s)`,
        `  records scanned:                ${number(summary.stats.records)}`,
        `  EC2 Instance Connect events:    ${number(summary.result.received - summary.result.skipped)}`,
        `  newly recorded:                 ${number(summary.result.recorded)} (${classifications(summary.result)})`,
        `  already known (duplicates):     ${number(summary.result.duplicates)}`,
        ...(summary.stats.invalid > 0
          ? [`  invalid records:                ${number(summary.stats.invalid)}`]
          : []),
        ...(summary.failedFiles > 0
          ? [`  files that could not be read:   ${summary.failedFiles} (see above)`]
          : []),
      ].join("\n"),
  );
  return summary.failedFiles > 0 ? EXIT.error : EXIT.ok;
}

export interface ReportOptions {
  from: string;
  to?: string;
  format?: "json" | "csv" | "html";
  section?: "grants" | "events" | "controls";
  output?: string;
}

/**
 * `access report --from --to --format json|csv|html [--section …] [-o file]`: the access report for a
 * period; CSV and HTML are written as the API sends them (a file with -o, else stdout).
 */
export async function report(ctx: Ctx, options: ReportOptions): Promise<number> {
  const from = instant(options.from, "--from", ctx.now);
  const to = options.to ? instant(options.to, "--to", ctx.now) : ctx.now.toISOString();
  const format = options.format ?? "json";
  const query = { from, to, format, ...(options.section ? { section: options.section } : {}) };
  let text: string;
  if (format === "json") {
    const body = await ctx.api().get<unknown>("/reports/access", query);
    text = `${JSON.stringify(body, null, 2)}\n`;
  } else {
    // The JSON client refuses non-JSON answers; CSV and HTML are fetched as text with the same session.
    ctx.api();
    const { apiUrl, token } = resolveCredentials(ctx.io.env);
    const url = new URL(`${apiUrl}/reports/access`);
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
    const response = await ctx.io.fetch(url, {
      headers: { authorization: `Bearer ${token}`, accept: "*/*" },
    });
    // Bytes, not response.text(): that would drop the CSV's byte-order mark.
    text = Buffer.from(await response.arrayBuffer()).toString("utf8");
    if (!response.ok) {
      let message = `HTTP ${response.status}`;
      try {
        message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
      } catch {
        // not JSON
      }
      throw new CliError(message);
    }
  }
  if (options.output) {
    writeFileSync(options.output, text);
    ctx.io.stderr(`wrote ${options.output} (${number(Buffer.byteLength(text))} bytes)\n`);
  } else ctx.io.stdout(text);
  return EXIT.ok;
}
