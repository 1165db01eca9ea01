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
/**
 * Batches handed to the sink and not yet written, across the files of one import: the reader runs ahead of
 * the writer by at most this many, so memory stays bounded while reading, correlating and writing overlap.
 */
export const IN_FLIGHT = 4;

export interface StreamReport {
  stats: ScanStats;
  result: IngestResult;
  /** Why the file could not be read to its end; the records before that point were imported. */
  error?: string;
}

/** The batches of one import in flight to its sink: a bounded queue shared by the files it reads. */
class Pipeline {
  private readonly inFlight = new Set<Promise<void>>();
  /** The first sink failure; the import stops reading and rethrows it once the batches in flight settle. */
  failure: unknown;

  constructor(
    private readonly sink: Sink,
    private readonly limit = IN_FLIGHT,
  ) {}

  /** Hands `records` to the sink, adding what it made of them to `into`; settles when they are written. */
  send(records: unknown[], into: IngestResult): Promise<void> {
    const done = this.sink(records).then(
      (part) => {
        addResults(into, part);
      },
      (error: unknown) => {
        this.failure ??= error;
      },
    );
    const tracked = done.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
    return tracked;
  }

  /** Returns once fewer than `limit` batches are in flight: the reader's back-pressure. */
  async room(): Promise<void> {
    while (this.inFlight.size >= this.limit) await Promise.race(this.inFlight);
  }

  async drain(): Promise<void> {
    await Promise.all(this.inFlight);
  }
}

/** One file read into the pipeline; `written` settles when the last of its batches did. */
interface ReadFile {
  report: StreamReport;
  written: Promise<void>;
}

/** Reads one stream, handing its EC2 Instance Connect records to the pipeline in batches as they come. */
async function readInto(
  source: AsyncIterable<Uint8Array>,
  pipeline: Pipeline,
  options: { batch?: number; onBatch?: (stats: ScanStats) => void },
): Promise<ReadFile> {
  const stats = emptyStats();
  const result = emptyResult();
  const size = options.batch ?? IMPORT_BATCH;
  const batches: Promise<void>[] = [];
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
          batches.push(pipeline.send(pending, result));
          pending = [];
          await pipeline.room();
        }
      }
      options.onBatch?.(stats);
      if (pipeline.failure) break;
    }
  } catch (caught) {
    if (!(caught instanceof LogFileError)) throw caught;
    error = caught.message;
  }
  if (pending.length > 0 && !pipeline.failure) {
    batches.push(pipeline.send(pending, result));
    await pipeline.room();
  }
  // Records handed in are the candidates; everything else in the file was skipped without parsing.
  const unread = stats.records - stats.candidates + filtered;
  result.skipped += unread;
  result.received += unread;
  if (!error && stats.invalid > 0)
    error = `${stats.invalid} record${stats.invalid === 1 ? " is" : "s are"} not valid JSON: ${stats.errors[0] ?? ""}`;
  return {
    report: { stats, result, ...(error ? { error } : {}) },
    written: Promise.all(batches).then(() => undefined),
  };
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

/** A log file to import: its name in reports, its size when known up front, and how to read it. */
export interface LogSource {
  name: string;
  bytes?: number;
  open(): Promise<AsyncIterable<Uint8Array>>;
}

export interface SourceReport extends StreamReport {
  name: string;
  /** The size given up front, else the bytes read. */
  bytes: number;
  seconds: number;
}

export interface FileReport extends StreamReport {
  path: string;
  bytes: number;
  seconds: number;
}

export interface ImportSummary<Report = FileReport> {
  files: Report[];
  result: IngestResult;
  stats: { bytes: number; inputBytes: number; records: number; candidates: number; invalid: number };
  failedFiles: number;
  seconds: number;
}

export interface ImportOptions<Report> {
  onProgress?: (readBytes: number, name: string) => void;
  onFile?: (report: Report) => void;
}

/**
 * Imports log files from anywhere (local files, S3 objects) through one pipeline: files are read one after
 * the other, but the next one is read while the batches of the previous ones are still being written (at
 * most IN_FLIGHT batches in flight). A file that cannot be read (`unreadable` says which errors mean that:
 * missing, truncated gzip, broken JSON) is reported and the others go on; any other error stops the import
 * and is rethrown once the batches in flight settle. `onFile` gets each file's report, in order, once all of
 * its batches are written; `onProgress` gets the input bytes read so far.
 */
export async function importSources(
  sources: readonly LogSource[],
  sink: Sink,
  options: ImportOptions<SourceReport> & { unreadable: (error: unknown) => boolean },
): Promise<ImportSummary<SourceReport>> {
  const started = performance.now();
  const summary: ImportSummary<SourceReport> = {
    files: [],
    result: emptyResult(),
    stats: { bytes: 0, inputBytes: 0, records: 0, candidates: 0, invalid: 0 },
    failedFiles: 0,
    seconds: 0,
  };
  const pipeline = new Pipeline(sink);
  const finish = (report: SourceReport, fileStarted: number) => {
    report.seconds = (performance.now() - fileStarted) / 1000;
    summary.files.push(report);
    addResults(summary.result, report.result);
    summary.stats.bytes += report.stats.bytes;
    summary.stats.inputBytes += report.stats.inputBytes;
    summary.stats.records += report.stats.records;
    summary.stats.candidates += report.stats.candidates;
    summary.stats.invalid += report.stats.invalid;
    if (report.error) summary.failedFiles++;
    options.onFile?.(report);
  };
  // Reports go out in file order, each when its own batches are written.
  let reported: Promise<void> = Promise.resolve();
  let before = 0;
  try {
    for (const source of sources) {
      if (pipeline.failure) break;
      const fileStarted = performance.now();
      let read: ReadFile;
      try {
        read = await readInto(await source.open(), pipeline, {
          onBatch: (stats) => options.onProgress?.(before + stats.inputBytes, source.name),
        });
      } catch (error) {
        if (!(error instanceof LogFileError || options.unreadable(error))) throw error;
        read = {
          report: { stats: emptyStats(), result: emptyResult(), error: (error as Error).message },
          written: Promise.resolve(),
        };
      }
      const bytes = source.bytes ?? read.report.stats.inputBytes;
      before += bytes;
      options.onProgress?.(before, source.name);
      const report: SourceReport = { ...read.report, name: source.name, bytes, seconds: 0 };
      reported = reported.then(async () => {
        await read.written;
        if (!pipeline.failure) finish(report, fileStarted);
      });
    }
  } finally {
    await pipeline.drain();
    await reported;
  }
  if (pipeline.failure) throw pipeline.failure;
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}

/** A local file that is missing or cannot be read: reported, not fatal. */
const unreadableFile = (error: unknown) => !!(error as NodeJS.ErrnoException).code?.startsWith("E");

/** Imports local log files (`access audit import`), each reported by its path. */
export async function importFiles(
  files: readonly { path: string; bytes: number }[],
  sink: Sink,
  options: ImportOptions<FileReport> = {},
): Promise<ImportSummary> {
  const asFile = ({ name, ...report }: SourceReport): FileReport => ({ ...report, path: name });
  const summary = await importSources(
    files.map((file) => ({
      name: file.path,
      bytes: file.bytes,
      open: async () => createReadStream(file.path, { highWaterMark: 1 << 20 }),
    })),
    sink,
    {
      unreadable: unreadableFile,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.onFile ? { onFile: (report) => options.onFile?.(asFile(report)) } : {}),
    },
  );
  return { ...summary, files: summary.files.map(asFile) };
}
