/**
 * Bytes between a local stream (stdin/stdout for `access proxy`, a TCP socket for `access tunnel`) and one
 * EC2 Instance Connect Endpoint websocket, the way the AWS CLI's `open-tunnel` does it (protocols.md §1.4–1.5):
 * raw TCP bytes as BINARY frames of at most 65,000 bytes, no framing of our own, one websocket per TCP
 * connection; a TEXT frame from the server is a protocol error; close code 1000 is a normal end and any
 * other code an error. Backpressure holds both ways: a slow websocket pauses the local reader, a slow local
 * writer pauses the websocket.
 */
import type { Readable, Writable } from "node:stream";
import WebSocket from "ws";

/** The AWS CLI reads (and so sends) at most this many bytes at a time. */
export const CHUNK_BYTES = 65_000;
/** Stop reading locally while this much is queued towards the websocket; resume under LOW_WATER. */
const HIGH_WATER = 256 * 1024;
const LOW_WATER = 64 * 1024;
const HANDSHAKE_TIMEOUT_MS = 15_000;
const MAX_ERROR_BODY = 2_048;
const USER_AGENT = "access-cli/0.1.0";

/** Why a tunnel could not be opened or ended badly. Never carries the presigned URL (it is a credential). */
export class TunnelError extends Error {
  /** The websocket close code, when the server (or the network) ended the tunnel. */
  readonly closeCode: number | undefined;
  /** The HTTP status, when the handshake was refused. */
  readonly status: number | undefined;

  constructor(message: string, options: { closeCode?: number; status?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "TunnelError";
    this.closeCode = options.closeCode;
    this.status = options.status;
  }
}

export interface TunnelAddress {
  /** Where to connect. */
  address: string;
  /** Extra handshake headers: `host` when connecting somewhere else than the signed host. */
  headers: Record<string, string>;
  /** The signed host (the endpoint's DNS name), for messages. */
  host: string;
}

/**
 * Where to open the websocket for a presigned `wss://<endpoint dns>/openTunnel?…` URL. With `eiceEndpoint`
 * (the local emulator, e.g. `ws://127.0.0.1:4566`, whose fake DNS names do not resolve) connect there with
 * the path and query unchanged and `Host: <dns name>`, because the SigV4 signature covers the host.
 */
export function tunnelAddress(url: string, eiceEndpoint?: string): TunnelAddress {
  let signed: URL;
  try {
    signed = new URL(url);
  } catch {
    throw new TunnelError("the broker sent a tunnel URL that is not a URL");
  }
  if (signed.protocol !== "wss:" && signed.protocol !== "ws:")
    throw new TunnelError(`the broker sent a tunnel URL with scheme ${signed.protocol}, expected wss:`);
  if (!eiceEndpoint) return { address: signed.href, headers: {}, host: signed.host };
  let local: URL;
  try {
    local = new URL(eiceEndpoint);
  } catch {
    throw new TunnelError(
      `the EICE endpoint override "${eiceEndpoint}" is not a URL like ws://127.0.0.1:4566`,
    );
  }
  if (local.protocol !== "ws:" && local.protocol !== "wss:")
    throw new TunnelError(`the EICE endpoint override must be ws:// or wss://, not ${local.protocol}`);
  return {
    address: `${local.protocol}//${local.host}${signed.pathname}${signed.search}`,
    headers: { host: signed.host },
    host: signed.host,
  };
}

export interface OpenOptions {
  eiceEndpoint?: string;
  handshakeTimeoutMs?: number;
}

/**
 * Opens the websocket of one presigned URL. Resolves once the server answered 101, with the socket paused
 * (nothing is lost before `bridge` attaches); rejects with a TunnelError naming the HTTP status and the
 * server's message when the handshake is refused.
 */
export function openTunnel(url: string, options: OpenOptions = {}): Promise<WebSocket> {
  const target = tunnelAddress(url, options.eiceEndpoint);
  return new Promise((done, fail) => {
    const socket = new WebSocket(target.address, {
      headers: { "user-agent": USER_AGENT, ...target.headers },
      perMessageDeflate: false,
      followRedirects: false,
      handshakeTimeout: options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
    });
    socket.binaryType = "nodebuffer";
    let settled = false;
    const settle = (error?: TunnelError) => {
      if (settled) return;
      settled = true;
      if (error) fail(error);
      else done(socket);
    };
    socket.once("open", () => {
      socket.pause();
      settle();
    });
    socket.once("unexpected-response", (request, response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        if (body.length < MAX_ERROR_BODY) body += chunk;
      });
      const finish = () => {
        request.destroy();
        const text = body.replace(/\s+/g, " ").trim().slice(0, 300);
        settle(
          new TunnelError(
            `${target.host} refused the tunnel: HTTP ${response.statusCode}${text ? ` ${text}` : ""}`,
            { status: response.statusCode },
          ),
        );
      };
      response.once("end", finish);
      response.once("error", finish);
      response.once("aborted", finish);
    });
    // After a refusal ws may still report the aborted request; by then the promise is settled.
    socket.on("error", (error) => {
      settle(
        new TunnelError(`cannot open the tunnel through ${target.host}: ${error.message}`, { cause: error }),
      );
    });
  });
}

