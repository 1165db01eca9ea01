import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type WebSocket, WebSocketServer } from "ws";
import { bridge, CHUNK_BYTES, openTunnel, TunnelError, tunnelAddress } from "../../cli/bridge.ts";
import { listenTunnel } from "../../cli/tunnel.ts";

const DNS = "eice-0123.ec2-instance-connect-endpoint.us-east-1.amazonaws.com";
const SIGNED = `wss://${DNS}/openTunnel?instanceConnectEndpointId=eice-0123&remotePort=22&privateIpAddress=10.0.0.1&X-Amz-Credential=AKIA%2F20250601%2Fus-east-1%2Fec2-instance-connect%2Faws4_request&X-Amz-Signature=secret`;

/** What each server-side connection saw. */
interface Seen {
  path: string;
  host: string | undefined;
  frames: number[];
  received: number;
}

let server: Server;
let wss: WebSocketServer;
let endpoint: string;
const seen: Seen[] = [];
/** Lets a test take over one server-side socket by path. */
const behaviours = new Map<string, (ws: WebSocket, record: Seen) => void>();

function echo(ws: WebSocket, record: Seen) {
  ws.on("message", (data, isBinary) => {
    const chunk = data as Buffer;
    record.frames.push(chunk.length);
    record.received += chunk.length;
    if (isBinary) ws.send(chunk, { binary: true });
  });
  ws.on("close", () => {});
}

beforeAll(async () => {
  wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  server = createServer((_request, response) => {
    response.statusCode = 404;
    response.end();
  });
  server.on("upgrade", (request, socket, head) => {
    const url = new URL(request.url ?? "/", "ws://x");
    const mode = url.searchParams.get("mode") ?? "echo";
    if (mode === "refuse") {
      socket.end(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nAccessDeniedException: not authorized to perform OpenTunnel",
      );
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      const record: Seen = { path: request.url ?? "", host: request.headers.host, frames: [], received: 0 };
      seen.push(record);
      (behaviours.get(mode) ?? echo)(ws, record);
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  endpoint = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  // Upgraded sockets no longer belong to the HTTP server: end them through the websocket server.
  for (const client of wss.clients) client.terminate();
  wss.close();
  server.closeAllConnections();
  await new Promise<void>((done) => server.close(() => done()));
});

/** A presigned-looking URL whose query selects the server behaviour. */
const url = (mode = "echo", extra = "") => `${SIGNED.replace("?", `?mode=${mode}&`)}${extra}`;
const open = (mode = "echo") => openTunnel(url(mode), { eiceEndpoint: endpoint });

function collector() {
  const chunks: Buffer[] = [];
  const output = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(chunk as Buffer);
      done();
    },
  });
  return { output, data: () => Buffer.concat(chunks) };
}

const sha = (data: Buffer) => createHash("sha256").update(data).digest("hex");

describe("tunnelAddress", () => {
  it("connects to the override with the path and query unchanged and Host set to the signed DNS name", () => {
    expect(tunnelAddress(SIGNED, "ws://127.0.0.1:4566")).toEqual({
      address: `ws://127.0.0.1:4566${SIGNED.slice(`wss://${DNS}`.length)}`,
      headers: { host: DNS },
      host: DNS,
    });
    // Percent-encoding in the signed query is kept byte for byte: the signature covers it.
    expect(tunnelAddress(SIGNED, "ws://127.0.0.1:4566/").address).toContain("AKIA%2F20250601%2F");
  });

  it("connects to the presigned URL itself (TLS) without an override", () => {
    expect(tunnelAddress(SIGNED)).toEqual({ address: SIGNED, headers: {}, host: DNS });
  });

  it("rejects what is not a websocket URL", () => {
    expect(() => tunnelAddress("https://example.com/openTunnel")).toThrow(TunnelError);
    expect(() => tunnelAddress(SIGNED, "http://127.0.0.1:4566")).toThrow(/ws:\/\/ or wss:\/\//);
  });
});

describe("openTunnel", () => {
  it("sends the signed Host header to the override address", async () => {
    const socket = await open();
    socket.close(1000);
    expect(seen.at(-1)?.host).toBe(DNS);
    expect(seen.at(-1)?.path).toMatch(/^\/openTunnel\?mode=echo&instanceConnectEndpointId=eice-0123&/);
  });

  it("reports a refused handshake with its status and body, never the presigned URL", async () => {
    const error = await open("refuse").catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TunnelError);
    expect((error as TunnelError).status).toBe(403);
    expect((error as TunnelError).message).toBe(
      `${DNS} refused the tunnel: HTTP 403 AccessDeniedException: not authorized to perform OpenTunnel`,
    );
    expect((error as TunnelError).message).not.toContain("X-Amz");
  });

  it("reports an unreachable endpoint", async () => {
    const error = await openTunnel(url(), { eiceEndpoint: "ws://127.0.0.1:1" }).catch(
      (caught: unknown) => caught,
    );
    expect((error as TunnelError).message).toMatch(
      new RegExp(`^cannot open the tunnel through ${DNS}: .*ECONNREFUSED`),
    );
  });
});

