import type { Context } from "aws-lambda";
import * as Trail from "../core/trail/index.ts";
import { trailDepsFromEnv } from "./trail-deps.ts";

/**
 * Scheduled (infra/trail.ts): LookupEvents for every account and region of the policy, as each account's
 * broker role, at most 2 calls a second, checkpointed after every page. It stops 10 s before the Lambda
 * timeout; the next run resumes from the checkpoint.
 */
export async function handler(_event: unknown, context?: Pick<Context, "getRemainingTimeInMillis">) {
  const remaining = context?.getRemainingTimeInMillis() ?? 60_000;
  return Trail.backfillAll(trailDepsFromEnv(), { deadline: Date.now() + remaining - 10_000 });
}
