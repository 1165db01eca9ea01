import * as Grant from "../core/grant/index.ts";
import * as Trail from "../core/trail/index.ts";
import { log } from "../core/util/log.ts";
import { depsFromEnv, slackWorkerFromEnv } from "./deps.ts";
import { withAnchors } from "./s3-deps.ts";
import { trailDepsFromEnv } from "./trail-deps.ts";

/**
 * Runs every minute: pending timeouts, scheduled starts and grant ends (with their side effects, Slack
 * DMs included), IAM grant reconciliation, the Slack expiry warnings, then the trail's pass (late
 * re-correlation, security alerts, audit chain anchoring). The event carries nothing.
 */
export async function handler(): Promise<
  Grant.SweepAllResult & { warned: number; trail: Trail.MaintainResult }
> {
  const result = await Grant.sweepAll(depsFromEnv());
  const slack = slackWorkerFromEnv();
  // Loaded only on stages with Slack: the renderers stay out of the sweeper's cold start otherwise.
  const { warned } = slack
    ? await (await import("../core/slack/notify.ts")).warnExpiring(slack)
    : { warned: 0 };
  if (
    result.timedOut + result.activated + result.expired + result.iam.removed + result.iam.attached + warned >
    0
  )
    log.info("sweep", { ...result, warned });
  if (result.iam.failed > 0) log.warn("sweep: IAM reconciliation incomplete", { ...result.iam });
  const trail = await Trail.maintain(withAnchors(trailDepsFromEnv()));
  return { ...result, warned, trail };
}
