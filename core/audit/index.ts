export * as Audit from "./index.ts";

import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import * as z from "zod";

export const EventType = z.enum([
  "request.created",
  "request.approval_recorded",
  "request.approved",
  "request.denied",
  "request.cancelled",
  "request.timed_out",
  "grant.activated",
  "grant.extension_requested",
  "grant.extension_denied",
  "grant.extended",
  "grant.expired",
  "grant.revoked",
  "grant.key_pushed",
  "grant.tunnel_authorized",
  "grant.iam_policy_attached",
  "grant.iam_policy_removed",
  "breakglass.used",
  "breakglass.reviewed",
  "trail.observed",
  "trail.reclassified",
  "trail.alert_sent",
]);
export type EventType = z.infer<typeof EventType>;

/** What a state change says about itself; the store adds chain position and hashes. */
export const Input = z.object({
  type: EventType,
  at: z.iso.datetime(),
  /** The email of the person, or `system` for the sweeper. */
  actor: z.string(),
  /** The request id the event is about. */
  subject: z.string(),
  data: z.record(z.string(), z.unknown()),
});
export type Input = z.infer<typeof Input>;

export const Info = Input.extend({
  seq: z.number().int().positive(),
  prevHash: z.string(),
  hash: z.string(),
});
export type Info = z.infer<typeof Info>;

export interface Head {
  seq: number;
  hash: string;
}

export const GENESIS: Head = { seq: 0, hash: "0".repeat(64) };

/** The hash covers every field but itself, in RFC 8785 canonical JSON, so storage order cannot matter. */
export function hashOf(record: Omit<Info, "hash">): string {
  const canonical = canonicalize({
    seq: record.seq,
    at: record.at,
    type: record.type,
    actor: record.actor,
    subject: record.subject,
    data: record.data,
    prevHash: record.prevHash,
  });
  return createHash("sha256")
    .update(canonical ?? "")
    .digest("hex");
}

/** Links `inputs` after `head`; data is normalised to what JSON (and so the store) keeps. */
export function link(head: Head, inputs: readonly Input[]): Info[] {
  const records: Info[] = [];
  let previous = head;
  for (const input of inputs) {
    const unhashed = {
      ...input,
      data: JSON.parse(JSON.stringify(input.data)) as Record<string, unknown>,
      seq: previous.seq + 1,
      prevHash: previous.hash,
    };
    const record = { ...unhashed, hash: hashOf(unhashed) };
    records.push(record);
    previous = record;
  }
  return records;
}

export type Verification =
  | { ok: true; records: number; head: Head }
  | { ok: false; records: number; brokenAt: { seq: number; reason: string } };

/**
 * Walks the chain in sequence order and reports the first broken link: an edited record (hash),
 * a removed or reordered one (sequence gap or wrong previous hash), or a chain that ends before its head.
 */
export async function verify(records: AsyncIterable<Info>, storedHead: Head): Promise<Verification> {
  let previous = GENESIS;
  let count = 0;
  for await (const record of records) {
    count++;
    const expectedSeq = previous.seq + 1;
    if (record.seq !== expectedSeq) {
      return {
        ok: false,
        records: count,
        brokenAt: { seq: expectedSeq, reason: `record ${expectedSeq} is missing` },
      };
    }
    if (record.prevHash !== previous.hash) {
      return {
        ok: false,
        records: count,
        brokenAt: { seq: record.seq, reason: "previous-hash link does not match the record before it" },
      };
    }
    if (hashOf(record) !== record.hash) {
      return {
        ok: false,
        records: count,
        brokenAt: { seq: record.seq, reason: "content does not match its hash" },
      };
    }
    previous = { seq: record.seq, hash: record.hash };
  }
  if (previous.seq !== storedHead.seq || previous.hash !== storedHead.hash) {
    return {
      ok: false,
      records: count,
      brokenAt: {
        seq: previous.seq + 1,
        reason: `chain ends at ${previous.seq} but its head says ${storedHead.seq}: records were removed`,
      },
    };
  }
  return { ok: true, records: count, head: previous };
}
