import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { documentClient } from "../core/aws/clients.ts";
import { DynamoStore } from "../core/aws/dynamo/store.ts";
import { ensureTable } from "../core/aws/dynamo/table.ts";
import type { Config } from "../core/policy/index.ts";
import { Target } from "../core/target/index.ts";
import type { Deps } from "../functions/api/routes.ts";
import { LOCAL_AWS } from "./dynamo.ts";

/** Wires core to a DynamoDB endpoint exactly as functions/deps.ts does in Lambda. */
export async function localDeps(config: Config, endpoint: string, table: string): Promise<Deps> {
  const raw = new DynamoDBClient({ ...LOCAL_AWS, endpoint });
  await ensureTable(raw, table);
  raw.destroy();
  const store = new DynamoStore(documentClient({ ...LOCAL_AWS, endpoint }), table);
  return { config, requests: store, audit: store, targets: Target.fromPolicy(config) };
}
