import { api } from "./api";
import { jwtIssuer } from "./secrets";

// The web app's OIDC client: a public client (no secret; authorization code + PKCE) registered with the same
// provider as OidcIssuer, with redirect URI `<web url>/auth/callback`. Its id must also be one of
// OidcAudience's values: the app sends the ID token, whose audience is this client, as its bearer token.
export const webClientId = new sst.Secret("WebOidcClientId");

// web/build.ts reads these at build time (esbuild `define`); nothing is fetched at run time to configure it.
export const web = new sst.aws.StaticSite("Web", {
  path: "web",
  build: { command: "node --import tsx build.ts dist", output: "dist" },
  environment: {
    WEB_API_URL: api.url,
    WEB_AUTH: "oidc",
    WEB_OIDC_ISSUER: jwtIssuer,
    WEB_OIDC_CLIENT_ID: webClientId.value,
    WEB_OIDC_SCOPE: "openid email profile",
  },
  // Unknown paths (/inbox, /requests/req_…) get index.html: the app routes in the browser. Hashed assets
  // are immutable and index.html is never cached (SST's default file options), so a deploy shows at once.
  errorPage: "index.html",
});
