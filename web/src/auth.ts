import type { WebAuth } from "../config.ts";
import { session } from "./session.ts";

export interface DevUser {
  email: string;
  name?: string;
  groups: string[];
}

/** Local runtime only: the demo directory for the user picker (`GET /dev/users`). */
export async function devUsers(): Promise<DevUser[]> {
  const response = await fetch(`${__WEB_CONFIG__.apiUrl}/dev/users`, {
    headers: { accept: "application/json" },
  });
  if (!response.ok) throw new Error(`The dev issuer answered ${response.status}`);
  return ((await response.json()) as { users: DevUser[] }).users;
}

/** Local runtime only: a token from the dev issuer (`POST /dev/login`), verified by the API like any. */
export async function devSignIn(email: string) {
  const response = await fetch(`${__WEB_CONFIG__.apiUrl}/dev/login`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({ user: email }),
  });
  if (!response.ok) throw new Error(`Sign-in failed (${response.status})`);
  return session.set(((await response.json()) as { token: string }).token);
}

type Oidc = Extract<WebAuth, { kind: "oidc" }>;
const PENDING = "access-broker.oidc";
export const CALLBACK_PATH = "/auth/callback";
const redirectUri = () => `${location.origin}${CALLBACK_PATH}`;

// oauth4webapi (authorization code + PKCE, state and nonce checks, ID token validation) is loaded only
// when someone signs in with OIDC: the local build and signed-in page loads never fetch it.
async function discover(config: Oidc) {
  const oauth = await import("oauth4webapi");
  const issuer = new URL(config.issuer);
  const server = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer));
  return { oauth, server, client: { client_id: config.clientId } };
}

/** Sends the browser to the provider's sign-in page (authorization code flow with PKCE S256). */
export async function oidcSignIn(config: Oidc, returnTo: string) {
  const { oauth, server } = await discover(config);
  if (!server.authorization_endpoint) throw new Error("The OIDC provider has no authorization endpoint");
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, nonce, returnTo }));
  const target = new URL(server.authorization_endpoint);
  target.search = new URLSearchParams({
    client_id: config.clientId,
    redirect_uri: redirectUri(),
    response_type: "code",
    scope: config.scope,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
  }).toString();
  location.assign(target.href);
}

/**
 * Finishes the flow on the callback page: checks state, exchanges the code with the verifier, validates
 * the ID token (issuer, audience, nonce, expiry). The ID token is the bearer token: it carries the `email`
 * (and `groups`) claims the API reads, with this client as its audience, which the API's JWT authorizer
 * lists. Returns where to go next.
 */
export async function oidcCallback(config: Oidc): Promise<string> {
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? "null") as {
    verifier: string;
    state: string;
    nonce: string;
    returnTo: string;
  } | null;
  sessionStorage.removeItem(PENDING);
  if (!pending) throw new Error("No sign-in in progress in this tab; start again");
  const { oauth, server, client } = await discover(config);
  const params = oauth.validateAuthResponse(server, client, new URL(location.href), pending.state);
  const response = await oauth.authorizationCodeGrantRequest(
    server,
    client,
    oauth.None(),
    params,
    redirectUri(),
    pending.verifier,
  );
  const result = await oauth.processAuthorizationCodeResponse(server, client, response, {
    expectedNonce: pending.nonce,
    requireIdToken: true,
  });
  if (!result.id_token) throw new Error("The OIDC provider returned no ID token");
  session.set(result.id_token);
  return pending.returnTo.startsWith("/") ? pending.returnTo : "/";
}
