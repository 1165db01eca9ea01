export * as Target from "./index.ts";

import * as z from "zod";
import { ConflictError } from "../error.ts";
import type { Config, InstanceInfo, Method } from "../policy/index.ts";

/**
 * What EC2 says about an instance: the policy's view (account, region, tags) plus network facts. Everything
 * but the id is optional because a policy-only resolver knows no more than the target that lists it.
 */
export interface Instance extends InstanceInfo {
  /** EC2 instance state name (`running`, `stopped`, …); absent when only the policy is known. */
  state?: string;
  platform?: "linux" | "windows";
  availabilityZone?: string;
  vpcId?: string;
  subnetId?: string;
  privateIp?: string;
  publicIp?: string;
  ipv6?: string;
}

/** An EC2 Instance Connect Endpoint, as DescribeInstanceConnectEndpoints returns it. */
export const Endpoint = z.object({
  endpointId: z.string(),
  arn: z.string().optional(),
  dnsName: z.string(),
  fipsDnsName: z.string().optional(),
  vpcId: z.string(),
  subnetId: z.string(),
  state: z.string(),
});
export type Endpoint = z.infer<typeof Endpoint>;

/** The endpoint states the AWS CLI accepts (protocols.md §1.3; update-* since CLI 2.30.6). */
export const USABLE_ENDPOINT_STATES = [
  "create-complete",
  "update-in-progress",
  "update-failed",
  "update-complete",
] as const;

/** How a client reaches the instance: straight to an address, or through an EICE tunnel to `ip`. */
export const Route = z.discriminatedUnion("type", [
  z.object({ type: z.literal("direct"), host: z.string() }),
  z.object({
    type: z.literal("eice"),
    endpointId: z.string(),
    endpointArn: z.string().optional(),
    dnsName: z.string(),
    /** The address the tunnel reaches: the private IPv4, or the IPv6 of an IPv6-only instance. */
    ip: z.string(),
  }),
]);
export type Route = z.infer<typeof Route>;

/**
 * The instance's network as it was when the request was made, kept with the request: it is part of the
 * grant's constraints (a tunnel is authorized to this IP through this endpoint) and lets trail events that
 * name only a private IP be tied back to the instance that held it.
 */
export const Network = z.object({
  vpcId: z.string(),
  subnetId: z.string(),
  availabilityZone: z.string().optional(),
  privateIp: z.string().optional(),
  publicIp: z.string().optional(),
  ipv6: z.string().optional(),
  route: Route,
  resolvedAt: z.iso.datetime(),
});
export type Network = z.infer<typeof Network>;

/** Port: what the broker can learn about instances and endpoints (EC2 in AWS). */
export interface Resolver {
  /**
   * The instance in the account/region the policy puts it in, or undefined when the policy covers no
   * account/region for it. Throws NotFoundError when it covers some but EC2 knows no such instance there.
   */
  describe(instanceId: string): Promise<Instance | undefined>;
  /** Usable EICE endpoints of a VPC, in the order EC2 lists them. */
  endpoints?(scope: { account: string; region: string; vpcId: string }): Promise<Endpoint[]>;
}

function usable(endpoint: Endpoint): boolean {
  return (USABLE_ENDPOINT_STATES as readonly string[]).includes(endpoint.state);
}

/** The endpoint the AWS CLI would pick: one in the instance's subnet, else the first one in its VPC. */
export function pickEndpoint(
  instance: Pick<Instance, "vpcId" | "subnetId">,
  endpoints: readonly Endpoint[],
): Endpoint | undefined {
  const candidates = endpoints.filter((endpoint) => usable(endpoint) && endpoint.vpcId === instance.vpcId);
  return candidates.find((endpoint) => endpoint.subnetId === instance.subnetId) ?? candidates[0];
}

function throughEndpoint(ip: string, endpoint: Endpoint): Route {
  return {
    type: "eice",
    endpointId: endpoint.endpointId,
    ...(endpoint.arn ? { endpointArn: endpoint.arn } : {}),
    dnsName: endpoint.dnsName,
    ip,
  };
}

/**
 * `aws ec2-instance-connect ssh --connection-type auto` (protocols.md §1.6): public IPv4 → direct; else
 * private IPv4 → through EICE; else IPv6 → direct. Undefined when nothing can reach the instance.
 */
