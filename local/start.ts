import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import * as Grant from "../core/grant/index.ts";
import { ConfigError } from "../core/policy/index.ts";
import { loadConfig } from "../core/policy/yaml.ts";
import * as Slack from "../core/slack/index.ts";
import { log } from "../core/util/log.ts";
import { createSlackHandler } from "../functions/slack/app.ts";
import { buildWeb } from "../web/build.ts";
import { DemoInstanceError, demoInstanceIds, startDemoInstance } from "./demo-instance.ts";
import { freePort, startDynamoLocal } from "./dynamo.ts";
import { loadInventory } from "./emulator/inventory.ts";
import { startEmulator } from "./emulator/server.ts";
import { allServices } from "./emulator/services.ts";
import { createDevIssuer } from "./issuer.ts";
import { DEMO_BROKER_CREDENTIALS, DEV_SLACK_SIGNING_SECRET, localDeps, localSlack } from "./runtime.ts";
import { createDevServer, listen } from "./server.ts";
import { startSlackFake } from "./slack-fake.ts";
import { localTrail, startTrailReceiver } from "./trail.ts";

const DEFAULT_PORT = 8787;
const DEFAULT_EMULATOR_PORT = 8788;
const DEFAULT_SLACK_FAKE_PORT = 8789;
const TABLE = "access-broker";

const { values: flags } = parseArgs({
  options: {
    config: { type: "string" },
    data: { type: "string" },
    port: { type: "string" },
    inventory: { type: "string" },
  },
});

const dataDir = resolve(flags.data ?? process.env.ACCESS_DATA_DIR ?? ".data");
const configPath = resolve(flags.config ?? process.env.ACCESS_CONFIG ?? "local/demo/access.yaml");
const port = Number(flags.port ?? process.env.PORT ?? DEFAULT_PORT);
const inventoryPath = resolve(flags.inventory ?? process.env.ACCESS_INVENTORY ?? "local/demo/inventory.yaml");
/** Emulator port: ACCESS_EMULATOR_PORT, else 8788 next to the default API port, else any free port. */
const emulatorPort = Number(
  process.env.ACCESS_EMULATOR_PORT ?? (port === DEFAULT_PORT ? DEFAULT_EMULATOR_PORT : 0),
);
/** The fake Slack Web API's port: ACCESS_SLACK_FAKE_PORT, else 8789 next to the default API port, else any. */
const slackFakePort = Number(
  process.env.ACCESS_SLACK_FAKE_PORT ?? (port === DEFAULT_PORT ? DEFAULT_SLACK_FAKE_PORT : 0),
);
const sweepSeconds = Number(process.env.ACCESS_SWEEP_SECONDS ?? 5);
const backfillSeconds = Number(process.env.ACCESS_TRAIL_BACKFILL_SECONDS ?? 60);
const lockFile = resolve(dataDir, "runtime.lock");