describe("bridge", () => {
  it("carries 1 MB of random bytes both ways intact, in binary frames of at most 65,000 bytes", async () => {
    const data = randomBytes(1024 * 1024);
    const socket = await open();
    const record = seen.at(-1) as Seen;
    const { output, data: received } = collector();
    const input = new PassThrough();
    const done = bridge({ socket, input, output, endOutput: false });
    // One big write: the bridge must split it.
    input.write(data);
    while (record.received < data.length) await new Promise((resolve) => setTimeout(resolve, 10));
    // Wait until the echo has come back, then end locally.
    while (received().length < data.length) await new Promise((resolve) => setTimeout(resolve, 10));
    input.end();
    const result = await done;
    expect(sha(received())).toBe(sha(data));
    expect(Math.max(...record.frames)).toBe(CHUNK_BYTES);
    expect(record.frames.reduce((a, b) => a + b, 0)).toBe(data.length);
    expect(result).toEqual({
      bytesSent: data.length,
      bytesReceived: data.length,
      closeCode: 1000,
      endedBy: "local",
    });
  });

  it("ends normally when the server closes with 1000, ending the local output", async () => {
    behaviours.set("bye", (ws) => {
      ws.send(Buffer.from("last words"), { binary: true });
      ws.close(1000, "maxTunnelDuration of 1 seconds reached");
    });
    const socket = await open("bye");
    const { output, data } = collector();
    const ended = new Promise((resolve) => output.once("finish", resolve));
    const result = await bridge({ socket, input: new PassThrough(), output, endOutput: true });
    await ended;
    expect(data().toString()).toBe("last words");
    expect(result).toMatchObject({ closeCode: 1000, endedBy: "remote", bytesReceived: 10 });
  });

  it("treats a TEXT frame as a protocol error and closes with 1003", async () => {
    let serverSawClose: number | undefined;
    behaviours.set("text", (ws) => {
      ws.on("close", (code) => {
        serverSawClose = code;
      });
      ws.send("hello", { binary: false });
    });
    const socket = await open("text");
    const error = await bridge({ socket, input: new PassThrough(), output: collector().output }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(TunnelError);
    expect((error as Error).message).toMatch(/TEXT frame/);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(serverSawClose).toBe(1003);
  });

  it("fails with the server's reason and code for any close code but 1000", async () => {
    behaviours.set("revoked", (ws) => ws.close(1008, "grant revoked"));
    const socket = await open("revoked");
    const error = (await bridge({ socket, input: new PassThrough(), output: collector().output }).catch(
      (caught: unknown) => caught,
    )) as TunnelError;
    expect(error.message).toBe("the tunnel was closed: grant revoked (websocket close code 1008)");
    expect(error.closeCode).toBe(1008);
  });

  it("fails when the connection drops without a close frame", async () => {
    behaviours.set("drop", (ws) => setTimeout(() => ws.terminate(), 10));
    const socket = await open("drop");
    const error = (await bridge({ socket, input: new PassThrough(), output: collector().output }).catch(
      (caught: unknown) => caught,
    )) as TunnelError;
    expect(error.closeCode).toBe(1006);
    expect(error.message).toMatch(/connection lost without a close frame/);
  });

  it("stops reading the websocket while the local writer is slow, and loses nothing", async () => {
    const total = 8 * 1024 * 1024;
    const payload = randomBytes(total);
    let serverBuffered = 0;
    behaviours.set("flood", (ws) => {
      for (let offset = 0; offset < total; offset += CHUNK_BYTES)
        ws.send(payload.subarray(offset, offset + CHUNK_BYTES), { binary: true });
      const timer = setInterval(() => {
        serverBuffered = Math.max(serverBuffered, ws.bufferedAmount);
      }, 5);
      ws.send(Buffer.alloc(0), { binary: true }, () => {
        clearInterval(timer);
        ws.close(1000);
      });
    });
    const socket = await open("flood");
    const chunks: Buffer[] = [];
    let maxQueued = 0;
    const output = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk, _encoding, done) {
        chunks.push(chunk as Buffer);
        // A slow consumer: 2 ms per write.
        setTimeout(done, 2);
      },
    });
    const watch = setInterval(() => {
      maxQueued = Math.max(maxQueued, output.writableLength);
    }, 1);
    const result = await bridge({ socket, input: new PassThrough(), output, endOutput: true });
    clearInterval(watch);
    expect(result.bytesReceived).toBe(total);
    expect(sha(Buffer.concat(chunks))).toBe(sha(payload));
    // Without backpressure all 8 MB would queue in the writer at once.
    expect(maxQueued).toBeLessThan(2 * 1024 * 1024);
  });

  it("stops reading the local input while the websocket cannot keep up", async () => {
    let resumeServer: () => void = () => {};
    behaviours.set("stall", (ws, record) => {
      // The server reads nothing for a while, so TCP and the client's send queue fill up.
      const raw = (ws as unknown as { _socket: Socket })._socket;
      raw.pause();
      resumeServer = () => raw.resume();
      ws.on("message", (data) => {
        record.received += (data as Buffer).length;
      });
    });
    const socket = await open("stall");
    const record = seen.at(-1) as Seen;
    const total = 32 * 1024 * 1024;
    let produced = 0;
    const input = new Readable({
      read() {
        if (produced >= total) return void this.push(null);
        const size = Math.min(1024 * 1024, total - produced);
        produced += size;
        this.push(Buffer.alloc(size, 7));
      },
    });
    const done = bridge({ socket, input, output: collector().output, endOutput: false });
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Only what fits in the socket buffers plus the bridge's high-water mark has been pulled.
    expect(produced).toBeLessThan(16 * 1024 * 1024);
    resumeServer();
    await done;
    expect(produced).toBe(total);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(record.received).toBe(total);
  });

  it("ends with close 1000 when the local side goes away (stdout EPIPE, a reset client)", async () => {
    let serverSawClose: number | undefined;
    behaviours.set("watch", (ws) => {
      ws.on("close", (code) => {
        serverSawClose = code;
      });
    });
    const socket = await open("watch");
    const input = new PassThrough();
    const done = bridge({ socket, input, output: collector().output, endOutput: false });
    input.destroy(new Error("read ECONNRESET"));
    await expect(done).resolves.toMatchObject({ endedBy: "local" });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(serverSawClose).toBe(1000);
  });
});