export function route(instance: Instance, endpoints: readonly Endpoint[]): Route | undefined {
  if (instance.publicIp) return { type: "direct", host: instance.publicIp };
  if (instance.privateIp) {
    const endpoint = pickEndpoint(instance, endpoints);
    return endpoint ? throughEndpoint(instance.privateIp, endpoint) : undefined;
  }
  if (instance.ipv6) return { type: "direct", host: instance.ipv6 };
  return undefined;
}

/** `--connection-type eice` (tunnels, RDP): the private IPv4, else the IPv6, through an endpoint. */
export function eiceRoute(instance: Instance, endpoints: readonly Endpoint[]): Route | undefined {
  const ip = instance.privateIp ?? instance.ipv6;
  const endpoint = ip ? pickEndpoint(instance, endpoints) : undefined;
  return ip && endpoint ? throughEndpoint(ip, endpoint) : undefined;
}

/** Whether reaching the instance for `method` needs an endpoint lookup at all. */
function needsEndpoints(instance: Instance, method: Method): boolean {
  return method !== "ssh" || (!instance.publicIp && Boolean(instance.privateIp));
}

/**
 * The network snapshot for a request: refuses instances that are not running (409) or that nothing can
 * reach for this method (409: private only and no usable endpoint in the VPC). Undefined when the resolver
 * knows no network facts (policy-only resolver).
 */
export async function snapshot(
  resolver: Resolver,
  instance: Instance,
  method: Method,
  at: Date,
): Promise<Network | undefined> {
  if (instance.state !== undefined && instance.state !== "running")
    throw new ConflictError(
      "target.not_running",
      `${instance.instanceId} is ${instance.state}; start it before asking for access`,
      { state: instance.state },
    );
  const { account, region, vpcId, subnetId } = instance;
  if (!account || !region || !vpcId || !subnetId) return undefined;
  const endpoints =
    needsEndpoints(instance, method) && resolver.endpoints
      ? await resolver.endpoints({ account, region, vpcId })
      : [];
  const chosen = method === "ssh" ? route(instance, endpoints) : eiceRoute(instance, endpoints);
  if (!chosen)
    throw new ConflictError(
      "target.unreachable",
      method === "ssh"
        ? `${instance.instanceId} has no public IP and no EC2 Instance Connect Endpoint in ${instance.vpcId}`
        : `${method} needs an EC2 Instance Connect Endpoint in ${instance.vpcId}, and there is none`,
      { vpcId: instance.vpcId },
    );
  return {
    vpcId,
    subnetId,
    availabilityZone: instance.availabilityZone,
    privateIp: instance.privateIp,
    publicIp: instance.publicIp,
    ipv6: instance.ipv6,
    route: chosen,
    resolvedAt: at.toISOString(),
  };
}

export interface Scope {
  account: string;
  region: string;
}

/**
 * Where the policy expects `instanceId`: the (account, region) of the targets that list it, and, to look in
 * when it is not there, those of every tag-selector target (each pair once, in policy order).
 */
export function scopesOf(config: Config, instanceId: string): { listed: Scope[]; tagged: Scope[] } {
  const seen = new Set<string>();
  const collect = (targets: Config["targets"]) => {
    const scopes: Scope[] = [];
    for (const target of targets) {
      const key = `${target.account}|${target.region}`;
      if (seen.has(key)) continue;
      seen.add(key);
      scopes.push({ account: target.account, region: target.region });
    }
    return scopes;
  };
  const listed = collect(config.targets.filter((target) => target.instances.includes(instanceId)));
  const tagged = collect(
    config.targets.filter((target) => target.tags && Object.keys(target.tags).length > 0),
  );
  return { listed, tagged };
}

/**
 * Resolves instances from the policy alone: ids listed in a target resolve to its account and region,
 * and an optional inventory supplies tags for tag selectors. For tests and runs without AWS access.
 */
export function fromPolicy(config: Config, inventory: readonly Instance[] = []): Resolver {
  return {
    async describe(instanceId) {
      const known = inventory.find((instance) => instance.instanceId === instanceId);
      if (known) return known;
      const target = config.targets.find((candidate) => candidate.instances.includes(instanceId));
      return target ? { instanceId, account: target.account, region: target.region, tags: {} } : undefined;
    },
  };
}
