import type { MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { AppError, InputError } from "../../core/error.ts";

export const MAX_BODY_BYTES = 64 * 1024;

/** The event after `jsonBody()`: `jsonBody` holds the parsed body (undefined when none was sent). */
export type JsonEvent = APIGatewayProxyEventV2 & { jsonBody?: unknown };

/**
 * Strict JSON bodies: at most 64 KB, `application/json` only, well-formed. Checked before any handler
 * runs, so a rejected body never reaches core.
 */
export function jsonBody(): MiddlewareObj<JsonEvent> {
  return {
    before: async (request) => {
      const event = request.event;
      if (event.body === undefined || event.body === null || event.body === "") return;
      const raw = event.isBase64Encoded ? Buffer.from(event.body, "base64") : Buffer.from(event.body, "utf8");
      if (raw.byteLength > MAX_BODY_BYTES)
        throw new AppError(
          "too_large",
          "input.body_too_large",
          `Request bodies are limited to ${MAX_BODY_BYTES} bytes`,
        );
      const contentType = (event.headers?.["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
      if (contentType !== "application/json")
        throw new AppError("unsupported_media_type", "input.unsupported_media_type", "Send application/json");
      try {
        event.jsonBody = JSON.parse(raw.toString("utf8"));
      } catch {
        throw new InputError("input.malformed_json", "The request body is not valid JSON");
      }
    },
  };
}