function tcpPort(listener: { port: number | undefined }): number {
  if (listener.port === undefined) throw new Error("expected a TCP listener");
  return listener.port;
}

describe("listenTunnel", () => {
  it("gives every TCP connection its own websocket and presigned URL, reusing a fresh spare once", async () => {
    let presigned = 0;
    const logs: string[] = [];
    const before = seen.length;
    const listener = await listenTunnel({
      localPort: 0,
      maxConnections: 2,
      authorize: async () => ({
        url: url("echo", `&n=${++presigned}`),
        expiresAt: new Date(Date.now() + 60_000).toISOString(),
      }),
      spare: { url: url("echo", "&n=spare"), expiresAt: new Date(Date.now() + 60_000).toISOString() },
      eiceEndpoint: endpoint,
      log: (line) => logs.push(line),
    });
    const roundTrip = (text: string) =>
      new Promise<{ socket: Socket; answer: string }>((done, fail) => {
        const socket = connect(tcpPort(listener), "127.0.0.1", () => socket.write(text));
        socket.once("data", (data) => done({ socket, answer: data.toString() }));
        socket.once("error", fail);
      });
    const first = await roundTrip("one");
    const second = await roundTrip("two");
    expect([first.answer, second.answer]).toEqual(["one", "two"]);
    expect(listener.connections()).toBe(2);
    expect(seen.slice(before).map((record) => new URL(record.path, "ws://x").searchParams.get("n"))).toEqual([
      "spare",
      "1",
    ]);

    // A third connection is over --max-connections: refused without a websocket.
    const third = connect(tcpPort(listener), "127.0.0.1");
    await new Promise((resolve) => third.once("close", resolve));
    expect(logs.join("\n")).toMatch(/refused connection #3 .*2 connections are open/);
    expect(seen.length - before).toBe(2);

    // A client that hangs up ends its tunnel with 1000; the listener stays up.
    first.socket.end();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(logs.join("\n")).toMatch(/connection #1 closed by the client \(sent 3 bytes, received 3\)/);
    expect(listener.connections()).toBe(1);

    await listener.close();
    await new Promise((resolve) => second.socket.once("close", resolve));
  });

  it("closes the client's connection and logs why when the tunnel cannot be opened", async () => {
    const logs: string[] = [];
    const listener = await listenTunnel({
      localPort: 0,
      authorize: async () => ({ url: url("refuse"), expiresAt: new Date().toISOString() }),
      eiceEndpoint: endpoint,
      log: (line) => logs.push(line),
    });
    const client = connect(tcpPort(listener), "127.0.0.1");
    await new Promise((resolve) => client.once("close", resolve));
    expect(logs.join("\n")).toMatch(
      /connection #1 from 127\.0\.0\.1:\d+ failed: .* refused the tunnel: HTTP 403/,
    );
    await listener.close();
  });

  it("listens on a Unix socket for access ssh, and relay.js joins ssh's stdio to it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "relay-test-"));
    const path = join(dir, "tunnel.sock");
    const logs: { line: string; level: string }[] = [];
    const before = seen.length;
    const listener = await listenTunnel({
      path,
      maxConnections: 1,
      authorize: async () => ({
        url: url("echo", "&n=fresh"),
        expiresAt: new Date(Date.now() + 60_000).toISOString(),
      }),
      spare: { url: url("echo", "&n=spare"), expiresAt: new Date(Date.now() + 60_000).toISOString() },
      eiceEndpoint: endpoint,
      log: (line, level) => logs.push({ line, level }),
    });
    try {
      expect(listener.port).toBeUndefined();
      expect(statSync(path).isSocket()).toBe(true);
      // What ssh does: run the relay with our socket and talk through its stdin/stdout.
      const relay = spawn(process.execPath, [
        fileURLToPath(new URL("../../cli/relay.js", import.meta.url)),
        path,
      ]);
      const payload = randomBytes(300_000);
      const answer: Buffer[] = [];
      relay.stdout.on("data", (chunk: Buffer) => {
        answer.push(chunk);
        if (Buffer.concat(answer).length === payload.length) relay.stdin.end();
      });
      relay.stdin.write(payload);
      const code = await new Promise((done) => relay.once("exit", done));
      expect(code).toBe(0);
      expect(Buffer.concat(answer).equals(payload)).toBe(true);
      // The presigned spare was used: no second presign for ssh's one connection.
      expect(
        seen.slice(before).map((record) => new URL(record.path, "ws://x").searchParams.get("n")),
      ).toEqual(["spare"]);
      expect(logs.filter((entry) => entry.level === "error")).toEqual([]);
    } finally {
      await listener.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("relay.js exits non-zero with a message when nothing listens on the socket", async () => {
    const relay = spawn(
      process.execPath,
      [
        fileURLToPath(new URL("../../cli/relay.js", import.meta.url)),
        join(tmpdir(), "no-such-dir", "s.sock"),
      ],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    let stderr = "";
    relay.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    const code = await new Promise((done) => relay.once("exit", done));
    expect(code).toBe(255);
    expect(stderr).toMatch(/access: the tunnel relay lost its socket: .*ENOENT/);
  });
});
