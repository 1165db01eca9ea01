import { assumeBrokerRoles, shared, tablePermissions } from "./functions";

// CloudTrail → the broker's one trail ingest (README § Architecture, "Audit truth"). Three sources:
//   1. EventBridge: "AWS API Call via CloudTrail" events of ec2-instance-connect, near real time;
//   2. a scheduled LookupEvents backfill per account and region of the policy (catches what EventBridge
//      dropped: delivery is best effort);
//   3. the CloudTrail bucket's new log files (S3 "Object Created" through EventBridge), and Athena over the
//      whole bucket for history at organization scale.
// Deploy-time settings (environment of `npm run deploy`), all optional:
//   ACCESS_ORGANIZATION_ID     o-…: accept events forwarded from every account of the organization
//   ACCESS_CLOUDTRAIL_BUCKET   the (organization) trail's bucket: import new log files, Athena table over it
//   ACCESS_CLOUDTRAIL_PREFIX   the trail's S3 key prefix, if any
//   ACCESS_TRAIL_ACCOUNTS / ACCESS_TRAIL_REGIONS   comma lists for Athena's partition projection
const organizationId = process.env.ACCESS_ORGANIZATION_ID?.trim() || undefined;
const trailBucket = process.env.ACCESS_CLOUDTRAIL_BUCKET?.trim() || undefined;
const trailPrefix = (process.env.ACCESS_CLOUDTRAIL_PREFIX?.trim() || "").replace(/^\/+|\/+$/g, "");
const list = (value: string | undefined) =>
  (value ?? "")
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);

// The EventBridge pattern: match on detail.eventSource, not `source` (protocols.md §3.5: its value for EC2
// Instance Connect is not documented). Both are write events, so a plain ENABLED rule sees them.
const eicPattern = JSON.stringify({
  "detail-type": ["AWS API Call via CloudTrail"],
  detail: {
    eventSource: ["ec2-instance-connect.amazonaws.com"],
    eventName: ["SendSSHPublicKey", "SendSerialConsoleSSHPublicKey", "OpenTunnel"],
  },
});

export const trailEventsFunction = new sst.aws.Function("TrailEvents", {
  ...shared,
  handler: "functions/trail-events.handler",
  description: "access-broker: CloudTrail EC2 Instance Connect events from EventBridge into the trail ingest",
  memory: "512 MB",
  timeout: "60 seconds",
  permissions: [...tablePermissions],
});

// Events EventBridge could not deliver after its retries (24 h, 185 attempts) land here; the backfill finds
// them again through LookupEvents, so the queue is for alarms and forensics.
const trailDeadLetters = new aws.sqs.Queue("TrailEventsDeadLetters", { messageRetentionSeconds: 1_209_600 });

function target(name: string, rule: aws.cloudwatch.EventRule, eventBusName?: $util.Input<string>) {
  new aws.cloudwatch.EventTarget(`${name}Target`, {
    rule: rule.name,
    ...(eventBusName ? { eventBusName } : {}),
    arn: trailEventsFunction.arn,
    deadLetterConfig: { arn: trailDeadLetters.arn },
    retryPolicy: { maximumEventAgeInSeconds: 86_400, maximumRetryAttempts: 185 },
  });
  new aws.lambda.Permission(`${name}Invoke`, {
    action: "lambda:InvokeFunction",
    function: trailEventsFunction.name,
    principal: "events.amazonaws.com",
    sourceArn: rule.arn,
  });
  new aws.sqs.QueuePolicy(`${name}DeadLetterPolicy`, {
    queueUrl: trailDeadLetters.url,
    policy: $jsonStringify({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { Service: "events.amazonaws.com" },
          Action: "sqs:SendMessage",
          Resource: trailDeadLetters.arn,
          Condition: { ArnEquals: { "aws:SourceArn": rule.arn } },
        },
      ],
    }),
  });
}

// This account and region: the default bus.
const localRule = new aws.cloudwatch.EventRule("TrailEventsRule", {
  description: "EC2 Instance Connect API calls (CloudTrail) → access-broker trail ingest",
  eventPattern: eicPattern,
});
target("TrailEvents", localRule);

// Every other account (and region) of the organization: a bus they forward to. Each member account runs a
// rule with the same pattern on its default bus in each region, targeting this bus (README shows it, e.g.
// deployed with a CloudFormation StackSet). The bus accepts events only from accounts of the organization.
export const trailBus = organizationId
  ? new aws.cloudwatch.EventBus("TrailEventsBus", { name: `${$app.name}-${$app.stage}-trail` })
  : undefined;
if (trailBus && organizationId) {
  new aws.cloudwatch.EventBusPolicy("TrailEventsBusPolicy", {
    eventBusName: trailBus.name,
    policy: $jsonStringify({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "OrganizationMayForward",
          Effect: "Allow",
          Principal: "*",
          Action: "events:PutEvents",
          Resource: trailBus.arn,
          Condition: { StringEquals: { "aws:PrincipalOrgID": organizationId } },
        },
      ],
    }),
  });
  const orgRule = new aws.cloudwatch.EventRule("TrailEventsOrgRule", {
    description:
      "EC2 Instance Connect API calls forwarded from the organization → access-broker trail ingest",
    eventBusName: trailBus.name,
    eventPattern: eicPattern,
  });
  target("TrailEventsOrg", orgRule, trailBus.name);
}

// LookupEvents for every account/region of the policy, as each account's broker role (its policy grants
// cloudtrail:LookupEvents; the API has no resource-level permissions). 2 TPS per account and region,
// checkpointed in the table; a run stops 10 s before its timeout and the next one resumes.
export const trailBackfillFunction = new sst.aws.Function("TrailBackfill", {
  ...shared,
  handler: "functions/trail-backfill.handler",
  description:
    "access-broker: CloudTrail LookupEvents backfill of EC2 Instance Connect events (checkpointed)",
  memory: "512 MB",
  timeout: "5 minutes",
  permissions: [...tablePermissions, assumeBrokerRoles],
});

