import { randomUUID } from "node:crypto";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { inject } from "vitest";
import { documentClient } from "../../core/aws/clients.ts";
import { DynamoSlackStore } from "../../core/aws/dynamo/slack-store.ts";
import { DynamoStore } from "../../core/aws/dynamo/store.ts";
import * as Grant from "../../core/grant/index.ts";
import * as Slack from "../../core/slack/index.ts";
import { createSlackHandler } from "../../functions/slack/app.ts";
import { LOCAL_AWS } from "../../local/dynamo.ts";
import { type FakeMessage, type SlackCall, type SlackFake, startSlackFake } from "../../local/slack-fake.ts";
import { createTestBroker, type TestBroker } from "./broker.ts";
import { DEMO_CONFIG_TEXT } from "./config.ts";

export const SECRET = "test-signing-secret-0123456789abcdef";
export const TEAM = "T0TEAM";
export const DEMO_INSTANCE = "i-0a1b2c3d4e5f60718";
export const STAGING_INSTANCE = "i-0fedcba9876543210";

export interface Answer {
  status: number;
  body: any;
}

export interface PostOptions {
  headers?: Record<string, string>;
  /** Unix seconds the request claims; default the broker's clock. */
  timestamp?: number | string;
  /** Sign with this instead of the broker's secret. */
  secret?: string;
  /** Deliver as API Gateway does for form posts (default true). */
  base64?: boolean;
  /** Send this signature header instead of the computed one (or omit it with null). */
  signature?: string | null;
  /** Omit the timestamp header. */
  noTimestamp?: boolean;
}

export interface SlackHarness {
  broker: TestBroker;
  fake: SlackFake;
  jobs: Slack.InProcessJobs;
  ingress: Slack.IngressDeps;
  worker: Slack.WorkerDeps;
  slackStore: DynamoSlackStore;
  /** A signed (unless told otherwise) POST through the real handler, as API Gateway delivers it. */
  post(path: string, body: string, options?: PostOptions): Promise<Answer>;
  /** `/access <text>` from `userId`; returns the ack and the response_url the worker answers on. */
  command(
    userId: string,
    text: string,
    options?: PostOptions & { triggerId?: string; body?: string },
  ): Promise<Answer & { responseUrl: string; body: any; triggerId: string; raw: string }>;
  /** A button click on a message, as block_actions. */
  click(userId: string, actionId: string, value: string): Promise<Answer & { responseUrl: string }>;
  /** The request modal's Submit with these values (block id → value). */
  submit(userId: string, values: ModalValues, viewId?: string): Promise<Answer>;
  /** Waits until every job (and every job those enqueued) has run. */
  drain(): Promise<void>;
  /** The sweeper's run: due transitions, then expiry warnings; then the jobs they caused. */
  sweep(): Promise<{ expired: number; timedOut: number; warned: number }>;
  /** The approval message of a request as the fake shows it now. */
  message(requestId: string, key?: Slack.MessageKey): Promise<FakeMessage | undefined>;
  /** chat.postMessage calls to a user id (DMs), oldest first. */
  dms(userId: string): SlackCall[];
  /** Ephemeral replies posted to one response_url, as text. */
  replies(responseUrl: string): string[];
  close(): Promise<void>;
}

export interface ModalValues {
  instance?: string;
  method?: string;
  target?: string;
  duration?: string;
  reason?: string;
  ticket?: string;
  breakGlass?: boolean;
}

/** Every text a Block Kit message shows, flattened (for "names the decider" style assertions). */
export function textOf(message: { text?: string; blocks?: any[] } | undefined): string {
  const parts: string[] = [message?.text ?? ""];
  const visit = (node: unknown) => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (node && typeof node === "object") {
      const record = node as Record<string, unknown>;
      if (typeof record.text === "string") parts.push(record.text);
      for (const value of Object.values(record)) if (typeof value === "object") visit(value);
    }
  };
  visit(message?.blocks ?? []);
  return parts.join("\n");
}

/** The buttons a message offers: action id → value. */
export function buttonsOf(message: { blocks?: any[] } | undefined): Record<string, string> {
  const buttons: Record<string, string> = {};
  for (const block of message?.blocks ?? [])
    if (block.type === "actions")
      for (const element of block.elements ?? []) buttons[element.action_id] = element.value;
  return buttons;
}

/**
 * A broker with Slack wired as every runtime wires it (functions/deps.ts, local/runtime.ts): the real Slack
 * handler in-process, DynamoDB Local, the WebClient against local/slack-fake.ts (retries off), and the
 * in-process job queue in place of the async Lambda invoke.
 */
