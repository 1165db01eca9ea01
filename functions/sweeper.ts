import { Grant } from "../core/grant/index.ts";
import { log } from "../core/util/log.ts";
import { depsFromEnv } from "./deps.ts";

/**
 * Runs every minute: pending timeouts, scheduled starts and grant ends (with their side effects), then IAM
 * grant reconciliation. The event carries nothing.
 */
export async function handler(): Promise<Grant.SweepAllResult> {
  const result = await Grant.sweepAll(depsFromEnv());
  if (result.timedOut + result.activated + result.expired + result.iam.removed + result.iam.attached > 0)
    log.info("sweep", { ...result });
  if (result.iam.failed > 0) log.warn("sweep: IAM reconciliation incomplete", { ...result.iam });
  return result;
}
