/**
 * EC2 Instance Connect Endpoint: the `wss://<DnsName>/openTunnel?…` websocket, served as an upgrade on the
 * emulator's one port (plain ws locally). The client connects to the emulator's address and sends
 * `Host: <endpoint DnsName>` (or FipsDnsName), which is the host it presigned.
 *
 * Wire behaviour follows shared/reference/protocols.md §1 (AWS CLI v2 `open-tunnel`):
 * - everything is in the SigV4-presigned query (service `ec2-instance-connect`, X-Amz-Expires ≤ 60);
 * - rejections happen before the upgrade as HTTP errors with a text body `<Code>: <message>` (the CLI logs
 *   the status and the body);
 * - after 101, raw TCP bytes flow as BINARY frames both ways, one websocket per TCP connection, with
 *   backpressure in both directions;
 * - close 1000 when the instance side ends the connection.
 *
 * Emulator choices where AWS documents nothing (open question 1 in protocols.md):
 * - **maxTunnelDuration** cuts the tunnel with close code **1000** and the reason
 *   `maxTunnelDuration of <n> seconds reached`: it is the policy-defined end of the tunnel, not a failure,
 *   so the AWS CLI exits cleanly and ssh sees end-of-file. The deadline is checked against emulator time
 *   (`core.now()`, polled, and on `tunnels.sweep()`) and a real timer, whichever fires first.
 * - a forced close (`tunnels.close`, e.g. a revoked grant) uses **1008** with a reason, which the CLI
 *   reports as "Websocket Closure Reason: <reason>".
 * - the TCP connection to the instance is opened before answering 101, so "no upstream" / "connection
 *   refused" is a 502 (504 on timeout) with a clear text body rather than a websocket that dies at once.
 * - an absent `maxTunnelDuration` means 3600 for the tunnel *and* for the IAM condition context, so a policy
 *   limiting `maxTunnelDuration` below 3600 denies a request that does not carry it (EC2 User Guide,
 *   "Grant permissions to use EC2 Instance Connect Endpoint").
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { connect, isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import {
  type Authenticated,
  AuthFailure,
  type ConditionContext,
  type EmulatorCore,
  type EmulatorService,
  type InventoryEndpoint,
  type InventoryInstance,
} from "./contract.ts";
import {
  ApiError,
  accessDeniedMessage,
  EIC_EVENT_SOURCE,
  flatHeaders,
  resourceTagContext,
  sourceAddress,
} from "./eic.ts";

export const OPEN_TUNNEL_ACTION = "ec2-instance-connect:OpenTunnel";
/** EICE forwards only SSH and RDP (EC2 User Guide, EICE limitations). */
export const EICE_PORTS: readonly number[] = [22, 3389];
export const DEFAULT_MAX_TUNNEL_DURATION = 3600;
export const DEFAULT_MAX_CONNECTIONS_PER_ENDPOINT = 20;
/** Close code and reason when a tunnel reaches its maxTunnelDuration (see the file comment). */
export const TUNNEL_EXPIRED_CLOSE_CODE = 1000;
export const tunnelExpiredReason = (seconds: number) => `maxTunnelDuration of ${seconds} seconds reached`;
/** Default close code for tunnels closed through `tunnels.close` (revocation, tests). */
export const TUNNEL_FORCED_CLOSE_CODE = 1008;

/** Endpoint states the AWS CLI accepts when it looks an endpoint up (protocols.md §1.3). */
const USABLE_STATES = new Set(["create-complete", "update-in-progress", "update-complete", "update-failed"]);
const OPERATION_PARAMETERS = [
  "instanceConnectEndpointId",
  "remotePort",
  "privateIpAddress",
  "maxTunnelDuration",
];
// Websocket → instance: the CLI sends ≤ 65,000 bytes per frame; anything far larger is not a tunnel client.
const MAX_FRAME_BYTES = 1 << 20;
// Instance → websocket: stop reading the instance while this much is queued for the client.
const HIGH_WATER_BYTES = 1 << 20;
const LOW_WATER_BYTES = 256 << 10;
const MAX_CLOSE_REASON_BYTES = 123;

