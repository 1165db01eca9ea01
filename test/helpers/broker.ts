import { randomUUID } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type {
  APIGatewayProxyEventV2WithJWTAuthorizer,
  APIGatewayProxyStructuredResultV2,
  Context,
} from "aws-lambda";
import { inject } from "vitest";
import { documentClient } from "../../core/aws/clients.ts";
import { DynamoStore } from "../../core/aws/dynamo/store.ts";
import type { Grant } from "../../core/grant/index.ts";
import type { Config } from "../../core/policy/index.ts";
import { parseConfig } from "../../core/policy/yaml.ts";
import { createApi } from "../../functions/api/app.ts";
import type { BrokerDeps } from "../../functions/deps.ts";
import { LOCAL_AWS } from "../../local/dynamo.ts";
import { type LocalAws, localDeps } from "../../local/runtime.ts";
import { DEMO_CONFIG_TEXT } from "./config.ts";

export { DEMO_CONFIG_TEXT };
export const DEMO_INSTANCE = "i-0a1b2c3d4e5f60718";

export interface TestBroker {
  deps: BrokerDeps;
  store: DynamoStore;
  table: string;
  raw: DynamoDBClient;
  /** Moves the broker's clock; starts at the real time. */
  clock: { now: Date; advance(seconds: number): void };
  call(user: string | null, method: string, path: string, options?: CallOptions): Promise<Response>;
}

export interface CallOptions {
  body?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
  query?: Record<string, string>;
}

export interface Response {
  status: number;
  body: any;
  headers: Record<string, string>;
}

/** A broker on a fresh table in the shared DynamoDB Local, called in-process through the real handler. */
export async function createTestBroker(
  configText = DEMO_CONFIG_TEXT,
  options: {
    isolatedStores?: boolean;
    aws?: LocalAws;
    /** Attempts per AWS call (default: the product's RETRY policy, 6). */
    awsMaxAttempts?: number;
    scheduler?: Grant.Scheduler;
  } = {},
): Promise<TestBroker> {
  const endpoint = inject("dynamoEndpoint");
  const table = `t-${randomUUID()}`;
  const raw = new DynamoDBClient({ ...LOCAL_AWS, endpoint });
  const config: Config = parseConfig(configText);
  const clock = {
    now: new Date(),
    advance(seconds: number) {
      clock.now = new Date(clock.now.getTime() + seconds * 1000);
    },
  };
  // The local runtime's own wiring, with the test's clock, scheduler and retry budget.
  const deps = await localDeps(
    config,
    endpoint,
    table,
    options.aws && { ...options.aws, maxAttempts: options.awsMaxAttempts },
    { scheduler: options.scheduler, clock: () => clock.now },
  );
  const store = deps.requests as DynamoStore;
  // With isolated stores every call gets its own store instance — like separate Lambda containers,
  // with no shared in-process lock or cached audit head — so races are decided by DynamoDB alone.
  const document = documentClient({ ...LOCAL_AWS, endpoint });
  const handler = createApi(() =>
    options.isolatedStores ? { ...deps, requests: new DynamoStore(document, table), audit: store } : deps,
  );
  const call = async (user: string | null, method: string, path: string, options: CallOptions = {}) => {
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    if (body !== undefined && !Object.keys(headers).some((name) => name.toLowerCase() === "content-type"))
      headers["content-type"] = "application/json";
    const lowered = Object.fromEntries(
      Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]),
    );
    const entry = user ? config.directory.users.find((candidate) => candidate.email === user) : undefined;
    const event = {
      version: "2.0",
      routeKey: "$default",
      rawPath: path,
      rawQueryString: new URLSearchParams(options.query ?? {}).toString(),
      headers: lowered,
      queryStringParameters: options.query,
      requestContext: {
        http: { method, path, protocol: "HTTP/1.1", sourceIp: "127.0.0.1", userAgent: "test" },
        requestId: randomUUID(),
        authorizer: user
          ? {
              jwt: {
                claims: { email: user, sub: user, groups: `[${(entry?.groups ?? []).join(" ")}]` },
                scopes: [],
              },
            }
          : undefined,
      },
      body,
      isBase64Encoded: false,
    } as unknown as APIGatewayProxyEventV2WithJWTAuthorizer;
    const result = (await handler(event, {
      awsRequestId: randomUUID(),
    } as Context)) as APIGatewayProxyStructuredResultV2;
    return {
      status: result.statusCode ?? 200,
      // CSV and HTML reports come back as text.
      body: result.body
        ? String(result.headers?.["content-type"] ?? "application/json").includes("json")
          ? JSON.parse(result.body)
          : result.body
        : undefined,
      headers: (result.headers ?? {}) as Record<string, string>,
    };
  };
  return { deps, store, table, raw, clock, call };
}

/** Everything the table holds, for "nothing was written" assertions. */
export async function snapshot(broker: TestBroker): Promise<{ head: number; requests: number }> {
  const head = await broker.store.head();
  const all = await broker.store.listAll({ limit: 1000 });
  return { head: head.seq, requests: all.items.length };
}

export const requestBody = (overrides: Record<string, unknown> = {}) => ({
  instanceId: DEMO_INSTANCE,
  method: "ssh",
  osUser: "ec2-user",
  durationSeconds: 1800,
  reason: "investigate disk usage",
  ...overrides,
});
