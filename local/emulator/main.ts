/**
 * Runs the local AWS emulator on its own:
 *
 *   node --import tsx local/emulator/main.ts --inventory local/demo/inventory.yaml --port 8788 \
 *     [--host 127.0.0.1] [--upstream demo-sshd=127.0.0.1:2222]… [--trail-target http://…] [--faults faults.json]
 *
 * Prints the endpoint URL; Ctrl-C stops it.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { startEmulator } from "./server.ts";
import { allServices } from "./services.ts";

const USAGE =
  "usage: main.ts --inventory <file.yaml> [--port 8788] [--host 127.0.0.1] [--upstream name=host:port]… [--trail-target <url>] [--faults <file.json>]";

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseUpstream(text: string): [string, { host: string; port: number }] {
  const match = /^([^=]+)=(.+):(\d{1,5})$/.exec(text);
  if (match === null) fail(`--upstream must be name=host:port, not '${text}'`);
  const [, name, host, port] = match as unknown as [string, string, string, string];
  return [name, { host: host.replace(/^\[(.*)\]$/, "$1"), port: Number(port) }];
}

async function main(): Promise<void> {
  let values: ReturnType<typeof parse>["values"];
  function parse() {
    return parseArgs({
      options: {
        inventory: { type: "string" },
        port: { type: "string", default: "8788" },
        host: { type: "string", default: "127.0.0.1" },
        upstream: { type: "string", multiple: true, default: [] },
        "trail-target": { type: "string" },
        faults: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    });
  }
  try {
    values = parse().values;
  } catch (error) {
    fail((error as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values.inventory === undefined) fail("--inventory is required");
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    fail(`--port must be a port number, not '${values.port}'`);

  const emulator = await startEmulator({
    inventory: values.inventory,
    port,
    host: values.host,
    upstreams: Object.fromEntries((values.upstream ?? []).map(parseUpstream)),
    ...(values["trail-target"] === undefined ? {} : { trailTarget: values["trail-target"] }),
    ...(values.faults === undefined ? {} : { faults: JSON.parse(readFileSync(values.faults, "utf8")) }),
    services: allServices(),
  });
  const { inventory } = emulator.core;
  process.stdout.write(
    `AWS emulator listening on ${emulator.url}\n` +
      `  ${inventory.accounts.length} accounts, ${inventory.instances.length} instances, ${inventory.endpoints.length} EICE endpoints\n` +
      `  try: AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… aws --endpoint-url ${emulator.url} sts get-caller-identity\n`,
  );

  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(1);
    stopping = true;
    emulator.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error)?.message ?? String(error)}\n`);
  process.exit(1);
});
