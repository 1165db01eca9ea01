import { Resource } from "sst/resource";
import type { Access } from "../core/access/index.ts";
import { awsClientsFor, documentClient } from "../core/aws/clients.ts";
import { DynamoSlackStore } from "../core/aws/dynamo/slack-store.ts";
import { DynamoStore } from "../core/aws/dynamo/store.ts";
import { awsAdapters, eventBridgeScheduler } from "../core/aws/index.ts";
import { lambdaJobs } from "../core/aws/slack-jobs.ts";
import { settings } from "../core/config.ts";
import * as Grant from "../core/grant/index.ts";
import { loadCompiledConfig } from "../core/policy/index.ts";
import * as Request from "../core/request/index.ts";
import { webApi } from "../core/slack/api.ts";
import type { IngressDeps } from "../core/slack/ingress.ts";
import { deferredHooks, hooks as notifyHooks } from "../core/slack/notices.ts";
import { isUsableSecret } from "../core/slack/verify.ts";
import type { WorkerDeps } from "../core/slack/worker.ts";
import { lazyPort } from "../core/util/lazy.ts";
import type { Deps } from "./api/routes.ts";

/** What a deployed broker has: every port wired. */
export type BrokerDeps = Deps & Access.Deps & Grant.Deps;

let cached: BrokerDeps | undefined;
let slackStore: DynamoSlackStore | undefined;

/**
 * A Slack secret: the environment (SLACK_SIGNING_SECRET / SLACK_BOT_TOKEN, for running a handler by hand),
 * else the SST secret linked to this function (infra/secrets.ts). The deploy placeholder counts as unset.
 */
function slackSecret(name: "SlackSigningSecret" | "SlackBotToken", env: string): string | undefined {
  const linked = Resource as unknown as Record<string, { value?: unknown } | undefined>;
  const value = process.env[env]?.trim() || (name in linked ? linked[name]?.value : undefined);
  return typeof value === "string" && isUsableSecret(value) ? value : undefined;
}

/** Notifying inline needs the bot token: the worker, sweeper and expire functions have it linked. */
function slackNotifier(deps: BrokerDeps): WorkerDeps | undefined {
  const token = slackSecret("SlackBotToken", "SLACK_BOT_TOKEN");
  if (!token) return undefined;
  slackStore ??= new DynamoSlackStore(documentClient(), settings.tableName());
  return { ...deps, slack: webApi({ token }), slackStore };
}

/**
 * Production wiring, built once per process on first use: compiled policy, table name from env, AWS clients
 * with the SDK's default identity (the function's role) assuming each account's broker role, and per-grant
 * schedules when the scheduler is configured. Transitions notify Slack through the worker (API, Slack
 * endpoints: ACCESS_SLACK_WORKER) or inline (worker, sweeper, expire), or not at all without a Slack app.
 */
export function depsFromEnv(): BrokerDeps {
  if (cached) return cached;
  const config = loadCompiledConfig(settings.compiledConfigPath());
  const store = new DynamoStore(documentClient(), settings.tableName());
  const clients = awsClientsFor(config.settings.aws.accounts);
  const scheduling = settings.scheduler();
  const deps: BrokerDeps = {
    config,
    requests: store,
    audit: store,
    pushes: store,
    // Only trail work, audit reads and reports use it: the trail store loads on first use.
    trail: lazyPort(async () => {
      const { DynamoTrailStore } = await import("../core/aws/dynamo/trail-store.ts");
      return new DynamoTrailStore(store, documentClient(), settings.tableName());
    }),
    ...awsAdapters(config, clients),
    scheduler: scheduling ? eventBridgeScheduler(clients, scheduling) : Grant.noScheduler,
  };
  const worker = settings.slackWorker();
  const notifier = worker ? undefined : slackNotifier(deps);
  deps.hooks = Request.combineHooks(
    Grant.hooks(deps),
    // Renderers load on the first transition that notifies, so a cold start that notifies nothing skips them.
    worker ? deferredHooks(lambdaJobs(worker)) : notifier ? notifyHooks(notifier) : undefined,
  );
  cached = deps;
  return cached;
}

/** The Slack endpoints' deps: the signing secret, and the worker to hand work to (none: Slack is off). */
export function slackIngressFromEnv(): IngressDeps {
  const worker = settings.slackWorker();
  const signingSecret = slackSecret("SlackSigningSecret", "SLACK_SIGNING_SECRET");
  return {
    ...depsFromEnv(),
    signingSecret: worker ? signingSecret : undefined,
    jobs: worker ? lambdaJobs(worker) : { enqueue: () => Promise.reject(new Error("no Slack worker")) },
  };
}

/** The Slack worker's deps (and the sweeper's, for expiry warnings); undefined without a bot token. */
export function slackWorkerFromEnv(): WorkerDeps | undefined {
  return slackNotifier(depsFromEnv());
}
