/**
 * Real-shaped CloudTrail log files for import tests and the benchmark: `{"Records":[…]}` written compact, as
 * CloudTrail writes them, gzip-compressed, with typical management events of other services around the
 * EC2 Instance Connect ones (protocols.md §3: field names, userIdentity shapes, OpenTunnel parameters).
 */
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { createGzip } from "node:zlib";

/** mulberry32: reproducible corpora. */
export function rng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HEX = "0123456789abcdef";
const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

export function hex(random: () => number, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += HEX[(random() * 16) | 0];
  return out;
}

function upper(random: () => number, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += UPPER[(random() * 32) | 0];
  return out;
}

export function uuid(random: () => number): string {
  return `${hex(random, 8)}-${hex(random, 4)}-4${hex(random, 3)}-a${hex(random, 3)}-${hex(random, 12)}`;
}

const pick = <T>(random: () => number, items: readonly T[]): T => items[(random() * items.length) | 0] as T;

const ACCOUNTS = ["111122223333", "444455556666", "777788889999", "123456789012"];
const REGIONS = ["us-east-1", "eu-west-1", "us-west-2", "ap-southeast-2"];
const AGENTS = [
  "aws-sdk-java/2.25.11 Linux/5.10.216-204.855.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.11+9-LTS Java/17.0.11",
  "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79-99.164.amzn2023.x86_64 exe/x86_64.amzn.2023 prompt/off command/s3.cp",
  "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#5.10.213 lang/python#3.12.2 exec-env/AWS_Lambda_python3.12",
  "aws-sdk-go-v2/1.26.0 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/dynamodb#1.31.0",
];

function assumedRole(random: () => number, account: string, role: string, session: string): string {
  const roleId = `AROA${upper(random, 17)}`;
  return `{"type":"AssumedRole","principalId":"${roleId}:${session}","arn":"arn:aws:sts::${account}:assumed-role/${role}/${session}","accountId":"${account}","accessKeyId":"ASIA${upper(random, 16)}","sessionContext":{"sessionIssuer":{"type":"Role","principalId":"${roleId}","arn":"arn:aws:iam::${account}:role/${role}","accountId":"${account}","userName":"${role}"},"webIdFederationData":{},"attributes":{"creationDate":"2024-05-01T10:00:00Z","mfaAuthenticated":"false"}}}`;
}

function common(random: () => number, time: string, region: string, service: string, name: string): string {
  return `"eventTime":"${time}","eventSource":"${service}.amazonaws.com","eventName":"${name}","awsRegion":"${region}","sourceIPAddress":"10.${(random() * 255) | 0}.${(random() * 255) | 0}.${(random() * 255) | 0}","userAgent":"${pick(random, AGENTS)}"`;
}

/** One management event of a service other than EC2 Instance Connect, ~1.35 KB on average. */
export function otherRecord(random: () => number, time: string): string {
  const account = pick(random, ACCOUNTS);
  const region = pick(random, REGIONS);
  const identity = assumedRole(
    random,
    account,
    pick(random, ["app-prod", "ci-deployer", "etl-job"]),
    `s-${hex(random, 12)}`,
  );
  const kind = (random() * 5) | 0;
  let body: string;
  switch (kind) {
    case 0:
      body = `${common(random, time, region, "kms", "Decrypt")},"requestParameters":{"encryptionContext":{"aws:lambda:FunctionArn":"arn:aws:lambda:${region}:${account}:function:worker-${hex(random, 6)}"},"encryptionAlgorithm":"SYMMETRIC_DEFAULT"},"responseElements":null,"resources":[{"accountId":"${account}","type":"AWS::KMS::Key","ARN":"arn:aws:kms:${region}:${account}:key/${uuid(random)}"}]`;
      break;
    case 1:
      body = `${common(random, time, region, "sts", "AssumeRole")},"requestParameters":{"roleArn":"arn:aws:iam::${account}:role/app-prod","roleSessionName":"s-${hex(random, 12)}","durationSeconds":3600},"responseElements":{"credentials":{"accessKeyId":"ASIA${upper(random, 16)}","sessionToken":"IQoJb3JpZ2luX2VjE${hex(random, 40)}","expiration":"May 1, 2024, 11:00:00 AM"},"assumedRoleUser":{"assumedRoleId":"AROA${upper(random, 17)}:s-${hex(random, 12)}","arn":"arn:aws:sts::${account}:assumed-role/app-prod/s-${hex(random, 12)}"}}`;
      break;
    case 2:
      body = `${common(random, time, region, "ec2", "DescribeInstances")},"requestParameters":{"instancesSet":{"items":[{"instanceId":"i-${hex(random, 17)}"}]},"filterSet":{"items":[{"name":"tag:env","valueSet":{"items":[{"value":"prod"}]}}]}},"responseElements":null`;
      break;
    case 3:
      body = `${common(random, time, region, "dynamodb", "DescribeTable")},"requestParameters":{"tableName":"orders-${hex(random, 8)}"},"responseElements":null,"resources":[{"accountId":"${account}","type":"AWS::DynamoDB::Table","ARN":"arn:aws:dynamodb:${region}:${account}:table/orders-${hex(random, 8)}"}]`;
      break;
    default:
      body = `${common(random, time, region, "lambda", "GetFunctionConfiguration20150331v2")},"requestParameters":{"functionName":"arn:aws:lambda:${region}:${account}:function:api-${hex(random, 10)}"},"responseElements":null`;
  }
  return `{"eventVersion":"1.09","userIdentity":${identity},${body},"requestID":"${uuid(random)}","eventID":"${uuid(random)}","readOnly":${kind !== 1},"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"${account}","eventCategory":"Management","tlsDetails":{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"${region}.amazonaws.com"}}`;
}

