import { apiFunction, slackFunction } from "./functions";
import { jwtAudiences, jwtIssuer } from "./secrets";

export const api = new sst.aws.ApiGatewayV2("Api", {
  // The web app (infra/web.ts) calls from its own CloudFront origin. Any origin may: callers authenticate
  // with a bearer token, never a cookie, so a foreign page gains nothing a token would not already give.
  cors: {
    allowOrigins: ["*"],
    allowMethods: ["GET", "POST"],
    allowHeaders: ["authorization", "content-type", "idempotency-key"],
    maxAge: "1 hour",
  },
  transform: {
    route: {
      args: (args) => {
        // Closed by default: a route added without an explicit auth setting is still authenticated.
        args.auth ??= { jwt: { authorizer: authorizer.id } };
        args.transform = {
          ...args.transform,
          // The handler parses the 2.0 event shape; pinned so a change of SST defaults cannot break it.
          integration: { payloadFormatVersion: "2.0" },
        };
      },
    },
  },
});

const authorizer = api.addAuthorizer({
  name: "Oidc",
  jwt: { issuer: jwtIssuer, audiences: jwtAudiences },
});

const publicRoutes = ["GET /health", "GET /openapi.json"];

const protectedRoutes = [
  "GET /me",
  "GET /policy",
  "POST /requests",
  "GET /requests",
  "GET /requests/{id}",
  "POST /requests/{id}/approve",
  "POST /requests/{id}/deny",
  "POST /requests/{id}/cancel",
  "POST /requests/{id}/review",
  "GET /grants",
  "GET /grants/{id}",
  "POST /grants/{id}/revoke",
  "POST /grants/{id}/extend",
  "POST /grants/{id}/ssh-key",
  "POST /grants/{id}/tunnel",
  "GET /audit/events",
  "GET /audit/verify",
  "GET /audit/trail",
  "POST /audit/trail",
  "GET /reports/access",
];

// One function behind every route: routing happens in the handler, so a cold start serves any path.
for (const route of publicRoutes) {
  api.route(route, apiFunction.arn, { auth: false });
}

for (const route of protectedRoutes) {
  api.route(route, apiFunction.arn, { auth: { jwt: { authorizer: authorizer.id } } });
}

// Slack cannot present a JWT: it signs each request instead (HMAC-SHA256 over the raw body with the app's
// signing secret), and functions/slack.ts verifies that before it parses anything. These two routes are
// therefore the only ones without the authorizer, and they reach a function that can only hand work on.
const slackRoutes = ["POST /slack/commands", "POST /slack/interactions"];

for (const route of slackRoutes) {
  api.route(route, slackFunction.arn, { auth: false });
}
