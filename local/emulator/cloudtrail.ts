/**
 * CloudTrail for the emulator: every call to every emulated service becomes a real-shaped CloudTrail record
 * (eventVersion 1.08, userIdentity by credential type, errorCode/errorMessage on failures, tlsDetails,
 * sharedEventID for calls logged in two accounts). Records are kept in memory, served by `LookupEvents`
 * (JSON 1.1: one lookup attribute, inclusive time range, newest first, NextToken bound to its parameters,
 * 2 TPS per account and region), and — for EC2 Instance Connect events — POSTed to an EventBridge-shaped
 * HTTP target when one is configured (retried, never blocking the call).
 */
import { createHash, randomUUID } from "node:crypto";
import type { Caller, EmulatorCore, EmulatorService, TrailInput } from "./contract.ts";
import { awsService, type CallContext, type ServiceDeps, ServiceError, type XmlObject } from "./wire.ts";

export const CLOUDTRAIL_TARGET_PREFIX = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101";
export const EIC_EVENT_SOURCE = "ec2-instance-connect.amazonaws.com";

/** LookupEvents answers events of the last 90 days. */
const RETENTION_MS = 90 * 24 * 3600 * 1000;
/** "two per second, per account, per Region" (CloudTrail API reference, LookupEvents). */
const LOOKUP_TPS = 2;
const LOOKUP_KEYS = [
  "EventId",
  "EventName",
  "ReadOnly",
  "Username",
  "ResourceType",
  "ResourceName",
  "EventSource",
  "AccessKeyId",
] as const;
type LookupKey = (typeof LOOKUP_KEYS)[number];

const isoSeconds = (date: Date) => date.toISOString().replace(/\.\d{3}Z$/, "Z");

/** A CloudTrail record as CloudTrail writes it (the shape of `CloudTrailEvent` / log file `Records[]`). */
export type CloudTrailRecord = Record<string, unknown> & {
  eventID: string;
  eventTime: string;
  eventSource: string;
  eventName: string;
  awsRegion: string;
  recipientAccountId: string;
};

interface StoredEvent {
  seq: number;
  time: number;
  record: CloudTrailRecord;
  username?: string;
  accessKeyId?: string;
  resources: { type: string; arn: string; name: string }[];
}

/** CloudTrail's userIdentity for the caller (protocols.md §3.3). */
export function userIdentity(caller: Caller | undefined, accountId: string): Record<string, unknown> {
  if (caller === undefined) return { type: "Unknown", principalId: "", accountId };
  if (caller.type === "IAMUser") {
    return {
      type: "IAMUser",
      principalId: caller.principalId,
      arn: caller.arn,
      accountId: caller.accountId,
      accessKeyId: caller.accessKeyId,
      userName: caller.userName ?? caller.arn.slice(caller.arn.lastIndexOf("/") + 1),
    };
  }
  const session = caller.session;
  return {
    type: "AssumedRole",
    principalId: caller.principalId,
    arn: caller.arn,
    accountId: caller.accountId,
    accessKeyId: caller.accessKeyId,
    ...(session === undefined
      ? {}
      : {
          sessionContext: {
            sessionIssuer: {
              type: "Role",
              principalId: session.roleId,
              arn: session.roleArn,
              accountId: caller.accountId,
              userName: session.roleName,
            },
            webIdFederationData: {},
            attributes: { creationDate: session.createdAt, mfaAuthenticated: "false" },
            ...(session.sourceIdentity === undefined ? {} : { sourceIdentity: session.sourceIdentity }),
          },
        }),
  };
}

export interface TrailStoreOptions {
  now: () => Date;
  /** EventBridge-shaped HTTP target for EC2 Instance Connect events. */
  target?: string;
  /** Delivery attempts per event (default 4) and the first backoff (default 200 ms, doubling). */
  deliveryAttempts?: number;
  deliveryBackoffMs?: number;
}

/** The in-memory trail of one emulator. */
export class TrailStore {
  private events: StoredEvent[] = [];
  private seq = 0;
  private buckets = new Map<string, { tokens: number; at: number }>();
  private deliveries = new Set<AbortController>();
  readonly delivery = { delivered: 0, failed: 0 };

  constructor(private readonly options: TrailStoreOptions) {}

