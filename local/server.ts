import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type {
  APIGatewayProxyEventV2WithJWTAuthorizer,
  APIGatewayProxyStructuredResultV2,
  Context,
} from "aws-lambda";
import * as z from "zod";
import { AppError, AuthError, InputError, NotFoundError } from "../core/error.ts";
import * as Identity from "../core/identity/index.ts";
import type { Config } from "../core/policy/index.ts";
import { createApi } from "../functions/api/app.ts";
import type { Deps } from "../functions/api/routes.ts";
import { toResponse } from "../functions/middleware/errors.ts";
import type { createSlackHandler } from "../functions/slack/app.ts";
import type { DevIssuer } from "./issuer.ts";
import { serveWeb } from "./web-static.ts";

/** Hard cap before the handler's own 64 KB check, so a huge upload cannot fill memory. */
const MAX_RAW_BODY = 1024 * 1024;
const PUBLIC_PATHS = new Set(["/health", "/openapi.json", "/dev/login", "/dev/jwks.json", "/dev/users"]);
const TEXT_TYPES = /^(application\/json|text\/)/;

export interface DevServerOptions {
  deps: Deps;
  issuer: DevIssuer;
  port: number;
  host?: string;
  /**
   * Where the local EICE endpoint (the AWS emulator) listens. Presigned tunnel URLs name the endpoint's
   * AWS DNS name, which does not resolve here; `access login` stores this and connects there instead.
   */
  eiceEndpoint?: string;
  /**
   * The Slack endpoints' handler (functions/slack/app.ts). `/slack/*` reaches it without a token, as in API
   * Gateway (Slack signs its requests instead); without it those paths answer 404.
   */
  slack?: ReturnType<typeof createSlackHandler>;
  /**
   * The built web app (web/build.ts output): `/assets/*` and page navigations (browser GETs asking for
   * HTML, without a token) are served from it; everything else is the API (local/web-static.ts).
   */
  webDir?: string;
  /** Origins besides its own the web app may call (an OIDC provider's), for its content security policy. */
  webConnect?: string[];
}

type Handler = ReturnType<typeof createApi>;

/** API Gateway hands array claims to Lambda as "[a b]" strings; reproduce that so handlers see the same. */
function toAuthorizerClaims(
  payload: Record<string, unknown>,
): Record<string, string | number | boolean | string[]> {
  return Object.fromEntries(
    Object.entries(payload).map(([key, value]) => [
      key,
      Array.isArray(value) ? `[${value.join(" ")}]` : String(value),
    ]),
  );
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_RAW_BODY)
      throw new AppError("too_large", "input.body_too_large", "Request body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function send(response: ServerResponse, result: APIGatewayProxyStructuredResultV2) {
  response.writeHead(result.statusCode ?? 200, result.headers as Record<string, string>);
  response.end(result.isBase64Encoded ? Buffer.from(result.body ?? "", "base64") : (result.body ?? ""));
}

const LoginBody = z.strictObject({ user: z.email() });

async function devLogin(body: Buffer, config: Config, issuer: DevIssuer, eiceEndpoint?: string) {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8") || "null");
  } catch {
    throw new InputError("input.malformed_json", "The request body is not valid JSON");
  }
  const login = LoginBody.safeParse(parsed);
  if (!login.success) throw new InputError("input.invalid", 'Send {"user": "<email>"}');
  const actor = Identity.fromDirectory(login.data.user, config);
  if (!actor)
    throw new NotFoundError("dev.unknown_user", `${login.data.user} is not in the directory of this config`);
  const user = config.directory.users.find((entry) => entry.email === actor.email);
  const token = await issuer.mint({ email: actor.email, groups: actor.groups, name: user?.name });
  return eiceEndpoint ? { token, eiceEndpoint } : { token };
}

/**
 * The local stand-in for API Gateway: turns HTTP into payload-2.0 events, plays the JWT authorizer
 * with the dev issuer, and calls the very handler that runs in Lambda.
 */