interface Lock {
  pid: number;
  url: string;
  children: number[];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function fail(message: string): never {
  process.stderr.write(`access-broker: ${message}\n`);
  process.exit(1);
}

/** One runtime per data directory; a lock left by a killed runtime is cleaned, with its orphans. */
function takeLock(): void {
  mkdirSync(dataDir, { recursive: true });
  if (existsSync(lockFile)) {
    const lock = JSON.parse(readFileSync(lockFile, "utf8")) as Lock;
    if (alive(lock.pid)) {
      fail(
        `already running (pid ${lock.pid}) at ${lock.url} with data in ${dataDir}. Stop it with Ctrl-C first.`,
      );
    }
    for (const child of lock.children) if (alive(child)) process.kill(child, "SIGKILL");
    rmSync(lockFile, { force: true });
  }
  writeFileSync(lockFile, JSON.stringify({ pid: process.pid, url: "", children: [] } satisfies Lock), {
    flag: "wx",
  });
}

function updateLock(lock: Lock) {
  writeFileSync(lockFile, JSON.stringify(lock));
}

async function main() {
  if (!Number.isInteger(port) || port < 0 || port > 65_535) fail(`PORT must be a port number, got "${port}"`);
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(configPath);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
  takeLock();
  const cleanups: Array<() => Promise<void> | void> = [() => rmSync(lockFile, { force: true })];
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const cleanup of cleanups.reverse()) await cleanup();
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));

  try {
    process.stdout.write("Starting DynamoDB Local…\n");
    const dynamo = await startDynamoLocal({ dbPath: resolve(dataDir, "dynamodb") });
    cleanups.push(() => dynamo.stop());
    const url = `http://127.0.0.1:${port}`;
    const children = [dynamo.process.pid ?? 0];
    updateLock({ pid: process.pid, url, children });

    process.stdout.write("Starting the AWS emulator and the demo instance…\n");
    const inventory = loadInventory(inventoryPath);
    // The emulator needs the sshd's port up front (tunnels to port 22 of demo instances go there).
    const sshdPort = await freePort();
    // The emulator delivers EC2 Instance Connect events EventBridge-style to the trail ingest (local/trail.ts).
    const trailReceiver = await startTrailReceiver();
    cleanups.push(() => trailReceiver.close());
    const emulator = await startEmulator({
      inventory,
      port: emulatorPort,
      upstreams: { "demo-sshd": { host: "127.0.0.1", port: sshdPort } },
      services: allServices(),
      trailTarget: trailReceiver.url,
    });
    cleanups.push(() => emulator.close());
    let demoLine = "";
    try {
      const demo = await startDemoInstance({
        port: sshdPort,
        metadataUrl: emulator.url,
        instanceIds: demoInstanceIds(inventory.instances),
        dataDir: resolve(dataDir, "demo-instance"),
      });
      cleanups.push(() => demo.stop());
      children.push(demo.pid);
      updateLock({ pid: process.pid, url, children });
      demoLine = `  demo instance: OpenSSH on 127.0.0.1:${demo.port} (${demoInstanceIds(inventory.instances).join(", ")}; log in as ec2-user)`;
    } catch (error) {
      if (!(error instanceof DemoInstanceError)) throw error;
      // Everything but `access ssh` still works without it; CI installs OpenSSH, so it never gets here.
      demoLine = "  demo instance: not running (see above)";
      process.stderr.write(`access-broker: running without the demo instance: ${error.message}\n`);
    }

    const deps = await localDeps(config, dynamo.endpoint, TABLE, {
      endpoint: emulator.url,
      credentials: DEMO_BROKER_CREDENTIALS,
    });
    // Slack: a real workspace when SLACK_BOT_TOKEN is set (it must reach this machine, e.g. through a
    // tunnel), else the local fake Web API; signed requests either way (README § Slack setup).
    const botToken = process.env.SLACK_BOT_TOKEN?.trim();
    const signingSecret = process.env.SLACK_SIGNING_SECRET?.trim() || DEV_SLACK_SIGNING_SECRET;
    const fake = botToken ? undefined : await startSlackFake({ port: slackFakePort });
    if (fake) cleanups.push(() => fake.close());
    const slackApi = fake
      ? Slack.webApi({ token: fake.token, apiUrl: fake.apiUrl, responseUrlPrefixes: [fake.url] })
      : Slack.webApi({ token: botToken ?? "" });
    const slack = localSlack(deps, dynamo.endpoint, TABLE, { signingSecret, api: slackApi });
    const trail = localTrail({
      deps,
      dataDir,
      receiver: trailReceiver,
      aws: { endpoint: emulator.url, credentials: DEMO_BROKER_CREDENTIALS },
      slack: slackApi,
      backfillSeconds,
    });
    cleanups.push(() => trail.close());
    const slackLine = fake
      ? `  Slack: fake Web API at ${fake.apiUrl} (what the broker posted: ${fake.url}_fake/calls)`
      : "  Slack: the workspace of SLACK_BOT_TOKEN (point the app's request URLs at this server)";

    // The web app, built fresh into this runtime's data directory (esbuild: well under a second), so two
    // runtimes never share a build and what is served always matches the checkout.
    const web = await buildWeb({ outDir: resolve(dataDir, "web") });
    const issuer = await createDevIssuer(`${url}/dev`, resolve(dataDir, "dev-issuer.jwk"));
    const eiceEndpoint = emulator.url.replace(/^http/, "ws");
    const { server } = createDevServer({
      deps,
      issuer,
      port,
      eiceEndpoint,
      slack: createSlackHandler(() => slack.ingress),
      webDir: web.outDir,
    });
    try {
      await listen(server, port);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EADDRINUSE")
        throw new Error(`port ${port} is in use by another program; set PORT to use another port`);
      throw error;
    }
    cleanups.push(() => new Promise<void>((done) => server.close(() => done())));

    const sweeper = setInterval(() => {
      Grant.sweepAll(deps)
        .then(async (result) => {
          await trail.maintain();
          const { warned } = await Slack.warnExpiring(slack.worker);
          if (
            result.timedOut +
              result.activated +
              result.expired +
              result.iam.removed +
              result.iam.attached +
              warned >
            0
          )
            log.info("sweep", { ...result, warned });
        })
        .catch((error: unknown) => log.error("sweep failed", { error }));
    }, sweepSeconds * 1000);
    cleanups.push(() => clearInterval(sweeper));

    const users = config.directory.users
      .map((user) =>
        `    ${user.email.padEnd(22)} ${user.groups.join(", ").padEnd(12)} ${user.slackUserId ? `Slack ${user.slackUserId}` : ""}`.trimEnd(),
      )
      .join("\n");
    process.stdout.write(
      [
        "",
        `access-broker is running at ${url}`,
        `  web app: ${url}/ (sign in as any user below)`,
        `  config: ${configPath}`,
        `  data:   ${dataDir} (DynamoDB Local, persisted)`,
        `  AWS emulator: ${emulator.url} (EC2, EC2 Instance Connect, EICE, STS, IAM, CloudTrail; ${inventoryPath})`,
        demoLine,
        slackLine,
        "  users (log in as any of them):",
        users,
        "",
        "Try it (in another terminal):",
        `  npx access login --user alice@example.com --api ${url}`,
        "  npx access ssh i-0a1b2c3d4e5f60718 --for 30m --reason 'look at the logs' -- uptime",
        "  # …it waits for an approver; in a third terminal:",
        "  npx access login --user bob@example.com && npx access ls --pending && npx access approve <id>",
        "",
        "Or from Slack, without a workspace (signed like Slack signs; the replies come from the fake):",
        `  node --import tsx scripts/slack-command.ts --api ${url}${fake ? ` --fake ${fake.url}` : ""} --user U0ALICE "i-0a1b2c3d4e5f60718 for 30m look at the logs"`,
        `  node --import tsx scripts/slack-command.ts --api ${url}${fake ? ` --fake ${fake.url}` : ""} --user U0BOB --click approve <request id>`,
        "",
        "Ctrl-C stops everything.",
        "",
      ].join("\n"),
    );
  } catch (error) {
    process.stderr.write(`access-broker: ${(error as Error).message}\n`);
    await stop(1);
  }
}

await main();
