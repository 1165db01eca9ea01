import type { Page } from "../util/page.ts";
import type { Head, Info } from "./index.ts";

export interface AuditFilter {
  /** The request id the records are about. */
  subject?: string;
  /** Record time range (`at`), inclusive (ISO). */
  from?: string;
  to?: string;
  order?: "asc" | "desc";
  /**
   * A person; a record matches when any part does. `email`: the record's actor, or `data.requester` (whose
   * request it is about) or `data.sourceIdentity` (the signer session or CloudTrail caller acting as them).
   * `principals`: `data.principal` or `data.principalArn` (a trail event's caller, an IAM grant's policy holder).
   */
  user?: { email: string; principals: readonly string[] };
  /** `data.instanceId`: the request's instance, or the one a trail event touched (a tunnel: its grant's). */
  instance?: string;
}

/** Whether a record passes a filter: the one definition both adapters implement. */
export function matches(record: Info, filter: AuditFilter): boolean {
  const { data } = record;
  const { user, instance } = filter;
  const named = (field: string, values: readonly string[]) => {
    const value = data[field];
    return typeof value === "string" && values.includes(value);
  };
  return (
    (!filter.subject || record.subject === filter.subject) &&
    (!filter.from || record.at >= filter.from) &&
    (!filter.to || record.at <= filter.to) &&
    (!user ||
      record.actor === user.email ||
      named("requester", [user.email]) ||
      named("sourceIdentity", [user.email]) ||
      named("principal", user.principals) ||
      named("principalArn", user.principals)) &&
    (!instance || data.instanceId === instance)
  );
}

/** Port for reading the audit chain; appends happen inside the request store's transactions. */
export interface AuditStore {
  /**
   * The records passing `filter` (`matches`), by sequence (with `subject`, or without a time range) or by
   * `at` then sequence (with `from`/`to`), newest first unless `order` is `asc`. A user or instance filter
   * reads at most the store's read budget per call: a page may then be short, even empty, with a cursor.
   */
  list(filter: AuditFilter, page: { limit: number; cursor?: string }): Promise<Page<Info>>;
  /** Every record in sequence order, for verification. */
  walk(): AsyncIterable<Info>;
  head(): Promise<Head>;
}
