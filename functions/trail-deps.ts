import { awsClientsFor } from "../core/aws/clients.ts";
import * as Trail from "../core/trail/index.ts";
import { slackAlertSink } from "../core/trail/slack-sink.ts";
import { type BrokerDeps, depsFromEnv, slackWorkerFromEnv } from "./deps.ts";

// Apart from functions/deps.ts so the API's cold start does not load the trail machinery.

export type TrailDeps = BrokerDeps & Trail.MaintainDeps & Trail.BackfillDeps;

/**
 * The trail functions' deps (events, backfill, import, and the sweeper's trail pass): the broker's, plus
 * where alerts go (Slack's security channel when the stage has a bot token, the log otherwise) and
 * LookupEvents as each account's broker role (the CloudTrail SDK is loaded on first use).
 */
export function trailDepsFromEnv(): TrailDeps {
  const deps = depsFromEnv();
  const slack = slackWorkerFromEnv();
  const clients = awsClientsFor(deps.config.settings.aws.accounts);
  let lookup: Promise<Trail.LookupEventsApi> | undefined;
  return {
    ...deps,
    trail: deps.trail as Trail.TrailStore,
    alerts: slack ? slackAlertSink(slack.slack, deps.config.settings.slack.securityChannel) : Trail.logSink,
    lookupEvents: {
      page: async (scope, input) => {
        lookup ??= import("../core/aws/cloudtrail.ts").then(
          ({ CloudTrailLookup }) => new CloudTrailLookup(clients),
        );
        return (await lookup).page(scope, input);
      },
    },
  };
}
