import middy from "@middy/core";
import { Trail } from "../core/trail/index.ts";
import { trailDepsFromEnv } from "./trail-deps.ts";

/**
 * EventBridge target of the rule on "AWS API Call via CloudTrail" from ec2-instance-connect (infra/trail.ts):
 * the record in `detail` goes to the one ingest. Delivery is at least once and in any order; ingest
 * dedupes by eventID and matches on eventTime. A store failure throws, so EventBridge retries (then the
 * DLQ); an event that is not a CloudTrail API call is logged and dropped (retrying cannot fix it).
 */
export const handler = middy<unknown, Trail.IngestResult | undefined>().handler((event) =>
  Trail.receive(trailDepsFromEnv(), event),
);
