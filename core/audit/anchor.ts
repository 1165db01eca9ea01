import { log } from "../util/log.ts";
import { type Head, type Info, type Verification, verify } from "./index.ts";
import type { AuditStore } from "./store.ts";

/**
 * Anchors: the audit chain's head, copied from time to time to a place the table's writers cannot rewrite
 * (an S3 bucket with Object Lock in compliance mode in AWS, an append-only file locally). The hash chain
 * proves that records were not edited, removed or reordered relative to each other; an anchor also proves
 * that the chain was not rolled back (a table restored to an earlier point) or rewritten wholesale with
 * recomputed hashes.
 */

export interface Anchor {
  seq: number;
  hash: string;
  /** When the head was anchored. */
  at: string;
}

/** Port: an append-only log of chain heads outside the table. */
export interface AnchorStore {
  /** Where anchors live, for messages: a file path, `s3://bucket/prefix`. */
  readonly location: string;
  /** Appends an anchor; earlier anchors are never rewritten. */
  append(anchor: Anchor): Promise<void>;
  /** The anchor with the highest sequence number, if any. */
  latest(): Promise<Anchor | undefined>;
}

export interface AnchorCheck {
  ok: boolean;
  seq: number;
  hash: string;
  at: string;
  location: string;
}

export type AnchoredVerification = Verification & { anchor?: AnchorCheck };

/**
 * Anchors the current head when it moved since the last anchor (run by the sweeper). A head *behind* the
 * last anchor is never anchored: that is a rolled-back table, which verify reports.
 */
export async function anchorHead(deps: {
  audit: Pick<AuditStore, "head">;
  anchors: AnchorStore;
  clock?: () => Date;
}): Promise<Anchor | undefined> {
  const head = await deps.audit.head();
  if (head.seq === 0) return undefined;
  const latest = await deps.anchors.latest();
  if (latest && latest.seq === head.seq && latest.hash === head.hash) return undefined;
  if (latest && head.seq <= latest.seq) {
    log.error("audit chain head is at or behind its last anchor: not anchoring; run audit verify", {
      head: head.seq,
      anchored: latest.seq,
      location: deps.anchors.location,
    });
    return undefined;
  }
  const anchor = { seq: head.seq, hash: head.hash, at: (deps.clock?.() ?? new Date()).toISOString() };
  await deps.anchors.append(anchor);
  return anchor;
}

/**
 * Verifies the chain (Audit.verify) and, when an anchor exists, that the chain still holds the anchored
 * record with the anchored hash: a chain that ends before the anchor was truncated or rolled back; a
 * different hash at the anchored position means it was rewritten.
 */
export async function verifyAnchored(
  records: AsyncIterable<Info>,
  storedHead: Head,
  anchor: (Anchor & { location: string }) | undefined,
): Promise<AnchoredVerification> {
  let seen: string | undefined;
  async function* tap() {
    for await (const record of records) {
      if (anchor && record.seq === anchor.seq) seen = record.hash;
      yield record;
    }
  }
  const result = await verify(tap(), storedHead);
  if (!anchor) return result;
  const check = (ok: boolean): AnchorCheck => ({
    ok,
    seq: anchor.seq,
    hash: anchor.hash,
    at: anchor.at,
    location: anchor.location,
  });
  if (!result.ok) return { ...result, anchor: check(seen === anchor.hash) };
  if (seen === undefined)
    return {
      ok: false,
      records: result.records,
      brokenAt: {
        seq: result.head.seq + 1,
        reason: `the chain ends at ${result.head.seq}, but its head was anchored at ${anchor.seq} on ${anchor.at} (${anchor.location}): records were removed or the table was rolled back`,
      },
      anchor: check(false),
    };
  if (seen !== anchor.hash)
    return {
      ok: false,
      records: result.records,
      brokenAt: {
        seq: anchor.seq,
        reason: `record ${anchor.seq} differs from its anchor of ${anchor.at} (${anchor.location}): the chain was rewritten`,
      },
      anchor: check(false),
    };
  return { ...result, anchor: check(true) };
}
