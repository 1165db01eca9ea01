import type { AnchorStore } from "../core/audit/anchor.ts";
import { S3, S3AnchorStore } from "../core/aws/s3.ts";
import { settings } from "../core/config.ts";

// Apart from functions/deps.ts so that only the functions that reach S3 have its SDK in their bundle: the API
// (audit verify, reports), the sweeper (anchoring) and the log-file import. The SDK itself loads on first
// use (core/aws/s3.ts), but esbuild's code splitting still moves the SDK code it shares with the other
// clients through barrel modules (REST-XML protocol, checksum streams: ~16 KB) into the cold start of every
// function whose graph contains it; trail-events, trail-backfill, expire and the Slack functions stay clear.

let s3: S3 | undefined;

/** S3 as the function's own role, with the SDK's defaults (region, credentials, endpoint); one per process. */
export function s3FromEnv(): S3 {
  s3 ??= new S3();
  return s3;
}

/** Adds the audit anchor store (the Object Lock bucket in ACCESS_ANCHOR_BUCKET, when set) to `deps`. */
export function withAnchors<T extends { anchors?: AnchorStore }>(deps: T): T {
  const bucket = settings.anchorBucket();
  if (bucket && !deps.anchors) deps.anchors = new S3AnchorStore(s3FromEnv(), bucket);
  return deps;
}
