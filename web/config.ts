/**
 * What the web app is told at build time (esbuild `define`): where the API is and how people sign in.
 * Locally the API is the same origin and the dev issuer signs tokens; in AWS, an OIDC provider does
 * (authorization code + PKCE), and the API lives on API Gateway's own domain.
 */
export type WebAuth =
  | { kind: "dev" }
  | {
      kind: "oidc";
      /** The provider's issuer URL (its discovery document is `<issuer>/.well-known/openid-configuration`). */
      issuer: string;
      /** The public client (no secret) registered for the web app; also an audience of the API's authorizer. */
      clientId: string;
      /** Scopes asked for; `openid email` at least, since the API reads the `email` claim. */
      scope: string;
    };

export interface WebConfig {
  /** Base URL of the API, without a trailing slash; empty for the same origin (the local runtime). */
  apiUrl: string;
  auth: WebAuth;
}
