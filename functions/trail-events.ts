import middy from "@middy/core";
import * as Trail from "../core/trail/index.ts";
import { trailDepsFromEnv } from "./trail-deps.ts";

/**
 * EventBridge target of the rule on "AWS API Call via CloudTrail" from ec2-instance-connect (infra/trail.ts):
 * the record in each event's `detail` goes to the one ingest. Delivery is at least once and in any order;
 * ingest dedupes by eventID and matches on eventTime. A record the broker cannot understand is kept as
 * `unparsed`; an event that is not a CloudTrail API call is logged and skipped (retrying cannot fix either),
 * and neither stops the other events of a batch. A store failure throws, so EventBridge retries (then the
 * DLQ). This function never loads the S3 SDK.
 */
export const handler = middy<unknown, Trail.IngestResult>().handler((event) =>
  Trail.receive(trailDepsFromEnv(), event),
);
