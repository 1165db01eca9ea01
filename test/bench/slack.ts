import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import middy from "@middy/core";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { documentClient } from "../../core/aws/clients.ts";
import { DynamoSlackStore } from "../../core/aws/dynamo/slack-store.ts";
import { DynamoStore } from "../../core/aws/dynamo/store.ts";
import { ensureTable } from "../../core/aws/dynamo/table.ts";
import * as Grant from "../../core/grant/index.ts";
import { loadConfig } from "../../core/policy/yaml.ts";
import * as Slack from "../../core/slack/index.ts";
import { SlashCommand } from "../../core/slack/schema.ts";
import * as Target from "../../core/target/index.ts";
import { createSlackHandler, rawBody } from "../../functions/slack/app.ts";
import { LOCAL_AWS, startDynamoLocal } from "../../local/dynamo.ts";
import { startSlackFake } from "../../local/slack-fake.ts";
import { ROOT } from "../helpers/runtime.ts";
import { bundle, importMs, PRODUCTION } from "./bundle.ts";

export interface Stats {
  p50: number;
  p99: number;
  max: number;
}

export interface SlackBenchResult {
  requests: number;
  /**
   * The real handler with the in-process worker running the commands behind it (the local runtime): one
   * command every 10 ms, each ack measured while earlier commands are still being worked on.
   */
  ackWithWorker: Stats;
  /** The real handler handing off only (as in Lambda, where the worker is another function). */
  ackHandOff: Stats;
  /** Baseline: verify + form parse + schema + one-liner parse, no handler. */
  verifyParse: Stats;
  /** Baseline: an empty middy handler with the same middleware, for the framework's own cost. */
  emptyHandler: Stats;
  /** Context: ack → request stored and approval message posted (worker done), sequential. */
  endToEnd: Stats;
  endToEndRuns: number;
  /** The production bundles of the two Slack functions: what a cold start loads, and its import time. */
  coldStart: { handler: string; loadedKB: number; importMs: number }[];
}

const SECRET = "bench-signing-secret";
const ARRIVAL_MS = 10;
const INSTANCE = "i-0a1b2c3d4e5f60718";

function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
  return { p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? Number.NaN };
}

