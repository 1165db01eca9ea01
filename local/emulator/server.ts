/**
 * The local AWS emulator's HTTP server: one port on loopback that speaks the real wire protocols, so the
 * official SDK clients and the AWS CLI work against it through endpoint overrides.
 *
 * Dispatch: the admin API (`/_emulator/…`) first; then every service in order — the built-ins (STS, IAM,
 * EC2, CloudTrail, S3: they claim requests by the SigV4 credential scope's service, or by `Action=` /
 * `X-Amz-Target` / an existing bucket's path when unsigned), then those from `options.services(core)` (EIC, EICE, metadata). The first
 * whose `handle()` returns true answered; if none does, the protocol's own "unknown operation" error.
 * `upgrade` requests (websockets) are offered to services' `upgrade()` the same way.
 *
 * Admin API (unauthenticated, loopback clients only), for tests:
 *   GET  /_emulator/trail   → {"Records": [...]} every CloudTrail record so far (oldest first)
 *   GET|POST /_emulator/faults  → read / replace the fault config (see faults.ts)
 *   GET|POST /_emulator/clock   {"offsetSeconds": n} sets, {"advanceSeconds": n} moves emulator time
 *   POST /_emulator/reset   → sessions, IAM changes, trail, S3 objects, services' state, faults and clock
 *                             back to start
 *   POST /_emulator/s3/deliver-trail  {"bucket": "…", "prefix"?: "…"} → {"keys": [...]}: the trail records
 *                             not yet delivered there, written as CloudTrail log files (one per account/region)
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { cloudTrailService } from "./cloudtrail.ts";
import type { EmulatorService } from "./contract.ts";
import { type CoreOptions, createCore, type EmulatorState } from "./core.ts";
import { ec2Service } from "./ec2.ts";
import { iamService } from "./iam.ts";
import { type EmulatorInventory, loadInventory } from "./inventory.ts";
import { MAX_PUT_BYTES, s3Service } from "./s3.ts";
import { claimedScope } from "./sigv4.ts";
import { stsService } from "./sts.ts";
import { classify, headerRecord, queryRecord, type ServiceDeps, sendError, sourceIp } from "./wire.ts";

/** Request bodies above this are refused (413) before any service sees them; S3 PUTs may be larger. */
export const MAX_BODY_BYTES = 1024 * 1024;

export interface EmulatorOptions extends Omit<CoreOptions, "inventory"> {
  /** The parsed inventory (`loadInventory`, `parseInventory`, `buildInventory`) or a path to its YAML. */
  inventory: EmulatorInventory | string;
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Extra services (EIC, EICE, metadata), offered requests after the built-ins. */
  services?: (core: EmulatorState) => EmulatorService[];
}

export interface RunningEmulator {
  /** `http://127.0.0.1:<port>`: the endpoint for SDK clients and `--endpoint-url`. */
  url: string;
  port: number;
  core: EmulatorState;
  /** Built-ins first, then the extra services, in dispatch order. */
  services: EmulatorService[];
  close(): Promise<void>;
}

function isLoopback(address: string): boolean {
  return address.startsWith("127.") || address === "::1";
}

class BodyTooLarge extends Error {}

async function readBody(request: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  const declared = Number(request.headers["content-length"] ?? 0);
  if (declared > limit) throw new BodyTooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new BodyTooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function sendAdmin(response: ServerResponse, status: number, payload?: unknown): void {
  if (response.headersSent) return;
  if (payload === undefined) {
    response.writeHead(status, { "Content-Length": 0 });
    response.end();
    return;
  }
  const body = JSON.stringify(payload);
  response.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
  });
  response.end(body);
}

/** S3 takes object bodies; everything else is an API call whose body stays small. */
function bodyLimit(request: IncomingMessage): number {
  const url = request.url ?? "/";
  const search = url.includes("?") ? url.slice(url.indexOf("?") + 1) : "";
  const scope = claimedScope({
    headers: headerRecord(request),
    query: queryRecord(new URLSearchParams(search)),
  });
  return scope?.service === "s3" && request.method === "PUT" ? MAX_PUT_BYTES : MAX_BODY_BYTES;
}

function parseJson(body: Buffer): unknown {
  return body.length === 0 ? {} : JSON.parse(body.toString("utf8"));
}

