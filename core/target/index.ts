export * as Target from "./index.ts";

import type { Config, InstanceInfo } from "../policy/index.ts";

/** Port: what the broker can learn about an instance (EC2 DescribeInstances in AWS, issue B). */
export interface Resolver {
  describe(instanceId: string): Promise<InstanceInfo | undefined>;
}

/**
 * Resolves instances from the policy alone: ids listed in a target resolve to its account and region,
 * and an optional inventory supplies tags for tag selectors. Used until an EC2-backed resolver is wired.
 */
export function fromPolicy(config: Config, inventory: readonly InstanceInfo[] = []): Resolver {
  return {
    async describe(instanceId) {
      const known = inventory.find((instance) => instance.instanceId === instanceId);
      if (known) return known;
      const target = config.targets.find((candidate) => candidate.instances.includes(instanceId));
      return target ? { instanceId, account: target.account, region: target.region, tags: {} } : undefined;
    },
  };
}
