import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CryptoKey, exportJWK, generateKeyPair, jwtVerify, SignJWT } from "jose";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../core/policy/yaml.ts";
import type { Deps } from "../../functions/api/routes.ts";
import type { DevIssuer } from "../../local/issuer.ts";
import { createDevServer, listen } from "../../local/server.ts";
import { buildWeb } from "../../web/build.ts";
import { launchChromium, screenshot } from "../helpers/browser.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";

// Sign-in as in AWS: the web app built for OIDC (authorization code + PKCE) against a provider running here
// over TLS, and the API accepting the provider's ID token as its bearer token, as API Gateway's JWT
// authorizer would with OidcAudience listing the web app's client id.

const CLIENT_ID = "access-broker-web";
const dir = mkdtempSync(join(tmpdir(), "access-broker-oidc-"));
let browser: Browser;
let provider: HttpsServer;
let app: Server;
let issuer = "";
let appUrl = "";
let privateKey: CryptoKey;
let publicKey: CryptoKey;
const seen: { authorize: URLSearchParams[]; token: URLSearchParams[] } = { authorize: [], token: [] };
const codes = new Map<string, { challenge: string; nonce: string; redirectUri: string }>();

const b64url = (buffer: Buffer) => buffer.toString("base64url");

/** A minimal OIDC provider: discovery, an authorize endpoint that signs alice in at once, a token endpoint. */
function startProvider(): Promise<void> {
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { stdio: "ignore" },
  );
  provider = createHttpsServer(
    { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) },
    async (request, response) => {
      const url = new URL(request.url ?? "/", issuer);
      const cors = { "access-control-allow-origin": "*", "access-control-allow-headers": "*" };
      if (request.method === "OPTIONS") return response.writeHead(204, cors).end();
      if (url.pathname === "/.well-known/openid-configuration") {
        response.writeHead(200, { "content-type": "application/json", ...cors });
        return response.end(
          JSON.stringify({
            issuer,
            authorization_endpoint: `${issuer}/authorize`,
            token_endpoint: `${issuer}/token`,
            jwks_uri: `${issuer}/jwks`,
            response_types_supported: ["code"],
            code_challenge_methods_supported: ["S256"],
            id_token_signing_alg_values_supported: ["ES256"],
            subject_types_supported: ["public"],
          }),
        );
      }
      if (url.pathname === "/jwks") {
        response.writeHead(200, { "content-type": "application/json", ...cors });
        return response.end(
          JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), alg: "ES256", kid: "k1" }] }),
        );
      }
      if (url.pathname === "/authorize") {
        seen.authorize.push(url.searchParams);
        const code = b64url(randomBytes(16));
        codes.set(code, {
          challenge: url.searchParams.get("code_challenge") ?? "",
          nonce: url.searchParams.get("nonce") ?? "",
          redirectUri: url.searchParams.get("redirect_uri") ?? "",
        });
        const back = new URL(url.searchParams.get("redirect_uri") ?? "");
        back.searchParams.set("code", code);
        back.searchParams.set("state", url.searchParams.get("state") ?? "");
        back.searchParams.set("iss", issuer);
        return response.writeHead(302, { location: back.href }).end();
      }
      if (url.pathname === "/token" && request.method === "POST") {
        let body = "";
        for await (const chunk of request) body += chunk;
        const form = new URLSearchParams(body);
        seen.token.push(form);
        const grant = codes.get(form.get("code") ?? "");
        codes.delete(form.get("code") ?? "");
        const verifier = form.get("code_verifier") ?? "";
        const ok =
          grant &&
          form.get("client_id") === CLIENT_ID &&
          form.get("redirect_uri") === grant.redirectUri &&
          b64url(createHash("sha256").update(verifier).digest()) === grant.challenge;
        if (!ok) {
          response.writeHead(400, { "content-type": "application/json", ...cors });
          return response.end(JSON.stringify({ error: "invalid_grant" }));
        }
        const idToken = await new SignJWT({ email: "alice@example.com", groups: ["dev"], nonce: grant.nonce })
          .setProtectedHeader({ alg: "ES256", kid: "k1" })
          .setIssuer(issuer)
          .setAudience(CLIENT_ID)
          .setSubject("alice-sub")
          .setIssuedAt()
          .setExpirationTime("1h")
          .sign(privateKey);
        response.writeHead(200, { "content-type": "application/json", "cache-control": "no-store", ...cors });
        return response.end(
          JSON.stringify({
            access_token: "opaque",
            token_type: "Bearer",
            expires_in: 3600,
            id_token: idToken,
          }),
        );
      }
      response.writeHead(404, cors).end();
    },
  );
  return new Promise((done) =>
    provider.listen(0, "127.0.0.1", () => {
      issuer = `https://127.0.0.1:${(provider.address() as AddressInfo).port}`;
      done();
    }),
  );
}

