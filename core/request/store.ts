import type { Audit } from "../audit/index.ts";
import type { Page } from "../util/page.ts";
import type { Info, Status } from "./schema.ts";

export type { Page };

export interface PageQuery {
  limit: number;
  cursor?: string;
  /** Applied by the store while paging, so a page is filled with visible items only. */
  filter?: (item: Info) => boolean;
}

export interface IdempotencyClaim {
  owner: string;
  key: string;
  /** Hash of the request body: the same key with another body is a client bug, not a retry. */
  fingerprint: string;
}

export type CreateResult = { created: true } | { created: false; existingId: string; fingerprint: string };

/** Port for request/grant persistence. Every write appends its audit events in the same transaction. */
export interface RequestStore {
  get(id: string): Promise<Info | undefined>;
  create(item: Info, events: Audit.Input[], idempotency?: IdempotencyClaim): Promise<CreateResult>;
  /** Throws VersionConflictError when the stored version is no longer `expectedVersion`. */
  update(item: Info, expectedVersion: number, events: Audit.Input[]): Promise<void>;
  /** Audit records of things that happened outside the table (a tunnel authorized, an IAM policy put). */
  append(events: Audit.Input[]): Promise<void>;
  listByRequester(email: string, page: PageQuery): Promise<Page<Info>>;
  listByStatus(status: Status, page: PageQuery): Promise<Page<Info>>;
  listAll(page: PageQuery): Promise<Page<Info>>;
  /** Items whose next time-based transition is due at or before `now`, oldest first. */
  listDue(now: Date, limit: number): Promise<Info[]>;
}

export class VersionConflictError extends Error {
  constructor(id: string) {
    super(`${id} changed while we were writing it`);
    this.name = "VersionConflictError";
  }
}
