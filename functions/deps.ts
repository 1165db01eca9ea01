import { documentClient } from "../core/aws/clients.ts";
import { DynamoStore } from "../core/aws/dynamo/store.ts";
import { settings } from "../core/config.ts";
import { loadCompiledConfig } from "../core/policy/index.ts";
import { Target } from "../core/target/index.ts";
import type { Deps } from "./api/routes.ts";

let cached: Deps | undefined;

/** Production wiring, built once per process on first use (compiled policy, table name from env). */
export function depsFromEnv(): Deps {
  if (cached) return cached;
  const config = loadCompiledConfig(settings.compiledConfigPath());
  const store = new DynamoStore(documentClient(), settings.tableName());
  cached = { config, requests: store, audit: store, targets: Target.fromPolicy(config) };
  return cached;
}