export interface EiceOptions {
  /** Concurrent tunnels per endpoint (AWS: 20, not adjustable). */
  maxConnectionsPerEndpoint?: number;
  /** How long to wait for the instance's TCP port before answering 504. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** How often open tunnels are checked against emulator time. Default 1000 ms. */
  sweepIntervalMs?: number;
}

/** A snapshot of one open tunnel. */
export interface Tunnel {
  /** The OpenTunnel request id (also the CloudTrail requestID and the 101's x-amzn-RequestId). */
  id: string;
  endpointId: string;
  instanceId: string;
  privateIpAddress: string;
  remotePort: number;
  maxTunnelDuration: number;
  callerArn: string;
  sourceIPAddress: string;
  /** Emulator time. */
  openedAt: Date;
  /** Emulator time at which the tunnel is cut. */
  expiresAt: Date;
  bytesToInstance: number;
  bytesFromInstance: number;
}

export interface TunnelRegistry {
  /** Open tunnels, optionally of one endpoint. */
  list(endpointId?: string): Tunnel[];
  /** Tunnels that count against an endpoint's limit (open, plus authorized ones still connecting). */
  count(endpointId: string): number;
  /**
   * Closes matching tunnels (all when no filter) with `code` (default 1008) and `reason`; returns how many.
   */
  close(
    filter?: { endpointId?: string; tunnelId?: string },
    options?: { code?: number; reason?: string },
  ): number;
  /** Cuts every tunnel whose maxTunnelDuration has passed in emulator time now; returns how many. */
  sweep(): number;
}

export type EiceService = EmulatorService & { tunnels: TunnelRegistry };

/** EICE refuses before the upgrade with an HTTP status and a `<Code>: <message>` body. */
class Refusal extends ApiError {
  override name = "Refusal";
}

interface OpenTunnel {
  info: Tunnel;
  ws: WebSocket;
  tcp: Socket;
  timer: NodeJS.Timeout;
  closing: boolean;
}

function validationError(message: string): Refusal {
  return new Refusal(400, "ValidationException", message);
}

/** The canonical text of an IP address (IPv6 compressed and lower-cased), or undefined when it is not one. */
function canonicalIp(text: string): string | undefined {
  const version = isIP(text);
  if (version === 4) return text;
  if (version === 6) return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  return undefined;
}

function truncateReason(reason: string): string {
  let text = reason;
  while (Buffer.byteLength(text) > MAX_CLOSE_REASON_BYTES) text = text.slice(0, -1);
  return text;
}

function endpointArn(endpoint: InventoryEndpoint): string {
  return `arn:aws:ec2:${endpoint.region}:${endpoint.account}:instance-connect-endpoint/${endpoint.id}`;
}

/** RFC 6455 handshake fields, checked up front so that `handleUpgrade` cannot refuse after we connected. */
function websocketHandshakeProblem(request: IncomingMessage): string | undefined {
  if (request.method !== "GET") return "OpenTunnel is a websocket GET";
  if (request.headers.upgrade?.toLowerCase() !== "websocket") return "Missing 'Upgrade: websocket'";
  const key = request.headers["sec-websocket-key"];
  if (typeof key !== "string" || !/^[+/0-9A-Za-z]{22}==$/.test(key))
    return "Missing or invalid Sec-WebSocket-Key";
  const version = request.headers["sec-websocket-version"];
  if (version !== "13" && version !== "8") return "Unsupported Sec-WebSocket-Version";
  return undefined;
}

