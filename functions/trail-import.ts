import { Trail } from "../core/trail/index.ts";
import { s3FromEnv } from "./deps.ts";
import { trailDepsFromEnv } from "./trail-deps.ts";

/**
 * S3 notifications from the CloudTrail bucket (infra/trail.ts): each new log file is streamed through the
 * same reader and ingest as `access audit import` (gunzip, filter before parse, bounded memory). Digest
 * files and other objects are skipped. A file that cannot be read is reported in the log; the others go on.
 */
export async function handler(event: unknown): Promise<Trail.ObjectReport[]> {
  const s3 = s3FromEnv();
  return Trail.importObjects(trailDepsFromEnv(), Trail.objectsOf(event), (object) =>
    s3.getObject(object.bucket, object.key),
  );
}
