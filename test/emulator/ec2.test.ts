import {
  DescribeInstanceConnectEndpointsCommand,
  DescribeInstancesCommand,
  type EC2Client,
  paginateDescribeInstanceConnectEndpoints,
  paginateDescribeInstances,
} from "@aws-sdk/client-ec2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningEmulator } from "../../local/emulator/server.ts";
import { startEmulator } from "../../local/emulator/server.ts";
import {
  assumeRole,
  BROKER,
  brokerSession,
  clients,
  MALLORY,
  rejection,
  testInventory,
  trail,
} from "./helpers.ts";

const USABLE_STATES = ["create-complete", "update-in-progress", "update-complete", "update-failed"];

let emulator: RunningEmulator;
let ec2: EC2Client;

beforeAll(async () => {
  emulator = await startEmulator({
    inventory: testInventory((document) => {
      // More of the same, for paging: 6 extra instances and 2 extra endpoints in 111122223333/us-east-1.
      for (let i = 1; i <= 6; i++) {
        document.instances.push({
          id: `i-0aaaaaaaaaaaaaaa${i}`,
          account: "111122223333",
          region: "us-east-1",
          availabilityZone: "us-east-1c",
          vpcId: "vpc-0page0000000001",
          subnetId: "subnet-0page00000001c",
          privateIp: `10.9.0.${i}`,
          tags: { Name: `page-${i}` },
        });
      }
      document.endpoints.push(
        {
          id: "eice-0page00000000001",
          account: "111122223333",
          region: "us-east-1",
          vpcId: "vpc-0page0000000001",
          subnetId: "subnet-0page00000001c",
          tags: { team: "paging" },
        },
        {
          id: "eice-0gone00000000001",
          account: "111122223333",
          region: "us-east-1",
          vpcId: "vpc-0gone0000000001",
          subnetId: "subnet-0gone00000001a",
          state: "delete-complete",
        },
      );
    }),
  });
  ec2 = clients(emulator.url, await brokerSession(emulator.url)).ec2;
});
afterAll(() => emulator.close());

const ids = (result: { Reservations?: { Instances?: { InstanceId?: string }[] }[] }) =>
  (result.Reservations ?? []).flatMap((r) => (r.Instances ?? []).map((i) => i.InstanceId)).sort();

