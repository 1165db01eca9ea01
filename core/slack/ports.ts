import type { Request } from "../request/index.ts";
import type { Block, Ephemeral, Message, View } from "./kit.ts";
import type { JobInput } from "./schema.ts";

/**
 * Ports of the Slack adapter. The Web API is reached through `SlackApi` (the `@slack/web-api` adapter in
 * api.ts; a local fake in tests and `npm start`), message references and once-only markers through
 * `SlackStore` (DynamoDB), and deferred work through `SlackJobs` (an async Lambda invoke in AWS).
 */

export interface MessageRef {
  /** The channel id Slack answered with (chat.update needs the id, not a #name). */
  channel: string;
  ts: string;
}

export interface SlackApi {
  /** chat.postMessage; a user id as `channel` is a DM from the app. */
  postMessage(channel: string, message: Message): Promise<MessageRef>;
  /** chat.update of a message the app posted. */
  update(ref: MessageRef, message: Message): Promise<void>;
  /** views.open with a trigger id from the last 3 seconds. */
  openView(triggerId: string, view: View): Promise<void>;
  /** POST to an interaction's response_url (no token; Slack allows 5 uses in 30 minutes). */
  respond(
    responseUrl: string,
    message: Ephemeral | { replace_original: true; text: string; blocks: Block[] },
  ): Promise<void>;
}

/** Which of a request's messages: its approval request, its break-glass alert, or one extension's request. */
export type MessageKey = "approval" | "alert" | `extension#${string}`;

export interface SlackStore {
  getMessage(requestId: string, key: MessageKey): Promise<MessageRef | undefined>;
  putMessage(requestId: string, key: MessageKey, ref: MessageRef): Promise<void>;
  /** True exactly once per (request, marker), whoever asks and however often: a conditional write. */
  claim(requestId: string, marker: string): Promise<boolean>;
}

export interface SlackJobs {
  /** Hands work to the worker; resolves once it is accepted (not done). */
  enqueue(job: JobInput): Promise<void>;
}

/** What sending lifecycle notifications needs: the policy, the requests, Slack, and its message store. */
export interface NotifyDeps extends Pick<Request.Deps, "config" | "requests" | "clock"> {
  slack: SlackApi;
  slackStore: SlackStore;
}
