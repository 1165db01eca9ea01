/**
 * Stand-ins for the pieces around the demo instance, for tests that run the real OpenSSH client and server:
 * an EICE websocket endpoint that forwards to a TCP port, an instance metadata endpoint serving pushed
 * keys, and a broker API answering the grant, key-push and tunnel routes.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { WebSocketServer } from "ws";
import type { Request } from "../../core/request/index.ts";

export const DNS_NAME = "eice-0demo00000000001.ec2-instance-connect-endpoint.us-east-1.amazonaws.com";
export const INSTANCE = "i-0a1b2c3d4e5f60718";
export const GRANT = "gr_01jxexample000000000000000";

/** Alice's active ssh grant on the demo instance, started a minute before `now`, 30 minutes left. */
export function activeGrant(now: number): Request.Grant {
  return {
    id: GRANT,
    requestId: GRANT.replace("gr_", "req_"),
    status: "active",
    requester: "alice@example.com",
    instanceId: INSTANCE,
    account: "111122223333",
    region: "us-east-1",
    method: "ssh",
    osUser: "ec2-user",
    ruleId: "dev-demo",
    breakGlass: false,
    startsAt: new Date(now - 60_000).toISOString(),
    endsAt: new Date(now + 1_800_000).toISOString(),
    approvers: ["bob@example.com"],
    pendingExtension: undefined,
  };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  return (server.address() as AddressInfo).port;
}

const close = (server: Server) => new Promise<void>((done) => server.close(() => done()));

export interface FakeEice {
  /** `ws://127.0.0.1:<port>`: what ACCESS_EICE_ENDPOINT names. */
  endpoint: string;
  /** Host headers and paths of every handshake, in order. */
  handshakes: { host: string | undefined; path: string | undefined }[];
  close(): Promise<void>;
}

/**
 * An EICE `/openTunnel` endpoint: refuses a handshake whose Host is not the endpoint's DNS name (the
 * signature covers it), then carries binary frames to and from one TCP connection to `upstream`.
 */
export async function startFakeEice(upstream: () => { host: string; port: number }): Promise<FakeEice> {
  const handshakes: FakeEice["handshakes"] = [];
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const server = createServer((_request, response) => {
    response.statusCode = 404;
    response.end();
  });
  server.on("upgrade", (request, socket, head) => {
    handshakes.push({ host: request.headers.host, path: request.url });
    if (request.headers.host !== DNS_NAME || !request.url?.startsWith("/openTunnel?")) {
      socket.end(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nsignature does not match",
      );
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      const tcp = connect(upstream());
      ws.on("message", (data, isBinary) => {
        if (!isBinary) return ws.close(1003, "binary only");
        if (!tcp.write(data as Buffer)) {
          ws.pause();
          tcp.once("drain", () => ws.resume());
        }
      });
      ws.on("close", () => tcp.end());
      tcp.on("data", (chunk) => {
        for (let offset = 0; offset < chunk.length; offset += 65_000)
          ws.send(chunk.subarray(offset, offset + 65_000), { binary: true });
      });
      tcp.on("end", () => ws.close(1000));
      tcp.on("error", () => ws.close(1011, "instance unreachable"));
    });
  });
  const port = await listen(server);
  return {
    endpoint: `ws://127.0.0.1:${port}`,
    handshakes,
    async close() {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      await close(server);
    },
  };
}

export interface FakeMetadata {
  url: string;
  /** Pushes a key the way SendSSHPublicKey does: it is served for `ttlSeconds` (60 by default). */
  push(instanceId: string, osUser: string, publicKey: string, ttlSeconds?: number): void;
  requests: string[];
  /** Answer every request this way instead (for failure tests). */
  mode: "normal" | "hang" | "garbage" | "500";
  close(): Promise<void>;
}

export async function startFakeMetadata(): Promise<FakeMetadata> {
  const keys: { instanceId: string; osUser: string; key: string; expires: number }[] = [];
  const requests: string[] = [];
  const fake: Partial<FakeMetadata> = { requests, mode: "normal" };
  const server = createServer((request, response) => {
    requests.push(request.url ?? "");
    if (fake.mode === "hang") return;
    if (fake.mode === "500") {
      response.statusCode = 500;
      return response.end("boom");
    }
    if (fake.mode === "garbage") return response.end("<html>this is not a key</html>\n\u0000\u0001");
    const match = /^\/metadata\/([^/]+)\/managed-ssh-keys\/active-keys\/([^/]+)\/(?:\?.*)?$/.exec(
      request.url ?? "",
    );
    const now = Date.now();
    const live = match
      ? keys.filter((k) => k.instanceId === match[1] && k.osUser === match[2] && k.expires > now)
      : [];
    if (live.length === 0) {
      response.statusCode = 404;
      return response.end();
    }
    response.end(
      live
        .map(
          (k) =>
            `#Timestamp=${Math.floor(k.expires / 1000)}\n#Instance=${k.instanceId}\n#Caller=test\n${k.key}\nc2lnbmF0dXJl\n`,
        )
        .join("\n"),
    );
  });
  const port = await listen(server);
  return Object.assign(fake, {
    url: `http://127.0.0.1:${port}`,
    push(instanceId: string, osUser: string, key: string, ttlSeconds = 60) {
      keys.push({ instanceId, osUser, key: key.trim(), expires: Date.now() + ttlSeconds * 1000 });
    },
    async close() {
      server.closeAllConnections();
      await close(server);
    },
  }) as FakeMetadata;
}

