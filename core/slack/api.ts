import type { Logger, RetryOptions, WebClient } from "@slack/web-api";
import { log } from "../util/log.ts";
import type { MessageRef, SlackApi } from "./ports.ts";

export interface WebApiOptions {
  /** Bot token (`xoxb-…`). Never logged. */
  token: string;
  /** Web API base; default Slack's. Tests and the local runtime point it at local/slack-fake.ts. */
  apiUrl?: string;
  /**
   * Where response_urls may point. The URL comes from a signed body, so it is Slack's; checking the host
   * anyway means a leaked signing secret cannot turn the worker into a request forwarder.
   */
  responseUrlPrefixes?: readonly string[];
  /** Default: 2 quick retries (Lambda is billed while waiting; Slack's default waits up to 30 minutes). */
  retryConfig?: RetryOptions;
  timeoutMs?: number;
}

export const SLACK_RESPONSE_URL_PREFIX = "https://hooks.slack.com/";

/** Slack's own logger would print to the console in its format; ours is JSON with secrets redacted. */
function bridgeLogger(): Logger {
  let level = "warn";
  const fields = (messages: unknown[]) => ({
    source: "@slack/web-api",
    detail: messages.map(String).join(" "),
  });
  return {
    debug: () => {},
    info: () => {},
    warn: (...messages: unknown[]) => log.warn("slack web api", fields(messages)),
    error: (...messages: unknown[]) => log.error("slack web api", fields(messages)),
    setLevel: (next) => {
      level = next;
    },
    getLevel: () => level as ReturnType<Logger["getLevel"]>,
    setName: () => {},
  };
}

/**
 * The SlackApi port over `@slack/web-api`'s WebClient. The client is loaded on first use, so functions
 * that rarely talk to Slack (sweeper, expire) do not pay for it at cold start.
 */
export function webApi(options: WebApiOptions): SlackApi {
  let client: Promise<WebClient> | undefined;
  const get = () => {
    client ??= import("@slack/web-api").then(
      ({ WebClient }) =>
        new WebClient(options.token, {
          slackApiUrl: options.apiUrl,
          allowAbsoluteUrls: false,
          retryConfig: options.retryConfig ?? { retries: 2, factor: 2, minTimeout: 200, maxTimeout: 1_000 },
          timeout: options.timeoutMs ?? 5_000,
          logger: bridgeLogger(),
        }),
    );
    return client;
  };
  const prefixes = options.responseUrlPrefixes ?? [SLACK_RESPONSE_URL_PREFIX];
  return {
    async postMessage(channel, message): Promise<MessageRef> {
      const answer = await (await get()).chat.postMessage({
        channel,
        text: message.text,
        blocks: message.blocks,
      });
      if (!answer.channel || !answer.ts) throw new Error("chat.postMessage answered without channel and ts");
      return { channel: answer.channel, ts: answer.ts };
    },
    async update(ref, message) {
      await (await get()).chat.update({
        channel: ref.channel,
        ts: ref.ts,
        text: message.text,
        blocks: message.blocks,
      });
    },
    async openView(triggerId, view) {
      // Our View is a structural subset of Slack's ModalView; the SDK's union type is stricter than needed.
      await (await get()).views.open({ trigger_id: triggerId, view: view as never });
    },
    async respond(responseUrl, message) {
      if (!prefixes.some((prefix) => responseUrl.startsWith(prefix)))
        throw new Error("response_url does not point at Slack; not following it");
      const answer = await fetch(responseUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(message),
        redirect: "error",
        signal: AbortSignal.timeout(options.timeoutMs ?? 5_000),
      });
      if (!answer.ok) throw new Error(`response_url answered ${answer.status}`);
    },
  };
}