/** The EICE `/openTunnel` websocket endpoint. */
export function eiceService(core: EmulatorCore, options: EiceOptions = {}): EiceService {
  const maxConnections = options.maxConnectionsPerEndpoint ?? DEFAULT_MAX_CONNECTIONS_PER_ENDPOINT;
  const connectTimeoutMs = options.connectTimeoutMs ?? 5000;
  const sweepIntervalMs = options.sweepIntervalMs ?? 1000;

  const open = new Map<string, OpenTunnel>();
  /** Authorized tunnels still connecting to the instance, per endpoint: they hold a slot. */
  const reserved = new Map<string, number>();
  const requestIds = new WeakMap<IncomingMessage, string>();
  let sweeper: NodeJS.Timeout | undefined;

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
  wss.on("headers", (headers, request) => {
    const requestId = requestIds.get(request);
    if (requestId !== undefined) headers.push(`x-amzn-RequestId: ${requestId}`);
  });

  const count = (endpointId: string) =>
    (reserved.get(endpointId) ?? 0) +
    [...open.values()].filter((t) => t.info.endpointId === endpointId).length;

  function release(endpointId: string) {
    const left = (reserved.get(endpointId) ?? 1) - 1;
    if (left > 0) reserved.set(endpointId, left);
    else reserved.delete(endpointId);
  }

  function closeTunnel(tunnel: OpenTunnel, code: number, reason: string) {
    if (tunnel.closing) return;
    tunnel.closing = true;
    clearTimeout(tunnel.timer);
    tunnel.ws.close(code, truncateReason(reason));
    // Nothing more reaches the instance; what the instance sent before is already queued ahead of the close.
    tunnel.tcp.destroy();
  }

  function sweep(): number {
    const now = core.now().getTime();
    let cut = 0;
    for (const tunnel of open.values()) {
      if (!tunnel.closing && tunnel.info.expiresAt.getTime() <= now) {
        closeTunnel(tunnel, TUNNEL_EXPIRED_CLOSE_CODE, tunnelExpiredReason(tunnel.info.maxTunnelDuration));
        cut++;
      }
    }
    return cut;
  }

  function forget(tunnel: OpenTunnel) {
    if (open.get(tunnel.info.id) !== tunnel) return;
    open.delete(tunnel.info.id);
    clearTimeout(tunnel.timer);
    if (open.size === 0 && sweeper !== undefined) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  }

  function startProxy(tunnel: OpenTunnel) {
    const { ws, tcp, info } = tunnel;
    ws.binaryType = "nodebuffer";
    let tcpPaused = false;

    const afterSend = () => {
      if (tcpPaused && ws.bufferedAmount <= LOW_WATER_BYTES) {
        tcpPaused = false;
        tcp.resume();
      }
    };
    tcp.on("data", (chunk: Buffer) => {
      info.bytesFromInstance += chunk.length;
      ws.send(chunk, { binary: true }, afterSend);
      if (ws.bufferedAmount >= HIGH_WATER_BYTES) {
        tcpPaused = true;
        tcp.pause();
      }
    });
    tcp.on("drain", () => ws.resume());
    tcp.on("end", () => closeTunnel(tunnel, 1000, ""));
    tcp.on("error", (error: NodeJS.ErrnoException) =>
      closeTunnel(tunnel, 1011, `Connection to the instance failed: ${error.code ?? error.message}`),
    );
    tcp.on("close", () => closeTunnel(tunnel, 1000, ""));

    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (tunnel.closing) return;
      if (!isBinary) {
        closeTunnel(tunnel, 1003, "Text frames are not supported: send the TCP bytes as binary frames");
        return;
      }
      // binaryType "nodebuffer": fragments arrive joined into one Buffer.
      const bytes = data as Buffer;
      info.bytesToInstance += bytes.length;
      if (!tcp.write(bytes)) ws.pause();
    });
    ws.on("close", () => {
      forget(tunnel);
      if (!tunnel.closing) {
        tunnel.closing = true;
        // Let bytes already written reach the instance, then make sure the socket goes away.
        tcp.end();
        setTimeout(() => tcp.destroy(), 5000).unref();
      }
    });
    ws.on("error", () => {
      forget(tunnel);
      tcp.destroy();
    });
  }

  function connectUpstream(instance: InventoryInstance, remotePort: number, ip: string): Promise<Socket> {
    const name = instance.ports[String(remotePort)];
    const target = name === undefined ? undefined : core.upstream(name);
    if (target === undefined) {
      const why =
        name === undefined
          ? `instance ${instance.id} has no ports["${remotePort}"] in the emulator inventory`
          : `upstream "${name}" of instance ${instance.id} is not running`;
      return Promise.reject(
        new Refusal(502, "InstanceConnectionFailed", `Unable to connect to ${ip}:${remotePort}: ${why}`),
      );
    }
    return new Promise((resolve, reject) => {
      const tcp = connect({ host: target.host, port: target.port });
      tcp.setNoDelay(true);
      const fail = (refusal: Refusal) => {
        tcp.destroy();
        reject(refusal);
      };
      const timer = setTimeout(
        () =>
          fail(
            new Refusal(
              504,
              "InstanceConnectionFailed",
              `Timed out connecting to ${ip}:${remotePort} (${instance.id}, upstream ${name} at ${target.host}:${target.port})`,
            ),
          ),
        connectTimeoutMs,
      );
      tcp.once("error", (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        fail(
          new Refusal(
            502,
            "InstanceConnectionFailed",
            `Unable to connect to ${ip}:${remotePort} (${instance.id}, upstream ${name} at ${target.host}:${target.port}): ${error.code ?? error.message}`,
          ),
        );
      });
      tcp.once("connect", () => {
        clearTimeout(timer);
        tcp.removeAllListeners("error");
        resolve(tcp);
      });
    });
  }

  function rejectHandshake(socket: Duplex, requestId: string, refusal: Refusal) {
    const body = `${refusal.code}: ${refusal.message}\n`;
    const reason = {
      400: "Bad Request",
      401: "Unauthorized",
      403: "Forbidden",
      404: "Not Found",
      429: "Too Many Requests",
      500: "Internal Server Error",
      502: "Bad Gateway",
      503: "Service Unavailable",
      504: "Gateway Timeout",
    }[refusal.status];
    if (!socket.writable) return socket.destroy();
    socket.end(
      `HTTP/1.1 ${refusal.status} ${reason ?? "Error"}\r\n` +
        "Connection: close\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `x-amzn-RequestId: ${requestId}\r\n` +
        `\r\n${body}`,
    );
  }

  async function upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<boolean> {
    const url = new URL(request.url ?? "/", "http://emulator");
    if (url.pathname !== "/openTunnel") return false;
    socket.on("error", () => socket.destroy());

    const requestId = randomUUID();
    const host = request.headers.host ?? "";
    const hostName = host.replace(/:\d+$/, "").toLowerCase();
    const endpoint = core.inventory.endpoints.find(
      (e) =>
        e.dnsName.toLowerCase() === hostName ||
        (e.fipsDnsName !== "" && e.fipsDnsName.toLowerCase() === hostName),
    );

    const query: Record<string, string> = {};
    const duplicates: string[] = [];
    for (const [name, value] of url.searchParams) {
      if (name in query) duplicates.push(name);
      query[name] = value;
    }
    let auth: Authenticated | undefined;

    const record = (error?: Refusal) => {
      if (endpoint === undefined) return;
      const requestParameters: Record<string, unknown> = {};
      for (const name of OPERATION_PARAMETERS) {
        const value = query[name];
        if (value !== undefined) requestParameters[name] = value.slice(0, 256);
      }
      const userAgent = request.headers["user-agent"];
      core.recordTrail({
        eventSource: EIC_EVENT_SOURCE,
        eventName: "OpenTunnel",
        region: endpoint.region,
        accountId: endpoint.account,
        caller: auth?.caller,
        sourceIPAddress: sourceAddress(request),
        ...(userAgent === undefined ? {} : { userAgent }),
        requestParameters,
        responseElements: null,
        requestId,
        ...(error === undefined ? {} : { errorCode: error.trailCode, errorMessage: error.message }),
        resources: [
          {
            accountId: endpoint.account,
            type: "AWS::EC2::InstanceConnectEndpoint",
            ARN: endpointArn(endpoint),
          },
        ],
        readOnly: false,
        ...(host === "" ? {} : { host }),
      });
    };

    let slotOf: string | undefined;
    try {
      if (endpoint === undefined) {
        throw new Refusal(404, "NotFound", `No EC2 Instance Connect Endpoint answers to host '${hostName}'`);
      }
      const problem = websocketHandshakeProblem(request);
      if (problem !== undefined) throw new Refusal(400, "BadRequest", problem);
      if (duplicates.length > 0) throw validationError(`Repeated query parameter ${duplicates[0]}`);
      if (query.instanceConnectEndpointId !== endpoint.id) {
        throw validationError(
          `instanceConnectEndpointId '${(query.instanceConnectEndpointId ?? "").slice(0, 64)}' does not match the endpoint at ${hostName}`,
        );
      }
      if (!USABLE_STATES.has(endpoint.state)) {
        throw new Refusal(503, "EndpointUnavailable", `Endpoint ${endpoint.id} is ${endpoint.state}`);
      }

      auth = core.authenticate({
        method: "GET",
        host,
        path: url.pathname,
        query,
        headers: flatHeaders(request),
        body: Buffer.alloc(0),
        presigned: true,
        maxExpiresSeconds: 60,
      });
      const caller = auth.caller;
      if (auth.service !== "ec2-instance-connect") {
        throw new Refusal(
          403,
          "InvalidSignatureException",
          "Credential should be scoped to correct service: 'ec2-instance-connect'",
        );
      }
      if (auth.region !== endpoint.region) {
        throw new Refusal(
          403,
          "InvalidSignatureException",
          `Credential should be scoped to a valid region: '${endpoint.region}', not '${auth.region}'`,
        );
      }

      const fault = await core.faults.inject("OpenTunnel");
      if (fault !== undefined) throw new Refusal(fault.status, fault.code, fault.message);

      const portText = query.remotePort;
      if (portText === undefined) throw validationError("Missing required parameter remotePort");
      if (!/^\d{1,5}$/.test(portText))
        throw validationError(`remotePort '${portText.slice(0, 16)}' is not a port number`);
      const remotePort = Number(portText);
      if (!EICE_PORTS.includes(remotePort)) {
        throw validationError(
          `remotePort ${remotePort} is not supported: EC2 Instance Connect Endpoint supports 22 and 3389`,
        );
      }
      const ipText = query.privateIpAddress;
      if (ipText === undefined) throw validationError("Missing required parameter privateIpAddress");
      const ip = canonicalIp(ipText);
      if (ip === undefined)
        throw validationError(`privateIpAddress '${ipText.slice(0, 64)}' is not an IP address`);
      const durationText = query.maxTunnelDuration;
      let maxTunnelDuration = DEFAULT_MAX_TUNNEL_DURATION;
      if (durationText !== undefined) {
        maxTunnelDuration = /^\d{1,5}$/.test(durationText) ? Number(durationText) : Number.NaN;
        if (!(maxTunnelDuration >= 1 && maxTunnelDuration <= 3600)) {
          throw validationError(
            `maxTunnelDuration '${durationText.slice(0, 16)}' must be between 1 and 3600 seconds`,
          );
        }
      }
      const instance = core.inventory.instances.find(
        (i) =>
          i.account === endpoint.account &&
          i.region === endpoint.region &&
          i.vpcId === endpoint.vpcId &&
          ((i.privateIp !== undefined && canonicalIp(i.privateIp) === ip) ||
            (i.ipv6 !== undefined && canonicalIp(i.ipv6) === ip)),
      );
      if (instance === undefined) {
        throw validationError(
          `No instance in ${endpoint.vpcId} (the VPC of ${endpoint.id}) has the address ${ip}`,
        );
      }

      const resource = endpointArn(endpoint);
      if (caller.accountId !== endpoint.account) {
        // EICE has no resource policy, so another account's principal can never be allowed.
        throw new Refusal(
          403,
          "AccessDeniedException",
          `User: ${caller.arn} is not authorized to perform: ${OPEN_TUNNEL_ACTION} on resource: ${resource} because no resource-based policy allows the ${OPEN_TUNNEL_ACTION} action`,
          "AccessDenied",
        );
      }
      const context: ConditionContext = {
        ...resourceTagContext((endpoint as { tags?: Record<string, string> }).tags),
        "ec2-instance-connect:remotePort": remotePort,
        "ec2-instance-connect:privateIpAddress": ip,
        "ec2-instance-connect:maxTunnelDuration": maxTunnelDuration,
      };
      const decision = core.authorize(caller, OPEN_TUNNEL_ACTION, resource, context);
      if (!decision.allowed) {
        throw new Refusal(
          403,
          "AccessDeniedException",
          accessDeniedMessage(caller, OPEN_TUNNEL_ACTION, resource, decision),
          "AccessDenied",
        );
      }

      // Check and take the slot in one synchronous step: no await between them.
      if (count(endpoint.id) >= maxConnections) {
        throw new Refusal(
          429,
          "ConnectionLimitExceeded",
          `Endpoint ${endpoint.id} already has ${maxConnections} concurrent connections (the maximum)`,
        );
      }
      reserved.set(endpoint.id, (reserved.get(endpoint.id) ?? 0) + 1);
      slotOf = endpoint.id;

      if (instance.state !== "running") {
        throw new Refusal(
          502,
          "InstanceConnectionFailed",
          `Unable to connect to ${ip}:${remotePort}: instance ${instance.id} is ${instance.state}`,
        );
      }
      const tcp = await connectUpstream(instance, remotePort, ip);
      if (!socket.writable || socket.destroyed) {
        tcp.destroy();
        throw new Refusal(400, "ClientClosed", "The client closed the connection before the tunnel opened");
      }

      const openedAt = core.now();
      const info: Tunnel = {
        id: requestId,
        endpointId: endpoint.id,
        instanceId: instance.id,
        privateIpAddress: ip,
        remotePort,
        maxTunnelDuration,
        callerArn: caller.arn,
        sourceIPAddress: sourceAddress(request),
        openedAt,
        expiresAt: new Date(openedAt.getTime() + maxTunnelDuration * 1000),
        bytesToInstance: 0,
        bytesFromInstance: 0,
      };
      requestIds.set(request, requestId);
      let upgraded = false;
      // With the handshake pre-validated and no verifyClient, ws completes the upgrade synchronously.
      wss.handleUpgrade(request, socket, head, (ws) => {
        upgraded = true;
        release(endpoint.id);
        slotOf = undefined;
        const tunnel: OpenTunnel = {
          info,
          ws,
          tcp,
          closing: false,
          // The real-time bound, for when emulator time stands still.
          timer: setTimeout(
            () => closeTunnel(tunnel, TUNNEL_EXPIRED_CLOSE_CODE, tunnelExpiredReason(maxTunnelDuration)),
            maxTunnelDuration * 1000,
          ),
        };
        tunnel.timer.unref();
        open.set(requestId, tunnel);
        sweeper ??= setInterval(sweep, sweepIntervalMs).unref();
        startProxy(tunnel);
      });
      if (!upgraded) {
        tcp.destroy();
        throw new Refusal(400, "ClientClosed", "The websocket handshake could not be completed");
      }
      record();
    } catch (error) {
      if (slotOf !== undefined) release(slotOf);
      const refusal =
        error instanceof Refusal
          ? error
          : error instanceof AuthFailure
            ? new Refusal(error.status, error.code, error.message)
            : new Refusal(500, "InternalError", "The emulator failed to open the tunnel");
      if (!(error instanceof Refusal || error instanceof AuthFailure)) {
        process.stderr.write(`emulator eice: OpenTunnel failed: ${String(error)}\n`);
      }
      rejectHandshake(socket, requestId, refusal);
      record(refusal);
    }
    return true;
  }

  const tunnels: TunnelRegistry = {
    list: (endpointId) =>
      [...open.values()]
        .filter((t) => endpointId === undefined || t.info.endpointId === endpointId)
        .map((t) => ({ ...t.info })),
    count,
    close(filter = {}, closeOptions = {}) {
      let closed = 0;
      for (const tunnel of open.values()) {
        if (tunnel.closing) continue;
        if (filter.endpointId !== undefined && tunnel.info.endpointId !== filter.endpointId) continue;
        if (filter.tunnelId !== undefined && tunnel.info.id !== filter.tunnelId) continue;
        closeTunnel(
          tunnel,
          closeOptions.code ?? TUNNEL_FORCED_CLOSE_CODE,
          closeOptions.reason ?? "Tunnel closed by the emulator",
        );
        closed++;
      }
      return closed;
    },
    sweep,
  };

  return {
    tunnels,
    async handle() {
      return false;
    },
    upgrade,
    reset() {
      tunnels.close({}, { code: 1001, reason: "Emulator reset" });
    },
    async close() {
      tunnels.close({}, { code: 1001, reason: "Emulator shutting down" });
      // Give clients a moment to answer the close frame, then drop whoever did not.
      const deadline = Date.now() + 1000;
      while (open.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      for (const tunnel of open.values()) tunnel.ws.terminate();
      if (sweeper !== undefined) clearInterval(sweeper);
      sweeper = undefined;
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
