import type { MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyResultV2 } from "aws-lambda";
import { AppError, type ErrorKind } from "../../core/error.ts";
import { log } from "../../core/util/log.ts";
import { json } from "./response.ts";

/** The one place an error kind becomes an HTTP status. */
const STATUS: Record<ErrorKind, number> = {
  input: 400,
  auth: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  unsupported_media_type: 415,
  throttled: 429,
};

export function toResponse(error: unknown, requestId?: string): APIGatewayProxyResultV2 {
  if (error instanceof AppError) {
    const body = { error: { code: error.code, message: error.message, details: error.details } };
    const headers = error.kind === "throttled" ? { "retry-after": "1" } : undefined;
    return json(STATUS[error.kind], body, headers);
  }
  log.error("unhandled error", { error, requestId, stack: error instanceof Error ? error.stack : undefined });
  return json(500, { error: { code: "internal", message: "Internal error", details: { requestId } } });
}

export function errorResponses(): MiddlewareObj {
  return {
    onError: async (request) => {
      request.response = toResponse(request.error, request.context?.awsRequestId);
    },
  };
}
