import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";

/**
 * The one place AWS clients are built. Endpoints come from the SDK's own settings
 * (`AWS_ENDPOINT_URL_DYNAMODB` etc.), so the local runtime and tests use the production code path.
 */
export function documentClient(config: DynamoDBClientConfig = {}): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(new DynamoDBClient({ maxAttempts: 5, ...config }), {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
  });
}
