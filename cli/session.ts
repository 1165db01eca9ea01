import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { CliError, type Io } from "./context.ts";

export const DEFAULT_API_URL = "http://127.0.0.1:8787";

/** What `access login` stores. The token is a bearer credential: the file is 0600 in a 0700 directory. */
export interface Session {
  apiUrl: string;
  token: string;
  user?: string;
  savedAt: string;
  /**
   * Local runtime only (from `POST /dev/login`): where the emulated EICE really listens, because the
   * endpoint DNS names in presigned tunnel URLs do not resolve. See cli/bridge.ts `tunnelAddress`.
   */
  eiceEndpoint?: string;
}

export interface Credentials {
  apiUrl: string;
  token: string | undefined;
  /** Where each value came from, for `whoami` and for hints. */
  source: { apiUrl: "env" | "session" | "default"; token: "env" | "session" | "none" };
  session: Session | undefined;
  /** `ACCESS_EICE_ENDPOINT`, else the stored session's (for the same API), else none: connect as signed. */
  eiceEndpoint: string | undefined;
}

export function sessionDir(env: Io["env"]): string {
  const base = env.XDG_CONFIG_HOME?.trim() || join(env.HOME?.trim() || homedir(), ".config");
  return join(base, "access-broker");
}

export function sessionPath(env: Io["env"]): string {
  return join(sessionDir(env), "session.json");
}

/** Normalises an API base URL (keeps a path prefix such as an API Gateway stage, drops trailing slashes). */
export function normalizeApiUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new CliError(`"${text}" is not a URL like ${DEFAULT_API_URL}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new CliError(`the API URL must be http:// or https://, not ${url.protocol}`);
  if (url.username || url.password) throw new CliError("the API URL must not carry credentials");
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

export function readSession(env: Io["env"]): Session | undefined {
  const path = sessionPath(env);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new CliError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code}`);
  }
  try {
    const data = JSON.parse(text) as Partial<Session>;
    if (typeof data.apiUrl === "string" && typeof data.token === "string" && data.token) {
      return {
        apiUrl: data.apiUrl,
        token: data.token,
        user: typeof data.user === "string" ? data.user : undefined,
        savedAt: typeof data.savedAt === "string" ? data.savedAt : "",
        eiceEndpoint: typeof data.eiceEndpoint === "string" ? data.eiceEndpoint : undefined,
      };
    }
  } catch {
    // fall through: a half-written or hand-edited file is treated like a corrupt one
  }
  throw new CliError(`the session file ${path} is corrupt`, { hint: "run: access login" });
}

/** Writes the session atomically: a 0600 temp file renamed over the old one, so no reader sees half a file. */
export function writeSession(env: Io["env"], session: Session): string {
  const dir = sessionDir(env);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode only applies to directories it creates; tighten one that already existed.
  chmodSync(dir, 0o700);
  const path = sessionPath(env);
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(session, null, 2)}\n`, { mode: 0o600, flag: "w" });
  chmodSync(temp, 0o600);
  renameSync(temp, path);
  return path;
}

export function deleteSession(env: Io["env"]): boolean {
  const path = sessionPath(env);
  try {
    rmSync(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

/**
 * `ACCESS_API_URL` / `ACCESS_TOKEN` win over the stored session. A stored token is only sent to the API it
 * was obtained from, so pointing `ACCESS_API_URL` elsewhere never leaks it to another server.
 */
export function resolveCredentials(env: Io["env"]): Credentials {
  const session = readSession(env);
  const envUrl = env.ACCESS_API_URL?.trim();
  const envToken = env.ACCESS_TOKEN?.trim();
  const apiUrl = envUrl ? normalizeApiUrl(envUrl) : (session?.apiUrl ?? DEFAULT_API_URL);
  const sessionToken = session && session.apiUrl === apiUrl ? session.token : undefined;
  const token = envToken || sessionToken;
  const sessionEice = session && session.apiUrl === apiUrl ? session.eiceEndpoint : undefined;
  return {
    apiUrl,
    token,
    source: {
      apiUrl: envUrl ? "env" : session ? "session" : "default",
      token: envToken ? "env" : sessionToken ? "session" : "none",
    },
    session,
    eiceEndpoint: env.ACCESS_EICE_ENDPOINT?.trim() || sessionEice,
  };
}

/** A websocket base URL (`ws://host:port`) for `eiceEndpoint`, or undefined when `text` is not one. */
export function normalizeEiceEndpoint(text: unknown): string | undefined {
  if (typeof text !== "string") return undefined;
  try {
    const url = new URL(text.trim());
    if ((url.protocol !== "ws:" && url.protocol !== "wss:") || url.username || url.password) return undefined;
    return `${url.protocol}//${url.host}`;
  } catch {
    return undefined;
  }
}

export interface TokenClaims {
  email?: string;
  sub?: string;
  name?: string;
  groups: string[];
  iss?: string;
  exp?: number;
  [claim: string]: unknown;
}

/** Reads a JWT's payload without verifying it: for display only, never for a decision. */
export function decodeToken(token: string): TokenClaims | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    if (!payload || typeof payload !== "object" || Array.isArray(payload)) return undefined;
    const claims = payload as Record<string, unknown>;
    const groups = Array.isArray(claims.groups)
      ? claims.groups.map(String)
      : typeof claims.groups === "string"
        ? claims.groups.split(/[\s,]+/).filter(Boolean)
        : [];
    return { ...claims, groups } as TokenClaims;
  } catch {
    return undefined;
  }
}

export function notLoggedIn(apiUrl: string, sessionUrl: string | undefined): CliError {
  if (sessionUrl && sessionUrl !== apiUrl) {
    return new CliError(`not logged in to ${apiUrl} (the stored session is for ${sessionUrl})`, {
      hint: `run: access login --api ${apiUrl}`,
    });
  }
  return new CliError("not logged in", { hint: "run: access login (or set ACCESS_TOKEN)" });
}
