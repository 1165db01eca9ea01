import * as z from "zod";
import { InputError } from "../error.ts";
import { parse } from "../util/fn.ts";
import { EIC_EVENT_SOURCE } from "./schema.ts";

/**
 * Organization scale (README § Architecture): beyond what one function can import, history is read with
 * Athena straight from the CloudTrail bucket. infra/trail.ts defines the table — CloudTrail's SerDe, with
 * partition projection on account, region and day, so no crawler or `MSCK REPAIR` is ever needed and a
 * query reads only the days it names. This module writes the SQL for a period (every value validated, and
 * quoted for SQL even so) and turns result rows back into CloudTrail records for the one ingest.
 */

const Identifier = z.string().regex(/^[a-z_][a-z0-9_]{0,127}$/, "must be a lowercase SQL identifier");
const AccountId = z.string().regex(/^\d{12}$/, "must be a 12-digit AWS account id");
const Region = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, "must be an AWS region like eu-west-1");
const Time = z.iso.datetime({ offset: true }).transform((value) => new Date(value));

export const PeriodQuery = z
  .strictObject({
    database: Identifier,
    table: Identifier,
    from: Time,
    to: Time,
    /** Partition values to read; empty reads every account and region the projection knows. */
    accounts: z.array(AccountId).max(1_000).default([]),
    regions: z.array(Region).max(50).default([]),
    /** CloudTrail delivers within ~15 minutes; the day partitions read reach this far past `to`. */
    deliverySlackHours: z.number().int().min(0).max(48).default(1),
  })
  .refine((query) => query.from < query.to, { message: "from must be before to", path: ["from"] })
  .refine((query) => query.to.getTime() - query.from.getTime() <= 400 * 86_400_000, {
    message: "a period covers at most 400 days",
    path: ["to"],
  });
export type PeriodQuery = z.input<typeof PeriodQuery>;

/** A SQL string literal: validated values only ever reach here, and quotes are doubled regardless. */
export function literal(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters have no place in a literal.
  if (/[\u0000-\u001f]/.test(value))
    throw new InputError("athena.invalid_literal", "control characters in a SQL literal");
  return `'${value.replace(/'/g, "''")}'`;
}

/** `yyyy/MM/dd`: CloudTrail's S3 key layout, and the format of the `timestamp` partition projection. */
function day(date: Date): string {
  return date.toISOString().slice(0, 10).replace(/-/g, "/");
}

/** `yyyy-MM-ddTHH:mm:ssZ`: how CloudTrail writes eventTime, so string comparison is time order. */
function eventTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

export const EVENT_NAMES = ["SendSSHPublicKey", "SendSerialConsoleSSHPublicKey", "OpenTunnel"] as const;

/**
 * The EC2 Instance Connect events of [from, to] across the organization, one row per event, with the
 * columns `fromAthenaRow` turns back into a CloudTrail record. Partition pruning: the day partitions from
 * `from` to `to` plus the delivery slack, and the listed accounts and regions.
 */
export function periodSql(input: PeriodQuery): string {
  const query = parse(PeriodQuery, input);
  const lastDay = new Date(query.to.getTime() + query.deliverySlackHours * 3_600_000);
  const where = [
    `"timestamp" BETWEEN ${literal(day(query.from))} AND ${literal(day(lastDay))}`,
    ...(query.accounts.length ? [`account IN (${query.accounts.map(literal).join(", ")})`] : []),
    ...(query.regions.length ? [`region IN (${query.regions.map(literal).join(", ")})`] : []),
    `eventsource = ${literal(EIC_EVENT_SOURCE)}`,
    `eventname IN (${EVENT_NAMES.map(literal).join(", ")})`,
    `eventtime >= ${literal(eventTime(query.from))}`,
    `eventtime < ${literal(eventTime(query.to))}`,
  ];
  return [
    "SELECT",
    "  eventid, eventtime, eventsource, eventname, awsregion, recipientaccountid,",
    "  sourceipaddress, useragent, errorcode, errormessage, requestid,",
    "  json_format(CAST(useridentity AS JSON)) AS useridentity,",
    "  requestparameters, responseelements",
    `FROM "${query.database}"."${query.table}"`,
    `WHERE ${where.join("\n  AND ")}`,
    "ORDER BY eventtime",
  ].join("\n");
}

