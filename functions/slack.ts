import { slackIngressFromEnv } from "./deps.ts";
import { createSlackHandler } from "./slack/app.ts";

/** POST /slack/commands and /slack/interactions: verified by Slack's signature, not by the JWT authorizer. */
export const handler = createSlackHandler(slackIngressFromEnv);
