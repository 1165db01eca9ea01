import { ConflictError, NotFoundError } from "../error.ts";
import { type Actor, Identity } from "../identity/index.ts";
import type { Config } from "../policy/index.ts";
import { parse } from "../util/fn.ts";
import type { Page } from "../util/page.ts";
import { type IngestResult, ingest, recorrelate } from "./ingest.ts";
import { ImportInput, ListQuery, type Observation } from "./schema.ts";

export { ImportInput, IngestSummary, ListQuery, MAX_IMPORT_RECORDS } from "./schema.ts";

import type { TrailStore } from "./store.ts";

/** What the API needs for trail routes; `trail` is absent on a broker wired without it. */
export interface ApiDeps {
  config: Config;
  trail?: TrailStore;
  clock?: () => Date;
}

/** Auditors and admins: they read the evidence, and import history into it. */
export function isAuditor(actor: Actor, config: Config): boolean {
  return Identity.isAuditor(actor, config) || Identity.matchesAny(actor, config.settings.admins);
}

function store(deps: ApiDeps): TrailStore {
  if (!deps.trail)
    throw new ConflictError("trail.not_configured", "This broker has no trail store configured");
  return deps.trail;
}

/**
 * `POST /audit/trail`: CloudTrail records (what `access audit import` read from log files) into the one
 * ingest, attributed to the importer. Auditors and admins only; anyone else gets 404 as for other
 * auditor-only resources.
 */
export async function importRecords(deps: ApiDeps, actor: Actor, input: unknown): Promise<IngestResult> {
  if (!isAuditor(actor, deps.config)) throw new NotFoundError("trail.not_found", "No such resource");
  const { records } = parse(ImportInput, input);
  const trail = store(deps);
  const result = await ingest({ ...deps, trail }, records, { source: "import", actor: actor.email });
  // Imported history may hold the events that earlier, unmatched ones were waiting for.
  if (result.recorded > 0) await recorrelate({ ...deps, trail }, { limit: 100 });
  return result;
}

/** `GET /audit/trail`: observed trail events by event time (auditors and admins). */
export async function list(deps: ApiDeps, actor: Actor, rawQuery: unknown): Promise<Page<Observation>> {
  if (!isAuditor(actor, deps.config)) throw new NotFoundError("trail.not_found", "No such resource");
  const query = parse(ListQuery, rawQuery);
  const { user } = query;
  // A person's own AWS identities (IAM grant mode) are theirs too: unbrokered calls made with them show up.
  const principals = user?.email
    ? (deps.config.directory.users.find((entry) => entry.email === user.email)?.awsPrincipals ?? [])
    : user?.principal
      ? [user.principal]
      : [];
  return store(deps).list(
    {
      from: query.from,
      to: query.to,
      classification: query.classification,
      user: user && { email: user.email, principals },
      instance: query.instance,
    },
    { limit: query.limit, cursor: query.cursor },
  );
}
