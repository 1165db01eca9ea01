/**
 * EC2 for the emulator (EC2 query protocol, http://ec2.amazonaws.com/doc/2016-11-15/):
 * `DescribeInstances` and `DescribeInstanceConnectEndpoints` over the inventory, in the XML shapes of the
 * botocore model (so `@aws-sdk/client-ec2` and the AWS CLI parse them). A caller sees only its own account's
 * resources in the request's region, as in AWS.
 */
import type { EmulatorCore, EmulatorService } from "./contract.ts";
import {
  type EmulatorEndpoint,
  type EmulatorInstance,
  type EmulatorInventory,
  stableHex,
} from "./inventory.ts";
import { globMatch } from "./policy.ts";
import {
  awsService,
  type CallContext,
  queryFilters,
  queryList,
  type ServiceDeps,
  ServiceError,
  type XmlObject,
} from "./wire.ts";

export const EC2_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/";

const STATE_CODES: Record<EmulatorInstance["state"], number> = {
  pending: 0,
  running: 16,
  "shutting-down": 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

const INSTANCE_ID = /^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$/;
const ENDPOINT_ID = /^eice-[0-9a-zA-Z_]+$/;

type Filter = { name: string; values: string[] };

interface Filterable<T> {
  /** Is `name` a filter this operation documents? */
  known(name: string): boolean;
  /** The item's values for filter `name`. */
  values(item: T, name: string): string[];
}

/** EC2 filters: values of one filter are ORed (with `*`/`?` wildcards), filters are ANDed. */
function applyFilters<T>(items: T[], filters: Filter[], fields: Filterable<T>): T[] {
  const unknown = filters.find((filter) => !fields.known(filter.name));
  if (unknown !== undefined)
    throw new ServiceError(
      400,
      "InvalidParameterValue",
      `The filter '${unknown.name.slice(0, 128)}' is invalid`,
    );
  return items.filter((item) =>
    filters.every((filter) => {
      const actual = fields.values(item, filter.name);
      return filter.values.some((pattern) => actual.some((value) => globMatch(pattern, value)));
    }),
  );
}

const tagFilter = (name: string) => name.startsWith("tag:") && name.length > 4;

const INSTANCE_FILTERS = new Set([
  "instance-id",
  "vpc-id",
  "subnet-id",
  "instance-state-name",
  "instance-state-code",
  "private-ip-address",
  "ip-address",
  "availability-zone",
  "platform",
  "tag-key",
  "tag-value",
  "instance-type",
  "image-id",
]);

const instanceFields: Filterable<EmulatorInstance> = {
  known: (name) => INSTANCE_FILTERS.has(name) || tagFilter(name),
  values(instance, name) {
    if (name.startsWith("tag:")) {
      const value = instance.tags[name.slice(4)];
      return value === undefined ? [] : [value];
    }
    switch (name) {
      case "instance-id":
        return [instance.id];
      case "vpc-id":
        return [instance.vpcId];
      case "subnet-id":
        return [instance.subnetId];
      case "instance-state-name":
        return [instance.state];
      case "instance-state-code":
        return [String(STATE_CODES[instance.state])];
      case "private-ip-address":
        return instance.privateIp === undefined ? [] : [instance.privateIp];
      case "ip-address":
        return instance.publicIp === undefined ? [] : [instance.publicIp];
      case "availability-zone":
        return [instance.availabilityZone];
      case "platform":
        return instance.platform === "windows" ? ["windows"] : [];
      case "tag-key":
        return Object.keys(instance.tags);
      case "tag-value":
        return Object.values(instance.tags);
      case "instance-type":
        return [instance.instanceType];
      case "image-id":
        return [instance.imageId];
      default:
        return [];
    }
  },
};

const ENDPOINT_FILTERS = new Set([
  "instance-connect-endpoint-id",
  "state",
  "subnet-id",
  "vpc-id",
  "tag-key",
  "tag-value",
]);

const endpointFields: Filterable<EmulatorEndpoint> = {
  known: (name) => ENDPOINT_FILTERS.has(name) || tagFilter(name),
  values(endpoint, name) {
    if (name.startsWith("tag:")) {
      const value = endpoint.tags[name.slice(4)];
      return value === undefined ? [] : [value];
    }
    switch (name) {
      case "instance-connect-endpoint-id":
        return [endpoint.id];
      case "state":
        return [endpoint.state];
      case "subnet-id":
        return [endpoint.subnetId];
      case "vpc-id":
        return [endpoint.vpcId];
      case "tag-key":
        return Object.keys(endpoint.tags);
      case "tag-value":
        return Object.values(endpoint.tags);
      default:
        return [];
    }
  },
};

const tagSet = (tags: Record<string, string>): XmlObject => ({
  item: Object.entries(tags).map(([key, value]) => ({ key, value })),
});

function instanceXml(instance: EmulatorInstance): XmlObject {
  const privateDns =
    instance.privateIp === undefined
      ? undefined
      : `ip-${instance.privateIp.replaceAll(".", "-")}.${instance.region === "us-east-1" ? "ec2.internal" : `${instance.region}.compute.internal`}`;
  const publicDns =
    instance.publicIp === undefined
      ? ""
      : `ec2-${instance.publicIp.replaceAll(".", "-")}.${instance.region === "us-east-1" ? "compute-1" : `${instance.region}.compute`}.amazonaws.com`;
  return {
    instanceId: instance.id,
    imageId: instance.imageId,
    instanceState: { code: STATE_CODES[instance.state], name: instance.state },
    privateDnsName: privateDns ?? "",
    dnsName: publicDns,
    reason: "",
    amiLaunchIndex: 0,
    productCodes: "",
    instanceType: instance.instanceType,
    launchTime: instance.launchTime,
    placement: { availabilityZone: instance.availabilityZone, groupName: "", tenancy: "default" },
    // EC2 sets `platform` only for Windows; Linux instances have platformDetails alone.
    platform: instance.platform === "windows" ? "windows" : undefined,
    monitoring: { state: "disabled" },
    subnetId: instance.subnetId,
    vpcId: instance.vpcId,
    privateIpAddress: instance.privateIp,
    ipAddress: instance.publicIp,
    ipv6Address: instance.ipv6,
    architecture: "x86_64",
    rootDeviceType: "ebs",
    rootDeviceName: "/dev/xvda",
    virtualizationType: "hvm",
    hypervisor: "xen",
    networkInterfaceSet: {
      item: [
        {
          networkInterfaceId: `eni-${stableHex(`${instance.id}/eni`)}`,
          subnetId: instance.subnetId,
          vpcId: instance.vpcId,
          ownerId: instance.account,
          status: "in-use",
          privateIpAddress: instance.privateIp,
          association:
            instance.publicIp === undefined
              ? undefined
              : { publicIp: instance.publicIp, publicDnsName: publicDns, ipOwnerId: "amazon" },
          ipv6AddressesSet:
            instance.ipv6 === undefined
              ? undefined
              : { item: [{ ipv6Address: instance.ipv6, isPrimaryIpv6: true }] },
        },
      ],
    },
    tagSet: tagSet(instance.tags),
    platformDetails: instance.platform === "windows" ? "Windows" : "Linux/UNIX",
  };
}

function endpointXml(endpoint: EmulatorEndpoint): XmlObject {
  return {
    ownerId: endpoint.account,
    instanceConnectEndpointId: endpoint.id,
    instanceConnectEndpointArn: endpoint.arn,
    state: endpoint.state,
    stateMessage: "",
    dnsName: endpoint.dnsName,
    fipsDnsName: endpoint.fipsDnsName,
    networkInterfaceIdSet: { item: endpoint.networkInterfaceIds },
    vpcId: endpoint.vpcId,
    availabilityZone: endpoint.availabilityZone,
    createdAt: endpoint.createdAt,
    subnetId: endpoint.subnetId,
    preserveClientIp: endpoint.preserveClientIp,
    securityGroupIdSet: { item: endpoint.securityGroupIds },
    tagSet: tagSet(endpoint.tags),
    ipAddressType: endpoint.ipAddressType,
  };
}

/** Opaque page token bound to the listing it came from. */
function pageToken(kind: string, offset: number): string {
  return Buffer.from(JSON.stringify({ k: kind, o: offset }), "utf8").toString("base64url");
}

function readPageToken(kind: string, token: string | undefined): number {
  if (token === undefined) return 0;
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as {
      k?: unknown;
      o?: unknown;
    };
    if (parsed.k === kind && typeof parsed.o === "number" && Number.isInteger(parsed.o) && parsed.o >= 0)
      return parsed.o;
  } catch {
    // fall through
  }
  throw new ServiceError(
    400,
    "InvalidPaginationToken",
    `The pagination token '${token.slice(0, 64)}' is invalid`,
  );
}