  /** Builds and keeps the CloudTrail record of one call; EIC events also go to the target. */
  record(input: TrailInput, extra: { sharedEventID?: string } = {}): CloudTrailRecord {
    const now = this.options.now();
    const eventTime = isoSeconds(now);
    const record: CloudTrailRecord = {
      eventVersion: "1.08",
      userIdentity: userIdentity(input.caller, input.accountId),
      eventTime,
      eventSource: input.eventSource,
      eventName: input.eventName,
      awsRegion: input.region,
      sourceIPAddress: input.sourceIPAddress,
      userAgent: input.userAgent ?? "",
      ...(input.errorCode === undefined ? {} : { errorCode: input.errorCode }),
      ...(input.errorMessage === undefined ? {} : { errorMessage: input.errorMessage }),
      requestParameters: input.requestParameters,
      responseElements: input.responseElements,
      requestID: input.requestId,
      eventID: randomUUID(),
      readOnly: input.readOnly,
      ...(input.resources === undefined ? {} : { resources: input.resources }),
      eventType: "AwsApiCall",
      managementEvent: true,
      recipientAccountId: input.accountId,
      ...(extra.sharedEventID === undefined ? {} : { sharedEventID: extra.sharedEventID }),
      eventCategory: "Management",
      ...(input.host === undefined
        ? {}
        : {
            tlsDetails: {
              tlsVersion: "TLSv1.3",
              cipherSuite: "TLS_AES_128_GCM_SHA256",
              clientProvidedHostHeader: input.host,
            },
          }),
    };
    const caller = input.caller;
    this.events.push({
      seq: ++this.seq,
      time: Date.parse(eventTime),
      record,
      ...(caller === undefined
        ? {}
        : {
            username:
              caller.type === "IAMUser" ? (caller.userName ?? "") : (caller.session?.sessionName ?? ""),
            accessKeyId: caller.accessKeyId,
          }),
      resources: (input.resources ?? []).map((resource) => ({
        type: resource.type,
        arn: resource.ARN,
        name: resource.ARN.slice(Math.max(resource.ARN.lastIndexOf("/"), resource.ARN.lastIndexOf(":")) + 1),
      })),
    });
    if (this.options.target !== undefined && input.eventSource === EIC_EVENT_SOURCE) this.deliver(record);
    return record;
  }

  /** Every record, oldest first (the admin API's view). */
  all(): CloudTrailRecord[] {
    return this.events.map((event) => event.record);
  }

  reset(): void {
    this.events = [];
    this.buckets.clear();
    this.delivery.delivered = 0;
    this.delivery.failed = 0;
  }

  /** Stops pending deliveries. */
  close(): void {
    for (const controller of this.deliveries) controller.abort();
    this.deliveries.clear();
  }

