import middy from "@middy/core";
import httpRouterHandler, { type Route as MiddyRoute } from "@middy/http-router";
import type { APIGatewayProxyEventV2WithJWTAuthorizer, APIGatewayProxyResultV2 } from "aws-lambda";
import { AuthError, NotFoundError } from "../../core/error.ts";
import * as Identity from "../../core/identity/index.ts";
import { type JsonEvent, jsonBody } from "../middleware/body.ts";
import { errorResponses } from "../middleware/errors.ts";
import { json, RawResponse } from "../middleware/response.ts";
import { type Deps, type Route, routes } from "./routes.ts";

type Event = JsonEvent & Partial<Pick<APIGatewayProxyEventV2WithJWTAuthorizer, "requestContext">>;

function adapt(route: Route, deps: () => Deps): MiddyRoute<Event, APIGatewayProxyResultV2> {
  return {
    method: route.method,
    path: route.path,
    handler: async (event: Event) => {
      const resolved = deps();
      const claims = event.requestContext?.authorizer?.jwt?.claims;
      if (route.auth && !claims) throw new AuthError();
      const actor = claims ? Identity.fromClaims(claims, resolved.config) : { email: "", groups: [] };
      const result = await route.handle({
        deps: resolved,
        actor,
        params: event.pathParameters ?? {},
        query: event.queryStringParameters ?? {},
        body: event.jsonBody,
        headers: event.headers ?? {},
      });
      if (result instanceof RawResponse) return result.toResult(route.status);
      const shaped =
        result &&
        typeof result === "object" &&
        "status" in result &&
        "body" in result &&
        typeof result.status === "number"
          ? (result as { status: number; body: unknown })
          : { status: route.status, body: result };
      return json(shaped.status, shaped.body);
    },
  };
}

/**
 * The API Lambda: one function, routes from routes.ts. `deps` is resolved on first use so that
 * importing the module (cold start) does no I/O.
 */
export function createApi(deps: () => Deps) {
  // Built on first request, and its code (zod's JSON Schema conversion) loaded then too: converting every
  // schema, or only parsing the converter, would add to each cold start.
  let document: unknown;
  const router = httpRouterHandler<Event, APIGatewayProxyResultV2>({
    routes: [
      ...routes.map((route) => adapt(route, deps)),
      {
        method: "GET",
        path: "/openapi.json",
        handler: async () => {
          document ??= (await import("./openapi.ts")).openApiDocument();
          return json(200, document);
        },
      },
    ],
    notFoundResponse: ({ method, path }) => {
      throw new NotFoundError("route.not_found", `No route ${method} ${path}`);
    },
  });
  return middy<Event, APIGatewayProxyResultV2>().use(errorResponses()).use(jsonBody()).handler(router);
}