/** Starts the emulator; resolves once it listens. */
export async function startEmulator(options: EmulatorOptions): Promise<RunningEmulator> {
  const inventory =
    typeof options.inventory === "string" ? loadInventory(options.inventory) : options.inventory;
  const core = createCore({ ...options, inventory });
  const deps: ServiceDeps = {
    recordTrail: (input, extra) => core.trail.record(input, extra),
    inject: (operation, service) => core.faults.inject(operation, service),
  };
  const services: EmulatorService[] = [
    stsService(core, core.iam, deps),
    iamService(core, core.iam, deps),
    ec2Service(core, inventory, deps),
    cloudTrailService(core, core.trail, deps),
    s3Service(core, core.s3, deps),
    ...(options.services?.(core) ?? []),
  ];

  async function admin(request: IncomingMessage, response: ServerResponse, path: string): Promise<void> {
    if (!isLoopback(sourceIp(request))) {
      sendAdmin(response, 403, { error: "The admin API answers loopback clients only" });
      return;
    }
    const method = request.method ?? "GET";
    const body = await readBody(request);
    const clockState = () => ({ now: core.now().toISOString(), offsetSeconds: core.clock.offsetSeconds });
    const route = `${method} ${path}`;
    try {
      switch (route) {
        case "GET /_emulator/trail":
          sendAdmin(response, 200, { Records: core.trail.all(), delivery: core.trail.delivery });
          return;
        case "POST /_emulator/faults":
          core.faults.configure(parseJson(body));
          sendAdmin(response, 204);
          return;
        case "GET /_emulator/clock":
          sendAdmin(response, 200, clockState());
          return;
        case "POST /_emulator/clock": {
          const input = parseJson(body) as { offsetSeconds?: unknown; advanceSeconds?: unknown } | null;
          const offset = input?.offsetSeconds;
          const advance = input?.advanceSeconds;
          if (typeof offset === "number" && Number.isFinite(offset)) core.clock.setOffset(offset);
          else if (typeof advance === "number" && Number.isFinite(advance)) core.clock.advance(advance);
          else {
            sendAdmin(response, 400, {
              error: 'Send {"offsetSeconds": <number>} or {"advanceSeconds": <number>}',
            });
            return;
          }
          sendAdmin(response, 200, clockState());
          return;
        }
        case "POST /_emulator/s3/deliver-trail": {
          const input = parseJson(body) as { bucket?: unknown; prefix?: unknown } | null;
          if (
            typeof input?.bucket !== "string" ||
            (input.prefix !== undefined && typeof input.prefix !== "string")
          ) {
            sendAdmin(response, 400, { error: 'Send {"bucket": "<name>", "prefix"?: "<key prefix>"}' });
            return;
          }
          const keys = core.s3.deliverTrail(
            core.trail.all(),
            input.bucket,
            input.prefix as string | undefined,
          );
          sendAdmin(response, 200, { keys });
          return;
        }
        case "POST /_emulator/reset":
          core.reset();
          for (const service of services) await service.reset?.();
          sendAdmin(response, 204);
          return;
        default:
          sendAdmin(response, 404, { error: `No admin route ${route.slice(0, 100)}` });
      }
    } catch (error) {
      sendAdmin(response, 400, { error: (error as Error).message });
    }
  }

  /** No service wanted the request: answer as the protocol it looks like would. */
  function unknownOperation(request: IncomingMessage, body: Buffer, response: ServerResponse): void {
    const classified = classify(request, body);
    const requestId = randomUUID();
    if (classified.target !== undefined || classified.contentType.startsWith("application/x-amz-json")) {
      sendError(response, "json", requestId, { status: 400, code: "UnknownOperationException", message: "" });
      return;
    }
    const action = classified.params.get("Action");
    sendError(response, "query", requestId, {
      status: 400,
      code: "InvalidAction",
      message:
        action === undefined
          ? "Could not find operation to perform: no Action parameter and no X-Amz-Target header"
          : `The action ${action.slice(0, 64)} is not valid for this web service.`,
    });
  }

  function internalError(response: ServerResponse, error: unknown): void {
    process.stderr.write(`emulator: request failed: ${(error as Error)?.stack ?? String(error)}\n`);
    if (!response.headersSent) {
      sendError(response, "json", randomUUID(), {
        status: 500,
        code: "InternalFailure",
        message: "The emulator failed to handle the request.",
      });
    } else {
      response.destroy();
    }
  }

  async function onRequest(request: IncomingMessage, response: ServerResponse): Promise<void> {
    // Real services date their responses; SDKs correct their clock skew from it, so use emulator time.
    response.setHeader("Date", core.now().toUTCString());
    const url = request.url ?? "/";
    const path = url.split("?")[0] ?? "/";
    if (path.startsWith("/_emulator/")) {
      await admin(request, response, path);
      return;
    }
    const body = await readBody(request, bodyLimit(request));
    for (const service of services) {
      if (await service.handle(request, body, response)) return;
    }
    unknownOperation(request, body, response);
  }

  const server = createServer((request, response) => {
    onRequest(request, response).catch((error: unknown) => {
      if (error instanceof BodyTooLarge) {
        // Answer, then drop the connection rather than drain a body we will not read.
        response.on("finish", () => request.socket.destroy());
        if (!response.headersSent) {
          response.writeHead(413, {
            Connection: "close",
            "Content-Type": "text/plain",
            "Content-Length": 24,
          });
          response.end("Request entity too large");
        } else request.socket.destroy();
        return;
      }
      // A fully read request counts as destroyed; only a dead socket means nobody is listening.
      if (request.socket.destroyed) return;
      internalError(response, error);
    });
  });

  server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => undefined);
    (async () => {
      for (const service of services) {
        if (service.upgrade !== undefined && (await service.upgrade(request, socket, head))) return;
      }
      if (socket.writable) {
        socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      }
    })().catch((error: unknown) => {
      process.stderr.write(`emulator: upgrade failed: ${(error as Error)?.stack ?? String(error)}\n`);
      socket.destroy();
    });
  });

  server.on("clientError", (_error, socket) => {
    if (socket.writable)
      socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    else socket.destroy();
  });

  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (error) => process.stderr.write(`emulator: server error: ${error.message}\n`));
  const port = (server.address() as AddressInfo).port;
  const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    core,
    services,
    close() {
      closed ??= (async () => {
        core.trail.close();
        await Promise.allSettled(services.map((service) => service.close?.()));
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      })();
      return closed;
    },
  };
}
