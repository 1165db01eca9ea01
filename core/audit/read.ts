import * as z from "zod";
import { ForbiddenError, InputError, NotFoundError } from "../error.ts";
import { type Actor, Identity } from "../identity/index.ts";
import type { Config } from "../policy/index.ts";
import { InstanceId } from "../policy/schema.ts";
import * as Request from "../request/index.ts";
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
  user: z
    .email("must be an email address")
    .max(320)
    .transform((email) => email.toLowerCase())
    .optional()
    .describe(
      "A person's records: made by them (actor), about their requests and grants (data.requester), made as " +
        "them (data.sourceIdentity), or naming one of their directory AWS principals (data.principal or " +
        "data.principalArn). Exact match, lowercased; an email the directory does not know (someone who left) " +
        "matches by the first three. Not with requestId.",
    ),
  instance: InstanceId.optional().describe(
    "Records about this instance (data.instanceId): its requests' and grants' lifecycle, key pushes, tunnels, " +
      "and trail events that touched it (a tunnel: the instance of its grant). Not with requestId.",
  ),
  order: z.enum(["asc", "desc"]).default("desc"),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(2_048).optional(),
});

function isAuditor(actor: Actor, config: Config): boolean {
  return Identity.isAuditor(actor, config) || Identity.matchesAny(actor, config.settings.admins);
}

/**
 * Audit records: auditors read everything, filtered by time, person and instance; anyone else only the
 * history of a request they can see.
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
  // A request's history is whole and short: it is read by its own index, never narrowed further.
  if (query.requestId && (query.from || query.to || query.user || query.instance))
    throw new InputError(
      "audit.invalid_filter",
      "Filter by requestId, or by time, user and instance; not both",
    );
  const { user } = query;
  // Unknown to the directory is no error: a person who left still has a history.
  return deps.audit.list(
    {
      subject: query.requestId,
      from: query.from,
      to: query.to,
      order: query.order,
      // A person's own AWS identities (IAM grant mode, unbrokered calls) are theirs too.
      user:
        user === undefined
          ? undefined
          : {
              email: user,
              principals:
                deps.config.directory.users.find((entry) => entry.email === user)?.awsPrincipals ?? [],
            },
      instance: query.instance,
    },
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