export function createDevServer(options: DevServerOptions): { server: Server; handler: Handler } {
  const handler = createApi(() => options.deps);
  const server = createServer(async (request, response) => {
    const requestId = randomUUID();
    try {
      const url = new URL(request.url ?? "/", "http://localhost");
      const body = await readBody(request);
      const path = url.pathname;
      const method = request.method ?? "GET";
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(request.headers)) {
        if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(",") : value;
      }
      if (options.webDir && serveWeb(options.webDir, method, path, headers, response, options.webConnect))
        return;
      if (path === "/dev/users" && method === "GET") {
        // The local sign-in page's user picker: the demo directory, as `POST /dev/login` accepts it.
        const users = options.deps.config.directory.users.map(({ email, name, groups }) => ({
          email,
          name,
          groups,
        }));
        return send(response, {
          statusCode: 200,
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ users }),
        });
      }
      if (path === "/dev/login" && request.method === "POST") {
        return send(response, {
          statusCode: 200,
          headers: { "content-type": "application/json" },
          body: JSON.stringify(
            await devLogin(body, options.deps.config, options.issuer, options.eiceEndpoint),
          ),
        });
      }
      if (path === "/dev/jwks.json") {
        return send(response, {
          statusCode: 200,
          headers: { "content-type": "application/json" },
          body: JSON.stringify(options.issuer.jwks()),
        });
      }
      let authorizer:
        | { jwt: { claims: Record<string, string | number | boolean | string[]>; scopes: string[] } }
        | undefined;
      const slack = path.startsWith("/slack/");
      if (slack && !options.slack) throw new NotFoundError("slack.not_configured", "Slack is not wired here");
      if (!PUBLIC_PATHS.has(path) && !slack) {
        const token = /^Bearer\s+(\S+)$/i.exec(headers.authorization ?? "")?.[1];
        if (!token) throw new AuthError();
        try {
          authorizer = {
            jwt: { claims: toAuthorizerClaims(await options.issuer.verify(token)), scopes: [] },
          };
        } catch {
          throw new AuthError("The token is invalid or expired");
        }
      }
      const query: Record<string, string> = {};
      for (const [key, value] of url.searchParams)
        query[key] = key in query ? `${query[key]},${value}` : value;
      const text = TEXT_TYPES.test(headers["content-type"] ?? "application/json");
      const now = Date.now();
      const event = {
        version: "2.0",
        routeKey: "$default",
        rawPath: path,
        rawQueryString: url.search.slice(1),
        headers,
        queryStringParameters: Object.keys(query).length ? query : undefined,
        requestContext: {
          accountId: "local",
          apiId: "local",
          domainName: headers.host ?? "localhost",
          domainPrefix: "local",
          http: {
            method: request.method ?? "GET",
            path,
            protocol: `HTTP/${request.httpVersion}`,
            sourceIp: request.socket.remoteAddress ?? "127.0.0.1",
            userAgent: headers["user-agent"] ?? "",
          },
          requestId,
          routeKey: "$default",
          stage: "$default",
          time: new Date(now).toUTCString(),
          timeEpoch: now,
          authorizer,
        },
        body: body.length ? body.toString(text ? "utf8" : "base64") : undefined,
        isBase64Encoded: body.length > 0 && !text,
      } as unknown as APIGatewayProxyEventV2WithJWTAuthorizer;
      const context = {
        awsRequestId: requestId,
        functionName: "local-api",
        getRemainingTimeInMillis: () => 29_000,
      } as unknown as Context;
      // Form posts (Slack's) are not text to API Gateway: they arrive base64-encoded, as here.
      const target = slack && options.slack ? options.slack : handler;
      send(response, (await target(event, context)) as APIGatewayProxyStructuredResultV2);
    } catch (error) {
      send(response, toResponse(error, requestId) as APIGatewayProxyStructuredResultV2);
    }
  });
  return { server, handler };
}

export async function listen(server: Server, port: number, host = "127.0.0.1"): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}