  /** Token bucket on emulator time: true when a LookupEvents call may proceed. */
  takeLookupToken(accountId: string, region: string): boolean {
    const now = this.options.now().getTime();
    const key = `${accountId}/${region}`;
    const bucket = this.buckets.get(key) ?? { tokens: LOOKUP_TPS, at: now };
    const elapsed = Math.max(0, now - bucket.at);
    bucket.tokens = Math.min(LOOKUP_TPS, bucket.tokens + (elapsed / 1000) * LOOKUP_TPS);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Events of one account and region, filtered, newest first. */
  query(filter: {
    accountId: string;
    region: string;
    attribute?: { key: LookupKey; value: string };
    start: number;
    end: number;
  }): StoredEvent[] {
    const { attribute } = filter;
    return this.events
      .filter(
        (event) =>
          event.record.recipientAccountId === filter.accountId &&
          event.record.awsRegion === filter.region &&
          event.time >= filter.start &&
          event.time <= filter.end &&
          (attribute === undefined || matches(event, attribute.key, attribute.value)),
      )
      .sort((a, b) => b.time - a.time || b.seq - a.seq);
  }

  private deliver(record: CloudTrailRecord): void {
    const target = this.options.target as string;
    const attempts = this.options.deliveryAttempts ?? 4;
    const backoff = this.options.deliveryBackoffMs ?? 200;
    const resources = Array.isArray(record.resources)
      ? (record.resources as { ARN?: unknown }[]).map((r) => r.ARN).filter((arn) => typeof arn === "string")
      : [];
    const body = JSON.stringify({
      version: "0",
      id: randomUUID(),
      "detail-type": "AWS API Call via CloudTrail",
      source: "aws.ec2-instance-connect",
      account: record.recipientAccountId,
      time: record.eventTime,
      region: record.awsRegion,
      resources,
      detail: record,
    });
    const controller = new AbortController();
    this.deliveries.add(controller);
    void (async () => {
      try {
        for (let attempt = 0; attempt < attempts && !controller.signal.aborted; attempt++) {
          try {
            const response = await fetch(target, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body,
              signal: AbortSignal.any([controller.signal, AbortSignal.timeout(5000)]),
            });
            await response.arrayBuffer().catch(() => undefined);
            if (response.ok) {
              this.delivery.delivered++;
              return;
            }
          } catch {
            // retried below
          }
          if (attempt + 1 < attempts) await sleep(backoff * 2 ** attempt, controller.signal);
        }
        this.delivery.failed++;
      } finally {
        this.deliveries.delete(controller);
      }
    })();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

function matches(event: StoredEvent, key: LookupKey, value: string): boolean {
  const record = event.record;
  switch (key) {
    case "EventId":
      return record.eventID === value;
    case "EventName":
      return record.eventName === value;
    case "ReadOnly":
      return String(record.readOnly) === value;
    case "Username":
      return event.username === value;
    case "ResourceType":
      return event.resources.some((r) => r.type === value);
    case "ResourceName":
      return event.resources.some((r) => r.name === value || r.arn === value);
    case "EventSource":
      return record.eventSource === value;
    case "AccessKeyId":
      return event.accessKeyId === value;
  }
}

// ---------------------------------------------------------------------------------------------------------
// LookupEvents

function invalid(code: string, message: string): ServiceError {
  return new ServiceError(400, code, message);
}

/** StartTime/EndTime as the SDK sends them (epoch seconds) or ISO 8601 text. */
function timeParam(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  const ms =
    typeof value === "number"
      ? value * 1000
      : typeof value === "string"
        ? /^\d+(\.\d+)?$/.test(value)
          ? Number(value) * 1000
          : Date.parse(value)
        : Number.NaN;
  if (!Number.isFinite(ms)) throw invalid("InvalidTimeRangeException", `${name} is not a valid timestamp`);
  return ms;
}

function parseAttribute(input: Record<string, unknown>): { key: LookupKey; value: string } | undefined {
  const list = input.LookupAttributes;
  if (list === undefined || list === null) return undefined;
  if (!Array.isArray(list))
    throw invalid("InvalidLookupAttributesException", "LookupAttributes must be a list");
  if (list.length === 0) return undefined;
  if (list.length > 1)
    throw invalid("InvalidLookupAttributesException", "You cannot specify more than one lookup attribute.");
  const attribute = list[0] as { AttributeKey?: unknown; AttributeValue?: unknown } | null;
  const key = attribute?.AttributeKey;
  const value = attribute?.AttributeValue;
  if (typeof key !== "string" || !(LOOKUP_KEYS as readonly string[]).includes(key)) {
    throw invalid(
      "InvalidLookupAttributesException",
      `AttributeKey must be one of ${LOOKUP_KEYS.join(", ")}, not '${String(key).slice(0, 64)}'`,
    );
  }
  if (typeof value !== "string" || value.length < 1 || value.length > 2000)
    throw invalid("InvalidLookupAttributesException", "AttributeValue must be 1 to 2000 characters");
  return { key: key as LookupKey, value };
}

interface Cursor {
  t: number;
  s: number;
  h: string;
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor), "utf8").toString("base64url");
}

function decodeCursor(token: unknown, hash: string): Cursor {
  const fail = () =>
    invalid(
      "InvalidNextTokenException",
      "A token that is not valid, or a token that was previously used in a request with different parameters.",
    );
  if (typeof token !== "string" || token === "") throw fail();
  try {
    const cursor = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Partial<Cursor>;
    if (typeof cursor.t === "number" && typeof cursor.s === "number" && cursor.h === hash)
      return cursor as Cursor;
  } catch {
    // fall through
  }
  throw fail();
}

