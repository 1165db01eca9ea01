import type { AnchoredVerification } from "../../core/audit/anchor.ts";
import type { Info as AuditRecord } from "../../core/audit/index.ts";
import type { Profile } from "../../core/identity/index.ts";
import type { View as PolicyView } from "../../core/policy/view.ts";
import type { AccessReport } from "../../core/report/schema.ts";
import type { CreateInput, Grant, Info as RequestInfo } from "../../core/request/schema.ts";
import type { Classification, Observation } from "../../core/trail/schema.ts";
import type { Page } from "../../core/util/page.ts";
import { session } from "./session.ts";

// Every type here is the API's own, inferred from the zod schemas its handlers validate with.
export type {
  AccessReport,
  AnchoredVerification,
  AuditRecord,
  Classification,
  CreateInput,
  Grant,
  Observation,
  Page,
  PolicyView,
  Profile,
  RequestInfo,
};

/** An error body of the API (`{error: {code, message, details}}`) with its HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** Field problems the API listed (`details: [{path, message}]`), keyed by field name. */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    if (!Array.isArray(this.details)) return out;
    for (const entry of this.details as Array<{ path?: unknown; message?: unknown }>) {
      const path = Array.isArray(entry.path) ? entry.path.join(".") : String(entry.path ?? "");
      if (path && typeof entry.message === "string" && !out[path]) out[path] = entry.message;
    }
    return out;
  }
}

type Query = Record<string, string | number | boolean | undefined>;

let onUnauthorized: () => void = () => {};
/** What to do when the token is refused (expired): the app signs out and shows the sign-in page. */
export function setUnauthorizedHandler(handler: () => void) {
  onUnauthorized = handler;
}

function url(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {}))
    if (value !== undefined && value !== "") params.set(key, String(value));
  const search = params.toString();
  return `${__WEB_CONFIG__.apiUrl}${path}${search ? `?${search}` : ""}`;
}

async function call(
  method: "GET" | "POST",
  path: string,
  options: { query?: Query; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Response> {
  const token = session.get()?.token;
  const response = await fetch(url(path, options.query), {
    method,
    headers: {
      accept: "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(options.body !== undefined ? { "content-type": "application/json" } : {}),
      ...options.headers,
    },
    body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
    cache: "no-store",
  });
  if (response.ok) return response;
  let error: { code?: string; message?: string; details?: unknown } = {};
  try {
    error = ((await response.json()) as { error?: typeof error }).error ?? {};
  } catch {
    // not JSON: keep the status
  }
  if (response.status === 401) onUnauthorized();
  throw new ApiError(
    response.status,
    error.code ?? `http.${response.status}`,
    error.message ?? `${response.status} ${response.statusText}`,
    error.details,
  );
}

const json = async <T>(response: Promise<Response>) => (await (await response).json()) as T;
const get = <T>(path: string, query?: Query) => json<T>(call("GET", path, { query }));
const post = <T>(path: string, body: unknown = {}, headers?: Record<string, string>) =>
  json<T>(call("POST", path, { body, headers }));

export const api = {
  me: () => get<Profile>("/me"),
  policy: () => get<PolicyView>("/policy"),
  requests: (query: {
    status?: RequestInfo["status"];
    mine?: boolean;
    pendingForMe?: boolean;
    requester?: string;
    limit?: number;
    cursor?: string;
  }) => get<Page<RequestInfo>>("/requests", query),
  request: (id: string) => get<RequestInfo>(`/requests/${encodeURIComponent(id)}`),
  create: (input: CreateInput, idempotencyKey: string) =>
    post<RequestInfo>("/requests", input, { "idempotency-key": idempotencyKey }),
  decide: (id: string, verb: "approve" | "deny" | "cancel", comment?: string) =>
    post<RequestInfo>(`/requests/${encodeURIComponent(id)}/${verb}`, comment ? { comment } : {}),
  revoke: (grantId: string, reason?: string) =>
    post<Grant>(`/grants/${encodeURIComponent(grantId)}/revoke`, reason ? { reason } : {}),
  extend: (grantId: string, durationSeconds: number, reason: string) =>
    post<Grant>(`/grants/${encodeURIComponent(grantId)}/extend`, { durationSeconds, reason }),
  auditEvents: (query: {
    requestId?: string;
    from?: string;
    to?: string;
    /** An email: records made by that person or about their requests, grants and AWS identities. */
    user?: string;
    instance?: string;
    order?: "asc" | "desc";
    limit?: number;
    cursor?: string;
  }) => get<Page<AuditRecord>>("/audit/events", query),
  trail: (query: {
    from?: string;
    to?: string;
    classification?: Classification;
    /** An email (that person's events) or an IAM/STS principal ARN. */
    user?: string;
    instance?: string;
    limit?: number;
    cursor?: string;
  }) => get<Page<Observation>>("/audit/trail", query),
  verify: () => get<AnchoredVerification>("/audit/verify"),
  report: (from: string, to: string) => get<AccessReport>("/reports/access", { from, to, format: "json" }),
  /** The report as the API renders it for download (`csv` per section, or `html`). */
  reportFile: async (from: string, to: string, format: "csv" | "html", section?: string) => {
    const response = await call("GET", "/reports/access", { query: { from, to, format, section } });
    return response.blob();
  },
};
