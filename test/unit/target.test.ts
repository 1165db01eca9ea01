import { describe, expect, it } from "vitest";
import { parseConfig } from "../../core/policy/yaml.ts";
import * as Target from "../../core/target/index.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";

const endpoint = (overrides: Partial<Target.Endpoint> = {}): Target.Endpoint => ({
  endpointId: "eice-0aaaa00000000001",
  dnsName: "eice-0aaaa00000000001.ec2-instance-connect-endpoint.us-east-1.amazonaws.com",
  vpcId: "vpc-1",
  subnetId: "subnet-b",
  state: "create-complete",
  ...overrides,
});

const instance = (overrides: Partial<Target.Instance> = {}): Target.Instance => ({
  instanceId: "i-0a1b2c3d4e5f60718",
  account: "111122223333",
  region: "us-east-1",
  tags: {},
  state: "running",
  vpcId: "vpc-1",
  subnetId: "subnet-a",
  privateIp: "10.0.1.10",
  ...overrides,
});

describe("route() follows `aws ec2-instance-connect ssh --connection-type auto`", () => {
  it("goes direct to the public IPv4 when there is one, even with an endpoint in the VPC", () => {
    expect(Target.route(instance({ publicIp: "203.0.113.25" }), [endpoint()])).toEqual({
      type: "direct",
      host: "203.0.113.25",
    });
  });

  it("tunnels to the private IPv4 through EICE when there is no public IPv4", () => {
    expect(Target.route(instance({ ipv6: "2001:db8::1" }), [endpoint()])).toEqual({
      type: "eice",
      endpointId: "eice-0aaaa00000000001",
      dnsName: "eice-0aaaa00000000001.ec2-instance-connect-endpoint.us-east-1.amazonaws.com",
      ip: "10.0.1.10",
    });
  });

  it("prefers an endpoint in the instance's subnet, else takes the first one in its VPC", () => {
    const other = endpoint({ endpointId: "eice-0other", subnetId: "subnet-b" });
    const same = endpoint({ endpointId: "eice-0same", subnetId: "subnet-a" });
    expect(Target.route(instance(), [other, same])).toMatchObject({ endpointId: "eice-0same" });
    const second = endpoint({ endpointId: "eice-0second", subnetId: "subnet-c" });
    expect(Target.route(instance(), [other, second])).toMatchObject({ endpointId: "eice-0other" });
  });

  it("ignores endpoints of other VPCs and in states the CLI does not accept", () => {
    const elsewhere = endpoint({ endpointId: "eice-0elsewhere", vpcId: "vpc-2", subnetId: "subnet-a" });
    const creating = endpoint({
      endpointId: "eice-0creating",
      state: "create-in-progress",
      subnetId: "subnet-a",
    });
    const failed = endpoint({ endpointId: "eice-0failed", state: "create-failed" });
    expect(Target.route(instance(), [elsewhere, creating, failed])).toBeUndefined();
    for (const state of Target.USABLE_ENDPOINT_STATES) {
      expect(Target.route(instance(), [endpoint({ state })])).toMatchObject({ type: "eice" });
    }
  });

  it("goes direct to the IPv6 address of an IPv6-only instance", () => {
    expect(Target.route(instance({ privateIp: undefined, ipv6: "2001:db8::1" }), [])).toEqual({
      type: "direct",
      host: "2001:db8::1",
    });
  });

  it("finds no route for a private-only instance without a usable endpoint", () => {
    expect(Target.route(instance(), [])).toBeUndefined();
    expect(Target.route(instance({ privateIp: undefined }), [endpoint()])).toBeUndefined();
  });
});

describe("eiceRoute() for tunnels and RDP", () => {
  it("always tunnels, to the private IPv4, else the IPv6", () => {
    expect(Target.eiceRoute(instance({ publicIp: "203.0.113.25" }), [endpoint()])).toMatchObject({
      type: "eice",
      ip: "10.0.1.10",
    });
    expect(
      Target.eiceRoute(instance({ privateIp: undefined, ipv6: "2001:db8::1" }), [endpoint()]),
    ).toMatchObject({
      type: "eice",
      ip: "2001:db8::1",
    });
    expect(Target.eiceRoute(instance(), [])).toBeUndefined();
  });
});

describe("snapshot() taken when a request is made", () => {
  const resolver = (endpoints: Target.Endpoint[]): Target.Resolver => ({
    describe: async () => undefined,
    endpoints: async () => endpoints,
  });
  const at = new Date("2026-11-21T10:00:00.000Z");

  it("records network facts and the route", async () => {
    const network = await Target.snapshot(resolver([endpoint()]), instance(), "ssh", at);
    expect(network).toEqual({
      vpcId: "vpc-1",
      subnetId: "subnet-a",
      privateIp: "10.0.1.10",
      route: expect.objectContaining({ type: "eice", ip: "10.0.1.10" }),
      resolvedAt: at.toISOString(),
    });
  });

  it("refuses a stopped instance with a 409", async () => {
    await expect(
      Target.snapshot(resolver([]), instance({ state: "stopped" }), "ssh", at),
    ).rejects.toMatchObject({
      kind: "conflict",
      code: "target.not_running",
    });
  });

  it("refuses a tunnel to an instance whose VPC has no endpoint, even with a public IP", async () => {
    await expect(
      Target.snapshot(resolver([]), instance({ publicIp: "203.0.113.25" }), "tunnel", at),
    ).rejects.toMatchObject({ kind: "conflict", code: "target.unreachable" });
  });

  it("does not look endpoints up for ssh to a public instance", async () => {
    let asked = false;
    const network = await Target.snapshot(
      {
        describe: async () => undefined,
        endpoints: async () => {
          asked = true;
          return [];
        },
      },
      instance({ publicIp: "203.0.113.25" }),
      "ssh",
      at,
    );
    expect(network?.route).toEqual({ type: "direct", host: "203.0.113.25" });
    expect(asked).toBe(false);
  });
});

describe("scopesOf() — where the policy expects an instance", () => {
  const config = parseConfig(DEMO_CONFIG_TEXT);

  it("names the targets that list the instance, then every tag-selector target, each account/region once", () => {
    expect(Target.scopesOf(config, "i-0a1b2c3d4e5f60718")).toEqual({
      listed: [{ account: "111122223333", region: "us-east-1" }],
      tagged: [{ account: "444455556666", region: "eu-west-1" }],
    });
    expect(Target.scopesOf(config, "i-0fedcba9876543210")).toEqual({
      listed: [{ account: "444455556666", region: "eu-west-1" }],
      tagged: [],
    });
    expect(Target.scopesOf(config, "i-0123456789abcdef0")).toEqual({
      listed: [],
      tagged: [{ account: "444455556666", region: "eu-west-1" }],
    });
  });
});
