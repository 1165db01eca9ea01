/**
 * `access tunnel --local-port N`: a loopback listener where every accepted TCP connection gets its own
 * freshly presigned URL and its own websocket, like `aws ec2-instance-connect open-tunnel --local-port`
 * (protocols.md §1.4). Connections beyond `maxConnections` are refused: EICE allows 20 per endpoint.
 * `access ssh` listens the same way on a Unix socket in a private directory instead of a port.
 */
import { createServer, type Server, type Socket } from "node:net";
import type WebSocket from "ws";
import { bridge, openTunnel } from "./bridge.ts";

/** What the listener needs from `POST /grants/{id}/tunnel`. */
export interface PresignedUrl {
  url: string;
  expiresAt: string;
}

export interface TunnelListenerOptions {
  /** A loopback TCP port (0: any free one)… */
  localPort?: number;
  host?: string;
  /** …or a Unix socket path, reachable only as its directory's permissions allow. */
  path?: string;
  maxConnections?: number;
  /** A new presigned URL; called once per accepted connection (URLs are single-use bearer tokens). */
  authorize(): Promise<PresignedUrl>;
  /** A URL obtained already (e.g. to print the banner), used by the first connection while still fresh. */
  spare?: PresignedUrl;
  eiceEndpoint?: string;
  /** One line per event: accepted and closed (`info`), refused and failed (`error`). */
  log(line: string, level: "info" | "error"): void;
  now?: () => number;
}

export interface TunnelListener {
  /** The TCP port, or undefined when listening on a Unix socket. */
  port: number | undefined;
  host: string;
  /** Open connections. */
  connections(): number;
  /** Stops listening and ends every open tunnel (close code 1000). */
  close(): Promise<void>;
}

/** A presigned URL is good for 60 s from signing; leave margin for the handshake. */
const SPARE_MARGIN_MS = 15_000;

export async function listenTunnel(options: TunnelListenerOptions): Promise<TunnelListener> {
  const host = options.host ?? "127.0.0.1";
  const max = options.maxConnections ?? 10;
  const now = options.now ?? Date.now;
  const clients = new Set<Socket>();
  const sockets = new Set<WebSocket>();
  let spare = options.spare;
  let sequence = 0;
  let closing = false;

  const presign = async (): Promise<PresignedUrl> => {
    const fresh = spare && Date.parse(spare.expiresAt) - now() > SPARE_MARGIN_MS ? spare : undefined;
    spare = undefined;
    return fresh ?? options.authorize();
  };

  const serve = async (client: Socket) => {
    const id = ++sequence;
    const peer = options.path ? "the local socket" : `${client.remoteAddress}:${client.remotePort}`;
    if (closing || clients.size >= max) {
      options.log(
        `refused connection #${id} from ${peer}: ${max} connections are open (--max-connections ${max})`,
        "error",
      );
      client.destroy();
      return;
    }
    clients.add(client);
    client.pause();
    // Until the bridge owns it, a client that resets must not crash the process.
    const early = () => {};
    client.on("error", early);
    let socket: WebSocket | undefined;
    try {
      const { url } = await presign();
      socket = await openTunnel(url, { eiceEndpoint: options.eiceEndpoint });
      sockets.add(socket);
      if (closing || client.destroyed) {
        socket.close(1000);
        return;
      }
      options.log(`connection #${id} from ${peer} opened`, "info");
      client.off("error", early);
      const result = await bridge({ socket, input: client, output: client, endOutput: true });
      options.log(
        `connection #${id} closed by the ${result.endedBy === "local" ? "client" : "endpoint"} (sent ${result.bytesSent} bytes, received ${result.bytesReceived})`,
        "info",
      );
    } catch (error) {
      options.log(`connection #${id} from ${peer} failed: ${(error as Error).message}`, "error");
      client.destroy();
    } finally {
      clients.delete(client);
      if (socket) sockets.delete(socket);
    }
  };

  const server: Server = createServer({ pauseOnConnect: true }, (client) => void serve(client));
  await new Promise<void>((done, fail) => {
    server.once("error", fail);
    const listening = () => {
      server.off("error", fail);
      done();
    };
    if (options.path) server.listen(options.path, listening);
    else server.listen(options.localPort ?? 0, host, listening);
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : undefined;

  return {
    port,
    host,
    connections: () => clients.size,
    async close() {
      closing = true;
      const stopped = new Promise<void>((done) => server.close(() => done()));
      for (const socket of sockets) socket.close(1000);
      for (const client of clients) client.destroy();
      await stopped;
    },
  };
}
