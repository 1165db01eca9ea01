import type { Access } from "../access/index.ts";
import type { Grant } from "../grant/index.ts";
import type { Config } from "../policy/index.ts";
import type { Target } from "../target/index.ts";
import type { AwsClients } from "./clients.ts";
import type { EventBridgeSchedulerOptions } from "./scheduler.ts";

export interface AwsAdapters {
  targets: Target.Resolver;
  keys: Access.KeyPusher;
  tunnels: Access.TunnelSigner;
  iam: Grant.IamPolicies;
}

/**
 * Every AWS-backed port of the broker, over one set of clients (functions/deps.ts, local/runtime.ts).
 * The adapters and the SDK are imported on first use: the bundle splits there, so a cold start that
 * serves a route without AWS calls (listing, approving…) does not load them.
 */
export function awsAdapters(config: Config, clients: AwsClients): AwsAdapters {
  let live: Promise<AwsAdapters> | undefined;
  const load = () => {
    live ??= import("./live.ts").then((module) => module.liveAdapters(config, clients));
    return live;
  };
  return {
    targets: {
      describe: async (instanceId) => (await load()).targets.describe(instanceId),
      endpoints: async (scope) => (await (await load()).targets.endpoints?.(scope)) ?? [],
    },
    keys: { send: async (input) => (await load()).keys.send(input) },
    tunnels: { sign: async (request) => (await load()).tunnels.sign(request) },
    iam: {
      put: async (principal, name, document) => (await load()).iam.put(principal, name, document),
      remove: async (principal, name) => (await load()).iam.remove(principal, name),
      list: async (principal) => (await load()).iam.list(principal),
    },
  };
}

/** Per-grant schedules on EventBridge Scheduler (loaded on first use, like the other adapters). */
export function eventBridgeScheduler(
  clients: AwsClients,
  options: EventBridgeSchedulerOptions,
): Grant.Scheduler {
  let live: Promise<Grant.Scheduler> | undefined;
  const load = () => {
    live ??= (async () => {
      const { EventBridgeScheduler, SchedulerClient } = await import("./scheduler.ts");
      return new EventBridgeScheduler(clients.asSelf(SchedulerClient), options);
    })();
    return live;
  };
  return {
    upsert: async (grantId, at) => (await load()).upsert(grantId, at),
    remove: async (grantId) => (await load()).remove(grantId),
  };
}
