import { runJob } from "../core/slack/worker.ts";
import { log } from "../core/util/log.ts";
import { slackWorkerFromEnv } from "./deps.ts";

/**
 * The Slack worker, invoked asynchronously by the Slack endpoints and the API with one job each (a slash
 * command, a button click, or the notifications of a transition); the job is validated in core. Its async
 * retries are off (infra/functions.ts): runJob reports failures to the user itself.
 */
export async function handler(event: unknown): Promise<void> {
  const deps = slackWorkerFromEnv();
  if (!deps) {
    log.warn("slack worker invoked without a bot token; job dropped");
    return;
  }
  await runJob(deps, event);
}
