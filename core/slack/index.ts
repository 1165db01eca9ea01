export * as Slack from "./index.ts";

import * as Request from "../request/index.ts";
import type { IngressDeps } from "./ingress.ts";
import { deferredHooks, hooks } from "./notices.ts";
import type { SlackApi, SlackJobs, SlackStore } from "./ports.ts";
import type { WorkerDeps } from "./worker.ts";

export { SLACK_RESPONSE_URL_PREFIX, type WebApiOptions, webApi } from "./api.ts";
export { ACTIONS, MODAL_CALLBACK } from "./blocks.ts";
export { MAX_TEXT, osUserHints, parseCommand, parseModal } from "./command.ts";
export { type Incoming, type IngressDeps, MAX_BODY_BYTES, type Outgoing, receive } from "./ingress.ts";
export { type InProcessJobs, inProcessJobs } from "./jobs.ts";
export { deferredHooks, hooks, noticesOf } from "./notices.ts";
export { WARNING_LEAD_SECONDS, warnExpiring } from "./notify.ts";
export type { MessageKey, MessageRef, SlackApi, SlackJobs, SlackStore } from "./ports.ts";
export { Job, type JobInput, type Notice } from "./schema.ts";
export { isUsableSecret, SLACK_PLACEHOLDER, sign, verify } from "./verify.ts";
export { runJob, type WorkerDeps } from "./worker.ts";

export interface WiringOptions {
  signingSecret: string | undefined;
  slack: SlackApi;
  slackStore: SlackStore;
  jobs: SlackJobs;
}

/**
 * Slack wired into a broker's deps, as every runtime does it: the worker notifies inline; the acknowledging
 * handler (and the API, which should answer fast too) hand notifications to the worker through `jobs`.
 * Hooks `base` already has (the grant effects) run in both.
 */
export function wire<D extends Request.Deps>(
  base: D,
  options: WiringOptions,
): { ingress: D & IngressDeps; worker: D & WorkerDeps } {
  const existing = base.hooks;
  const worker: D & WorkerDeps = { ...base, slack: options.slack, slackStore: options.slackStore };
  worker.hooks = Request.combineHooks(existing, hooks(worker));
  const ingress: D & IngressDeps = {
    ...base,
    signingSecret: options.signingSecret,
    jobs: options.jobs,
    hooks: Request.combineHooks(existing, deferredHooks(options.jobs)),
  };
  return { ingress, worker };
}
