import { pipeline, Readable } from "node:stream";
import { createGunzip } from "node:zlib";

/**
 * Streaming reader of CloudTrail log files (`{"Records":[…]}`, gzip or plain, any size) that JSON-parses
 * only the records that mention `ec2-instance-connect`: ingest is bound by decompression and parsing
 * (reference/dependencies.md, "CloudTrail parsing bound"), and ~99 % of an account's records are other
 * services, so filtering before parsing is what makes bulk import faster than parsing everything.
 *
 * Fast path (CloudTrail's own compact layout): every record starts with `{"eventVersion"`. In valid JSON
 * that byte sequence can only be structural (inside a string the quote would be escaped), so record
 * boundaries are found with the native `Buffer.indexOf`, and only the record around each marker hit is cut
 * out and parsed. Any other layout (pretty-printed exports, records without `eventVersion` first, a bare
 * array) goes through a byte-level structural scanner: slower, same result. Memory stays bounded by one
 * decompressed chunk plus the record in progress, whatever the file size.
 */

export const MARKER = Buffer.from("ec2-instance-connect");
const BOUNDARY = Buffer.from('{"eventVersion"');
/** CloudTrail records are at most 256 KB; anything much larger is not a record. */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;
/** How much of a file is read before deciding it does not have CloudTrail's compact layout. */
const HEADER_PROBE_BYTES = 64 * 1024;
const HEADER = /^\s*\{\s*"Records"\s*:\s*\[\s*$/;
const TRAILER = /\]\s*\}\s*$/;
const MAX_ERRORS_KEPT = 5;

export interface ScanStats {
  /** Bytes read from the source (compressed, for gzip files). */
  inputBytes: number;
  /** Bytes of JSON text scanned. */
  bytes: number;
  /** Records seen (counted without parsing them). */
  records: number;
  /** Records that mention the marker and were parsed. */
  candidates: number;
  /** Candidate records that are not valid JSON objects (reported, skipped). */
  invalid: number;
  errors: string[];
  gzip: boolean;
  layout: "compact" | "generic" | "empty";
}

export function emptyStats(): ScanStats {
  return {
    inputBytes: 0,
    bytes: 0,
    records: 0,
    candidates: 0,
    invalid: 0,
    errors: [],
    gzip: false,
    layout: "empty",
  };
}

/** The file cannot be read to its end: truncated or corrupt gzip, or JSON whose structure is broken. */
export class LogFileError extends Error {
  constructor(
    readonly kind: "gzip" | "json" | "too_large",
    message: string,
  ) {
    super(message);
    this.name = "LogFileError";
  }
}

function note(stats: ScanStats, message: string) {
  if (stats.errors.length < MAX_ERRORS_KEPT) stats.errors.push(message);
}

/** Parses one cut-out record; a run of records (a layout the fast path misjudged) is parsed as an array. */
function parseSegment(text: string, offset: number, stats: ScanStats): unknown[] {
  let end = text.length;
  while (end > 0 && /[\s,]/.test(text[end - 1] as string)) end--;
  const body = end === text.length ? text : text.slice(0, end);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    try {
      parsed = JSON.parse(`[${body}]`);
    } catch (error) {
      stats.invalid++;
      note(stats, `invalid JSON in the record at byte ${offset}: ${(error as Error).message}`);
      return [];
    }
  }
  const records = Array.isArray(parsed) ? parsed : [parsed];
  const objects = records.filter((record) => typeof record === "object" && record !== null);
  if (objects.length !== records.length) {
    stats.invalid += records.length - objects.length;
    note(stats, `a record at byte ${offset} is not a JSON object`);
  }
  stats.candidates += objects.length;
  return objects;
}

/** Gunzips when the first bytes are gzip's magic number; otherwise passes the bytes through. */
async function* decompress(source: AsyncIterable<Uint8Array>, stats: ScanStats): AsyncGenerator<Buffer> {
  const iterator = source[Symbol.asyncIterator]();
  let first = await iterator.next();
  while (!first.done && first.value.length === 0) first = await iterator.next();
  if (first.done) return;
  const head = Buffer.from(first.value.buffer, first.value.byteOffset, first.value.byteLength);
  async function* all(): AsyncGenerator<Buffer> {
    stats.inputBytes += head.length;
    yield head;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      stats.inputBytes += next.value.length;
      yield Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    }
  }
  if (head[0] !== 0x1f || head[1] !== 0x8b) {
    yield* all();
    return;
  }
  stats.gzip = true;
  // Large output chunks: per-chunk overhead is what makes streaming gunzip slower than gunzipSync.
  const gunzip = createGunzip({ chunkSize: 1 << 20 });
  pipeline(Readable.from(all()), gunzip, () => undefined);
  try {
    for await (const chunk of gunzip) yield chunk as Buffer;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!code?.startsWith("Z_")) throw error;
    throw new LogFileError(
      "gzip",
      code === "Z_BUF_ERROR"
        ? `truncated gzip: the compressed data ends early (after ${stats.bytes} bytes of JSON)`
        : `corrupt gzip (${(error as Error).message}) after ${stats.bytes} bytes of JSON`,
    );
  }
}

/**
 * Byte-level structural scanner for any JSON layout: records are the objects directly inside the top-level
 * array (`[…]`) or inside an array value of the top-level object (`{"Records":[…]}`).
 */
class GenericScanner {
  private depth = 0;
  private inString = false;
  private escape = false;
  private recordDepth = 0;
  private parts: Buffer[] = [];
  private partBytes = 0;
  private recordOffset = 0;
  private offset = 0;

  constructor(private readonly stats: ScanStats) {}

