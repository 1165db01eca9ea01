import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import * as Access from "../core/access/index.ts";
import { AwsClients, documentClient } from "../core/aws/clients.ts";
import type { Credentials } from "../core/aws/credentials.ts";
import { DynamoSlackStore } from "../core/aws/dynamo/slack-store.ts";
import { DynamoStore } from "../core/aws/dynamo/store.ts";
import { ensureTable } from "../core/aws/dynamo/table.ts";
import { DynamoTrailStore } from "../core/aws/dynamo/trail-store.ts";
import { awsAdapters } from "../core/aws/index.ts";
import * as Grant from "../core/grant/index.ts";
import type { Config } from "../core/policy/index.ts";
import * as Slack from "../core/slack/index.ts";
import * as Target from "../core/target/index.ts";
import type { BrokerDeps } from "../functions/deps.ts";
import { LOCAL_AWS } from "./dynamo.ts";

/** The broker's own identity in the demo inventory (IAM user access-broker in 123456789012); emulator-only. */
export const DEMO_BROKER_CREDENTIALS = {
  accessKeyId: "AKIAEMULATORBROKER01",
  secretAccessKey: "emulator-broker-secret-do-not-use-in-aws",
};

/** Where the local broker reaches "AWS": the emulator's one URL, as the broker's own IAM user. */
export interface LocalAws {
  endpoint: string;
  credentials: Credentials;
  /** Region for STS/IAM (default us-east-1). */
  homeRegion?: string;
  /** Emulator time, when tests move it (role-session caching follows it). */
  clock?: () => Date;
  /** Attempts per AWS call (default: the product's retry policy). */
  maxAttempts?: number;
}

/** What tests vary beyond the production wiring. */
export interface LocalOverrides {
  scheduler?: Grant.Scheduler;
  /** The broker's clock (tests move it). */
  clock?: () => Date;
}

/**
 * Wires core to a DynamoDB endpoint exactly as functions/deps.ts does in Lambda. With `aws`, the production
 * AWS adapters talk to that endpoint (the local emulator); without it, instances resolve from the policy
 * alone and pushes/tunnels answer `access.not_configured`. No per-grant schedules: the sweeper's timer
 * settles grants locally.
 */
export async function localDeps(
  config: Config,
  endpoint: string,
  table: string,
  aws?: LocalAws,
  overrides: LocalOverrides = {},
): Promise<BrokerDeps> {
  const raw = new DynamoDBClient({ ...LOCAL_AWS, endpoint });
  await ensureTable(raw, table);
  raw.destroy();
  const store = new DynamoStore(documentClient({ ...LOCAL_AWS, endpoint }), table);
  const adapters = aws
    ? awsAdapters(
        config,
        new AwsClients(config.settings.aws.accounts, {
          endpoint: aws.endpoint,
          credentials: aws.credentials,
          homeRegion: aws.homeRegion,
          clock: aws.clock,
          maxAttempts: aws.maxAttempts,
        }),
      )
    : {
        targets: Target.fromPolicy(config),
        keys: Access.notConfigured,
        tunnels: Access.notConfigured,
        iam: Grant.iamNotConfigured,
      };
  const deps: BrokerDeps = {
    config,
    requests: store,
    audit: store,
    pushes: store,
    trail: new DynamoTrailStore(store, documentClient({ ...LOCAL_AWS, endpoint }), table),
    ...adapters,
    scheduler: overrides.scheduler ?? Grant.noScheduler,
    ...(overrides.clock ? { clock: overrides.clock } : {}),
  };
  deps.hooks = Grant.hooks(deps);
  return deps;
}

export { DEV_SLACK_SIGNING_SECRET } from "./slack-fake.ts";

export interface LocalSlack {
  /** The Slack endpoints' deps (functions/slack/app.ts). */
  ingress: Slack.IngressDeps;
  /** The worker's deps (and the sweeper's, for expiry warnings). */
  worker: Slack.WorkerDeps;
  /** The in-process job queue standing in for the async Lambda invoke. */
  jobs: Slack.InProcessJobs;
}

/**
 * Slack wired into local deps the way Lambda has it: the endpoints and the API hand work to the worker
 * (here an in-process queue that runs each job after the response, concurrently), the worker notifies
 * inline. Replaces `deps.hooks`, so API decisions are announced in Slack as in AWS.
 */
export function localSlack(
  deps: BrokerDeps,
  endpoint: string,
  table: string,
  options: { signingSecret: string; api: Slack.SlackApi },
): LocalSlack {
  const jobs = Slack.inProcessJobs();
  const slackStore = new DynamoSlackStore(documentClient({ ...LOCAL_AWS, endpoint }), table);
  const { ingress, worker } = Slack.wire(deps, {
    signingSecret: options.signingSecret,
    slack: options.api,
    slackStore,
    jobs,
  });
  jobs.start((job) => Slack.runJob(worker, job));
  deps.hooks = ingress.hooks;
  return { ingress, worker, jobs };
}