export interface BridgeOptions {
  /** An open websocket (from `openTunnel`). */
  socket: WebSocket;
  /** Local bytes to send: stdin, or the accepted TCP connection. */
  input: Readable;
  /** Where received bytes go: stdout, or the same TCP connection. */
  output: Writable;
  /** End `output` when the tunnel ends (a TCP connection: yes; process.stdout: no, the process exits). */
  endOutput?: boolean;
}

export interface BridgeResult {
  bytesSent: number;
  bytesReceived: number;
  /** 1000, or 1005/1006 after a local end the server did not acknowledge cleanly. */
  closeCode: number;
  /** Who ended it: the server (close frame) or the local side (EOF or a closed local stream). */
  endedBy: "remote" | "local";
}

const CLOSE_MEANINGS: Record<number, string> = {
  1001: "the endpoint is going away",
  1002: "protocol error",
  1003: "unacceptable data",
  1005: "closed without a status code",
  1006: "connection lost without a close frame",
  1007: "invalid data",
  1008: "policy violation",
  1009: "message too big",
  1011: "server error",
};

/**
 * Pumps bytes both ways until the tunnel ends. Resolves on a normal end (close code 1000 from the server,
 * or EOF / a closed stream on the local side); rejects with a TunnelError on a TEXT frame, any other close
 * code, or a websocket error. Stops reading `input` either way; ends `output` when `endOutput` is set.
 */
