import { createHash, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A local stand-in for Slack's Web API and for interaction response_urls, for tests and `npm start`
 * without a workspace. The broker's real adapter (`@slack/web-api` with `slackApiUrl` pointing here) talks
 * to it: form-encoded posts with `blocks`/`view` JSON-encoded inside fields and the bot token as a bearer
 * (protocols.md §5.6). Every call is recorded with its fields decoded; answers are shaped like Slack's
 * (`{ok: true, channel, ts, …}`, errors as HTTP 200 `{ok: false, error}`). Messages are kept, so a test can
 * read what a message shows after all its chat.updates.
 *
 * Inspection over HTTP: `GET /_fake/calls` (Web API calls) and `GET /_fake/responses` (response_url posts).
 */

/**
 * The signing secret the local runtime verifies Slack requests with when SLACK_SIGNING_SECRET is unset.
 * Public on purpose (README § Slack setup): it only ever guards a loopback dev server.
 */
export const DEV_SLACK_SIGNING_SECRET = "access-broker-local-dev-signing-secret";

/** Recorded payloads are whatever JSON the broker sent; tests read them the way Slack would, field by field. */
// biome-ignore lint/suspicious/noExplicitAny: arbitrary recorded JSON, asserted on by tests rather than typed.
export type Json = any;

export interface SlackCall {
  method: string;
  /** The bearer token the call carried (tests assert it is the configured bot token). */
  token?: string;
  /** Form fields, with `blocks`, `view`, `attachments` and `metadata` decoded from their JSON strings. */
  fields: Record<string, Json>;
  at: string;
}

export interface ResponsePost {
  /** The id in `/response/<id>`: which interaction's response_url this was. */
  id: string;
  body: Json;
  at: string;
}

export interface FakeMessage {
  channel: string;
  ts: string;
  text?: string;
  blocks?: Json[];
  /** How many chat.updates it has had. */
  updates: number;
}

export interface SlackFake {
  /** Base URL, `http://127.0.0.1:<port>/`. */
  url: string;
  /** What to give WebClient as `slackApiUrl`. */
  apiUrl: string;
  token: string;
  calls: SlackCall[];
  responses: ResponsePost[];
  /** A fresh response_url served by this fake. */
  responseUrl(): string;
  callsTo(method: string): SlackCall[];
  /** Responses posted to one response_url. */
  responsesTo(url: string): ResponsePost[];
  message(channel: string, ts: string): FakeMessage | undefined;
  /** Forgets the calls and responses recorded so far; messages (and their updates) stay. */
  clearLog(): void;
  /** The next `times` calls of `method` answer `{ok: false, error}`. */
  failNext(method: string, error: string, times?: number): void;
  reset(): void;
  close(): Promise<void>;
}

const JSON_FIELDS = new Set(["blocks", "view", "attachments", "metadata"]);

function decodeFields(raw: Record<string, unknown>): Record<string, Json> {
  const fields: Record<string, Json> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (JSON_FIELDS.has(key) && typeof value === "string") {
      try {
        fields[key] = JSON.parse(value);
        continue;
      } catch {
        // Slack would answer invalid_blocks; recording the raw string makes the bug visible in the test.
      }
    }
    fields[key] = value;
  }
  return fields;
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function send(response: ServerResponse, status: number, body: unknown) {
  response.writeHead(status, { "content-type": "application/json; charset=utf-8" });
  response.end(JSON.stringify(body));
}

export async function startSlackFake(
  options: { port?: number; host?: string; token?: string } = {},
): Promise<SlackFake> {
  const token = options.token ?? "xoxb-local-fake-token";
  const calls: SlackCall[] = [];
  const responses: ResponsePost[] = [];
  const messages = new Map<string, FakeMessage>();
  const failures = new Map<string, { error: string; times: number }>();
  let sequence = 0;
  let base = "";

  const channelId = (channel: string) => {
    if (/^[UW][A-Z0-9]+$/.test(channel)) return `D${channel.slice(1)}`;
    if (channel.startsWith("#"))
      return `C${createHash("sha256").update(channel).digest("hex").slice(0, 9).toUpperCase()}`;
    return channel;
  };
  const key = (channel: string, ts: string) => `${channel}/${ts}`;

  const answer = (method: string, fields: Record<string, Json>): Record<string, unknown> => {
    const failure = failures.get(method);
    if (failure && failure.times > 0) {
      failure.times--;
      return { ok: false, error: failure.error };
    }
    switch (method) {
      case "chat.postMessage": {
        if (!fields.channel) return { ok: false, error: "channel_not_found" };
        if (!fields.text && !fields.blocks) return { ok: false, error: "no_text" };
        const channel = channelId(String(fields.channel));
        sequence++;
        const ts = `${Math.floor(Date.now() / 1000)}.${String(sequence).padStart(6, "0")}`;
        messages.set(key(channel, ts), { channel, ts, text: fields.text, blocks: fields.blocks, updates: 0 });
        return {
          ok: true,
          channel,
          ts,
          message: { type: "message", text: fields.text, blocks: fields.blocks, ts },
        };
      }
      case "chat.update": {
        const existing = messages.get(key(String(fields.channel), String(fields.ts)));
        if (!existing) return { ok: false, error: "message_not_found" };
        existing.text = fields.text;
        existing.blocks = fields.blocks;
        existing.updates++;
        return { ok: true, channel: existing.channel, ts: existing.ts, text: fields.text };
      }
      case "chat.postEphemeral":
        sequence++;
        return {
          ok: true,
          message_ts: `${Math.floor(Date.now() / 1000)}.${String(sequence).padStart(6, "0")}`,
        };
      case "views.open":
        if (!fields.trigger_id || !fields.view) return { ok: false, error: "invalid_arguments" };
        return { ok: true, view: { id: `V${randomUUID().slice(0, 10).toUpperCase()}`, ...fields.view } };
      case "conversations.open":
        return { ok: true, channel: { id: channelId(String(fields.users ?? "").split(",")[0] ?? "") } };
      case "auth.test":
        return {
          ok: true,
          url: base,
          team: "fake",
          user: "access-broker",
          team_id: "T0FAKE",
          user_id: "U0BOT",
        };
      default:
        return { ok: false, error: "unknown_method" };
    }
  };

  const server: Server = createServer(async (request, response) => {
    try {
      const url = new URL(request.url ?? "/", "http://localhost");
      if (request.method === "GET" && url.pathname === "/_fake/calls") return send(response, 200, calls);
      if (request.method === "GET" && url.pathname === "/_fake/responses")
        return send(response, 200, responses);
      if (request.method !== "POST") return send(response, 405, { ok: false, error: "method_not_allowed" });
      const text = await readBody(request);
      const contentType = request.headers["content-type"] ?? "";
      const raw: Record<string, unknown> = contentType.includes("application/json")
        ? (JSON.parse(text || "{}") as Record<string, unknown>)
        : Object.fromEntries(new URLSearchParams(text));
      const responseId = /^\/response\/([\w-]+)$/.exec(url.pathname)?.[1];
      if (responseId) {
        responses.push({ id: responseId, body: raw, at: new Date().toISOString() });
        response.writeHead(200, { "content-type": "text/plain" });
        return response.end("ok");
      }
      const method = /^\/api\/([\w.]+)$/.exec(url.pathname)?.[1];
      if (!method) return send(response, 404, { ok: false, error: "not_found" });
      const bearer =
        /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? "")?.[1] ?? (raw.token as string);
      const fields = decodeFields(raw);
      delete fields.token;
      calls.push({ method, token: bearer, fields, at: new Date().toISOString() });
      if (!bearer) return send(response, 200, { ok: false, error: "not_authed" });
      if (bearer !== token) return send(response, 200, { ok: false, error: "invalid_auth" });
      return send(response, 200, answer(method, fields));
    } catch (error) {
      send(response, 500, { ok: false, error: "fake_internal_error", detail: String(error) });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}/`;

  return {
    url: base,
    apiUrl: `${base}api/`,
    token,
    calls,
    responses,
    responseUrl: () => `${base}response/${randomUUID()}`,
    callsTo: (method) => calls.filter((call) => call.method === method),
    responsesTo: (url) => {
      const id = url.slice(url.lastIndexOf("/") + 1);
      return responses.filter((post) => post.id === id);
    },
    message: (channel, ts) => messages.get(key(channel, ts)),
    failNext(method, error, times = 1) {
      failures.set(method, { error, times });
    },
    clearLog() {
      calls.length = 0;
      responses.length = 0;
    },
    reset() {
      calls.length = 0;
      responses.length = 0;
      messages.clear();
      failures.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
