import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { fromAthenaRow, literal, periodSql, tableDdl } from "../../core/trail/athena.ts";
import * as Trail from "../../core/trail/index.ts";

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../fixtures/cloudtrail/${name}`, import.meta.url), "utf8"));

describe("Athena SQL for a period", () => {
  it("reads only the period's day partitions, the listed accounts and regions, and EC2 Instance Connect events", () => {
    const sql = periodSql({
      database: "access_broker",
      table: "cloudtrail",
      from: "2024-05-01T10:00:00Z",
      to: "2024-05-03T00:00:00+02:00",
      accounts: ["111122223333", "444455556666"],
      regions: ["us-east-1"],
    });
    expect(sql).toBe(
      [
        "SELECT",
        "  eventid, eventtime, eventsource, eventname, awsregion, recipientaccountid,",
        "  sourceipaddress, useragent, errorcode, errormessage, requestid,",
        "  json_format(CAST(useridentity AS JSON)) AS useridentity,",
        "  requestparameters, responseelements",
        'FROM "access_broker"."cloudtrail"',
        `WHERE "timestamp" BETWEEN '2024/05/01' AND '2024/05/02'`,
        "  AND account IN ('111122223333', '444455556666')",
        "  AND region IN ('us-east-1')",
        "  AND eventsource = 'ec2-instance-connect.amazonaws.com'",
        "  AND eventname IN ('SendSSHPublicKey', 'SendSerialConsoleSSHPublicKey', 'OpenTunnel')",
        "  AND eventtime >= '2024-05-01T10:00:00Z'",
        "  AND eventtime < '2024-05-02T22:00:00Z'",
        "ORDER BY eventtime",
      ].join("\n"),
    );
    // The last day partition reaches past `to` by the delivery slack.
    expect(
      periodSql({ database: "d", table: "t", from: "2024-05-01T00:00:00Z", to: "2024-05-01T23:30:00Z" }),
    ).toContain(`BETWEEN '2024/05/01' AND '2024/05/02'`);
  });

  it("refuses anything that is not a plain identifier, account, region or time", () => {
    const base = { database: "d", table: "t", from: "2024-05-01T00:00:00Z", to: "2024-05-02T00:00:00Z" };
    const refusal = (input: Parameters<typeof periodSql>[0]) => {
      try {
        periodSql(input);
      } catch (error) {
        return JSON.stringify((error as { details?: unknown }).details);
      }
      return "accepted";
    };
    expect(refusal({ ...base, table: 't"; DROP TABLE x; --' })).toMatch(/identifier/);
    expect(refusal({ ...base, accounts: ["1111' OR '1'='1"] })).toMatch(/12-digit/);
    expect(refusal({ ...base, regions: ["us-east-1') --"] })).toMatch(/region/);
    expect(refusal({ ...base, from: "yesterday" })).not.toBe("accepted");
    expect(refusal({ ...base, from: base.to, to: base.from })).toMatch(/before/);
    expect(refusal({ ...base, from: "2020-01-01T00:00:00Z" })).toMatch(/400 days/);
    expect(literal("it's")).toBe("'it''s'");
    expect(() => literal("a\nb")).toThrow();
  });

  it("defines the table with partition projection over the CloudTrail key layout", () => {
    const ddl = tableDdl({
      database: "access_broker",
      table: "cloudtrail",
      logsLocation: "s3://org-trail-bucket/AWSLogs/o-abcdefghij/",
      accounts: ["111122223333"],
      regions: ["us-east-1", "eu-west-1"],
      since: "2024/01/01",
    });
    expect(ddl).toContain('PARTITIONED BY (account STRING, region STRING, "timestamp" STRING)');
    expect(ddl).toContain("'projection.region.values' = 'us-east-1,eu-west-1'");
    expect(ddl).toContain("'projection.timestamp.range' = '2024/01/01,NOW'");
    expect(ddl).toContain(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Athena's projection placeholders, not JavaScript.
      "'storage.location.template' = 's3://org-trail-bucket/AWSLogs/o-abcdefghij/${account}/CloudTrail/${region}/${timestamp}'",
    );
    expect(() =>
      tableDdl({
        database: "d",
        table: "t",
        logsLocation: "s3://b/x'/AWSLogs/",
        accounts: ["111122223333"],
        regions: ["us-east-1"],
        since: "2024/01/01",
      }),
    ).toThrow();
  });

  it("turns a result row back into a record the ingest understands", () => {
    const record = fixture("tunnel-brokered.json");
    const row = {
      eventid: record.eventID,
      eventtime: record.eventTime,
      eventsource: record.eventSource,
      eventname: record.eventName,
      awsregion: record.awsRegion,
      recipientaccountid: record.recipientAccountId,
      sourceipaddress: record.sourceIPAddress,
      useragent: record.userAgent,
      errorcode: "",
      errormessage: "",
      requestid: record.requestID,
      // Athena lower-cases struct fields.
      useridentity: JSON.stringify({
        type: "AssumedRole",
        principalid: record.userIdentity.principalId,
        arn: record.userIdentity.arn,
        accountid: record.userIdentity.accountId,
        sessioncontext: {
          sessionissuer: { arn: record.userIdentity.sessionContext.sessionIssuer.arn },
          sourceidentity: "alice@example.com",
        },
      }),
      requestparameters: JSON.stringify(record.requestParameters),
      responseelements: "",
    };
    const event = Trail.normalize(fromAthenaRow(row));
    expect(event).toMatchObject({
      kind: "tunnel",
      eventId: record.eventID,
      maxTunnelDuration: 1200,
      identity: {
        sessionName: "grant-gr_01hzx3k4m5n6p7q8r9s0t1v2x3",
        sourceIdentity: "alice@example.com",
        principalArn: "arn:aws:iam::111122223333:role/access-broker-tunnel-signer",
      },
    });
  });
});
