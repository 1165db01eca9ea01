/** HTTP client for the access-broker API: JSON in and out, bearer auth, one error shape. */

const USER_AGENT = "access-cli/0.1.0";
const TIMEOUT_MS = 30_000;

/** The API answered with an error status; `body` is kept for `--json`. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string | undefined;
  readonly details: unknown;
  readonly body: unknown;

  constructor(status: number, body: unknown, fallback: string) {
    const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)
      ?.error;
    super(typeof error?.message === "string" ? error.message : fallback);
    this.name = "ApiError";
    this.status = status;
    this.code = typeof error?.code === "string" ? error.code : undefined;
    this.details = error?.details;
    this.body = body;
  }
}

/** No HTTP answer at all: refused, unresolvable, reset or timed out. */
export class UnreachableError extends Error {
  readonly apiUrl: string;
  readonly reason: string;

  constructor(apiUrl: string, reason: string, options?: ErrorOptions) {
    super(
      reason === "ECONNREFUSED"
        ? `cannot reach the access-broker API at ${apiUrl} — is it running (npm start)?`
        : `cannot reach the access-broker API at ${apiUrl} (${reason})`,
      options,
    );
    this.name = "UnreachableError";
    this.apiUrl = apiUrl;
    this.reason = reason;
  }
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface CallOptions {
  query?: Query;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Response<T> {
  status: number;
  body: T;
}

export interface Client {
  readonly apiUrl: string;
  call<T>(method: "GET" | "POST", path: string, options?: CallOptions): Promise<Response<T>>;
  get<T>(path: string, query?: Query): Promise<T>;
  post<T>(path: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
}

export interface ClientOptions {
  apiUrl: string;
  token?: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

/** undici wraps the socket error (for localhost, an AggregateError over ::1 and 127.0.0.1) in `cause`. */
function networkCode(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  const queue: unknown[] = [error];
  while (queue.length > 0) {
    const current = queue.shift();
    if (!current || typeof current !== "object" || seen.has(current)) continue;
    seen.add(current);
    const { code, cause, errors } = current as { code?: unknown; cause?: unknown; errors?: unknown };
    if (typeof code === "string" && /^E[A-Z_]+$/.test(code)) return code;
    queue.push(cause);
    if (Array.isArray(errors)) queue.push(...errors);
  }
  return undefined;
}

/** Encodes one path segment (an id from the command line) so it cannot change the route. */
export const segment = (value: string) => encodeURIComponent(value);

export function createClient(options: ClientOptions): Client {
  const doFetch = options.fetch ?? globalThis.fetch;
  const timeoutMs = options.timeoutMs ?? TIMEOUT_MS;

  async function call<T>(
    method: "GET" | "POST",
    path: string,
    callOptions: CallOptions = {},
  ): Promise<Response<T>> {
    const url = new URL(`${options.apiUrl}${path}`);
    for (const [key, value] of Object.entries(callOptions.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { accept: "application/json", "user-agent": USER_AGENT };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (callOptions.body !== undefined) headers["content-type"] = "application/json";
    Object.assign(headers, callOptions.headers);

    let response: globalThis.Response;
    try {
      response = await doFetch(url, {
        method,
        headers,
        body: callOptions.body === undefined ? undefined : JSON.stringify(callOptions.body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const name = (error as { name?: unknown } | undefined)?.name;
      const cause = (error as { cause?: { message?: unknown } } | undefined)?.cause?.message;
      const reason =
        name === "TimeoutError"
          ? `no answer in ${timeoutMs / 1000}s`
          : (networkCode(error) ?? (typeof cause === "string" ? cause : "network error"));
      throw new UnreachableError(options.apiUrl, reason, { cause: error });
    }

    const text = await response.text();
    let body: unknown;
    try {
      body = text === "" ? undefined : JSON.parse(text);
    } catch {
      const type = response.headers.get("content-type") ?? "no content type";
      throw new ApiError(
        response.status,
        undefined,
        `unexpected non-JSON answer from the API: HTTP ${response.status} (${type})`,
      );
    }
    if (!response.ok)
      throw new ApiError(response.status, body, `HTTP ${response.status} ${response.statusText}`.trim());
    return { status: response.status, body: body as T };
  }

  return {
    apiUrl: options.apiUrl,
    call,
    get: async <T>(path: string, query?: Query) => (await call<T>("GET", path, { query })).body,
    post: async <T>(path: string, body: unknown = {}, headers?: Record<string, string>) =>
      (await call<T>("POST", path, { body, headers })).body,
  };
}
