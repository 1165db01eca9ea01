/** The commands that talk to the API, plus login/logout/whoami. Loaded only when one of them runs. */
import { randomUUID } from "node:crypto";
import type { Audit } from "../core/audit/index.ts";
import type { Request } from "../core/request/index.ts";
import { parseDuration } from "../core/util/duration-text.ts";
import { ApiError, createClient, segment } from "./client.ts";
import { CliError, type Ctx, EXIT } from "./context.ts";
import * as Format from "./format.ts";
import {
  DEFAULT_API_URL,
  decodeToken,
  deleteSession,
  normalizeApiUrl,
  normalizeEiceEndpoint,
  notLoggedIn,
  readSession,
  resolveCredentials,
  sessionPath,
  writeSession,
} from "./session.ts";

type Page<T> = { items: T[]; nextCursor?: string };

export function duration(text: string, flag = "--for"): number {
  const seconds = parseDuration(text);
  if (seconds === undefined)
    throw new CliError(`${flag} "${text}" is not a duration like 90s, 30m, 1h or 1h30m`);
  return seconds;
}

/** An ISO time, or a duration meaning "that long ago" (`--from 24h`); sent as UTC ISO, as the API requires. */
export function instant(text: string, flag: string, now: Date, past = true): string {
  const seconds = parseDuration(text);
  if (seconds !== undefined)
    return new Date(now.getTime() + (past ? -seconds : seconds) * 1000).toISOString();
  const time = Date.parse(text);
  if (Number.isNaN(time))
    throw new CliError(`${flag} "${text}" is not an ISO time like 2025-06-01T12:00:00Z`);
  return new Date(time).toISOString();
}

function emitPage<T>(ctx: Ctx, page: Page<T>, render: (items: T[]) => string, noun: string): void {
  ctx.emit(page, () => render(page.items));
  if (!ctx.json && page.nextCursor) ctx.io.stderr(`more ${noun}: repeat with --cursor ${page.nextCursor}\n`);
}

// ---- session ----

export interface LoginOptions {
  user?: string;
  api?: string;
  token?: string;
}

function isLoopback(apiUrl: string): boolean {
  const host = new URL(apiUrl).hostname;
  return host === "localhost" || host === "[::1]" || /^127\./.test(host);
}

export async function login(ctx: Ctx, options: LoginOptions): Promise<number> {
  const { env } = ctx.io;
  let previous: string | undefined;
  try {
    previous = readSession(env)?.apiUrl;
  } catch {
    // a corrupt session is exactly what logging in again fixes
  }
  const apiUrl = normalizeApiUrl(options.api ?? (env.ACCESS_API_URL?.trim() || previous || DEFAULT_API_URL));
  let token: string;
  let eiceEndpoint: string | undefined;
  if (options.token !== undefined) {
    token = (options.token === "-" ? await ctx.io.stdin() : options.token).trim();
    if (!decodeToken(token)) throw new CliError("the token is not a JWT (header.payload.signature)");
  } else {
    if (!options.user) {
      throw new CliError(
        "who are you? pass --user <email> (local dev issuer) or --token <jwt> (your identity provider)",
      );
    }
    const client = createClient({ apiUrl, fetch: ctx.io.fetch });
    try {
      const answer = await client.post<{ token: string; eiceEndpoint?: unknown }>("/dev/login", {
        user: options.user,
      });
      token = answer.token;
      eiceEndpoint = normalizeEiceEndpoint(answer.eiceEndpoint);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404 && error.code !== "dev.unknown_user") {
        throw new CliError(`${apiUrl} has no dev issuer (POST /dev/login)`, {
          hint: "against a deployed API, use: access login --token <jwt from your identity provider>",
        });
      }
      throw error;
    }
    if (typeof token !== "string" || !decodeToken(token)) throw new CliError("the API sent no usable token");
  }
  const claims = decodeToken(token);
  const user = claims?.email ?? claims?.sub ?? options.user;
  const file = writeSession(env, { apiUrl, token, user, savedAt: ctx.now.toISOString(), eiceEndpoint });
  const expiresAt = claims?.exp ? new Date(claims.exp * 1000).toISOString() : undefined;
  ctx.emit({ apiUrl, user, expiresAt, sessionFile: file, eiceEndpoint }, () =>
    Format.fields([
      ["logged in as", user ? Format.clean(user) : "(token has no email claim)"],
      ["api", apiUrl],
      ["expires", expiresAt ? Format.when(expiresAt, ctx.now) : "never (no exp claim)"],
      ["session", file],
      ["tunnels via", eiceEndpoint ? `${eiceEndpoint} (local EICE emulator)` : undefined],
    ]),
  );
  if (new URL(apiUrl).protocol === "http:" && !isLoopback(apiUrl)) {
    ctx.io.stderr(`warning: ${apiUrl} is plain http; your token will cross the network unencrypted\n`);
  }
  if (env.ACCESS_TOKEN?.trim()) ctx.io.stderr("note: ACCESS_TOKEN is set and overrides the stored session\n");
  return EXIT.ok;
}