/** A cold start adds to the first ack: the Slack endpoints' bundle is measured like test/bench/bundle.ts does. */
async function coldStarts(): Promise<SlackBenchResult["coldStart"]> {
  const dir = mkdtempSync(join(tmpdir(), "slack-bundle-"));
  try {
    const rows: SlackBenchResult["coldStart"] = [];
    for (const [handler, entry] of [
      ["slack", "functions/slack.ts"],
      ["slack-worker", "functions/slack-worker.ts"],
    ] as const) {
      const built = await bundle(entry, PRODUCTION, join(dir, handler));
      rows.push({ handler, loadedKB: built.loaded / 1024, importMs: importMs(built.entryFile) });
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function commandEvent(responseUrl: string, text: string): APIGatewayProxyEventV2 {
  const body = new URLSearchParams({
    team_id: "T0BENCH",
    user_id: "U0ALICE",
    command: "/access",
    text,
    channel_id: "C0BENCH",
    response_url: responseUrl,
    trigger_id: `${Date.now()}.${randomUUID()}`,
  }).toString();
  const timestamp = String(Math.floor(Date.now() / 1000));
  return {
    version: "2.0",
    routeKey: "POST /slack/commands",
    rawPath: "/slack/commands",
    rawQueryString: "",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-slack-request-timestamp": timestamp,
      "x-slack-signature": Slack.sign(SECRET, timestamp, body),
    },
    requestContext: { http: { method: "POST", path: "/slack/commands" }, requestId: randomUUID() },
    body: Buffer.from(body).toString("base64"),
    isBase64Encoded: true,
  } as unknown as APIGatewayProxyEventV2;
}

/**
 * Slash-command acknowledgement latency through functions/slack's handler, in process: 200 signed
 * `/access` commands each (after a warm-up), against DynamoDB Local and the fake Slack, with two baselines
 * measured in the same run — the bare verify + parse work, and an empty middy handler.
 */
export async function benchSlack(requests = 200, warmup = 20, endToEndRuns = 50): Promise<SlackBenchResult> {
  const dynamo = await startDynamoLocal();
  const fake = await startSlackFake();
  try {
    const raw = new DynamoDBClient({ ...LOCAL_AWS, endpoint: dynamo.endpoint });
    await ensureTable(raw, "bench-slack");
    raw.destroy();
    const document = documentClient({ ...LOCAL_AWS, endpoint: dynamo.endpoint });
    const store = new DynamoStore(document, "bench-slack");
    const config = loadConfig(`${ROOT}/local/demo/access.yaml`);
    const base = {
      config,
      requests: store,
      targets: Target.fromPolicy(config),
      iam: Grant.iamNotConfigured,
      scheduler: Grant.noScheduler,
    };
    const api = Slack.webApi({
      token: fake.token,
      apiUrl: fake.apiUrl,
      responseUrlPrefixes: [fake.url],
      retryConfig: { retries: 0 },
    });
    const slackStore = new DynamoSlackStore(document, "bench-slack");
    const context = { awsRequestId: "bench" } as Context;
    const text = () => `${INSTANCE} for 30m benchmark ${randomUUID().slice(0, 8)}`;

    // 1. The local runtime: the worker runs each command right after its ack, in the same event loop.
    const jobs = Slack.inProcessJobs();
    const wired = Slack.wire(
      { ...base, hooks: Grant.hooks(base) },
      { signingSecret: SECRET, slack: api, slackStore, jobs },
    );
    jobs.start((job) => Slack.runJob(wired.worker, job));
    const handler = createSlackHandler(() => wired.ingress);

    // 2. Lambda's shape: the ack hands off and returns; the worker is someone else's process.
    const handedOff: unknown[] = [];
    const handOff = createSlackHandler(() => ({
      ...wired.ingress,
      jobs: { enqueue: async (job) => void handedOff.push(job) },
    }));

    const time = async (run: () => Promise<unknown>, count: number) => {
      const samples: number[] = [];
      for (let index = 0; index < count; index++) {
        const start = performance.now();
        await run();
        samples.push(performance.now() - start);
      }
      return samples;
    };
    const ack = (target: typeof handler) => async () => {
      const result = (await target(
        commandEvent(fake.responseUrl(), text()),
        context,
      )) as APIGatewayProxyStructuredResultV2;
      if (result.statusCode !== 200) throw new Error(`ack failed: ${result.statusCode} ${result.body}`);
    };

    // Baselines: what any Slack endpoint must do (HMAC over the body, form + schema + one-liner parse)…
    const hints = Slack.osUserHints(config);
    const verifyParse = async () => {
      const event = commandEvent(fake.responseUrl(), text());
      const body = rawBody(event);
      const verdict = Slack.verify(SECRET, { headers: event.headers, body }, new Date());
      if (!verdict.ok) throw new Error("bench signature rejected");
      const command = SlashCommand.parse(Object.fromEntries(new URLSearchParams(body.toString("utf8"))));
      Slack.parseCommand(command.text, hints);
    };
    // …and the framework alone: middy with the same error middleware, returning a fixed ack.
    const empty = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>().handler(async () => ({
      statusCode: 200,
      body: "",
    }));
    const emptyRun = async () => {
      await empty(commandEvent(fake.responseUrl(), text()), context);
    };

    await time(ack(handler), warmup);
    await jobs.drain();
    await time(ack(handOff), warmup);
    await time(verifyParse, warmup);
    await time(emptyRun, warmup);

    // Commands arrive every 10 ms (100/s, far above any team's pace) while earlier ones are still being
    // worked on, so each ack competes with the workers for the event loop, as in the local runtime.
    const arrivals: Promise<number>[] = [];
    for (let index = 0; index < requests; index++) {
      const start = performance.now();
      arrivals.push(ack(handler)().then(() => performance.now() - start));
      await new Promise((resolve) => setTimeout(resolve, ARRIVAL_MS));
    }
    const ackWithWorker = stats(await Promise.all(arrivals));
    await jobs.drain();
    const ackHandOff = stats(await time(ack(handOff), requests));
    const verifyParseStats = stats(await time(verifyParse, requests));
    const emptyStats = stats(await time(emptyRun, requests));
    const endToEnd = stats(
      await time(async () => {
        await ack(handler)();
        await jobs.drain();
      }, endToEndRuns),
    );
    return {
      requests,
      ackWithWorker,
      ackHandOff,
      verifyParse: verifyParseStats,
      emptyHandler: emptyStats,
      endToEnd,
      endToEndRuns,
      coldStart: await coldStarts(),
    };
  } finally {
    await fake.close();
    await dynamo.stop();
  }
}