/** The table definition for setups without infra/trail.ts (Athena DDL with partition projection). */
export function tableDdl(input: {
  database: string;
  table: string;
  /** `s3://bucket/prefix/AWSLogs/` (or `…/AWSLogs/o-xxxxxxxxxx/` for an organization trail). */
  logsLocation: string;
  accounts: string[];
  regions: string[];
  /** First day with logs, `yyyy/MM/dd`. */
  since: string;
}): string {
  const database = Identifier.parse(input.database);
  const table = Identifier.parse(input.table);
  const accounts = z.array(AccountId).min(1).parse(input.accounts);
  const regions = z.array(Region).min(1).parse(input.regions);
  const location = z
    .string()
    .regex(
      /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[\w!\-.*'()/]*)?\/AWSLogs\/(o-[a-z0-9]{10,32}\/)?$/,
      "must be s3://<bucket>/…/AWSLogs/[o-…/]",
    )
    .parse(input.logsLocation);
  const since = z
    .string()
    .regex(/^\d{4}\/\d{2}\/\d{2}$/, "must be yyyy/MM/dd")
    .parse(input.since);
  return `CREATE EXTERNAL TABLE IF NOT EXISTS "${database}"."${table}" (
  eventversion STRING,
  useridentity STRUCT<type: STRING, principalid: STRING, arn: STRING, accountid: STRING, invokedby: STRING,
    accesskeyid: STRING, username: STRING, sessioncontext: STRUCT<attributes: STRUCT<mfaauthenticated: STRING,
    creationdate: STRING>, sessionissuer: STRUCT<type: STRING, principalid: STRING, arn: STRING, accountid: STRING,
    username: STRING>, sourceidentity: STRING>>,
  eventtime STRING, eventsource STRING, eventname STRING, awsregion STRING, sourceipaddress STRING,
  useragent STRING, errorcode STRING, errormessage STRING, requestparameters STRING, responseelements STRING,
  additionaleventdata STRING, requestid STRING, eventid STRING, readonly STRING,
  resources ARRAY<STRUCT<arn: STRING, accountid: STRING, type: STRING>>, eventtype STRING,
  recipientaccountid STRING, sharedeventid STRING, eventcategory STRING
)
PARTITIONED BY (account STRING, region STRING, "timestamp" STRING)
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION ${literal(location)}
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.account.type' = 'enum',
  'projection.account.values' = ${literal(accounts.join(","))},
  'projection.region.type' = 'enum',
  'projection.region.values' = ${literal(regions.join(","))},
  'projection.timestamp.type' = 'date',
  'projection.timestamp.format' = 'yyyy/MM/dd',
  'projection.timestamp.interval' = '1',
  'projection.timestamp.interval.unit' = 'DAYS',
  'projection.timestamp.range' = ${literal(`${since},NOW`)},
  'storage.location.template' = ${literal(`${location}\${account}/CloudTrail/\${region}/\${timestamp}`)}
)`;
}

const json = (text: unknown) => {
  if (typeof text !== "string" || text === "") return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
};

/** One result row of `periodSql` (column name → text, as Athena's CSV or GetQueryResults gives it) as a record. */
export function fromAthenaRow(row: Record<string, string | null | undefined>): Record<string, unknown> {
  const text = (name: string) => (row[name] === null || row[name] === "" ? undefined : row[name]);
  const identity = json(row.useridentity);
  return {
    eventID: text("eventid"),
    eventTime: text("eventtime"),
    eventSource: text("eventsource"),
    eventName: text("eventname"),
    awsRegion: text("awsregion"),
    recipientAccountId: text("recipientaccountid"),
    sourceIPAddress: text("sourceipaddress"),
    userAgent: text("useragent"),
    ...(text("errorcode") ? { errorCode: text("errorcode"), errorMessage: text("errormessage") } : {}),
    requestID: text("requestid"),
    userIdentity:
      identity && typeof identity === "object"
        ? camelIdentity(identity as Record<string, unknown>)
        : undefined,
    requestParameters: json(row.requestparameters),
    responseElements: json(row.responseelements),
  };
}

/** Athena lower-cases struct field names; CloudTrail's are camelCase. */
const IDENTITY_NAMES: Record<string, string> = {
  principalid: "principalId",
  accountid: "accountId",
  invokedby: "invokedBy",
  accesskeyid: "accessKeyId",
  username: "userName",
  sessioncontext: "sessionContext",
  mfaauthenticated: "mfaAuthenticated",
  creationdate: "creationDate",
  sessionissuer: "sessionIssuer",
  sourceidentity: "sourceIdentity",
};

function camelIdentity(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, entry]) => entry !== null)
      .map(([name, entry]) => [
        IDENTITY_NAMES[name] ?? name,
        entry && typeof entry === "object" && !Array.isArray(entry)
          ? camelIdentity(entry as Record<string, unknown>)
          : entry,
      ]),
  );
}