function maxResults(ctx: CallContext, min: number, max: number): number | undefined {
  const text = ctx.params.get("MaxResults");
  if (text === undefined) return undefined;
  const value = /^\d{1,6}$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= max)) {
    throw new ServiceError(
      400,
      "InvalidParameterValue",
      `Value ( ${text.slice(0, 16)} ) for parameter maxResults is invalid. Expecting a value between ${min} and ${max}.`,
    );
  }
  return value;
}

/** EC2 logs list parameters as `{ items: [...] }` sets. */
function trailFilters(filters: Filter[]) {
  return filters.length === 0
    ? undefined
    : {
        items: filters.map((f) => ({
          name: f.name,
          valueSet: { items: f.values.map((value) => ({ value })) },
        })),
      };
}

function dryRun(ctx: CallContext, action: string): void {
  if (ctx.params.get("DryRun") !== "true") return;
  ctx.authorize(action, "*");
  throw new ServiceError(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.");
}

/** EC2: DescribeInstances and DescribeInstanceConnectEndpoints. */
export function ec2Service(
  core: EmulatorCore,
  inventory: EmulatorInventory,
  deps: ServiceDeps,
): EmulatorService {
  return awsService(
    core,
    {
      signingName: "ec2",
      eventSource: "ec2.amazonaws.com",
      protocol: "ec2",
      xmlns: EC2_XMLNS,
      accessDenied: (message) =>
        new ServiceError(
          403,
          "UnauthorizedOperation",
          `You are not authorized to perform this operation. ${message}`,
        ),
      // CloudTrail prefixes EC2 error codes with who was at fault; throttling counts as the client's.
      trailErrorCode: (code, status) =>
        `${status >= 500 && code !== "RequestLimitExceeded" ? "Server" : "Client"}.${code}`,
      operations: {
        DescribeInstances: {
          readOnly: true,
          run(ctx) {
            const ids = queryList(ctx.params, "InstanceId");
            const filters = queryFilters(ctx.params);
            ctx.trail.requestParameters = {
              instancesSet: ids.length === 0 ? {} : { items: ids.map((instanceId) => ({ instanceId })) },
              filterSet: trailFilters(filters) ?? {},
            };
            dryRun(ctx, "ec2:DescribeInstances");
            ctx.authorize("ec2:DescribeInstances", "*");
            const limit = maxResults(ctx, 5, 1000);
            if (limit !== undefined && ids.length > 0) {
              throw new ServiceError(
                400,
                "InvalidParameterCombination",
                "The parameter instancesSet cannot be used with the parameter maxResults",
              );
            }
            const malformed = ids.find((id) => !INSTANCE_ID.test(id));
            if (malformed !== undefined)
              throw new ServiceError(
                400,
                "InvalidInstanceID.Malformed",
                `Invalid id: "${malformed.slice(0, 64)}"`,
              );
            let visible = inventory.instances
              .filter((i) => i.account === ctx.caller.accountId && i.region === ctx.region)
              .sort((a, b) => a.id.localeCompare(b.id));
            if (ids.length > 0) {
              const missing = ids.filter((id) => !visible.some((i) => i.id === id));
              if (missing.length > 0) {
                throw new ServiceError(
                  400,
                  "InvalidInstanceID.NotFound",
                  missing.length === 1
                    ? `The instance ID '${missing[0]}' does not exist`
                    : `The instance IDs '${missing.join(", ")}' do not exist`,
                );
              }
              visible = visible.filter((i) => ids.includes(i.id));
            }
            const matched = applyFilters(visible, filters, instanceFields);
            const offset = readPageToken("instances", ctx.params.get("NextToken"));
            const page = limit === undefined ? matched.slice(offset) : matched.slice(offset, offset + limit);
            const next =
              limit !== undefined && offset + limit < matched.length
                ? pageToken("instances", offset + limit)
                : undefined;
            return {
              reservationSet: {
                item: page.map((instance) => ({
                  reservationId: `r-${stableHex(`${instance.id}/reservation`)}`,
                  ownerId: instance.account,
                  groupSet: "",
                  instancesSet: { item: [instanceXml(instance)] },
                })),
              },
              nextToken: next,
            };
          },
        },
        DescribeInstanceConnectEndpoints: {
          readOnly: true,
          run(ctx) {
            const ids = queryList(ctx.params, "InstanceConnectEndpointId");
            const filters = queryFilters(ctx.params);
            ctx.trail.requestParameters = {
              DescribeInstanceConnectEndpointsRequest: {
                ...(ids.length === 0
                  ? {}
                  : { InstanceConnectEndpointId: ids.map((id, i) => ({ tag: i + 1, content: id })) }),
                ...(filters.length === 0
                  ? {}
                  : { Filter: filters.map((f) => ({ Name: f.name, Value: f.values })) }),
              },
            };
            dryRun(ctx, "ec2:DescribeInstanceConnectEndpoints");
            ctx.authorize("ec2:DescribeInstanceConnectEndpoints", "*");
            const limit = maxResults(ctx, 1, 50);
            const malformed = ids.find((id) => !ENDPOINT_ID.test(id));
            if (malformed !== undefined) {
              throw new ServiceError(
                400,
                "InvalidInstanceConnectEndpointId.Malformed",
                `The instance connect endpoint ID '${malformed.slice(0, 64)}' is malformed`,
              );
            }
            let visible = inventory.endpoints
              .filter((e) => e.account === ctx.caller.accountId && e.region === ctx.region)
              .sort((a, b) => a.id.localeCompare(b.id));
            if (ids.length > 0) {
              const missing = ids.filter((id) => !visible.some((e) => e.id === id));
              if (missing.length > 0) {
                throw new ServiceError(
                  400,
                  "InvalidInstanceConnectEndpointId.NotFound",
                  `The instanceConnectEndpoint ID${missing.length === 1 ? "" : "s"} '${missing.join(", ")}' ${missing.length === 1 ? "does" : "do"} not exist`,
                );
              }
              visible = visible.filter((e) => ids.includes(e.id));
            }
            const matched = applyFilters(visible, filters, endpointFields);
            const offset = readPageToken("endpoints", ctx.params.get("NextToken"));
            const size = limit ?? 50;
            const page = matched.slice(offset, offset + size);
            const next = offset + size < matched.length ? pageToken("endpoints", offset + size) : undefined;
            return {
              instanceConnectEndpointSet: { item: page.map(endpointXml) },
              nextToken: next,
            };
          },
        },
      },
    },
    deps,
  );
}
