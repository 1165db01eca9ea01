import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { AwsClients } from "../core/aws/clients.ts";
import { CloudTrailLookup } from "../core/aws/cloudtrail.ts";
import type { Credentials } from "../core/aws/credentials.ts";
import type { SlackApi } from "../core/slack/ports.ts";
import * as Trail from "../core/trail/index.ts";
import { slackAlertSink } from "../core/trail/slack-sink.ts";
import { log } from "../core/util/log.ts";
import type { BrokerDeps } from "../functions/deps.ts";
import { FileAnchorStore } from "./anchor-file.ts";

/**
 * The trail sources of the local runtime, on the production code paths: the emulator's EventBridge-shaped
 * deliveries are POSTed to a loopback receiver that hands them to `Trail.receive` (functions/trail-events.ts
 * in AWS), a timer runs the LookupEvents backfill against the emulator (functions/trail-backfill.ts), and the
 * sweeper's timer runs `Trail.maintain` (re-correlation, alerts to the fake Slack's security channel, audit
 * anchors appended to `<data>/audit-anchors.jsonl`).
 */

const MAX_BODY = 1024 * 1024;

async function body(request: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of request) {
    text += chunk;
    if (text.length > MAX_BODY) throw new Error("body too large");
  }
  return text;
}

export interface TrailReceiver {
  /** Where the emulator delivers (its `trailTarget`). */
  url: string;
  /** Until deps are attached the receiver answers 503, and the emulator retries. */
  attach(deps: Trail.Deps): void;
  close(): Promise<void>;
}

/** Starts the loopback EventBridge target; start it before the emulator, attach deps once they exist. */
export async function startTrailReceiver(): Promise<TrailReceiver> {
  let deps: Trail.Deps | undefined;
  const server = createServer((request, response) => {
    if (request.method !== "POST" || !deps) {
      response.writeHead(deps ? 405 : 503).end();
      return;
    }
    const attached = deps;
    body(request)
      .then((text) => Trail.receive(attached, JSON.parse(text)))
      .then(
        () => response.writeHead(204).end(),
        (error: unknown) => {
          log.error("trail receiver: delivery failed; the emulator retries it", { error });
          response.writeHead(500).end();
        },
      );
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/trail-events`,
    attach(next) {
      deps = next;
    },
    close: () => new Promise<void>((done) => server.close(() => done())),
  };
}

export interface LocalTrail {
  /** The sweeper's share: re-correlation, alerts, anchoring. */
  maintain(): Promise<Trail.MaintainResult>;
  anchorsPath: string;
  close(): void;
}

/**
 * Wires the trail into the local runtime: anchors (also read by `GET /audit/verify`), the receiver, the
 * backfill timer (every `backfillSeconds`, 0 to turn it off) and the sweeper's maintenance.
 */
export function localTrail(options: {
  deps: BrokerDeps;
  dataDir: string;
  receiver: TrailReceiver;
  aws: { endpoint: string; credentials: Credentials };
  slack?: SlackApi;
  backfillSeconds: number;
}): LocalTrail {
  const { deps } = options;
  const anchorsPath = resolve(options.dataDir, "audit-anchors.jsonl");
  deps.anchors = new FileAnchorStore(anchorsPath);
  const trail = deps.trail as Trail.TrailStore;
  const clients = new AwsClients(deps.config.settings.aws.accounts, options.aws);
  const trailDeps: Trail.MaintainDeps & Trail.BackfillDeps = {
    ...deps,
    trail,
    anchors: deps.anchors,
    alerts: options.slack
      ? slackAlertSink(options.slack, deps.config.settings.slack.securityChannel)
      : Trail.logSink,
    lookupEvents: new CloudTrailLookup(clients),
  };
  options.receiver.attach(trailDeps);
  let running = false;
  const backfill = async () => {
    if (running) return;
    running = true;
    try {
      const results = await Trail.backfillAll(trailDeps, {
        deadline: Date.now() + options.backfillSeconds * 1000,
      });
      const recorded = results.reduce((sum, result) => sum + result.result.recorded, 0);
      if (recorded > 0) log.info("trail backfill", { recorded });
    } catch (error) {
      log.error("trail backfill failed", { error });
    } finally {
      running = false;
    }
  };
  const timer =
    options.backfillSeconds > 0 ? setInterval(backfill, options.backfillSeconds * 1000) : undefined;
  return {
    anchorsPath,
    maintain: () => Trail.maintain(trailDeps),
    close: () => {
      if (timer) clearInterval(timer);
      clients.destroy();
    },
  };
}
