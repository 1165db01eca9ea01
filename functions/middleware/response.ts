import type { APIGatewayProxyStructuredResultV2 } from "aws-lambda";

const BASE_HEADERS = {
  "content-type": "application/json; charset=utf-8",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
};

export function json(
  statusCode: number,
  body: unknown,
  headers?: Record<string, string>,
): APIGatewayProxyStructuredResultV2 {
  return { statusCode, headers: { ...BASE_HEADERS, ...headers }, body: JSON.stringify(body) };
}

/** A non-JSON body (CSV, HTML reports): routes return it, the router sends it as is. */
export class RawResponse {
  constructor(
    readonly contentType: string,
    readonly body: string,
    readonly headers: Record<string, string> = {},
  ) {}

  toResult(statusCode: number): APIGatewayProxyStructuredResultV2 {
    return {
      statusCode,
      headers: {
        "content-type": this.contentType,
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
        ...this.headers,
      },
      body: this.body,
    };
  }
}
