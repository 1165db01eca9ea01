import * as z from "zod";
import { InputError, NotFoundError } from "../error.ts";
import { log } from "../util/log.ts";
import { importSources, type StreamReport } from "./files.ts";
import { type Deps, emptyResult, type IngestResult, ingest, LookupCache } from "./ingest.ts";

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

const isCloudTrailCall = (event: unknown) =>
  typeof event === "object" &&
  event !== null &&
  (event as Record<string, unknown>)["detail-type"] === EVENTBRIDGE_DETAIL_TYPE;

/**
 * One EventBridge delivery (an event, or a batch of them) into the ingest, event by event, so that one bad
 * event never costs the others. A CloudTrail API call whose `detail` is not a record is ingested whole: it
 * is kept as `unparsed`, the envelope being the evidence. An event that is not a CloudTrail API call at all
 * is logged and counted as skipped: a retry cannot fix it. Store failures throw, so that the delivery is
 * retried (ingest dedupes what the failed attempt already wrote).
 */
export async function receive(deps: Deps, input: unknown): Promise<IngestResult> {
  const events = Array.isArray(input) ? input : [input];
  const records: unknown[] = [];
  let dropped = 0;
  events.forEach((event, index) => {
    const parsed = EventBridgeEvent.safeParse(event);
    if (parsed.success) records.push(parsed.data.detail);
    else if (isCloudTrailCall(event)) records.push(event);
    else {
      dropped++;
      log.error("trail events: not a CloudTrail API call event; dropped", {
        index,
        message: `not an "${EVENTBRIDGE_DETAIL_TYPE}" EventBridge event: ${parsed.error.issues[0]?.message ?? ""}`,
      });
    }
  });
  const result = records.length > 0 ? await ingest(deps, records, { source: "eventbridge" }) : emptyResult();
  result.received += dropped;
  result.skipped += dropped;
  return result;
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
  const objects = notification.success
    ? notification.data.Records.map((record) => ({
        bucket: record.s3.bucket.name,
        key: notificationKey(record.s3.object.key),
      }))
    : created.success
      ? // EventBridge carries the key as it is: its events show `:` and spaces unescaped.
        [{ bucket: created.data.detail.bucket.name, key: created.data.detail.object.key }]
      : undefined;
  if (!objects) throw new InputError("trail.invalid_notification", "not an S3 event notification");
  return objects.filter(
    (object) => !object.key.includes("/CloudTrail-Digest/") && /\.json(\.gz)?$/i.test(object.key),
  );
}

/**
 * S3 notifications (direct, SNS, SQS) URL-encode keys as a form does: `+` for a space, `%2B` for a `+`
 * (S3 User Guide, "Event message structure"). CloudTrail's own key names need no encoding, but a trail's
 * prefix may. A key that does not decode is refused before anything is read.
 */
function notificationKey(key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, " "));
  } catch {
    throw new InputError(
      "trail.invalid_notification",
      `object key ${JSON.stringify(key.slice(0, 200))} is not URL-encoded as S3 notifications encode keys`,
    );
  }
}

export interface ObjectReport extends Omit<StreamReport, "stats"> {
  bucket: string;
  key: string;
  records: number;
}

/**
 * Imports S3 log files through the same pipeline as local files: the next object is read while the
 * batches of the previous ones are written. An object that is gone (deleted, a stale notification) or cannot
 * be read to its end (truncated, broken JSON) is reported and the others go on: no retry would change that.
 * Anything else (throttling, AccessDenied while a policy is being fixed, the store failing) throws, so that
 * the event is retried; the ingest dedupes what was already written.
 */
export async function importObjects(
  deps: Deps,
  objects: readonly S3Object[],
  open: (object: S3Object) => Promise<AsyncIterable<Uint8Array>>,
): Promise<ObjectReport[]> {
  const cache = new LookupCache();
  const summary = await importSources(
    objects.map((object) => ({ name: `s3://${object.bucket}/${object.key}`, open: () => open(object) })),
    (records) => ingest(deps, records, { source: "import", cache }),
    { unreadable: (error) => error instanceof NotFoundError },
  );
  return summary.files.map((report, index) => {
    const object = objects[index] as S3Object;
    if (report.error) log.error("trail import: log file not fully read", { ...object, error: report.error });
    return { ...object, records: report.stats.records, result: report.result, error: report.error };
  });
}
