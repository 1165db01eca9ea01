import type { Page } from "../util/page.ts";
import type { Head, Info } from "./index.ts";

export interface AuditFilter {
  /** The request id the records are about. */
  subject?: string;
  from?: string;
  to?: string;
  order?: "asc" | "desc";
}

/** Port for reading the audit chain; appends happen inside the request store's transactions. */
export interface AuditStore {
  list(filter: AuditFilter, page: { limit: number; cursor?: string }): Promise<Page<Info>>;
  /** Every record in sequence order, for verification. */
  walk(): AsyncIterable<Info>;
  head(): Promise<Head>;
}