describe("DescribeInstances", () => {
  it("returns the inventory's instances in the SDK's shapes", async () => {
    const result = await ec2.send(new DescribeInstancesCommand({ InstanceIds: ["i-0a1b2c3d4e5f60718"] }));
    expect(result.Reservations).toHaveLength(1);
    const reservation = result.Reservations?.[0];
    expect(reservation?.OwnerId).toBe("111122223333");
    expect(reservation?.ReservationId).toMatch(/^r-[0-9a-f]{17}$/);
    const instance = reservation?.Instances?.[0];
    expect(instance).toMatchObject({
      InstanceId: "i-0a1b2c3d4e5f60718",
      State: { Code: 16, Name: "running" },
      PrivateIpAddress: "10.0.1.10",
      VpcId: "vpc-0demo0000000001",
      SubnetId: "subnet-0demo000000001a",
      Placement: { AvailabilityZone: "us-east-1a", Tenancy: "default" },
      PlatformDetails: "Linux/UNIX",
      PrivateDnsName: "ip-10-0-1-10.ec2.internal",
    });
    expect(instance?.Platform).toBeUndefined();
    expect(instance?.PublicIpAddress).toBeUndefined();
    expect(instance?.LaunchTime).toBeInstanceOf(Date);
    expect(instance?.Tags).toEqual(
      expect.arrayContaining([
        { Key: "Name", Value: "demo" },
        { Key: "env", Value: "demo" },
      ]),
    );
    expect(instance?.NetworkInterfaces?.[0]?.PrivateIpAddress).toBe("10.0.1.10");
  });

  it("shows a public instance of another account and region only to that account, in that region", async () => {
    const staging = await assumeRole(
      emulator.url,
      BROKER,
      { RoleArn: "arn:aws:iam::444455556666:role/access-broker" },
      "eu-west-1",
    );
    const eu = clients(emulator.url, staging, "eu-west-1").ec2;
    const result = await eu.send(new DescribeInstancesCommand({}));
    expect(ids(result)).toEqual(["i-0fedcba9876543210"]);
    const instance = result.Reservations?.[0]?.Instances?.[0];
    expect(instance?.PublicIpAddress).toBe("203.0.113.25");
    expect(instance?.PublicDnsName).toBe("ec2-203-0-113-25.eu-west-1.compute.amazonaws.com");
    // Same account, other region: nothing.
    const us = clients(emulator.url, staging, "us-east-1").ec2;
    expect(ids(await us.send(new DescribeInstancesCommand({})))).toEqual([]);
    // Other account, by id: it does not exist for them.
    const error = await rejection(
      ec2.send(new DescribeInstancesCommand({ InstanceIds: ["i-0fedcba9876543210"] })),
    );
    expect(error.name).toBe("InvalidInstanceID.NotFound");
  });

  it.each([
    [[{ Name: "instance-id", Values: ["i-0c0ffee0c0ffee0ee"] }], ["i-0c0ffee0c0ffee0ee"]],
    [[{ Name: "tag:env", Values: ["demo"] }], ["i-0a1b2c3d4e5f60718", "i-0c0ffee0c0ffee0ee"]],
    [[{ Name: "tag:Name", Values: ["demo*"] }], ["i-0a1b2c3d4e5f60718", "i-0c0ffee0c0ffee0ee"]],
    [[{ Name: "instance-state-name", Values: ["stopped"] }], ["i-0deadbeef00000005"]],
    [
      [
        { Name: "vpc-id", Values: ["vpc-0demo0000000001"] },
        { Name: "instance-state-name", Values: ["running"] },
      ],
      ["i-0a1b2c3d4e5f60718", "i-0c0ffee0c0ffee0ee"],
    ],
    [[{ Name: "tag:Name", Values: ["stopped", "page-1"] }], ["i-0aaaaaaaaaaaaaaa1", "i-0deadbeef00000005"]],
    [[{ Name: "tag:missing", Values: ["*"] }], []],
  ])("filters by %j", async (Filters, expected) => {
    expect(ids(await ec2.send(new DescribeInstancesCommand({ Filters })))).toEqual(expected);
  });

  it("answers EC2's errors for bad ids, filters and paging", async () => {
    const notFound = await rejection(
      ec2.send(new DescribeInstancesCommand({ InstanceIds: ["i-0123456789abcdef0"] })),
    );
    expect(notFound.name).toBe("InvalidInstanceID.NotFound");
    expect(notFound.message).toBe("The instance ID 'i-0123456789abcdef0' does not exist");
    expect(notFound.$metadata.httpStatusCode).toBe(400);
    const malformed = await rejection(ec2.send(new DescribeInstancesCommand({ InstanceIds: ["i-xyz"] })));
    expect(malformed.name).toBe("InvalidInstanceID.Malformed");
    const filter = await rejection(
      ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: "colour", Values: ["red"] }] })),
    );
    expect(filter.name).toBe("InvalidParameterValue");
    const token = await rejection(
      ec2.send(new DescribeInstancesCommand({ MaxResults: 5, NextToken: "garbage" })),
    );
    expect(token.name).toBe("InvalidPaginationToken");
    const dry = await rejection(ec2.send(new DescribeInstancesCommand({ DryRun: true })));
    expect(dry.name).toBe("DryRunOperation");
  });

  it("pages with MaxResults/NextToken", async () => {
    const pages: string[][] = [];
    for await (const page of paginateDescribeInstances({ client: ec2, pageSize: 5 }, {}))
      pages.push(ids(page) as string[]);
    expect(pages.map((p) => p.length)).toEqual([5, 4]);
    expect(new Set(pages.flat()).size).toBe(9);
  });

  it("is authorized: principals without ec2:DescribeInstances are refused and the refusal is logged", async () => {
    const error = await rejection(clients(emulator.url, MALLORY).ec2.send(new DescribeInstancesCommand({})));
    expect(error.name).toBe("UnauthorizedOperation");
    expect(error.$metadata.httpStatusCode).toBe(403);
    expect(error.message).toMatch(
      /arn:aws:iam::123456789012:user\/mallory is not authorized to perform: ec2:DescribeInstances/,
    );
    const events = await trail(emulator.url, "DescribeInstances");
    const denied = events.find((e) => e.userIdentity.userName === "mallory");
    expect(denied).toMatchObject({
      errorCode: "Client.UnauthorizedOperation",
      eventSource: "ec2.amazonaws.com",
      recipientAccountId: "123456789012",
      readOnly: true,
      responseElements: null,
    });
  });
});