export interface FakeApi {
  url: string;
  calls: { method: string; path: string; body: any }[];
  grant: Request.Grant;
  route: "eice" | "direct";
  /** Answer `GET /grants` with no grant (requests then stay pending forever). */
  noGrants: boolean;
  close(): Promise<void>;
}

/** The broker routes `access ssh/proxy/tunnel` use, pushing keys into `metadata`. */
export async function startFakeApi(options: {
  metadata: FakeMetadata;
  direct: () => { host: string; port: number };
  route?: "eice" | "direct";
}): Promise<FakeApi> {
  const calls: FakeApi["calls"] = [];
  const now = Date.now();
  const grant = activeGrant(now);
  const fake = { calls, grant, route: options.route ?? "eice", noGrants: false } as FakeApi;
  const pendingRequest = (): Request.Info => ({
    id: grant.requestId,
    grantId: GRANT,
    status: "pending",
    version: 1,
    requester: grant.requester,
    instanceId: INSTANCE,
    account: grant.account,
    region: grant.region,
    target: "demo",
    method: "ssh",
    osUser: "ec2-user",
    durationSeconds: 1_800,
    reason: "e2e",
    ruleId: "dev-demo",
    breakGlass: false,
    approvalsRequired: 1,
    approvalsFrom: ["group:sre-leads"],
    approvals: [],
    createdAt: new Date(now).toISOString(),
    pendingUntil: new Date(now + 1_800_000).toISOString(),
    extendedSeconds: 0,
  });
  const send = (response: ServerResponse, status: number, body: unknown) => {
    response.writeHead(status, { "content-type": "application/json" });
    response.end(JSON.stringify(body));
  };
  const server = createServer(async (request: IncomingMessage, response) => {
    let text = "";
    for await (const chunk of request) text += chunk;
    const url = new URL(request.url ?? "/", "http://api");
    const body = text ? JSON.parse(text) : undefined;
    calls.push({ method: request.method ?? "", path: `${url.pathname}${url.search}`, body });
    if (request.headers.authorization !== "Bearer test-token")
      return send(response, 401, { error: { code: "auth.unauthenticated", message: "no token" } });
    if (request.method === "GET" && url.pathname === "/grants")
      return send(response, 200, { items: fake.noGrants ? [] : [fake.grant] });
    if (request.method === "POST" && url.pathname === "/requests")
      return send(response, 201, pendingRequest());
    if (request.method === "GET" && url.pathname === `/requests/${fake.grant.requestId}`)
      return send(response, 200, pendingRequest());
    if (request.method === "GET" && url.pathname === `/grants/${GRANT}`)
      return send(response, 200, fake.grant);
    if (request.method === "POST" && url.pathname === `/grants/${GRANT}/ssh-key`) {
      options.metadata.push(INSTANCE, "ec2-user", body.publicKey);
      const route =
        fake.route === "eice"
          ? { type: "eice", endpointId: "eice-0demo00000000001", privateIp: "10.0.1.10", port: 22 }
          : { type: "direct", ...options.direct() };
      return send(response, 200, {
        grantId: GRANT,
        instanceId: INSTANCE,
        osUser: "ec2-user",
        fingerprint: "SHA256:test",
        requestId: "req-1",
        pushedAt: new Date().toISOString(),
        keyExpiresAt: new Date(Date.now() + 60_000).toISOString(),
        route,
      });
    }
    if (request.method === "POST" && url.pathname === `/grants/${GRANT}/tunnel`) {
      return send(response, 200, {
        grantId: GRANT,
        // A % in the query, as real presigned URLs have (%2F in the credential scope).
        url: `wss://${DNS_NAME}/openTunnel?instanceConnectEndpointId=eice-0demo00000000001&remotePort=22&privateIpAddress=10.0.1.10&X-Amz-Credential=AKIA%2F20250601%2Fus-east-1%2Fec2-instance-connect%2Faws4_request&X-Amz-Signature=${calls.length}`,
        expiresAt: new Date(Date.now() + 60_000).toISOString(),
        endpointId: "eice-0demo00000000001",
        privateIp: "10.0.1.10",
        remotePort: 22,
        maxTunnelDuration: 1_800,
      });
    }
    send(response, 404, { error: { code: "not_found", message: "No such route" } });
  });
  const port = await listen(server);
  fake.url = `http://127.0.0.1:${port}`;
  fake.close = async () => {
    server.closeAllConnections();
    await close(server);
  };
  return fake;
}