  push(buffer: Buffer, out: unknown[]): void {
    const stats = this.stats;
    let start = this.parts.length > 0 ? 0 : -1;
    for (let i = 0; i < buffer.length; i++) {
      const c = buffer[i] as number;
      if (this.inString) {
        if (this.escape) this.escape = false;
        else if (c === 0x5c) this.escape = true;
        else if (c === 0x22) this.inString = false;
        continue;
      }
      if (c === 0x22) this.inString = true;
      else if (c === 0x7b || c === 0x5b) {
        if (this.recordDepth === 0) this.recordDepth = c === 0x7b ? 3 : 2;
        this.depth++;
        if (this.depth === this.recordDepth && c === 0x7b) {
          start = i;
          this.recordOffset = this.offset + i;
        }
      } else if (c === 0x7d || c === 0x5d) {
        if (this.depth === 0) throw new LogFileError("json", `unbalanced JSON at byte ${this.offset + i}`);
        if (this.depth === this.recordDepth && c === 0x7d && start >= 0) {
          const piece = buffer.subarray(start, i + 1);
          const record = this.parts.length > 0 ? Buffer.concat([...this.parts, piece]) : piece;
          this.parts = [];
          this.partBytes = 0;
          start = -1;
          stats.records++;
          if (record.indexOf(MARKER) >= 0)
            out.push(...parseSegment(record.toString("utf8"), this.recordOffset, stats));
        }
        this.depth--;
      }
    }
    if (start >= 0 && this.depth >= this.recordDepth) {
      this.parts.push(Buffer.from(buffer.subarray(start)));
      this.partBytes += buffer.length - start;
      if (this.partBytes > MAX_RECORD_BYTES)
        throw new LogFileError("too_large", `a record at byte ${this.recordOffset} is larger than 16 MB`);
    }
    this.offset += buffer.length;
  }

  end(): void {
    if (this.depth !== 0 || this.inString)
      throw new LogFileError("json", `the JSON ends early at byte ${this.offset}: the file is truncated`);
  }
}

/**
 * Reads one log file's bytes and yields batches of parsed records that mention `ec2-instance-connect`,
 * counting every record in `stats`. Throws LogFileError when the file cannot be read to its end; the
 * batches yielded before that are good records.
 */
export async function* scanLog(
  source: AsyncIterable<Uint8Array>,
  stats: ScanStats = emptyStats(),
): AsyncGenerator<unknown[]> {
  let carry: Buffer | undefined;
  let carryOffset = 0;
  let mode: "probe" | "compact" | "generic" = "probe";
  let generic: GenericScanner | undefined;

  for await (const chunk of decompress(source, stats)) {
    stats.bytes += chunk.length;
    const buffer = carry && carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
    const base = carry ? carryOffset : stats.bytes - chunk.length;
    carry = undefined;
    if (mode === "probe") {
      const first = buffer.indexOf(BOUNDARY);
      if (first < 0 && buffer.length < HEADER_PROBE_BYTES) {
        carry = buffer;
        carryOffset = base;
        continue;
      }
      if (first >= 0 && HEADER.test(buffer.toString("utf8", 0, first))) {
        mode = "compact";
        stats.layout = "compact";
        carry = buffer.subarray(first);
        carryOffset = base + first;
        // Fall through to process what follows the header in the same round.
      } else {
        mode = "generic";
        stats.layout = "generic";
        generic = new GenericScanner(stats);
        const out: unknown[] = [];
        generic.push(buffer, out);
        if (out.length > 0) yield out;
        continue;
      }
    }
    if (mode === "generic") {
      const out: unknown[] = [];
      (generic as GenericScanner).push(buffer, out);
      if (out.length > 0) yield out;
      continue;
    }
    // Compact: `work` starts at a record boundary; everything before its last boundary is whole records.
    const work = carry ?? buffer;
    const workOffset = carry ? carryOffset : base;
    const last = work.lastIndexOf(BOUNDARY);
    if (last <= 0) {
      carry = work;
      carryOffset = workOffset;
      if (carry.length > MAX_RECORD_BYTES)
        throw new LogFileError("too_large", `a record at byte ${workOffset} is larger than 16 MB`);
      continue;
    }
    let count = 0;
    for (let at = 0; at < last; at = work.indexOf(BOUNDARY, at + 1)) count++;
    stats.records += count;
    const out: unknown[] = [];
    let position = 0;
    for (;;) {
      const hit = work.indexOf(MARKER, position);
      if (hit < 0 || hit >= last) break;
      const start = work.lastIndexOf(BOUNDARY, hit);
      const end = work.indexOf(BOUNDARY, hit);
      out.push(...parseSegment(work.toString("utf8", start, end), workOffset + start, stats));
      position = end;
    }
    carry = work.subarray(last);
    carryOffset = workOffset + last;
    if (out.length > 0) yield out;
  }

  if (mode === "generic") {
    (generic as GenericScanner).end();
    return;
  }
  if (mode === "probe") {
    // Small file without a compact record boundary: scan it generically.
    if (!carry || carry.length === 0) return;
    stats.layout = "generic";
    const scanner = new GenericScanner(stats);
    const out: unknown[] = [];
    scanner.push(carry, out);
    scanner.end();
    if (out.length > 0) yield out;
    return;
  }
  // The last record, followed by the `]}` that closes the file.
  const tail = (carry ?? Buffer.alloc(0)).toString("utf8");
  const trailer = TRAILER.exec(tail.slice(-256));
  if (!trailer)
    throw new LogFileError(
      "json",
      `the JSON ends early at byte ${stats.bytes}: the file is truncated (no closing "]}")`,
    );
  const record = tail.slice(0, tail.length - trailer[0].length);
  stats.records++;
  if (record.includes("ec2-instance-connect")) {
    const out = parseSegment(record, carryOffset, stats);
    if (out.length > 0) yield out;
  }
}
