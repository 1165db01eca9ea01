import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  type CloudTrailClient,
  LookupEventsCommand,
  type LookupEventsCommandInput,
} from "@aws-sdk/client-cloudtrail";
import { DescribeInstancesCommand } from "@aws-sdk/client-ec2";
import { AssumeRoleCommand, GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { RunningEmulator } from "../../local/emulator/server.ts";
import {
  AUDITOR,
  admin,
  assumeRole,
  BROKER,
  BROKER_AUDITOR,
  BROKER_ROLE,
  brokerSession,
  clients,
  MALLORY,
  rejection,
  SIGNER_ROLE,
  startTestEmulator,
  TARGET,
  trail,
} from "./helpers.ts";

let emulator: RunningEmulator;
let url: string;
let receiver: Server;
let received: any[] = [];
let failNext = 0;

beforeAll(async () => {
  // An EventBridge-shaped target that fails the first `failNext` deliveries.
  receiver = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => {
      body += chunk;
    });
    request.on("end", () => {
      if (failNext > 0) {
        failNext--;
        response.writeHead(500).end();
        return;
      }
      received.push(JSON.parse(body));
      response.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const target = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events`;
  emulator = await startTestEmulator({ trailTarget: target });
  url = emulator.url;
});
afterAll(async () => {
  await emulator.close();
  await new Promise((resolve) => receiver.close(resolve));
});
beforeEach(async () => {
  await admin(url, "reset", {});
  received = [];
  failNext = 0;
});

/** LookupEvents as the auditor of 111122223333, first moving emulator time so the 2 TPS bucket refills. */
async function lookup(
  input: LookupEventsCommandInput = {},
  client: CloudTrailClient = clients(url, AUDITOR).cloudtrail,
) {
  await admin(url, "clock", { advanceSeconds: 1 });
  const drift = emulator.core.clock.offsetSeconds * 1000;
  client.config.systemClockOffset = drift;
  return client.send(new LookupEventsCommand(input));
}

describe("records", () => {
  it("shapes userIdentity for an IAM user", async () => {
    await clients(url, BROKER).sts.send(new GetCallerIdentityCommand({}));
    const [event] = await trail(url, "GetCallerIdentity");
    expect(event.userIdentity).toEqual({
      type: "IAMUser",
      principalId: expect.stringMatching(/^AIDA[A-Z2-7]{17}$/),
      arn: "arn:aws:iam::123456789012:user/access-broker",
      accountId: "123456789012",
      accessKeyId: BROKER.accessKeyId,
      userName: "access-broker",
    });
    expect(event).toMatchObject({
      eventVersion: "1.08",
      eventSource: "sts.amazonaws.com",
      eventName: "GetCallerIdentity",
      awsRegion: "us-east-1",
      sourceIPAddress: "127.0.0.1",
      userAgent: expect.stringContaining("aws-sdk-js"),
      requestParameters: null,
      readOnly: true,
      eventType: "AwsApiCall",
      managementEvent: true,
      recipientAccountId: "123456789012",
      eventCategory: "Management",
      tlsDetails: { clientProvidedHostHeader: new URL(url).host },
    });
    expect(event.eventID).toMatch(/^[0-9a-f-]{36}$/);
    expect(event.requestID).toMatch(/^[0-9a-f-]{36}$/);
    expect(event.eventTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it("shapes userIdentity for a role session with a source identity, and logs AssumeRole in both accounts", async () => {
    const broker = await brokerSession(url, "broker-1");
    const signer = await assumeRole(url, broker, {
      RoleArn: SIGNER_ROLE,
      RoleSessionName: "grant-42",
      SourceIdentity: "alice",
    });
    await clients(url, signer).sts.send(new GetCallerIdentityCommand({}));
    const [call] = await trail(url, "GetCallerIdentity");
    const roleId = emulator.core.iam.roleByArn(SIGNER_ROLE)?.id;
    expect(call.userIdentity).toEqual({
      type: "AssumedRole",
      principalId: `${roleId}:grant-42`,
      arn: `arn:aws:sts::${TARGET}:assumed-role/access-broker-tunnel-signer/grant-42`,
      accountId: TARGET,
      accessKeyId: signer.accessKeyId,
      sessionContext: {
        sessionIssuer: {
          type: "Role",
          principalId: roleId,
          arn: SIGNER_ROLE,
          accountId: TARGET,
          userName: "access-broker-tunnel-signer",
        },
        webIdFederationData: {},
        attributes: { creationDate: expect.stringMatching(/Z$/), mfaAuthenticated: "false" },
        sourceIdentity: "alice",
      },
    });

    const assumes = await trail(url, "AssumeRole");
    // user → broker role: cross-account, so logged in 123456789012 and 111122223333 with one sharedEventID.
    const first = assumes.filter((e) => e.requestParameters.roleArn === BROKER_ROLE);
    expect(first.map((e) => e.recipientAccountId).sort()).toEqual(["111122223333", "123456789012"]);
    expect(first[0].sharedEventID).toBeDefined();
    expect(first[0].sharedEventID).toBe(first[1].sharedEventID);
    expect(first[0].eventID).not.toBe(first[1].eventID);
    const second = assumes.filter((e) => e.requestParameters.roleArn === SIGNER_ROLE);
    expect(second).toHaveLength(1);
    expect(second[0]).toMatchObject({
      requestParameters: { roleArn: SIGNER_ROLE, roleSessionName: "grant-42", sourceIdentity: "alice" },
      responseElements: {
        credentials: { accessKeyId: signer.accessKeyId },
        assumedRoleUser: { assumedRoleId: `${roleId}:grant-42`, arn: call.userIdentity.arn },
        sourceIdentity: "alice",
      },
      resources: [{ accountId: TARGET, type: "AWS::IAM::Role", ARN: SIGNER_ROLE }],
      userIdentity: {
        type: "AssumedRole",
        arn: `arn:aws:sts::${TARGET}:assumed-role/access-broker/broker-1`,
      },
    });
  });

  it("records denials with errorCode and errorMessage and no responseElements", async () => {
    await rejection(
      clients(url, MALLORY).sts.send(
        new AssumeRoleCommand({ RoleArn: BROKER_ROLE, RoleSessionName: "sneaky" }),
      ),
    );
    const events = await trail(url, "AssumeRole");
    expect(events).toHaveLength(2);
    for (const event of events) {
      expect(event.errorCode).toBe("AccessDenied");
      expect(event.errorMessage).toMatch(/mallory is not authorized to perform: sts:AssumeRole/);
      expect(event.responseElements).toBeNull();
    }
  });

  it("delivers EC2 Instance Connect events to the EventBridge-shaped target, retrying failures", async () => {
    failNext = 1;
    const caller = emulator.core.iam.caller(BROKER.accessKeyId);
    emulator.core.recordTrail({
      eventSource: "ec2-instance-connect.amazonaws.com",
      eventName: "OpenTunnel",
      region: "us-east-1",
      accountId: TARGET,
      caller,
      sourceIPAddress: "127.0.0.1",
      requestParameters: { instanceConnectEndpointId: "eice-0demo00000000001", remotePort: "22" },
      responseElements: null,
      requestId: "req-1",
      resources: [
        {
          accountId: TARGET,
          type: "AWS::EC2::InstanceConnectEndpoint",
          ARN: `arn:aws:ec2:us-east-1:${TARGET}:instance-connect-endpoint/eice-0demo00000000001`,
        },
      ],
      readOnly: false,
      host: "eice-0demo00000000001.ec2-instance-connect-endpoint.us-east-1.amazonaws.com",
    });
    // Other services' events are not delivered.
    await clients(url, BROKER).sts.send(new GetCallerIdentityCommand({}));
    await expect.poll(() => received.length, { timeout: 3000 }).toBe(1);
    const [envelope] = received;
    const [record] = await trail(url, "OpenTunnel");
    expect(envelope).toEqual({
      version: "0",
      id: expect.any(String),
      "detail-type": "AWS API Call via CloudTrail",
      source: "aws.ec2-instance-connect",
      account: TARGET,
      time: record.eventTime,
      region: "us-east-1",
      resources: [`arn:aws:ec2:us-east-1:${TARGET}:instance-connect-endpoint/eice-0demo00000000001`],
      detail: record,
    });
    expect(record.tlsDetails.clientProvidedHostHeader).toMatch(/ec2-instance-connect-endpoint/);
    expect(emulator.core.trail.delivery).toEqual({ delivered: 1, failed: 0 });
  });
});

describe("LookupEvents", () => {
  it("pages newest first with a NextToken bound to its parameters", async () => {
    const ec2 = clients(url, await brokerSession(url)).ec2;
    for (let i = 0; i < 7; i++) {
      await admin(url, "clock", { advanceSeconds: 1 });
      ec2.config.systemClockOffset = emulator.core.clock.offsetSeconds * 1000;
      await ec2.send(new DescribeInstancesCommand({}));
    }
    const attributes = [{ AttributeKey: "EventName" as const, AttributeValue: "DescribeInstances" }];
    const seen: string[] = [];
    const times: number[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await lookup({
        LookupAttributes: attributes,
        MaxResults: 3,
        ...(token ? { NextToken: token } : {}),
      });
      pages++;
      for (const event of page.Events ?? []) {
        seen.push(event.EventId ?? "");
        times.push(event.EventTime?.getTime() ?? 0);
        expect(event.EventName).toBe("DescribeInstances");
        expect(event.Username).toBe("broker");
        expect(event.ReadOnly).toBe("true");
        expect(JSON.parse(event.CloudTrailEvent ?? "{}").eventID).toBe(event.EventId);
      }
      token = page.NextToken;
      // New events arriving between pages must not disturb the listing.
      await ec2.send(new DescribeInstancesCommand({}));
    } while (token);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(7);
    expect(new Set(seen).size).toBe(7);
    expect([...times].sort((a, b) => b - a)).toEqual(times);

    const first = await lookup({ LookupAttributes: attributes, MaxResults: 1 });
    const error = await rejection(
      lookup({
        LookupAttributes: [{ AttributeKey: "EventName", AttributeValue: "AssumeRole" }],
        NextToken: first.NextToken,
      }),
    );
    expect(error.name).toBe("InvalidNextTokenException");
    expect((await rejection(lookup({ NextToken: "not-a-token" }))).name).toBe("InvalidNextTokenException");
  });

  it("filters by one attribute and an inclusive time range, within the caller's account and region", async () => {
    const broker = await brokerSession(url, "filters");
    const start = emulator.core.now();
    await admin(url, "clock", { advanceSeconds: 60 });
    const ec2 = clients(url, broker).ec2;
    ec2.config.systemClockOffset = emulator.core.clock.offsetSeconds * 1000;
    await ec2.send(new DescribeInstancesCommand({}));
    const [event] = await trail(url, "DescribeInstances");
    const at = new Date(event.eventTime);

    const byKey = await lookup({
      LookupAttributes: [{ AttributeKey: "AccessKeyId", AttributeValue: broker.accessKeyId }],
    });
    expect(byKey.Events?.map((e) => e.EventName)).toEqual(["DescribeInstances"]);
    const byUser = await lookup({
      LookupAttributes: [{ AttributeKey: "Username", AttributeValue: "filters" }],
    });
    expect(byUser.Events).toHaveLength(1);
    const bySource = await lookup({
      LookupAttributes: [{ AttributeKey: "EventSource", AttributeValue: "sts.amazonaws.com" }],
    });
    expect(bySource.Events?.map((e) => e.EventName)).toEqual(["AssumeRole"]);
    const byResource = await lookup({
      LookupAttributes: [{ AttributeKey: "ResourceName", AttributeValue: BROKER_ROLE }],
    });
    expect(byResource.Events?.[0]?.Resources).toEqual([
      { ResourceType: "AWS::IAM::Role", ResourceName: "access-broker" },
    ]);

    const name = [{ AttributeKey: "EventName" as const, AttributeValue: "DescribeInstances" }];
    expect((await lookup({ LookupAttributes: name, StartTime: at, EndTime: at })).Events).toHaveLength(1);
    expect(
      (await lookup({ LookupAttributes: name, StartTime: start, EndTime: new Date(at.getTime() - 1000) }))
        .Events,
    ).toEqual([]);
    expect(
      (await lookup({ LookupAttributes: name, StartTime: new Date(at.getTime() + 1000) })).Events,
    ).toEqual([]);

    // The broker account's auditor sees its half of the cross-account AssumeRole, nothing of 111122223333's EC2.
    const other = await lookup({}, clients(url, BROKER_AUDITOR).cloudtrail);
    const names = other.Events?.map((e) => e.EventName) ?? [];
    expect(names).toContain("AssumeRole");
    expect(names).not.toContain("DescribeInstances");
    // Another region of the same account: nothing.
    expect((await lookup({}, clients(url, AUDITOR, "eu-west-1").cloudtrail)).Events).toEqual([]);
  });

  it.each([
    [
      "two lookup attributes",
      {
        LookupAttributes: [
          { AttributeKey: "EventName" as const, AttributeValue: "a" },
          { AttributeKey: "ReadOnly" as const, AttributeValue: "true" },
        ],
      },
      "InvalidLookupAttributesException",
    ],
    [
      "an unknown attribute",
      { LookupAttributes: [{ AttributeKey: "Colour" as any, AttributeValue: "red" }] },
      "InvalidLookupAttributesException",
    ],
    [
      "a start after the end",
      { StartTime: new Date(2_000_000_000_000), EndTime: new Date(1_000_000_000_000) },
      "InvalidTimeRangeException",
    ],
    ["MaxResults 51", { MaxResults: 51 }, "InvalidMaxResultsException"],
    ["MaxResults 0", { MaxResults: 0 }, "InvalidMaxResultsException"],
    ["an unknown category", { EventCategory: "data" as any }, "InvalidEventCategoryException"],
  ])("refuses %s", async (_label, input, name) => {
    const error = await rejection(lookup(input as LookupEventsCommandInput));
    expect(error.name).toBe(name);
  });

  it("throttles above 2 calls per second per account and region (HTTP 400 ThrottlingException)", async () => {
    await admin(url, "clock", { advanceSeconds: 5 });
    const cloudtrail = clients(url, AUDITOR).cloudtrail;
    cloudtrail.config.systemClockOffset = emulator.core.clock.offsetSeconds * 1000;
    const results = await Promise.allSettled(
      [0, 1, 2, 3].map(() => cloudtrail.send(new LookupEventsCommand({}))),
    );
    const throttled = results.filter((r) => r.status === "rejected");
    expect(results.filter((r) => r.status === "fulfilled").length).toBeLessThanOrEqual(2);
    expect(throttled.length).toBeGreaterThanOrEqual(2);
    const error = (throttled[0] as PromiseRejectedResult).reason;
    expect(error.name).toBe("ThrottlingException");
    expect(error.$metadata.httpStatusCode).toBe(400);
    // Another region has its own bucket.
    const eu = clients(url, AUDITOR, "eu-west-1").cloudtrail;
    eu.config.systemClockOffset = cloudtrail.config.systemClockOffset;
    await eu.send(new LookupEventsCommand({}));
    // A second of emulator time later, the bucket has refilled.
    await admin(url, "clock", { advanceSeconds: 1 });
    await cloudtrail.send(new LookupEventsCommand({}));
  });

  it("requires cloudtrail:LookupEvents", async () => {
    const error = await rejection(lookup({}, clients(url, MALLORY).cloudtrail));
    expect(error.name).toBe("AccessDeniedException");
  });
});
