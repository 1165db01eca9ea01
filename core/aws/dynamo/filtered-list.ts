import { type DynamoDBDocumentClient, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { InputError } from "../../error.ts";
import type { Page } from "../../util/page.ts";

type Item = Record<string, unknown>;

/**
 * Filtered lists over one key range (the audit log, the trail): the filter goes to DynamoDB as a
 * FilterExpression, and so that a selective filter never reads without bound, one call reads at most
 * `budget` index entries, then ends its page with what matched and a cursor where reading stopped.
 */

/** A FilterExpression being built: attribute paths become `#name` placeholders, values `:name`. */
export class Condition {
  readonly names: Record<string, string> = {};
  readonly values: Item = {};
  readonly parts: string[] = [];

  path(...segments: string[]): string {
    return segments
      .map((segment) => {
        this.names[`#${segment}`] = segment;
        return `#${segment}`;
      })
      .join(".");
  }

  value(name: string, value: unknown): string {
    this.values[`:${name}`] = value;
    return `:${name}`;
  }

  /** `(path IN (:name0, :name1…))` for each path, as alternatives of one another. */
  anyIn(paths: readonly string[], name: string, list: readonly unknown[]): string[] {
    const placeholders = list.map((item, index) => this.value(`${name}${index}`, item)).join(", ");
    return paths.map((path) => `${path} IN (${placeholders})`);
  }

  /** The conjunction of the parts, or undefined when there are none (DynamoDB rejects an empty filter). */
  build(): { expression: string; names: Record<string, string>; values: Item } | undefined {
    return this.parts.length > 0
      ? { expression: this.parts.join(" AND "), names: this.names, values: this.values }
      : undefined;
  }
}

function encodeKey(key: Item): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}

function keyOf(item: Item, attributes: readonly string[]): Item {
  return Object.fromEntries(attributes.map((name) => [name, item[name]]));
}

/** A range a list reads: its key condition, and what a cursor into it must look like. */
export interface KeyRange {
  index: string | undefined;
  expression: string;
  values: Item;
  /** The key attributes of an entry: a cursor has exactly these. */
  attributes: readonly string[];
  /** Whether a key (all of `attributes`, strings) is an entry of this list inside the range. */
  holds: (key: Record<string, string>) => boolean;
}

/**
 * A cursor must be a key of the range being read: anything else would make DynamoDB fail the query (a 500)
 * or read another item kind, so it is refused as bad input.
 */
export function decodeCursor(range: KeyRange, cursor: string | undefined): Item | undefined {
  if (cursor === undefined) return undefined;
  try {
    const key = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown;
    if (typeof key === "object" && key !== null && !Array.isArray(key)) {
      const entries = Object.entries(key);
      if (
        entries.length === range.attributes.length &&
        entries.every(([name, value]) => range.attributes.includes(name) && typeof value === "string") &&
        range.holds(key as Record<string, string>)
      )
        return key as Item;
    }
  } catch {
    // fall through
  }
  throw new InputError("input.invalid_cursor", "The cursor is not one this list returned");
}

export async function listFiltered<T>(
  client: DynamoDBDocumentClient,
  table: string,
  range: KeyRange,
  condition: Condition,
  page: { limit: number; cursor?: string; ascending: boolean; budget: number },
  decode: (item: Item) => T,
): Promise<Page<T>> {
  let startKey = decodeCursor(range, page.cursor);
  const filter = condition.build();
  const items: T[] = [];
  let read = 0;
  for (;;) {
    const {
      Items = [],
      LastEvaluatedKey,
      ScannedCount = 0,
    } = await client.send(
      new QueryCommand({
        TableName: table,
        IndexName: range.index,
        KeyConditionExpression: range.expression,
        ...(filter ? { FilterExpression: filter.expression, ExpressionAttributeNames: filter.names } : {}),
        ExpressionAttributeValues: { ...range.values, ...filter?.values },
        ScanIndexForward: page.ascending,
        ExclusiveStartKey: startKey,
        // Filtered, most entries read are dropped: read in large steps up to the budget. Unfiltered, one
        // more than the page, so whether more follow is known without another call.
        Limit: filter ? Math.min(200, page.budget - read) : page.limit - items.length + 1,
      }),
    );
    read += ScannedCount;
    for (const [position, raw] of Items.entries()) {
      items.push(decode(raw));
      if (items.length === page.limit) {
        const more = position < Items.length - 1 || LastEvaluatedKey !== undefined;
        return more ? { items, nextCursor: encodeKey(keyOf(raw, range.attributes)) } : { items };
      }
    }
    if (!LastEvaluatedKey) return { items };
    startKey = LastEvaluatedKey;
    // The one reason for a short (even empty) page with a cursor: the read budget is spent.
    if (filter && read >= page.budget) return { items, nextCursor: encodeKey(LastEvaluatedKey) };
  }
}
