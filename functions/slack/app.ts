import middy from "@middy/core";
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2 } from "aws-lambda";
// The ingress module, not the Slack barrel: the worker and its renderers stay out of this cold start.
import { type IngressDeps, receive } from "../../core/slack/ingress.ts";
import { errorResponses } from "../middleware/errors.ts";
import { json } from "../middleware/response.ts";

/**
 * The body exactly as Slack sent it. API Gateway (payload 2.0) base64-encodes form posts and says so with
 * `isBase64Encoded`; the signature covers the decoded bytes (protocols.md §5.1, §6.1).
 */
export function rawBody(event: Pick<APIGatewayProxyEventV2, "body" | "isBase64Encoded">): Buffer {
  if (!event.body) return Buffer.alloc(0);
  return event.isBase64Encoded ? Buffer.from(event.body, "base64") : Buffer.from(event.body, "utf8");
}

/**
 * The Slack endpoints' Lambda: raw body and headers in, Slack.receive (verification first), the answer out.
 * `deps` is resolved on first use, so importing the module does no I/O.
 */
export function createSlackHandler(deps: () => IngressDeps) {
  return middy<APIGatewayProxyEventV2, APIGatewayProxyResultV2>()
    .use(errorResponses())
    .handler(async (event) => {
      const headers = Object.fromEntries(
        Object.entries(event.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value]),
      );
      const path = event.rawPath ?? event.requestContext?.http?.path ?? "";
      const result = await receive(deps(), { path, headers, body: rawBody(event) });
      return result.body === undefined
        ? { statusCode: result.status, headers: { "cache-control": "no-store" }, body: "" }
        : json(result.status, result.body);
    });
}