describe("DescribeInstanceConnectEndpoints", () => {
  it("returns endpoints with the computed DNS names and ARN", async () => {
    const result = await ec2.send(
      new DescribeInstanceConnectEndpointsCommand({ InstanceConnectEndpointIds: ["eice-0demo00000000001"] }),
    );
    expect(result.InstanceConnectEndpoints).toHaveLength(1);
    const endpoint = result.InstanceConnectEndpoints?.[0];
    expect(endpoint).toMatchObject({
      OwnerId: "111122223333",
      InstanceConnectEndpointId: "eice-0demo00000000001",
      InstanceConnectEndpointArn:
        "arn:aws:ec2:us-east-1:111122223333:instance-connect-endpoint/eice-0demo00000000001",
      State: "create-complete",
      DnsName: "eice-0demo00000000001.ec2-instance-connect-endpoint.us-east-1.amazonaws.com",
      FipsDnsName: "eice-0demo00000000001.fips.ec2-instance-connect-endpoint.us-east-1.amazonaws.com",
      VpcId: "vpc-0demo0000000001",
      SubnetId: "subnet-0demo000000001a",
      AvailabilityZone: "us-east-1a",
      PreserveClientIp: false,
      IpAddressType: "ipv4",
    });
    expect(endpoint?.NetworkInterfaceIds?.[0]).toMatch(/^eni-[0-9a-f]{17}$/);
    expect(endpoint?.CreatedAt).toBeInstanceOf(Date);
  });

  it("filters like the AWS CLI does when it looks for an endpoint in the instance's VPC", async () => {
    const byVpc = await ec2.send(
      new DescribeInstanceConnectEndpointsCommand({
        Filters: [
          { Name: "state", Values: USABLE_STATES },
          { Name: "vpc-id", Values: ["vpc-0demo0000000001"] },
        ],
      }),
    );
    expect(byVpc.InstanceConnectEndpoints?.map((e) => e.InstanceConnectEndpointId)).toEqual([
      "eice-0demo00000000001",
    ]);
    const usable = await ec2.send(
      new DescribeInstanceConnectEndpointsCommand({ Filters: [{ Name: "state", Values: USABLE_STATES }] }),
    );
    expect(usable.InstanceConnectEndpoints?.map((e) => e.InstanceConnectEndpointId)).toEqual([
      "eice-0demo00000000001",
      "eice-0page00000000001",
    ]);
    const bySubnetAndTag = await ec2.send(
      new DescribeInstanceConnectEndpointsCommand({
        Filters: [
          { Name: "subnet-id", Values: ["subnet-0page00000001c"] },
          { Name: "tag:team", Values: ["paging"] },
        ],
      }),
    );
    expect(bySubnetAndTag.InstanceConnectEndpoints?.map((e) => e.InstanceConnectEndpointId)).toEqual([
      "eice-0page00000000001",
    ]);
  });

  it("pages with MaxResults 1..50", async () => {
    const seen: string[] = [];
    for await (const page of paginateDescribeInstanceConnectEndpoints({ client: ec2, pageSize: 1 }, {})) {
      expect(page.InstanceConnectEndpoints?.length).toBe(1);
      seen.push(page.InstanceConnectEndpoints?.[0]?.InstanceConnectEndpointId ?? "");
    }
    expect(seen).toEqual(["eice-0demo00000000001", "eice-0gone00000000001", "eice-0page00000000001"]);
    const tooMany = await rejection(
      ec2.send(new DescribeInstanceConnectEndpointsCommand({ MaxResults: 51 })),
    );
    expect(tooMany.name).toBe("InvalidParameterValue");
  });

  it("answers NotFound and Malformed ids, and hides other accounts' endpoints", async () => {
    const missing = await rejection(
      ec2.send(
        new DescribeInstanceConnectEndpointsCommand({
          InstanceConnectEndpointIds: ["eice-0stag00000000001"],
        }),
      ),
    );
    expect(missing.name).toBe("InvalidInstanceConnectEndpointId.NotFound");
    const malformed = await rejection(
      ec2.send(new DescribeInstanceConnectEndpointsCommand({ InstanceConnectEndpointIds: ["endpoint-1"] })),
    );
    expect(malformed.name).toBe("InvalidInstanceConnectEndpointId.Malformed");
    const eu = clients(emulator.url, await brokerSession(emulator.url), "eu-west-1").ec2;
    expect((await eu.send(new DescribeInstanceConnectEndpointsCommand({}))).InstanceConnectEndpoints).toEqual(
      [],
    );
  });
});