export function bridge(options: BridgeOptions): Promise<BridgeResult> {
  const { socket, input, output } = options;
  const endOutput = options.endOutput ?? true;
  let bytesSent = 0;
  let bytesReceived = 0;
  let localEnded = false;
  let settled = false;
  let inputPaused = false;
  let socketPaused = false;

  return new Promise<BridgeResult>((done, fail) => {
    const cleanup = () => {
      input.off("data", onData);
      input.off("end", onEnd);
      input.off("error", onLocalError);
      input.off("close", onInputClose);
      output.off("drain", onDrain);
      output.off("error", onLocalError);
      input.pause();
      // Tests and callers may still observe the socket; keep ws from throwing on late errors.
      socket.off("message", onMessage);
      socket.off("close", onClose);
      socket.off("error", onSocketError);
      socket.on("error", () => {});
    };

    const finish = (closeCode: number, endedBy: BridgeResult["endedBy"]) => {
      if (settled) return;
      settled = true;
      cleanup();
      const result = { bytesSent, bytesReceived, closeCode, endedBy };
      let resolved = false;
      const resolve = () => {
        if (resolved) return;
        resolved = true;
        // A TCP connection: FIN is queued once `end` flushed; nothing more is read from it.
        if (endOutput && input === (output as unknown)) input.destroy();
        done(result);
      };
      if (output.destroyed || (!endOutput && output.writableLength === 0)) {
        resolve();
        return;
      }
      // A local peer that stops reading, or goes away, must not hold us forever.
      output.once("error", resolve);
      output.once("close", resolve);
      if (endOutput) output.end(resolve);
      else output.once("drain", resolve);
    };

    const failWith = (error: TunnelError) => {
      if (settled) return;
      settled = true;
      cleanup();
      if (endOutput && !output.destroyed) output.destroy();
      if (socket.readyState === WebSocket.OPEN) socket.close(error.closeCode === 1003 ? 1003 : 1011);
      else if (socket.readyState === WebSocket.CONNECTING) socket.terminate();
      fail(error);
    };

    // ---- websocket → local ----
    const onDrain = () => {
      if (socketPaused && !settled) {
        socketPaused = false;
        socket.resume();
      }
    };
    const onMessage = (data: WebSocket.RawData, isBinary: boolean) => {
      if (settled) return;
      if (!isBinary) {
        failWith(
          new TunnelError(
            "received invalid data from the server (a TEXT frame; the tunnel carries binary only)",
            {
              closeCode: 1003,
            },
          ),
        );
        return;
      }
      const chunk = Buffer.isBuffer(data)
        ? data
        : Array.isArray(data)
          ? Buffer.concat(data)
          : Buffer.from(data);
      bytesReceived += chunk.length;
      if (!output.write(chunk) && !socketPaused) {
        socketPaused = true;
        socket.pause();
      }
    };
    const onClose = (code: number, reason: Buffer) => {
      // A local end sends 1000; a server that drops TCP instead of answering is still a normal local end.
      if (code === 1000 || (localEnded && (code === 1005 || code === 1006))) {
        finish(code, localEnded ? "local" : "remote");
        return;
      }
      const text = reason.toString("utf8").trim() || CLOSE_MEANINGS[code] || "no reason given";
      failWith(
        new TunnelError(`the tunnel was closed: ${text} (websocket close code ${code})`, { closeCode: code }),
      );
    };
    const onSocketError = (error: Error) => {
      failWith(new TunnelError(`tunnel error: ${error.message}`, { cause: error }));
    };

    // ---- local → websocket ----
    const afterSend = (error?: Error) => {
      if (error) {
        // ws reports a send on a closing socket; the close event decides how this ends.
        return;
      }
      if (inputPaused && !settled && socket.bufferedAmount <= LOW_WATER) {
        inputPaused = false;
        input.resume();
      }
    };
    const onData = (data: Buffer | string) => {
      if (settled || socket.readyState !== WebSocket.OPEN) return;
      const chunk = typeof data === "string" ? Buffer.from(data) : data;
      for (let offset = 0; offset < chunk.length; offset += CHUNK_BYTES) {
        const piece = chunk.subarray(offset, offset + CHUNK_BYTES);
        bytesSent += piece.length;
        socket.send(piece, { binary: true }, afterSend);
      }
      if (!inputPaused && socket.bufferedAmount > HIGH_WATER) {
        inputPaused = true;
        input.pause();
      }
    };
    const endLocally = () => {
      if (settled || localEnded) return;
      localEnded = true;
      // ws sends the close frame after every queued data frame.
      if (socket.readyState === WebSocket.OPEN) socket.close(1000);
      else finish(1006, "local");
    };
    const onEnd = () => endLocally();
    const onInputClose = () => endLocally();
    // EPIPE on stdout (ssh went away) or a reset TCP client: the local side is gone, which is a normal end.
    const onLocalError = () => endLocally();

    socket.on("message", onMessage);
    socket.on("close", onClose);
    socket.on("error", onSocketError);
    input.on("data", onData);
    input.on("end", onEnd);
    input.on("close", onInputClose);
    input.on("error", onLocalError);
    output.on("drain", onDrain);
    output.on("error", onLocalError);

    if (socket.readyState !== WebSocket.OPEN) {
      failWith(new TunnelError("the tunnel websocket is not open"));
      return;
    }
    socket.resume();
    input.resume();
  });
}
