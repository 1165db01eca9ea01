import type { Access } from "../core/access/index.ts";
import { awsClientsFor, documentClient } from "../core/aws/clients.ts";
import { DynamoStore } from "../core/aws/dynamo/store.ts";
import { awsAdapters, eventBridgeScheduler } from "../core/aws/index.ts";
import { settings } from "../core/config.ts";
import { Grant } from "../core/grant/index.ts";
import { loadCompiledConfig } from "../core/policy/index.ts";
import type { Deps } from "./api/routes.ts";

/** What a deployed broker has: every port wired. */
export type BrokerDeps = Deps & Access.Deps & Grant.Deps;

let cached: BrokerDeps | undefined;

/**
 * Production wiring, built once per process on first use: compiled policy, table name from env, AWS clients
 * with the SDK's default identity (the function's role) assuming each account's broker role, and per-grant
 * schedules when the scheduler is configured.
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
    ...awsAdapters(config, clients),
    scheduler: scheduling ? eventBridgeScheduler(clients, scheduling) : Grant.noScheduler,
  };
  deps.hooks = Grant.hooks(deps);
  cached = deps;
  return cached;
}
