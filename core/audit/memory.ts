import { InputError } from "../error.ts";
import { LIST_READ_BUDGET, type Page } from "../util/page.ts";
import { GENESIS, type Head, type Info, type Input, link } from "./index.ts";
import { type AuditFilter, type AuditStore, matches } from "./store.ts";

const clone = <T>(value: T): T => structuredClone(value);
const seqKey = (record: Info) => String(record.seq).padStart(12, "0");

const encodeCursor = (key: string) => Buffer.from(JSON.stringify({ after: key })).toString("base64url");

function decodeCursor(cursor: string, valid: (key: string) => boolean): string {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as { after?: unknown };
    if (typeof parsed.after === "string" && valid(parsed.after)) return parsed.after;
  } catch {
    // fall through
  }
  throw new InputError("input.invalid_cursor", "The cursor is not one this list returned");
}

/**
 * The AuditStore port in memory, with the DynamoDB adapter's semantics: the same key ranges and orders
 * (a request's records or all of them by sequence, a time range by `at` then sequence), the filter of
 * `matches`, and the same read budget per call when a filter drops entries. For unit tests.
 */
export class MemoryAuditStore implements AuditStore {
  readonly records: Info[] = [];

  constructor(private readonly options: { listReadBudget?: number } = {}) {}

  /** Links `inputs` after the head, as a store's transaction does. */
  append(inputs: readonly Input[]): Info[] {
    const last = this.records.at(-1);
    const linked = link(last ? { seq: last.seq, hash: last.hash } : GENESIS, inputs);
    this.records.push(...linked);
    return clone(linked);
  }

  async head(): Promise<Head> {
    const last = this.records.at(-1);
    return last ? { seq: last.seq, hash: last.hash } : GENESIS;
  }

  async *walk(): AsyncIterable<Info> {
    for (const record of this.records) yield clone(record);
  }

  async list(filter: AuditFilter, page: { limit: number; cursor?: string }): Promise<Page<Info>> {
    const byTime = !filter.subject && Boolean(filter.from || filter.to);
    const from = filter.from ?? "0";
    const to = `${filter.to ?? "9"}#~`;
    const keyOf = (record: Info) => (byTime ? `${record.at}#${seqKey(record)}` : seqKey(record));
    // The entries the DynamoDB adapter's key condition reads; `matches` decides which of them pass.
    const entries = this.records
      .filter((record) =>
        filter.subject
          ? record.subject === filter.subject
          : !byTime || matches(record, { from: filter.from, to: filter.to }),
      )
      .map((record) => ({ key: keyOf(record), record }))
      // Code-point order, as DynamoDB sorts string keys (by their UTF-8 bytes; the keys are ASCII).
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    if (filter.order !== "asc") entries.reverse();
    const after =
      page.cursor === undefined
        ? undefined
        : decodeCursor(page.cursor, (key) =>
            byTime ? /^.+#\d{12}$/.test(key) && key >= from && key <= to : /^\d{12}$/.test(key),
          );
    const start =
      after === undefined
        ? 0
        : entries.findIndex(({ key }) => (filter.order === "asc" ? key > after : key < after));
    // As in DynamoDB, only a filter that drops entries spends the read budget.
    const filtered = Boolean(
      filter.user || filter.instance || (filter.subject && (filter.from || filter.to)),
    );
    const budget = this.options.listReadBudget ?? LIST_READ_BUDGET;
    const items: Info[] = [];
    let read = 0;
    for (let index = start < 0 ? entries.length : start; index < entries.length; index++) {
      const entry = entries[index];
      if (!entry) break;
      read++;
      const more = index < entries.length - 1;
      if (matches(entry.record, filter)) {
        items.push(clone(entry.record));
        if (items.length === page.limit)
          return more ? { items, nextCursor: encodeCursor(entry.key) } : { items };
      }
      if (filtered && read >= budget && more) return { items, nextCursor: encodeCursor(entry.key) };
    }
    return { items };
  }
}
