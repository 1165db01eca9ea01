import { Request } from "../core/request/index.ts";
import { log } from "../core/util/log.ts";
import { depsFromEnv } from "./deps.ts";

/** Runs every minute: pending timeouts, scheduled starts and grant ends. The event carries nothing. */
export async function handler(): Promise<Request.SweepResult> {
  const result = await Request.sweep(depsFromEnv());
  if (result.timedOut + result.activated + result.expired > 0) log.info("sweep", { ...result });
  return result;
}
