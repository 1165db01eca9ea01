import { mkdtempSync, readFileSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKeyPair, importJWK, type JWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDevIssuer, DEV_AUDIENCE, type DevIssuer } from "../../local/issuer.ts";
import { createDevServer, listen } from "../../local/server.ts";
import { createTestBroker, requestBody, snapshot, type TestBroker } from "../helpers/broker.ts";

let broker: TestBroker;
let issuer: DevIssuer;
let server: Server;
let base: string;
let keyFile: string;

beforeAll(async () => {
  broker = await createTestBroker();
  keyFile = join(mkdtempSync(join(tmpdir(), "issuer-")), "key.jwk");
  issuer = await createDevIssuer("http://127.0.0.1/dev", keyFile);
  server = createDevServer({ deps: broker.deps, issuer, port: 0 }).server;
  base = `http://127.0.0.1:${await listen(server, 0)}`;
});

afterAll(() => new Promise<void>((done) => server.close(() => done())));

async function login(user: string): Promise<string> {
  const response = await fetch(`${base}/dev/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { token: string }).token;
}

async function post(token: string | undefined, body: unknown) {
  const response = await fetch(`${base}/requests`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as any };
}

describe("the dev server plays API Gateway's JWT authorizer", () => {
  it("serves health and the OpenAPI document without a token", async () => {
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const document = (await (await fetch(`${base}/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
    };
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(["/requests", "/requests/{id}/approve", "/grants/{id}/extend", "/audit/verify"]),
    );
  });

  it("accepts a dev-issued token and fills the claims the handlers read", async () => {
    const token = await login("alice@example.com");
    const created = await post(token, requestBody());
    expect(created.status).toBe(201);
    expect(created.body.requester).toBe("alice@example.com");
  });

  it("refuses logins for users outside the directory", async () => {
    const response = await fetch(`${base}/dev/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user: "mallory@example.com" }),
    });
    expect(response.status).toBe(404);
  });

  const privateJwk = () => JSON.parse(readFileSync(keyFile, "utf8")) as JWK;
  const claims = { email: "alice@example.com", groups: ["dev"] };

  it.each<[string, () => Promise<string | undefined>]>([
    ["no token", async () => undefined],
    ["a garbage token", async () => "not.a.jwt"],
    [
      "an expired token",
      async () =>
        new SignJWT(claims)
          .setProtectedHeader({ alg: "ES256", kid: privateJwk().kid })
          .setIssuer(issuer.issuer)
          .setAudience(DEV_AUDIENCE)
          .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
          .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
          .sign(await importJWK(privateJwk(), "ES256")),
    ],
    [
      "a token signed by another key",
      async () =>
        new SignJWT(claims)
          .setProtectedHeader({ alg: "ES256", kid: privateJwk().kid })
          .setIssuer(issuer.issuer)
          .setAudience(DEV_AUDIENCE)
          .setExpirationTime("1h")
          .sign((await generateKeyPair("ES256")).privateKey),
    ],
    [
      "a token for another audience",
      async () =>
        new SignJWT(claims)
          .setProtectedHeader({ alg: "ES256" })
          .setIssuer(issuer.issuer)
          .setAudience("someone-else")
          .setExpirationTime("1h")
          .sign(await importJWK(privateJwk(), "ES256")),
    ],
    [
      "an unsigned (alg none) token",
      async () => {
        const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
        return `${encode({ alg: "none" })}.${encode({ ...claims, iss: issuer.issuer, aud: DEV_AUDIENCE })}.`;
      },
    ],
    [
      "a token whose payload was edited",
      async () => {
        const [header, , signature] = (await login("alice@example.com")).split(".");
        const forged = Buffer.from(
          JSON.stringify({ ...claims, email: "bob@example.com", groups: ["sre-leads"] }),
        );
        return `${header}.${forged.toString("base64url")}.${signature}`;
      },
    ],
  ])("answers 401 and writes nothing for %s", async (_name, makeToken) => {
    const before = await snapshot(broker);
    const response = await post(await makeToken(), requestBody());
    expect(response.status).toBe(401);
    expect(response.body.error.code).toBe("auth.unauthorized");
    expect(await snapshot(broker)).toEqual(before);
  });
});
