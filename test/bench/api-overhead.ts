import { randomUUID } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { GetCommand, TransactWriteCommand } from "@aws-sdk/lib-dynamodb";
import type {
  APIGatewayProxyEventV2WithJWTAuthorizer,
  APIGatewayProxyStructuredResultV2,
  Context,
} from "aws-lambda";
import { documentClient } from "../../core/aws/clients.ts";
import { DynamoStore } from "../../core/aws/dynamo/store.ts";
import { ensureTable } from "../../core/aws/dynamo/table.ts";
import { loadConfig } from "../../core/policy/yaml.ts";
import * as Target from "../../core/target/index.ts";
import { createApi } from "../../functions/api/app.ts";
import { LOCAL_AWS, startDynamoLocal } from "../../local/dynamo.ts";
import { ROOT } from "../helpers/runtime.ts";

export interface OverheadResult {
  flows: number;
  apiMsPerFlow: number;
  rawMsPerFlow: number;
  /** raw / api: 1.0 means the API adds nothing over the DynamoDB round trips it needs. */
  ratio: number;
}

function event(user: string, groups: string[], method: string, path: string, body?: unknown) {
  return {
    version: "2.0",
    rawPath: path,
    headers: body ? { "content-type": "application/json" } : {},
    requestContext: {
      http: { method, path },
      requestId: randomUUID(),
      authorizer: { jwt: { claims: { email: user, groups: `[${groups.join(" ")}]` }, scopes: [] } },
    },
    body: body ? JSON.stringify(body) : undefined,
    isBase64Encoded: false,
  } as unknown as APIGatewayProxyEventV2WithJWTAuthorizer;
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

/**
 * create + approve through the real handler (routing, validation, policy, lifecycle, audit chain) vs the
 * DynamoDB calls that flow cannot avoid: a 3-item transaction (request, chain head, audit record), a
 * consistent read, and a 5-item transaction (request, head, three audit records). Same items sizes, same
 * DynamoDB Local, interleaved rounds; medians of per-round means.
 */
export async function benchApiOverhead(flowsPerRound = 40, rounds = 5): Promise<OverheadResult> {
  const dynamo = await startDynamoLocal();
  try {
    const raw = new DynamoDBClient({ ...LOCAL_AWS, endpoint: dynamo.endpoint });
    const document = documentClient({ ...LOCAL_AWS, endpoint: dynamo.endpoint });
    const config = loadConfig(`${ROOT}/local/demo/access.yaml`);
    const apiTable = "bench-api";
    const rawTable = "bench-raw";
    await ensureTable(raw, apiTable);
    await ensureTable(raw, rawTable);
    const store = new DynamoStore(document, apiTable);
    const handler = createApi(() => ({
      config,
      requests: store,
      audit: store,
      targets: Target.fromPolicy(config),
    }));
    const context = { awsRequestId: "bench" } as Context;
    const invoke = async (e: APIGatewayProxyEventV2WithJWTAuthorizer) => {
      const result = (await handler(e, context)) as APIGatewayProxyStructuredResultV2;
      if ((result.statusCode ?? 500) >= 300) throw new Error(`bench call failed: ${result.body}`);
      return JSON.parse(result.body ?? "{}") as { id: string };
    };
    const body = {
      instanceId: "i-0a1b2c3d4e5f60718",
      method: "ssh",
      durationSeconds: 1800,
      reason: "benchmark",
    };
    const apiFlow = async () => {
      const created = await invoke(event("alice@example.com", ["dev"], "POST", "/requests", body));
      await invoke(event("bob@example.com", ["sre-leads"], "POST", `/requests/${created.id}/approve`));
    };

    // A representative request item and audit record, as the API writes them (sizes matter, not content).
    const sample = await store.get(
      (await invoke(event("alice@example.com", ["dev"], "POST", "/requests", body))).id,
    );
    const sampleAudit = (await store.list({}, { limit: 1 })).items[0];
    let seq = 0;
    const auditPut = () => ({
      Put: {
        TableName: rawTable,
        Item: { ...sampleAudit, pk: "AUDIT", sk: `SEQ#${String(++seq).padStart(12, "0")}`, seq },
        ConditionExpression: "attribute_not_exists(pk)",
      },
    });
    const headPut = () => ({
      Put: {
        TableName: rawTable,
        Item: { pk: "AUDIT", sk: "HEAD", seq, hash: "x".repeat(64) },
        ConditionExpression: "attribute_not_exists(pk) OR seq < :s",
        ExpressionAttributeValues: { ":s": seq + 10 },
      },
    });
    const rawFlow = async () => {
      const id = randomUUID();
      const key = { pk: `REQ#${id}`, sk: "REQ" };
      await document.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: rawTable,
                Item: { ...sample, ...key, version: 1 },
                ConditionExpression: "attribute_not_exists(pk)",
              },
            },
            auditPut(),
            headPut(),
          ],
        }),
      );
      await document.send(new GetCommand({ TableName: rawTable, Key: key, ConsistentRead: true }));
      await document.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: rawTable,
                Item: { ...sample, ...key, version: 2 },
                ConditionExpression: "version = :v",
                ExpressionAttributeValues: { ":v": 1 },
              },
            },
            auditPut(),
            auditPut(),
            auditPut(),
            headPut(),
          ],
        }),
      );
    };

    const time = async (flow: () => Promise<void>) => {
      const start = performance.now();
      for (let index = 0; index < flowsPerRound; index++) await flow();
      return (performance.now() - start) / flowsPerRound;
    };
    await time(apiFlow);
    await time(rawFlow);
    const api: number[] = [];
    const direct: number[] = [];
    for (let round = 0; round < rounds; round++) {
      api.push(await time(apiFlow));
      direct.push(await time(rawFlow));
    }
    raw.destroy();
    const apiMsPerFlow = median(api);
    const rawMsPerFlow = median(direct);
    return { flows: flowsPerRound * rounds, apiMsPerFlow, rawMsPerFlow, ratio: rawMsPerFlow / apiMsPerFlow };
  } finally {
    await dynamo.stop();
  }
}
