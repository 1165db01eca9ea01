import { existsSync, readFileSync, statSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { extname, join, resolve, sep } from "node:path";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
  ".json": "application/json",
};

/** Paths a person may open in a browser that are API documents, never the app. */
const API_DOCUMENTS = new Set(["/health", "/openapi.json"]);

/**
 * The app loads only what it ships and talks only to its own origin (the local API), plus `connect`: the
 * origins of an OIDC provider when the build signs in with one.
 */
function csp(connect: readonly string[]): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    ["connect-src 'self'", ...connect].join(" "),
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/**
 * Whether a request is a browser opening a page of the app rather than a call of the API: a GET whose
 * `Accept` asks for HTML and that carries no bearer token. Browsers send `Accept: text/html,…` on every
 * navigation; the app's own fetches send `application/json` with a token, so `/requests/req_…` is the
 * request's page in the address bar and the request's JSON to the app, at one URL.
 */
export function isNavigation(method: string, path: string, headers: Record<string, string>): boolean {
  if (method !== "GET" && method !== "HEAD") return false;
  if (headers.authorization || API_DOCUMENTS.has(path)) return false;
  if (path.startsWith("/dev/") || path.startsWith("/slack/") || path.startsWith("/assets/")) return false;
  return /(^|,)\s*text\/html\b/i.test(headers.accept ?? "");
}

/**
 * Serves the built web app (web/build.ts output in `dir`): hashed files under `/assets/` cached for a
 * year (their names change with their content), and `index.html` for page navigations, never cached, so
 * a rebuild is picked up on the next load. Returns false when the request is not the app's.
 */
export function serveWeb(
  dir: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  response: ServerResponse,
  connect: readonly string[] = [],
): boolean {
  if ((method === "GET" || method === "HEAD") && path.startsWith("/assets/")) {
    const root = resolve(dir, "assets");
    const file = resolve(root, `.${decodeURIComponent(path.slice("/assets".length))}`);
    if (!file.startsWith(root + sep) || !existsSync(file) || !statSync(file).isFile()) {
      response.writeHead(404, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      response.end(method === "HEAD" ? undefined : "Not found");
      return true;
    }
    const body = readFileSync(file);
    response.writeHead(200, {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream",
      "content-length": String(body.length),
      "cache-control": "public, max-age=31536000, immutable",
      "x-content-type-options": "nosniff",
    });
    response.end(method === "HEAD" ? undefined : body);
    return true;
  }
  if (!isNavigation(method, path, headers)) return false;
  const body = readFileSync(join(dir, "index.html"));
  response.writeHead(200, {
    "content-type": TYPES[".html"] as string,
    "content-length": String(body.length),
    "cache-control": "no-cache",
    "content-security-policy": csp(connect),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  });
  response.end(method === "HEAD" ? undefined : body);
  return true;
}
