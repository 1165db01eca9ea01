import { SLACK_PLACEHOLDER, slackBotToken, slackSigningSecret } from "./secrets";
import { anchorBucket, table } from "./storage";

// `npm run deploy` validates the YAML policy (ACCESS_CONFIG_FILE, default access.yaml) and compiles it to
// this JSON first (scripts/compile-config.ts): a policy with errors never deploys, and the functions need
// no YAML parser.
const compiledConfig = ".build/access.json";

// Only Query can target an index; item-level actions get the table ARN alone.
const tableOnly = [table.arn];
const tableAndIndexes = [table.arn, $interpolate`${table.arn}/index/*`];

export const shared = {
  runtime: "nodejs22.x",
  environment: {
    ACCESS_TABLE_NAME: table.name,
    // Relative to the Lambda working directory (/var/task), where copyFiles puts it.
    ACCESS_CONFIG: "access.json",
    // Audit chain heads are anchored here (the sweeper writes, verify reads).
    ACCESS_ANCHOR_BUCKET: anchorBucket.bucket,
  },
  copyFiles: [{ from: compiledConfig, to: "access.json" }],
  nodejs: {
    format: "esm",
    // Module-first main fields keep the bundle small and avoid esbuild's "Dynamic require" failure in
    // ESM bundles of CJS-first packages (measured: 998 KB -> 434 KB with zod).
    esbuild: { mainFields: ["module", "main"], target: "node20" },
    // The SDK reaches rarely used credential providers, event streams and a browser user-agent parser
    // through dynamic imports; split, they stay out of the cold start (npm run bench: loaded vs total).
    splitting: true,
  },
} satisfies Partial<sst.aws.FunctionArgs>;

// Permissions are written out instead of using `link`, which would grant every DynamoDB action on the table.
// TransactWriteItems has no IAM action of its own: each item in a transaction is authorized as the action
// it contains. Every write here is a conditional Put inside a transaction (the item on condition of its
// version, the audit head on condition of its sequence, new audit records and idempotency keys on
// condition of not existing), so PutItem is the only write action. No UpdateItem, no DeleteItem, no Scan:
// the audit trail is append-only and idempotency keys expire through TTL.
export const tablePermissions = [
  {
    // One request or grant by id, and the audit chain head before an append; a trail batch's grants at once.
    actions: ["dynamodb:GetItem", "dynamodb:BatchGetItem"],
    resources: tableOnly,
  },
  {
    // Lists (mine, by status, by time), due transitions for the sweeper, and the audit chain walk.
    actions: ["dynamodb:Query"],
    resources: tableAndIndexes,
  },
  {
    // Conditional puts inside TransactWriteItems (see above), and key-push intents (put before the AWS call,
    // completed in a transaction with their audit record).
    actions: ["dynamodb:PutItem"],
    resources: tableOnly,
  },
];

// The broker never acts in a target account with its own identity: it assumes that account's broker role
// (settings.aws.accounts[*].brokerRoleArn) for DescribeInstances/Endpoints, SendSSHPublicKey, the per-grant
// tunnel signer and IAM grant policies. Those ARNs live in the policy file, which infra code does not read, so
// the grant names the role by its conventional name in any account; a policy whose brokerRoleArn uses another
// name needs that ARN here too. What the broker may do inside each account is that role's policy, written
// out in local/demo/inventory.yaml (the emulator's copy of it).
export const assumeBrokerRoles = {
  actions: ["sts:AssumeRole"],
  resources: ["arn:aws:iam::*:role/access-broker"],
};

// Anchors: `GET /audit/verify` and reports read the latest; the sweeper appends (never deletes: Object Lock).
const readAnchors = [
  { actions: ["s3:ListBucket"], resources: [anchorBucket.arn] },
  { actions: ["s3:GetObject"], resources: [$interpolate`${anchorBucket.arn}/audit-anchors/*`] },
];
const writeAnchors = {
  actions: ["s3:PutObject"],
  resources: [$interpolate`${anchorBucket.arn}/audit-anchors/*`],
};

const caller = aws.getCallerIdentityOutput({});
const region = aws.getRegionOutput({});

// One-time per-grant expiry schedules live in their own group, so the functions may touch only those.
export const grantSchedules = new aws.scheduler.ScheduleGroup("GrantSchedules", {});

export const expireFunction = new sst.aws.Function("Expire", {
  ...shared,
  handler: "functions/expire.handler",
  description: "access-broker: settles one grant when its schedule fires (idempotent)",
  memory: "256 MB",
  timeout: "30 seconds",
  // DMs the requester that access ended (secrets are linked: encrypted into the bundle, no IAM grant).
  link: [slackBotToken],
  // Expiry removes IAM grant-mode policies (through the broker roles); it never creates schedules.
  permissions: [...tablePermissions, assumeBrokerRoles],
});

// The role EventBridge Scheduler assumes to invoke the expire function, and nothing else.
const schedulerRole = new aws.iam.Role("GrantSchedulerRole", {
  assumeRolePolicy: caller.accountId.apply((accountId) =>
    JSON.stringify({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { Service: "scheduler.amazonaws.com" },
          Action: "sts:AssumeRole",
          // Confused-deputy guard: only schedules of this account may use the role.
          Condition: { StringEquals: { "aws:SourceAccount": accountId } },
        },
      ],
    }),
  ),
});

