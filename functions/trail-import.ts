import * as Trail from "../core/trail/index.ts";
import { s3FromEnv } from "./s3-deps.ts";
import { trailDepsFromEnv } from "./trail-deps.ts";

/**
 * S3 notifications from the CloudTrail bucket (infra/trail.ts routes EventBridge "Object Created"; direct,
 * SNS or SQS notifications work too): each new log file is streamed from S3 through the same reader and
 * ingest as `access audit import` (gunzip, filter before parse, bounded memory). Digest files and other
 * objects are skipped. An event that is no S3 notification is refused before anything is read or written; a
 * file that cannot be read to its end or no longer exists is reported in the log and the others go on;
 * throttling, AccessDenied and store failures throw, so that EventBridge retries the event (ingest dedupes).
 */
export async function handler(event: unknown): Promise<Trail.ObjectReport[]> {
  const objects = Trail.objectsOf(event);
  const s3 = s3FromEnv();
  return Trail.importObjects(trailDepsFromEnv(), objects, (object) =>
    s3.getObject(object.bucket, object.key),
  );
}