export function logout(ctx: Ctx): number {
  const removed = deleteSession(ctx.io.env);
  ctx.emit({ loggedOut: removed, sessionFile: sessionPath(ctx.io.env) }, () =>
    removed ? `logged out (removed ${sessionPath(ctx.io.env)})` : "not logged in",
  );
  if (ctx.io.env.ACCESS_TOKEN?.trim()) ctx.io.stderr("note: ACCESS_TOKEN is still set in your environment\n");
  return EXIT.ok;
}

export function whoami(ctx: Ctx): number {
  const credentials = resolveCredentials(ctx.io.env);
  if (!credentials.token) throw notLoggedIn(credentials.apiUrl, credentials.session?.apiUrl);
  const claims = decodeToken(credentials.token);
  if (!claims) throw new CliError("the stored token is not a JWT", { hint: "run: access login" });
  const expiresAt = claims.exp ? new Date(claims.exp * 1000).toISOString() : undefined;
  const expired = expiresAt !== undefined && Date.parse(expiresAt) <= ctx.now.getTime();
  ctx.emit(
    {
      apiUrl: credentials.apiUrl,
      source: credentials.source,
      email: claims.email,
      name: claims.name,
      groups: claims.groups,
      issuer: claims.iss,
      expiresAt,
      expired,
    },
    () =>
      Format.fields([
        ["user", Format.clean(String(claims.email ?? claims.sub ?? "(no email claim)"))],
        ["name", typeof claims.name === "string" ? Format.clean(claims.name) : undefined],
        ["groups", claims.groups.length ? Format.clean(claims.groups.join(", ")) : "(none in the token)"],
        ["issuer", typeof claims.iss === "string" ? Format.clean(claims.iss) : undefined],
        [
          "expires",
          expiresAt
            ? `${Format.when(expiresAt, ctx.now)}${expired ? " — EXPIRED, run: access login" : ""}`
            : "never",
        ],
        ["api", `${credentials.apiUrl} (${credentials.source.apiUrl})`],
        [
          "token",
          credentials.source.token === "env" ? "from ACCESS_TOKEN" : `from ${sessionPath(ctx.io.env)}`,
        ],
      ]),
  );
  return EXIT.ok;
}

// ---- requests ----

export interface RequestOptions {
  ssh?: boolean;
  tunnel?: boolean;
  rdp?: boolean;
  user?: string;
  port?: number;
  for: string;
  reason: string;
  ticket?: string;
  breakGlass?: boolean;
  start?: string;
}

export async function request(ctx: Ctx, instanceId: string, options: RequestOptions): Promise<number> {
  const methods = (["ssh", "tunnel", "rdp"] as const).filter((method) => options[method]);
  const method = methods[0];
  if (!method || methods.length > 1) throw new CliError("choose exactly one of --ssh, --tunnel or --rdp");
  const body: Request.CreateInput = {
    instanceId,
    method,
    osUser: options.user,
    port: options.port,
    durationSeconds: duration(options.for),
    reason: options.reason,
    ticket: options.ticket,
    breakGlass: options.breakGlass ? true : undefined,
    startAt: options.start === undefined ? undefined : instant(options.start, "--start", ctx.now, false),
  };
  // A fresh key per invocation: the API answers a re-send of this key with the first request (200), never a second.
  const { body: created } = await ctx.api().call<Request.Info>("POST", "/requests", {
    body: body,
    headers: { "idempotency-key": randomUUID() },
  });
  ctx.emit(created, () => Format.requestSummary(created, ctx.now));
  return EXIT.ok;
}