new aws.iam.RolePolicy("GrantSchedulerInvoke", {
  role: schedulerRole.id,
  policy: $jsonStringify({
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Action: "lambda:InvokeFunction", Resource: expireFunction.arn }],
  }),
});

// Grants that become active, are extended or revoked create, move or delete their schedule (API on
// approve/extend/revoke, sweeper on scheduled starts); PassRole hands Scheduler the invoke role above.
const schedulePermissions = [
  {
    actions: ["scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"],
    resources: [
      $interpolate`arn:aws:scheduler:${region.region}:${caller.accountId}:schedule/${grantSchedules.name}/*`,
    ],
  },
  { actions: ["iam:PassRole"], resources: [schedulerRole.arn] },
];

const schedulerEnvironment = {
  ...shared.environment,
  ACCESS_SCHEDULER_TARGET_ARN: expireFunction.arn,
  ACCESS_SCHEDULER_ROLE_ARN: schedulerRole.arn,
  ACCESS_SCHEDULER_GROUP: grantSchedules.name,
};

// Slack: the endpoints must answer within 3 seconds, so the slow part of every Slack interaction (creating
// the request from a slash command, deciding on a click, posting and updating messages, DMs) runs in a
// worker the endpoints invoke asynchronously. It talks to Slack with the bot token; the endpoints only need
// the signing secret. It decides like the API does, so it has the API's table, broker-role and schedule
// permissions, and nothing to invoke.
export const slackWorkerFunction = new sst.aws.Function("SlackWorker", {
  ...shared,
  handler: "functions/slack-worker.handler",
  description: "access-broker Slack worker: slash commands, button clicks and notifications (async)",
  memory: "512 MB",
  timeout: "60 seconds",
  environment: schedulerEnvironment,
  link: [slackBotToken],
  permissions: [...tablePermissions, assumeBrokerRoles, ...schedulePermissions],
});

// Lambda retries failed async invocations twice by default. The worker reports failures to the user itself
// and its work is idempotent where it matters (requests by Slack's trigger id); a retry would only repeat
// DMs. Events older than 5 minutes are useless to Slack (response_url and trigger ids have expired).
new aws.lambda.FunctionEventInvokeConfig("SlackWorkerInvokeConfig", {
  functionName: slackWorkerFunction.name,
  maximumRetryAttempts: 0,
  maximumEventAgeInSeconds: 300,
});

// Set only when the stage has a Slack app: without one, nothing hands work to the worker and the Slack
// endpoints answer 404 (the placeholder secret is public, so it is never used as a key).
const slackWorkerName = $resolve([
  slackSigningSecret.value,
  slackBotToken.value,
  slackWorkerFunction.name,
]).apply(([secret, token, name]) =>
  secret !== SLACK_PLACEHOLDER && token !== SLACK_PLACEHOLDER ? name : "",
);
const invokeSlackWorker = { actions: ["lambda:InvokeFunction"], resources: [slackWorkerFunction.arn] };

export const apiFunction = new sst.aws.Function("Api", {
  ...shared,
  handler: "functions/api.handler",
  description: "access-broker HTTP API",
  memory: "512 MB",
  // API Gateway cuts HTTP API integrations at 30 s; anything longer would only burn money.
  timeout: "29 seconds",
  // Decisions made through the API are announced in Slack by the worker, so the API answers without waiting.
  environment: { ...schedulerEnvironment, ACCESS_SLACK_WORKER: slackWorkerName },
  permissions: [
    ...tablePermissions,
    assumeBrokerRoles,
    ...schedulePermissions,
    invokeSlackWorker,
    ...readAnchors,
  ],
});

export const slackFunction = new sst.aws.Function("Slack", {
  ...shared,
  handler: "functions/slack.handler",
  description: "access-broker Slack endpoints: verify, acknowledge within 3 s, hand off to the worker",
  memory: "512 MB",
  // Slack gives up after 3 s; a modal submission (one create) is the slowest thing answered here.
  timeout: "10 seconds",
  environment: { ...schedulerEnvironment, ACCESS_SLACK_WORKER: slackWorkerName },
  link: [slackSigningSecret],
  // A modal submission creates the request here (describe the instance as the broker role; a break-glass
  // grant gets its expiry schedule at once); everything else goes to the worker.
  permissions: [...tablePermissions, assumeBrokerRoles, ...schedulePermissions, invokeSlackWorker],
});

export const sweeperFunction = new sst.aws.Function("Sweeper", {
  ...shared,
  handler: "functions/sweeper.handler",
  description:
    "access-broker sweeper: transitions backstop, IAM reconciler, Slack warnings, trail alerts and anchors",
  memory: "256 MB",
  // Shorter than the 1-minute schedule so runs rarely overlap; when they do, conditional writes make the
  // second transition a no-op.
  timeout: "50 seconds",
  environment: schedulerEnvironment,
  // Expiry warnings, "access ended" DMs and trail alerts are sent from here.
  link: [slackBotToken],
  permissions: [...tablePermissions, assumeBrokerRoles, ...schedulePermissions, ...readAnchors, writeAnchors],
});
