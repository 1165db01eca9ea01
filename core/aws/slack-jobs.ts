import type { LambdaClient } from "@aws-sdk/client-lambda";
import type { SlackJobs } from "../slack/ports.ts";
import { RETRY } from "./clients.ts";

/**
 * SlackJobs over an asynchronous Lambda invoke (`InvocationType: "Event"`): Lambda queues the payload and
 * answers 202 in milliseconds, so the acknowledging handler stays far inside Slack's 3 seconds. The worker's
 * own retries are off (infra/functions.ts): its work is made idempotent instead, and a retried DM would be a
 * duplicate. The SDK is loaded on first use so that functions which never enqueue do not pay for it.
 */
export function lambdaJobs(functionName: string, client?: LambdaClient): SlackJobs {
  let ready:
    | Promise<{ client: LambdaClient; Invoke: typeof import("@aws-sdk/client-lambda").InvokeCommand }>
    | undefined;
  const load = () => {
    ready ??= import("@aws-sdk/client-lambda").then((sdk) => ({
      client: client ?? new sdk.LambdaClient({ ...RETRY }),
      Invoke: sdk.InvokeCommand,
    }));
    return ready;
  };
  return {
    async enqueue(job) {
      const { client: lambda, Invoke } = await load();
      const answer = await lambda.send(
        new Invoke({
          FunctionName: functionName,
          InvocationType: "Event",
          Payload: Buffer.from(JSON.stringify(job)),
        }),
      );
      if (answer.StatusCode !== 202)
        throw new Error(`async invoke of the Slack worker answered ${answer.StatusCode}`);
    },
  };
}