function lookupEvents(trail: TrailStore) {
  return {
    readOnly: true,
    run(ctx: CallContext): XmlObject {
      const { input, caller, region } = ctx;
      ctx.trail.requestParameters = {
        ...(input.LookupAttributes === undefined
          ? {}
          : {
              lookupAttributes: Array.isArray(input.LookupAttributes)
                ? (input.LookupAttributes as Record<string, unknown>[]).map((a) => ({
                    attributeKey: a?.AttributeKey,
                    attributeValue: a?.AttributeValue,
                  }))
                : input.LookupAttributes,
            }),
        ...(input.StartTime === undefined ? {} : { startTime: input.StartTime }),
        ...(input.EndTime === undefined ? {} : { endTime: input.EndTime }),
        ...(input.MaxResults === undefined ? {} : { maxResults: input.MaxResults }),
      };
      ctx.authorize("cloudtrail:LookupEvents", "*");
      if (!trail.takeLookupToken(caller.accountId, region))
        throw new ServiceError(400, "ThrottlingException", "Rate exceeded");

      const attribute = parseAttribute(input);
      const now = ctx.core.now().getTime();
      const start = timeParam(input.StartTime, "StartTime") ?? now - RETENTION_MS;
      const end = timeParam(input.EndTime, "EndTime") ?? now;
      if (start > end)
        throw invalid("InvalidTimeRangeException", "Start time must be before or equal to end time.");
      if (input.EventCategory !== undefined && input.EventCategory !== "insight")
        throw invalid("InvalidEventCategoryException", "EventCategory may only be 'insight'");
      const maxResults = input.MaxResults === undefined ? 50 : input.MaxResults;
      if (
        typeof maxResults !== "number" ||
        !Number.isInteger(maxResults) ||
        maxResults < 1 ||
        maxResults > 50
      )
        throw invalid("InvalidMaxResultsException", "MaxResults must be an integer from 1 to 50");

      // NextToken must be replayed with the parameters it came from (MaxResults may change).
      const hash = createHash("sha256")
        .update(
          JSON.stringify([
            caller.accountId,
            region,
            attribute,
            input.StartTime,
            input.EndTime,
            input.EventCategory ?? null,
          ]),
        )
        .digest("base64url")
        .slice(0, 16);
      const cursor = input.NextToken === undefined ? undefined : decodeCursor(input.NextToken, hash);

      // Insight events are never recorded here, so that category is always empty.
      let events =
        input.EventCategory === "insight"
          ? []
          : trail.query({
              accountId: caller.accountId,
              region,
              start: Math.max(start, now - RETENTION_MS),
              end,
              ...(attribute === undefined ? {} : { attribute }),
            });
      if (cursor !== undefined)
        events = events.filter((e) => e.time < cursor.t || (e.time === cursor.t && e.seq < cursor.s));
      const page = events.slice(0, maxResults);
      const last = page[page.length - 1];
      const more = events.length > maxResults && last !== undefined;
      return {
        Events: page.map((event) => ({
          EventId: event.record.eventID,
          EventName: event.record.eventName,
          ReadOnly: String(event.record.readOnly),
          ...(event.accessKeyId === undefined ? {} : { AccessKeyId: event.accessKeyId }),
          EventTime: event.time / 1000,
          EventSource: event.record.eventSource,
          ...(event.username === undefined ? {} : { Username: event.username }),
          Resources: event.resources.map((r) => ({ ResourceType: r.type, ResourceName: r.name })),
          CloudTrailEvent: JSON.stringify(event.record),
        })),
        ...(more ? { NextToken: encodeCursor({ t: last.time, s: last.seq, h: hash }) } : {}),
      };
    },
  };
}

/** CloudTrail's LookupEvents (JSON 1.1). */
export function cloudTrailService(core: EmulatorCore, trail: TrailStore, deps: ServiceDeps): EmulatorService {
  return awsService(
    core,
    {
      signingName: "cloudtrail",
      eventSource: "cloudtrail.amazonaws.com",
      protocol: "json",
      targetPrefixes: [CLOUDTRAIL_TARGET_PREFIX, "CloudTrail_20131101"],
      jsonVersion: "1.1",
      accessDenied: (message) => new ServiceError(400, "AccessDeniedException", message),
      operations: { LookupEvents: lookupEvents(trail) },
    },
    deps,
  );
}