export async function createSlackHarness(
  configText = DEMO_CONFIG_TEXT,
  options: { isolatedStores?: boolean } = {},
): Promise<SlackHarness> {
  const broker = await createTestBroker(configText);
  const fake = await startSlackFake();
  const endpoint = inject("dynamoEndpoint");
  const document = documentClient({ ...LOCAL_AWS, endpoint });
  const slackStore = new DynamoSlackStore(document, broker.table);
  const jobs = Slack.inProcessJobs();
  const api = Slack.webApi({
    token: fake.token,
    apiUrl: fake.apiUrl,
    responseUrlPrefixes: [fake.url],
    retryConfig: { retries: 0 },
  });
  const { ingress, worker } = Slack.wire(broker.deps, {
    signingSecret: SECRET,
    slack: api,
    slackStore,
    jobs,
  });
  // Each job with its own store instance (no shared in-process lock or cached audit head), like separate
  // Lambda invocations: races are decided by DynamoDB alone.
  jobs.start((job) =>
    Slack.runJob(
      options.isolatedStores ? { ...worker, requests: new DynamoStore(document, broker.table) } : worker,
      job,
    ),
  );
  broker.deps.hooks = ingress.hooks;
  const handler = createSlackHandler(() => ingress);
  const nowSeconds = () => Math.floor(broker.clock.now.getTime() / 1000);

  const post = async (path: string, body: string, post: PostOptions = {}): Promise<Answer> => {
    const timestamp = String(post.timestamp ?? nowSeconds());
    const headers: Record<string, string> = {
      "content-type": "application/x-www-form-urlencoded",
      ...(post.noTimestamp ? {} : { "x-slack-request-timestamp": timestamp }),
    };
    const signature =
      post.signature === undefined ? Slack.sign(post.secret ?? SECRET, timestamp, body) : post.signature;
    if (signature !== null) headers["x-slack-signature"] = signature;
    Object.assign(
      headers,
      Object.fromEntries(Object.entries(post.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
    );
    const base64 = post.base64 ?? true;
    const event = {
      version: "2.0",
      routeKey: `POST ${path}`,
      rawPath: path,
      rawQueryString: "",
      headers,
      requestContext: { http: { method: "POST", path }, requestId: randomUUID() },
      body: base64 ? Buffer.from(body, "utf8").toString("base64") : body,
      isBase64Encoded: base64,
    } as unknown as APIGatewayProxyEventV2;
    const result = (await handler(event, {
      awsRequestId: randomUUID(),
    } as Context)) as APIGatewayProxyStructuredResultV2;
    return { status: result.statusCode ?? 200, body: result.body ? JSON.parse(result.body) : undefined };
  };

  const harness: SlackHarness = {
    broker,
    fake,
    jobs,
    ingress,
    worker,
    slackStore,
    post,
    async command(userId, text, options = {}) {
      const responseUrl = fake.responseUrl();
      const triggerId =
        options.triggerId ?? `${Date.now()}.${Math.floor(Math.random() * 1e9)}.${randomUUID().slice(0, 8)}`;
      const raw =
        options.body ??
        new URLSearchParams({
          token: "deprecated-verification-token",
          team_id: TEAM,
          team_domain: "example",
          channel_id: "C0GENERAL",
          channel_name: "general",
          user_id: userId,
          user_name: userId.toLowerCase(),
          command: "/access",
          text,
          api_app_id: "A0APP",
          response_url: responseUrl,
          trigger_id: triggerId,
        }).toString();
      const answer = await post("/slack/commands", raw, options);
      return { ...answer, responseUrl, triggerId, raw };
    },
    async click(userId, actionId, value) {
      const responseUrl = fake.responseUrl();
      const payload = {
        type: "block_actions",
        user: { id: userId, username: userId.toLowerCase(), team_id: TEAM },
        team: { id: TEAM, domain: "example" },
        api_app_id: "A0APP",
        token: "deprecated-verification-token",
        trigger_id: `${Date.now()}.1.${randomUUID().slice(0, 8)}`,
        response_url: responseUrl,
        container: { type: "message", message_ts: "1.000001", channel_id: "C0APPROVALS" },
        channel: { id: "C0APPROVALS", name: "access-approvals" },
        actions: [
          {
            type: "button",
            action_id: actionId,
            block_id: "decision",
            value,
            action_ts: `${Date.now() / 1000}`,
            text: { type: "plain_text", text: "Approve" },
          },
        ],
      };
      const answer = await post(
        "/slack/interactions",
        new URLSearchParams({ payload: JSON.stringify(payload) }).toString(),
      );
      return { ...answer, responseUrl };
    },
    async submit(userId, values, viewId = `V${randomUUID().slice(0, 10).toUpperCase()}`) {
      const text = (value: string | undefined) => ({
        value: { type: "plain_text_input", value: value ?? null },
      });
      const state: Record<string, unknown> = {
        instance: text(values.instance),
        method: {
          value: { type: "static_select", selected_option: values.method ? { value: values.method } : null },
        },
        target: text(values.target),
        duration: text(values.duration),
        reason: text(values.reason),
        ticket: text(values.ticket),
        break_glass: {
          value: { type: "checkboxes", selected_options: values.breakGlass ? [{ value: "yes" }] : [] },
        },
      };
      const payload = {
        type: "view_submission",
        user: { id: userId, team_id: TEAM },
        team: { id: TEAM, domain: "example" },
        api_app_id: "A0APP",
        view: { id: viewId, type: "modal", callback_id: Slack.MODAL_CALLBACK, state: { values: state } },
      };
      return post(
        "/slack/interactions",
        new URLSearchParams({ payload: JSON.stringify(payload) }).toString(),
      );
    },
    drain: () => jobs.drain(),
    async sweep() {
      const result = await Grant.sweepAll(broker.deps);
      await jobs.drain();
      const { warned } = await Slack.warnExpiring(worker);
      await jobs.drain();
      return { expired: result.expired, timedOut: result.timedOut, warned };
    },
    async message(requestId, key = "approval") {
      const ref = await slackStore.getMessage(requestId, key);
      return ref ? fake.message(ref.channel, ref.ts) : undefined;
    },
    dms: (userId) => fake.callsTo("chat.postMessage").filter((call) => call.fields.channel === userId),
    replies: (responseUrl) => fake.responsesTo(responseUrl).map((post) => String(post.body.text ?? "")),
    async close() {
      await jobs.drain();
      await fake.close();
    },
  };
  return harness;
}
