import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceNotFoundException,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import { INDEX } from "./keys.ts";

/**
 * The table as infra/storage.ts declares it, for DynamoDB Local (the local runtime and tests).
 * All indexes project everything: list endpoints return whole items.
 */
export function tableDefinition(name: string): CreateTableCommandInput {
  const indexes = Object.values(INDEX).map((index) => ({
    IndexName: index,
    KeySchema: [
      { AttributeName: `${index}pk`, KeyType: "HASH" as const },
      { AttributeName: `${index}sk`, KeyType: "RANGE" as const },
    ],
    Projection: { ProjectionType: "ALL" as const },
  }));
  const attributes = ["pk", "sk", ...Object.values(INDEX).flatMap((index) => [`${index}pk`, `${index}sk`])];
  return {
    TableName: name,
    BillingMode: "PAY_PER_REQUEST",
    AttributeDefinitions: attributes.map((attribute) => ({ AttributeName: attribute, AttributeType: "S" })),
    KeySchema: [
      { AttributeName: "pk", KeyType: "HASH" },
      { AttributeName: "sk", KeyType: "RANGE" },
    ],
    GlobalSecondaryIndexes: indexes,
  };
}

/** Creates the table with its TTL setting unless it exists already. */
export async function ensureTable(client: DynamoDBClient, name: string): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: name }));
    return;
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException)) throw error;
  }
  await client.send(new CreateTableCommand(tableDefinition(name)));
  await client.send(
    new UpdateTimeToLiveCommand({
      TableName: name,
      TimeToLiveSpecification: { AttributeName: "expiresAt", Enabled: true },
    }),
  );
}
