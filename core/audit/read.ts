import * as z from "zod";
import { ForbiddenError, InputError, NotFoundError } from "../error.ts";
import { type Actor, Identity } from "../identity/index.ts";
import type { Config } from "../policy/index.ts";
import { Request } from "../request/index.ts";
import { InputTime } from "../request/schema.ts";
import { parse } from "../util/fn.ts";
import type { Page } from "../util/page.ts";
import { type AnchoredVerification, type AnchorStore, verifyAnchored } from "./anchor.ts";
import type { Info } from "./index.ts";
import type { AuditStore } from "./store.ts";

export interface Deps extends Request.Deps {
  audit: AuditStore;
  /** Chain heads kept outside the table (S3 Object Lock, a local file); verify compares with the latest. */
  anchors?: AnchorStore;
}

export const EventsQuery = z.strictObject({
  requestId: z
    .string()
    .regex(/^req_[0-9a-z]{26}$/, "must be a request id")
    .optional(),
  from: InputTime.optional(),
  to: InputTime.optional(),
  order: z.enum(["asc", "desc"]).default("desc"),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(2_048).optional(),
});

function isAuditor(actor: Actor, config: Config): boolean {
  return Identity.isAuditor(actor, config) || Identity.matchesAny(actor, config.settings.admins);
}

/**
 * Audit records: auditors read everything; anyone else only the history of a request they can see.
 */
export async function events(deps: Deps, actor: Actor, rawQuery: unknown): Promise<Page<Info>> {
  const query = parse(EventsQuery, rawQuery);
  if (!isAuditor(actor, deps.config)) {
    if (!query.requestId)
      throw new ForbiddenError(
        "audit.forbidden",
        "Only auditors can read the whole audit log; pass requestId",
      );
    await Request.get(deps, actor, query.requestId);
  }
  if (query.requestId && (query.from || query.to))
    throw new InputError("audit.invalid_filter", "Filter by requestId or by time, not both");
  return deps.audit.list(
    { subject: query.requestId, from: query.from, to: query.to, order: query.order },
    { limit: query.limit, cursor: query.cursor },
  );
}

/**
 * Walks the whole chain and reports the first broken link, and compares it with the latest anchor when
 * anchors are configured (auditors and admins only).
 */
export async function verifyChain(deps: Deps, actor: Actor): Promise<AnchoredVerification> {
  if (!isAuditor(actor, deps.config)) throw new NotFoundError("audit.not_found", "No such resource");
  // The anchor is read first: one written while the chain is walked must not look like a rollback.
  const anchor = await deps.anchors?.latest();
  return verifyAnchored(
    deps.audit.walk(),
    await deps.audit.head(),
    anchor && deps.anchors ? { ...anchor, location: deps.anchors.location } : undefined,
  );
}
