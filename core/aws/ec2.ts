import {
  DescribeInstanceConnectEndpointsCommand,
  DescribeInstancesCommand,
  EC2Client,
  type Instance as Ec2Instance,
} from "@aws-sdk/client-ec2";
import { NotFoundError } from "../error.ts";
import type { Config } from "../policy/index.ts";
import * as Target from "../target/index.ts";
import type { AwsClients } from "./clients.ts";
import { rethrowAws } from "./errors.ts";

/** EC2's answers for an instance id it does not know (or cannot parse) in that account and region. */
const NOT_FOUND = new Set(["InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"]);

function toInstance(
  raw: Ec2Instance,
  account: string,
  region: string,
): Target.Instance & { account: string } {
  const tags: Record<string, string> = {};
  for (const tag of raw.Tags ?? []) if (tag.Key !== undefined) tags[tag.Key] = tag.Value ?? "";
  return {
    instanceId: raw.InstanceId ?? "",
    account,
    region,
    tags,
    state: raw.State?.Name,
    platform: raw.Platform?.toLowerCase() === "windows" ? "windows" : "linux",
    availabilityZone: raw.Placement?.AvailabilityZone,
    vpcId: raw.VpcId,
    subnetId: raw.SubnetId,
    privateIp: raw.PrivateIpAddress,
    publicIp: raw.PublicIpAddress,
    ipv6: raw.Ipv6Address,
  };
}

/**
 * Target.Resolver backed by EC2: DescribeInstances / DescribeInstanceConnectEndpoints as the broker role of
 * the account the policy puts the instance in (a target that lists it, else every tag-selector target).
 */
export class Ec2Resolver implements Target.Resolver {
  constructor(
    private readonly config: Config,
    private readonly aws: AwsClients,
  ) {}

  private async find(instanceId: string, account: string, region: string) {
    try {
      const client = this.aws.inAccount(EC2Client, account, region);
      const { Reservations = [] } = await client.send(
        new DescribeInstancesCommand({ InstanceIds: [instanceId] }),
      );
      const raw = Reservations.flatMap((reservation) => reservation.Instances ?? []).find(
        (instance) => instance.InstanceId === instanceId,
      );
      return raw ? toInstance(raw, account, region) : undefined;
    } catch (error) {
      if (error instanceof Error && NOT_FOUND.has(error.name)) return undefined;
      return rethrowAws(error, `DescribeInstances in ${account}/${region}`);
    }
  }

  async describe(instanceId: string): Promise<Target.Instance | undefined> {
    const { listed, tagged } = Target.scopesOf(this.config, instanceId);
    const scopes = [...listed, ...tagged];
    if (scopes.length === 0) return undefined;
    // Where a target lists the instance first; only if it is not there, every tag-selector scope at once
    // (the first in policy order wins).
    let instance: Target.Instance | undefined;
    for (const group of [listed, tagged]) {
      const found = await Promise.all(
        group.map((scope) => this.find(instanceId, scope.account, scope.region)),
      );
      instance = found.find((candidate) => candidate !== undefined);
      if (instance) break;
    }
    if (!instance)
      throw new NotFoundError(
        "target.not_found",
        `${instanceId} was not found in ${scopes.map((scope) => `${scope.account}/${scope.region}`).join(", ")}`,
      );
    return instance;
  }

  async endpoints(scope: { account: string; region: string; vpcId: string }): Promise<Target.Endpoint[]> {
    const client = this.aws.inAccount(EC2Client, scope.account, scope.region);
    const endpoints: Target.Endpoint[] = [];
    let nextToken: string | undefined;
    try {
      do {
        const page = await client.send(
          new DescribeInstanceConnectEndpointsCommand({
            Filters: [
              { Name: "vpc-id", Values: [scope.vpcId] },
              { Name: "state", Values: [...Target.USABLE_ENDPOINT_STATES] },
            ],
            MaxResults: 50,
            NextToken: nextToken,
          }),
        );
        for (const raw of page.InstanceConnectEndpoints ?? []) {
          if (!raw.InstanceConnectEndpointId || !raw.DnsName || !raw.VpcId || !raw.SubnetId) continue;
          endpoints.push({
            endpointId: raw.InstanceConnectEndpointId,
            arn: raw.InstanceConnectEndpointArn,
            dnsName: raw.DnsName,
            fipsDnsName: raw.FipsDnsName,
            vpcId: raw.VpcId,
            subnetId: raw.SubnetId,
            state: raw.State ?? "",
          });
        }
        nextToken = page.NextToken;
      } while (nextToken);
    } catch (error) {
      return rethrowAws(error, `DescribeInstanceConnectEndpoints in ${scope.vpcId}`);
    }
    return endpoints;
  }
}