export interface ListOptions {
  status?: string;
  mine?: boolean;
  pending?: boolean;
  limit?: number;
  cursor?: string;
}

export async function list(ctx: Ctx, options: ListOptions): Promise<number> {
  const page = await ctx.api().get<Page<Request.Info>>("/requests", {
    status: options.status,
    mine: options.mine ? true : undefined,
    pendingForMe: options.pending ? true : undefined,
    limit: options.limit,
    cursor: options.cursor,
  });
  emitPage(ctx, page, (items) => Format.requestTable(items, ctx.now), "requests");
  return EXIT.ok;
}

/** Grant ids share the request's ULID (`gr_…` / `req_…`), so `show` takes either. */
export async function show(ctx: Ctx, id: string): Promise<number> {
  if (id.startsWith("gr_")) {
    const grant = await ctx.api().get<Request.Grant>(`/grants/${segment(id)}`);
    ctx.emit(grant, () => Format.grantDetail(grant, ctx.now));
  } else {
    const found = await ctx.api().get<Request.Info>(`/requests/${segment(id)}`);
    ctx.emit(found, () => Format.requestDetail(found, ctx.now));
  }
  return EXIT.ok;
}

export async function decide(
  ctx: Ctx,
  verb: "approve" | "deny" | "cancel",
  id: string,
  options: { comment?: string },
): Promise<number> {
  const body = options.comment === undefined ? {} : { comment: options.comment };
  const decided = await ctx.api().post<Request.Info>(`/requests/${segment(id)}/${verb}`, body);
  ctx.emit(decided, () => Format.requestSummary(decided, ctx.now));
  return EXIT.ok;
}

// ---- grants ----

export interface GrantOptions {
  active?: boolean;
  mine?: boolean;
  limit?: number;
  cursor?: string;
}

export async function grants(ctx: Ctx, options: GrantOptions): Promise<number> {
  const page = await ctx.api().get<Page<Request.Grant>>("/grants", {
    active: options.active ? true : undefined,
    mine: options.mine ? true : undefined,
    limit: options.limit,
    cursor: options.cursor,
  });
  emitPage(ctx, page, (items) => Format.grantTable(items, ctx.now), "grants");
  return EXIT.ok;
}

export async function revoke(ctx: Ctx, grantId: string, options: { reason?: string }): Promise<number> {
  const body = options.reason === undefined ? {} : { reason: options.reason };
  const grant = await ctx.api().post<Request.Grant>(`/grants/${segment(grantId)}/revoke`, body);
  ctx.emit(grant, () => Format.grantDetail(grant, ctx.now));
  return EXIT.ok;
}

export async function extend(
  ctx: Ctx,
  grantId: string,
  options: { for: string; reason: string },
): Promise<number> {
  const body = { durationSeconds: duration(options.for), reason: options.reason };
  const grant = await ctx.api().post<Request.Grant>(`/grants/${segment(grantId)}/extend`, body);
  ctx.emit(grant, () => Format.grantDetail(grant, ctx.now));
  return EXIT.ok;
}

// ---- audit ----

export interface AuditOptions {
  request?: string;
  user?: string;
  instance?: string;
  from?: string;
  to?: string;
  order?: string;
  limit?: number;
  cursor?: string;
}

export async function auditEvents(ctx: Ctx, options: AuditOptions): Promise<number> {
  const page = await ctx.api().get<Page<Audit.Info>>("/audit/events", {
    requestId: options.request,
    user: options.user,
    instance: options.instance,
    from: options.from === undefined ? undefined : instant(options.from, "--from", ctx.now),
    to: options.to === undefined ? undefined : instant(options.to, "--to", ctx.now),
    order: options.order,
    limit: options.limit,
    cursor: options.cursor,
  });
  emitPage(ctx, page, (items) => Format.auditTable(items), "records");
  return EXIT.ok;
}

export async function auditVerify(ctx: Ctx): Promise<number> {
  const result = await ctx.api().get<Audit.Verification>("/audit/verify");
  ctx.emit(result, () => Format.verification(result));
  return result.ok ? EXIT.ok : EXIT.negative;
}
