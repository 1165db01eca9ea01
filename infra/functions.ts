import { table } from "./storage";

// `npm run deploy` validates the YAML policy (ACCESS_CONFIG_FILE, default access.yaml) and compiles it to
// this JSON first (scripts/compile-config.ts): a policy with errors never deploys, and the functions need
// no YAML parser.
const compiledConfig = ".build/access.json";

// Only Query can target an index; item-level actions get the table ARN alone.
const tableOnly = [table.arn];
const tableAndIndexes = [table.arn, $interpolate`${table.arn}/index/*`];

const shared = {
  runtime: "nodejs22.x",
  environment: {
    ACCESS_TABLE_NAME: table.name,
    // Relative to the Lambda working directory (/var/task), where copyFiles puts it.
    ACCESS_CONFIG: "access.json",
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
const tablePermissions = [
  {
    // One request or grant by id, and the audit chain head before an append.
    actions: ["dynamodb:GetItem"],
    resources: tableOnly,
  },
  {
    // Lists (mine, by status, by time), due transitions for the sweeper, and the audit chain walk.
    actions: ["dynamodb:Query"],
    resources: tableAndIndexes,
  },
  {
    // Conditional puts inside TransactWriteItems (see above).
    actions: ["dynamodb:PutItem"],
    resources: tableOnly,
  },
];

export const apiFunction = new sst.aws.Function("Api", {
  ...shared,
  handler: "functions/api.handler",
  description: "access-broker HTTP API",
  memory: "512 MB",
  // API Gateway cuts HTTP API integrations at 30 s; anything longer would only burn money.
  timeout: "29 seconds",
  permissions: tablePermissions,
});

export const sweeperFunction = new sst.aws.Function("Sweeper", {
  ...shared,
  handler: "functions/sweeper.handler",
  description: "access-broker sweeper: time-based transitions backstop",
  memory: "256 MB",
  // Shorter than the 1-minute schedule so runs rarely overlap; when they do, conditional writes make the
  // second transition a no-op.
  timeout: "50 seconds",
  permissions: tablePermissions,
});
