import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { addResults, emptyResult, type IngestResult } from "./ingest.ts";
import { isInstanceConnect } from "./normalize.ts";
import { emptyStats, LogFileError, type ScanStats, scanLog } from "./reader.ts";

/**
 * Bulk import of CloudTrail log files: one file's stream (a local file, an S3 object) through the
 * filtering reader into a sink (the ingest itself, or the API for the CLI), with a bounded number of
 * batches in flight so that reading, decompression and writing overlap without memory growing.
 */

/** Takes one batch of EC2 Instance Connect records; resolves to what the ingest made of them. */
export type Sink = (records: unknown[]) => Promise<IngestResult>;

export const IMPORT_BATCH = 200;
const IN_FLIGHT = 4;

export interface StreamReport {
  stats: ScanStats;
  result: IngestResult;
  /** Why the file could not be read to its end; the records before that point were imported. */
  error?: string;
}

/** Reads one log file's bytes and hands its EC2 Instance Connect records to `sink` in batches. */
export async function importStream(
  source: AsyncIterable<Uint8Array>,
  sink: Sink,
  options: { batch?: number; onBatch?: (stats: ScanStats) => void } = {},
): Promise<StreamReport> {
  const stats = emptyStats();
  const result = emptyResult();
  const size = options.batch ?? IMPORT_BATCH;
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  const send = async (records: unknown[]) => {
    const done = sink(records).then(
      (part) => {
        addResults(result, part);
      },
      (error: unknown) => {
        failure ??= error;
      },
    );
    const tracked = done.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
  };
  let pending: unknown[] = [];
  let filtered = 0;
  let error: string | undefined;
  try {
    for await (const batch of scanLog(source, stats)) {
      for (const record of batch) {
        if (!isInstanceConnect(record)) {
          filtered++;
          continue;
        }
        pending.push(record);
        if (pending.length >= size) {
          await send(pending);
          pending = [];
        }
      }
      options.onBatch?.(stats);
      if (failure) break;
    }
  } catch (caught) {
    if (!(caught instanceof LogFileError)) throw caught;
    error = caught.message;
  }
  if (pending.length > 0 && !failure) await send(pending);
  await Promise.all(inFlight);
  if (failure) throw failure;
  // Records handed in are the candidates; everything else in the file was skipped without parsing.
  const unread = stats.records - stats.candidates + filtered;
  result.skipped += unread;
  result.received += unread;
  if (!error && stats.invalid > 0)
    error = `${stats.invalid} record${stats.invalid === 1 ? " is" : "s are"} not valid JSON: ${stats.errors[0] ?? ""}`;
  return { stats, result, ...(error ? { error } : {}) };
}

const LOG_FILE = /\.json(\.gz)?$|\.gz$/i;

/** The log files named by `paths`: files as given, directories searched recursively for *.json[.gz]. */
export async function listLogFiles(paths: readonly string[]): Promise<{ path: string; bytes: number }[]> {
  const files: { path: string; bytes: number }[] = [];
  const visit = async (path: string, explicit: boolean) => {
    const info = await stat(path);
    if (info.isDirectory()) {
      const entries = (await readdir(path)).sort();
      for (const entry of entries) await visit(join(path, entry), false);
    } else if (info.isFile() && (explicit || LOG_FILE.test(path))) {
      files.push({ path, bytes: info.size });
    }
  };
  for (const path of paths) await visit(path, true);
  return files;
}

export interface FileReport extends StreamReport {
  path: string;
  bytes: number;
  seconds: number;
}

export interface ImportSummary {
  files: FileReport[];
  result: IngestResult;
  stats: { bytes: number; inputBytes: number; records: number; candidates: number; invalid: number };
  failedFiles: number;
  seconds: number;
}

/**
 * Imports local log files one after the other; a file that cannot be read (missing, truncated gzip,
 * broken JSON) is reported and the others go on. `onProgress` gets the input bytes read so far.
 */
export async function importFiles(
  files: readonly { path: string; bytes: number }[],
  sink: Sink,
  options: {
    onProgress?: (readBytes: number, file: string) => void;
    onFile?: (report: FileReport) => void;
  } = {},
): Promise<ImportSummary> {
  const started = performance.now();
  const summary: ImportSummary = {
    files: [],
    result: emptyResult(),
    stats: { bytes: 0, inputBytes: 0, records: 0, candidates: 0, invalid: 0 },
    failedFiles: 0,
    seconds: 0,
  };
  let before = 0;
  for (const file of files) {
    const fileStarted = performance.now();
    let report: FileReport;
    try {
      const stream = createReadStream(file.path, { highWaterMark: 1 << 20 });
      const streamed = await importStream(stream, sink, {
        onBatch: (stats) => options.onProgress?.(before + stats.inputBytes, file.path),
      });
      report = { ...streamed, path: file.path, bytes: file.bytes, seconds: 0 };
    } catch (error) {
      if (error instanceof LogFileError || (error as NodeJS.ErrnoException).code?.startsWith("E")) {
        report = {
          path: file.path,
          bytes: file.bytes,
          stats: emptyStats(),
          result: emptyResult(),
          error: (error as Error).message,
          seconds: 0,
        };
      } else throw error;
    }
    report.seconds = (performance.now() - fileStarted) / 1000;
    before += file.bytes;
    options.onProgress?.(before, file.path);
    summary.files.push(report);
    addResults(summary.result, report.result);
    summary.stats.bytes += report.stats.bytes;
    summary.stats.inputBytes += report.stats.inputBytes;
    summary.stats.records += report.stats.records;
    summary.stats.candidates += report.stats.candidates;
    summary.stats.invalid += report.stats.invalid;
    if (report.error) summary.failedFiles++;
    options.onFile?.(report);
  }
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}