export interface EicSpec {
  eventId: string;
  time: string;
  account: string;
  region: string;
  /** userIdentity as a JSON object. */
  identity: Record<string, unknown>;
  kind: "push" | "tunnel";
  instanceId?: string;
  osUser?: string;
  publicKey?: string;
  endpointId?: string;
  privateIp?: string;
  remotePort?: number;
  maxTunnelDuration?: number;
  errorCode?: string;
}

/** An EC2 Instance Connect record in CloudTrail's current shape (protocols.md §3.1, §3.2). */
export function eicRecord(spec: EicSpec): string {
  const requestId = spec.eventId.replace(/^.{8}/, "c0ffee00");
  const denied = spec.errorCode !== undefined;
  const record: Record<string, unknown> = {
    eventVersion: "1.08",
    userIdentity: spec.identity,
    eventTime: spec.time,
    eventSource: "ec2-instance-connect.amazonaws.com",
    eventName: spec.kind === "push" ? "SendSSHPublicKey" : "OpenTunnel",
    awsRegion: spec.region,
    sourceIPAddress: "198.51.100.7",
    userAgent: "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79",
    ...(denied
      ? {
          errorCode: spec.errorCode,
          errorMessage: `User: ${String(spec.identity.arn)} is not authorized to perform: ec2-instance-connect:${spec.kind === "push" ? "SendSSHPublicKey" : "OpenTunnel"}`,
        }
      : {}),
    requestParameters:
      spec.kind === "push"
        ? { instanceId: spec.instanceId, instanceOSUser: spec.osUser, sSHPublicKey: spec.publicKey }
        : {
            instanceConnectEndpointId: spec.endpointId,
            ...(spec.maxTunnelDuration === undefined
              ? {}
              : { maxTunnelDuration: String(spec.maxTunnelDuration) }),
            remotePort: String(spec.remotePort ?? 22),
            privateIpAddress: spec.privateIp,
          },
    responseElements: spec.kind === "push" && !denied ? { requestId, success: true } : null,
    requestID: requestId,
    eventID: spec.eventId,
    readOnly: false,
    ...(spec.kind === "tunnel"
      ? {
          resources: [
            {
              accountId: spec.account,
              type: "AWS::EC2::InstanceConnectEndpoint",
              ARN: `arn:aws:ec2:${spec.region}:${spec.account}:instance-connect-endpoint/${spec.endpointId}`,
            },
          ],
        }
      : {}),
    eventType: "AwsApiCall",
    managementEvent: true,
    recipientAccountId: spec.account,
    eventCategory: "Management",
    tlsDetails: {
      tlsVersion: "TLSv1.3",
      cipherSuite: "TLS_AES_128_GCM_SHA256",
      clientProvidedHostHeader: `ec2-instance-connect.${spec.region}.amazonaws.com`,
    },
  };
  return JSON.stringify(record);
}

export interface CorpusOptions {
  dir: string;
  records: number;
  recordsPerFile: number;
  /** Share of EC2 Instance Connect events, e.g. 0.01. */
  eicRatio: number;
  seed?: number;
  /** Builds the n-th EC2 Instance Connect record (n counts only those). */
  eic: (n: number, random: () => number, time: string) => string;
  /** First event time; events are spaced 1 ms apart. */
  start?: Date;
  gzipLevel?: number;
  /** Called after each file with the records written so far. */
  onFile?: (written: number) => void;
}

export interface Corpus {
  files: string[];
  records: number;
  eicRecords: number;
  bytes: number;
}

/** Writes `records` records into gzip files of `recordsPerFile`, streaming (bounded memory at any size). */
export async function writeCorpus(options: CorpusOptions): Promise<Corpus> {
  const random = rng(options.seed ?? 42);
  const start = (options.start ?? new Date("2024-05-01T10:00:00Z")).getTime();
  const files: string[] = [];
  let written = 0;
  let eic = 0;
  let bytes = 0;
  const every = Math.round(1 / options.eicRatio);
  while (written < options.records) {
    const count = Math.min(options.recordsPerFile, options.records - written);
    const time = new Date(start + written).toISOString().replace(/[-:]/g, "").slice(0, 13);
    const path = join(options.dir, `111122223333_CloudTrail_us-east-1_${time}Z_${hex(random, 16)}.json.gz`);
    const gzip = createGzip({ level: options.gzipLevel ?? 6 });
    const out = createWriteStream(path);
    gzip.pipe(out);
    const write = async (text: string) => {
      bytes += text.length;
      if (!gzip.write(text)) await once(gzip, "drain");
    };
    await write('{"Records":[');
    let chunk = "";
    for (let i = 0; i < count; i++) {
      const n = written + i;
      const eventTime = new Date(start + n).toISOString().replace(/\.\d{3}Z$/, "Z");
      const record =
        n % every === every - 1 ? options.eic(eic++, random, eventTime) : otherRecord(random, eventTime);
      chunk += i === 0 ? record : `,${record}`;
      if (chunk.length > 1 << 20) {
        await write(chunk);
        chunk = "";
      }
    }
    await write(`${chunk}]}`);
    gzip.end();
    await once(out, "close");
    written += count;
    files.push(path);
    options.onFile?.(written);
  }
  return { files, records: written, eicRecords: eic, bytes };
}