beforeAll(async () => {
  ({ privateKey, publicKey } = await generateKeyPair("ES256"));
  await startProvider();
  const web = await buildWeb({
    outDir: join(dir, "web"),
    config: {
      apiUrl: "",
      auth: { kind: "oidc", issuer, clientId: CLIENT_ID, scope: "openid email profile" },
    },
  });
  // The API's authorizer, as API Gateway's JWT authorizer checks: signature, issuer, audience, expiry.
  const authorizer: DevIssuer = {
    issuer,
    mint: () => Promise.reject(new Error("this provider mints its own tokens")),
    verify: async (token) => (await jwtVerify(token, publicKey, { issuer, audience: CLIENT_ID })).payload,
    jwks: () => ({ keys: [] }),
  };
  // Sign-in reads only the policy (GET /me, GET /policy); "my access" lists alice's requests: none here.
  const deps = {
    config: parseConfig(DEMO_CONFIG_TEXT),
    requests: { listByRequester: async () => ({ items: [] }) },
  } as unknown as Deps;
  app = createDevServer({
    deps,
    issuer: authorizer,
    port: 0,
    webDir: web.outDir,
    webConnect: [issuer],
  }).server;
  appUrl = `http://127.0.0.1:${await listen(app, 0)}`;
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await new Promise((done) => app?.close(done));
  await new Promise((done) => provider?.close(done));
  rmSync(dir, { recursive: true, force: true });
});

describe("web app sign-in with OIDC", () => {
  it("signs alice in with the authorization code flow and PKCE, and the API accepts her ID token", async () => {
    // The provider's certificate is self-signed for this test; the app itself is plain http on loopback.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text());
    });
    await page.goto(`${appUrl}/access`);
    await page.waitForURL(/\/signin/);
    await page.getByRole("button", { name: /Sign in with 127\.0\.0\.1/ }).click();
    await page.getByTestId("signed-in-as").getByText("alice@example.com").waitFor({ timeout: 15_000 });
    await page.waitForURL(`${appUrl}/access`);
    await page.getByRole("heading", { name: "My access" }).waitFor();
    await page.getByText("No access right now.").waitFor();
    await screenshot(page, "oidc-signed-in");

    const [authorize] = seen.authorize;
    expect(authorize?.get("client_id")).toBe(CLIENT_ID);
    expect(authorize?.get("response_type")).toBe("code");
    expect(authorize?.get("code_challenge_method")).toBe("S256");
    expect(authorize?.get("scope")).toBe("openid email profile");
    expect(authorize?.get("redirect_uri")).toBe(`${appUrl}/auth/callback`);
    expect(authorize?.get("state")).toBeTruthy();
    expect(authorize?.get("nonce")).toBeTruthy();
    expect(seen.token).toHaveLength(1);
    expect(seen.token[0]?.get("grant_type")).toBe("authorization_code");
    expect(errors).toEqual([]);
    await context.close();
  });

  it("refuses a callback whose state does not match the one it sent", async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(`${appUrl}/signin`);
    await page.evaluate(() =>
      (globalThis as any).sessionStorage.setItem(
        "access-broker.oidc",
        JSON.stringify({ verifier: "v".repeat(43), state: "expected", nonce: "n", returnTo: "/" }),
      ),
    );
    await page.goto(`${appUrl}/auth/callback?code=stolen&state=forged&iss=${encodeURIComponent(issuer)}`);
    await page.getByRole("alert").waitFor();
    expect(await page.getByRole("alert").textContent()).toMatch(/state/);
    expect(seen.token).toHaveLength(1);
    expect(await page.getByTestId("signed-in-as").count()).toBe(0);
    await context.close();
  });
});
