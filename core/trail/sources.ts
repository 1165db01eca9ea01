import * as z from "zod";
import { InputError } from "../error.ts";
import { log } from "../util/log.ts";
import { importStream, type StreamReport } from "./files.ts";
import { type Deps, type IngestResult, ingest, LookupCache } from "./ingest.ts";

/** `detail-type` of every CloudTrail-delivered API event on EventBridge (protocols.md §3.5). */
export const EVENTBRIDGE_DETAIL_TYPE = "AWS API Call via CloudTrail";

/** The EventBridge envelope; `detail` is the CloudTrail record. Fields beyond these are kept, not checked. */
export const EventBridgeEvent = z.looseObject({
  version: z.string().optional(),
  id: z.string().optional(),
  "detail-type": z.literal(EVENTBRIDGE_DETAIL_TYPE),
  source: z.string().optional(),
  account: z.string().optional(),
  region: z.string().optional(),
  time: z.string().optional(),
  detail: z.looseObject({}),
});
export type EventBridgeEvent = z.infer<typeof EventBridgeEvent>;

/** The CloudTrail records of one EventBridge delivery (one event, or a batch of them). */
export function fromEventBridge(input: unknown): unknown[] {
  const events = Array.isArray(input) ? input : [input];
  return events.map((event, index) => {
    const parsed = EventBridgeEvent.safeParse(event);
    if (!parsed.success)
      throw new InputError(
        "trail.invalid_event",
        `event ${index} is not an "${EVENTBRIDGE_DETAIL_TYPE}" EventBridge event: ${parsed.error.issues[0]?.message ?? ""}`,
      );
    return parsed.data.detail;
  });
}

/**
 * One EventBridge delivery into the ingest. Events that are not CloudTrail API calls are logged and
 * dropped (a retry cannot fix them); store failures throw so that the delivery is retried.
 */
export async function receive(deps: Deps, input: unknown): Promise<IngestResult | undefined> {
  let records: unknown[];
  try {
    records = fromEventBridge(input);
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    log.error("trail events: not a CloudTrail API call event; dropped", { message: error.message });
    return undefined;
  }
  return ingest(deps, records, { source: "eventbridge" });
}

/** An S3 "ObjectCreated" notification (direct, or through SNS/SQS with the S3 event as the body). */
const S3Notification = z.object({
  Records: z.array(
    z.looseObject({
      s3: z.looseObject({
        bucket: z.looseObject({ name: z.string() }),
        object: z.looseObject({ key: z.string(), size: z.number().optional() }),
      }),
    }),
  ),
});

export interface S3Object {
  bucket: string;
  key: string;
}

/** S3's "Object Created" event on EventBridge (what infra/trail.ts routes to the import function). */
const ObjectCreated = z.looseObject({
  "detail-type": z.literal("Object Created"),
  detail: z.looseObject({
    bucket: z.looseObject({ name: z.string() }),
    object: z.looseObject({ key: z.string() }),
  }),
});

/** The log files of an S3 notification or EventBridge "Object Created" event; digests and others left out. */
export function objectsOf(event: unknown): S3Object[] {
  const notification = S3Notification.safeParse(event);
  const created = ObjectCreated.safeParse(event);
  const raw = notification.success
    ? notification.data.Records.map((record) => ({
        bucket: record.s3.bucket.name,
        key: record.s3.object.key,
      }))
    : created.success
      ? [{ bucket: created.data.detail.bucket.name, key: created.data.detail.object.key }]
      : undefined;
  if (!raw) throw new InputError("trail.invalid_notification", "not an S3 event notification");
  return raw
    .map((object) => ({
      bucket: object.bucket,
      // Notifications URL-encode keys, spaces as "+" (CloudTrail's own key names need neither).
      key: decodeURIComponent(object.key.replace(/\+/g, " ")),
    }))
    .filter((object) => !object.key.includes("/CloudTrail-Digest/") && /\.json(\.gz)?$/i.test(object.key));
}

export interface ObjectReport extends Omit<StreamReport, "stats"> {
  bucket: string;
  key: string;
  records: number;
}

/** Imports S3 log files one after the other; a file that cannot be read is reported, the others go on. */
export async function importObjects(
  deps: Deps,
  objects: readonly S3Object[],
  open: (object: S3Object) => Promise<AsyncIterable<Uint8Array>>,
): Promise<ObjectReport[]> {
  const cache = new LookupCache();
  const reports: ObjectReport[] = [];
  for (const object of objects) {
    const report = await importStream(await open(object), (records) =>
      ingest(deps, records, { source: "import", cache }),
    );
    if (report.error) log.error("trail import: log file not fully read", { ...object, error: report.error });
    reports.push({ ...object, records: report.stats.records, result: report.result, error: report.error });
  }
  return reports;
}