new sst.aws.CronV2("TrailBackfillCron", {
  function: trailBackfillFunction,
  schedule: "rate(15 minutes)",
  retries: 0,
});

// The CloudTrail bucket: new log files are imported as they arrive (S3 → EventBridge "Object Created"; turn
// on "Send notifications to Amazon EventBridge" on the bucket — it leaves existing notifications alone),
// and Athena reads the whole bucket for history.
if (trailBucket) {
  const logs = `${trailPrefix ? `${trailPrefix}/` : ""}AWSLogs/`;
  const bucketArn = `arn:aws:s3:::${trailBucket}`;
  const trailImportFunction = new sst.aws.Function("TrailImport", {
    ...shared,
    handler: "functions/trail-import.handler",
    description: "access-broker: imports new CloudTrail log files (streaming, filter before parse)",
    // Files are streamed in bounded memory; the time is for the largest organization log files.
    memory: "1024 MB",
    timeout: "15 minutes",
    permissions: [
      ...tablePermissions,
      { actions: ["s3:GetObject"], resources: [`${bucketArn}/${logs}*`] },
      // Trails encrypted with SSE-KMS need kms:Decrypt on the trail's key as well (its key policy decides).
    ],
  });
  const objectCreated = new aws.cloudwatch.EventRule("TrailImportRule", {
    description: "New CloudTrail log files → access-broker trail import",
    eventPattern: JSON.stringify({
      source: ["aws.s3"],
      "detail-type": ["Object Created"],
      detail: {
        bucket: { name: [trailBucket] },
        object: { key: [{ prefix: logs }] },
      },
    }),
  });
  new aws.cloudwatch.EventTarget("TrailImportTarget", {
    rule: objectCreated.name,
    arn: trailImportFunction.arn,
    retryPolicy: { maximumEventAgeInSeconds: 86_400, maximumRetryAttempts: 20 },
  });
  new aws.lambda.Permission("TrailImportInvoke", {
    action: "lambda:InvokeFunction",
    function: trailImportFunction.name,
    principal: "events.amazonaws.com",
    sourceArn: objectCreated.arn,
  });

  // Athena over the bucket, partition projection on account/region/day: no crawler, no MSCK REPAIR, and a
  // query for a period reads only its days (core/trail/athena.ts writes the SQL).
  const accounts = list(process.env.ACCESS_TRAIL_ACCOUNTS);
  const regions = list(process.env.ACCESS_TRAIL_REGIONS);
  const location = `s3://${trailBucket}/${logs}${organizationId ? `${organizationId}/` : ""}`;
  const database = new aws.glue.CatalogDatabase("TrailDatabase", {
    name: `${$app.name}_${$app.stage}`.replace(/[^a-z0-9_]/g, "_"),
  });
  const column = (name: string, type = "string") => ({ name, type });
  new aws.glue.CatalogTable("TrailTable", {
    name: "cloudtrail",
    databaseName: database.name,
    tableType: "EXTERNAL_TABLE",
    partitionKeys: [column("account"), column("region"), column("timestamp")],
    parameters: {
      EXTERNAL: "TRUE",
      "projection.enabled": "true",
      "projection.account.type": "enum",
      "projection.account.values": accounts.join(","),
      "projection.region.type": "enum",
      "projection.region.values": regions.join(","),
      "projection.timestamp.type": "date",
      "projection.timestamp.format": "yyyy/MM/dd",
      "projection.timestamp.interval": "1",
      "projection.timestamp.interval.unit": "DAYS",
      "projection.timestamp.range": `${process.env.ACCESS_TRAIL_SINCE?.trim() || "2024/01/01"},NOW`,
      "storage.location.template": `${location}\${account}/CloudTrail/\${region}/\${timestamp}`,
    },
    storageDescriptor: {
      location,
      inputFormat: "com.amazon.emr.cloudtrail.CloudTrailInputFormat",
      outputFormat: "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
      serDeInfo: { serializationLibrary: "org.apache.hive.hcatalog.data.JsonSerDe" },
      columns: [
        column("eventversion"),
        column(
          "useridentity",
          "struct<type:string,principalid:string,arn:string,accountid:string,invokedby:string,accesskeyid:string,username:string,sessioncontext:struct<attributes:struct<mfaauthenticated:string,creationdate:string>,sessionissuer:struct<type:string,principalid:string,arn:string,accountid:string,username:string>,sourceidentity:string>>",
        ),
        ...[
          "eventtime",
          "eventsource",
          "eventname",
          "awsregion",
          "sourceipaddress",
          "useragent",
          "errorcode",
          "errormessage",
          "requestparameters",
          "responseelements",
          "additionaleventdata",
          "requestid",
          "eventid",
          "readonly",
        ].map((name) => column(name)),
        column("resources", "array<struct<arn:string,accountid:string,type:string>>"),
        ...["eventtype", "recipientaccountid", "sharedeventid", "eventcategory"].map((name) => column(name)),
      ],
    },
  });
  const results = new sst.aws.Bucket("AthenaResults");
  new aws.athena.Workgroup("TrailWorkgroup", {
    name: `${$app.name}-${$app.stage}-trail`,
    forceDestroy: true,
    configuration: {
      enforceWorkgroupConfiguration: true,
      // A runaway query over years of an organization's logs is stopped at 1 TB scanned.
      bytesScannedCutoffPerQuery: 1_000_000_000_000,
      resultConfiguration: { outputLocation: $interpolate`s3://${results.name}/results/` },
    },
  });
}
