import * as z from "zod";
import * as Access from "../../core/access/index.ts";
import * as Audit from "../../core/audit/index.ts";
import * as AuditRead from "../../core/audit/read.ts";
import { type Actor, Identity } from "../../core/identity/index.ts";
import * as PolicyView from "../../core/policy/view.ts";
import * as ReportSchema from "../../core/report/schema.ts";
import * as Request from "../../core/request/index.ts";
import type * as TrailRead from "../../core/trail/read.ts";
import * as TrailSchema from "../../core/trail/schema.ts";
import { RawResponse } from "../middleware/response.ts";

/**
 * Everything a handler may reach: the stores, and the AWS-backed ports (optional: a broker wired without AWS
 * access answers pushes and tunnels with 409 `access.not_configured`).
 */
export type Deps = AuditRead.Deps &
  Partial<Pick<Access.Deps, "pushes" | "keys" | "tunnels">> &
  Pick<TrailRead.ApiDeps, "trail">;

/** The access ports of `deps`, with "not configured" stand-ins for the ones a broker was wired without. */
function access(deps: Deps): Access.Deps {
  return {
    ...deps,
    pushes: deps.pushes ?? Access.notConfiguredStore,
    keys: deps.keys ?? Access.notConfigured,
    tunnels: deps.tunnels ?? Access.notConfigured,
  };
}

export interface RouteInput {
  deps: Deps;
  actor: Actor;
  params: Record<string, string | undefined>;
  query: Record<string, string | undefined>;
  body: unknown;
  headers: Record<string, string | undefined>;
}

export interface Route {
  method: "GET" | "POST";
  path: string;
  summary: string;
  /** False only for routes that reveal nothing: health and the API description. */
  auth: boolean;
  query?: z.ZodType;
  body?: z.ZodType;
  response: z.ZodType;
  /** Success status; `handle` may override it (201 vs 200 on an idempotent replay). */
  status: number;
  handle: (input: RouteInput) => Promise<unknown | { status: number; body: unknown }>;
}

const Health = z.object({ status: z.literal("ok"), time: z.iso.datetime() });
const list = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), nextCursor: z.string().optional() });
const Verification = z.union([
  z.object({
    ok: z.literal(true),
    records: z.number(),
    head: z.object({ seq: z.number(), hash: z.string() }),
  }),
  z.object({
    ok: z.literal(false),
    records: z.number(),
    brokenAt: z.object({ seq: z.number(), reason: z.string() }),
  }),
]);
/** The latest anchor of the chain head outside the table, when anchors are configured. */
const AnchorCheck = z.object({
  ok: z.boolean(),
  seq: z.number(),
  hash: z.string(),
  at: z.string(),
  location: z.string(),
});
const AnchoredVerification = z.intersection(Verification, z.object({ anchor: AnchorCheck.optional() }));

const id = (params: RouteInput["params"]) => params.id ?? "";

/** The trail reader (and the ingest behind imports) load on first use: no other route needs them. */
const trailRead = () => import("../../core/trail/read.ts");

export const routes: Route[] = [
  {
    method: "GET",
    path: "/health",
    summary: "Liveness",
    auth: false,
    response: Health,
    status: 200,
    handle: async () => ({ status: "ok", time: new Date().toISOString() }),
  },
  {
    method: "GET",
    path: "/me",
    summary: "The caller as the broker sees them: email, merged groups, roles",
    auth: true,
    response: Identity.Profile,
    status: 200,
    handle: async ({ deps, actor }) => Identity.profile(actor, deps.config),
  },
  {
    method: "GET",
    path: "/policy",
    summary:
      "The policy as it concerns the caller: rules they may request, break glass or approve under, and their targets",
    auth: true,
    response: PolicyView.View,
    status: 200,
    handle: async ({ deps, actor }) => PolicyView.view(deps.config, actor),
  },
  {
    method: "POST",
    path: "/requests",
    summary: "Request access (honours Idempotency-Key)",
    auth: true,
    body: Request.CreateInput,
    response: Request.Info,
    status: 201,
    handle: async ({ deps, actor, body, headers }) => {
      const { request, created } = await Request.create(deps, actor, body, headers["idempotency-key"]);
      return { status: created ? 201 : 200, body: request };
    },
  },
  {
    method: "GET",
    path: "/requests",
    summary: "List requests the caller can see",
    auth: true,
    query: Request.ListQuery,
    response: list(Request.Info),
    status: 200,
    handle: ({ deps, actor, query }) => Request.list(deps, actor, query),
  },
  {
    method: "GET",
    path: "/requests/{id}",
    summary: "One request",
    auth: true,
    response: Request.Info,
    status: 200,
    handle: ({ deps, actor, params }) => Request.get(deps, actor, id(params)),
  },
  ...(["approve", "deny", "cancel"] as const).map(
    (verb): Route => ({
      method: "POST",
      path: `/requests/{id}/${verb}`,
      summary: `${verb[0]?.toUpperCase()}${verb.slice(1)} a request`,
      auth: true,
      body: Request.DecisionInput,
      response: Request.Info,
      status: 200,
      handle: ({ deps, actor, params, body }) => Request[verb](deps, actor, id(params), body),
    }),
  ),
  {
    method: "POST",
    path: "/requests/{id}/review",
    summary: "Mark a break-glass request reviewed (auditors and admins; never the requester)",
    auth: true,
    body: Request.DecisionInput,
    response: Request.Info,
    status: 200,
    handle: ({ deps, actor, params, body }) => Request.review(deps, actor, id(params), body),
  },
  {
    method: "GET",
    path: "/grants",
    summary: "List grants the caller can see",
    auth: true,
    query: Request.GrantListQuery,
    response: list(Request.Grant),
    status: 200,
    handle: ({ deps, actor, query }) => Request.listGrants(deps, actor, query),
  },
  {
    method: "GET",
    path: "/grants/{id}",
    summary: "One grant",
    auth: true,
    response: Request.Grant,
    status: 200,
    handle: ({ deps, actor, params }) => Request.getGrant(deps, actor, id(params)),
  },
  {
    method: "POST",
    path: "/grants/{id}/revoke",
    summary: "End a grant now",
    auth: true,
    body: Request.RevokeInput,
    response: Request.Grant,
    status: 200,
    handle: ({ deps, actor, params, body }) => Request.revoke(deps, actor, id(params), body),
  },
  {
    method: "POST",
    path: "/grants/{id}/extend",
    summary: "Extend an active grant (re-approved when the rule needs approvals)",
    auth: true,
    body: Request.ExtendInput,
    response: Request.Grant,
    status: 200,
    handle: ({ deps, actor, params, body }) => Request.extend(deps, actor, id(params), body),
  },
  {
    method: "POST",
    path: "/grants/{id}/ssh-key",
    summary: "Push your public key to the grant's instance for its OS user (valid 60 s; ssh grants)",
    auth: true,
    body: Access.PushKeyInput,
    response: Access.PushResult,
    status: 200,
    handle: ({ deps, actor, params, body }) => Access.pushKey(access(deps), actor, id(params), body),
  },
  {
    method: "POST",
    path: "/grants/{id}/tunnel",
    summary:
      "A presigned EC2 Instance Connect Endpoint tunnel URL (valid 60 s; tunnel, rdp and ssh via EICE)",
    auth: true,
    body: Access.TunnelInput,
    response: Access.TunnelResult,
    status: 200,
    handle: ({ deps, actor, params, body }) =>
      Access.authorizeTunnel(access(deps), actor, id(params), body ?? {}),
  },
  {
    method: "GET",
    path: "/audit/events",
    summary:
      "Audit records (auditors: all, filtered by time, user and instance; others: one visible request's " +
      "history). user and instance match the actor and data fields named below exactly; records written " +
      "before every request record named its requester and instance are found by the fields they carry. " +
      "Filtered, a call reads at most 2,000 records: a page may be short, even empty, with a nextCursor",
    auth: true,
    query: AuditRead.EventsQuery,
    response: list(Audit.Info),
    status: 200,
    handle: ({ deps, actor, query }) => AuditRead.events(deps, actor, query),
  },
  {
    method: "GET",
    path: "/audit/verify",
    summary: "Walk the audit hash chain, report the first broken link, and compare the head with its anchor",
    auth: true,
    response: AnchoredVerification,
    status: 200,
    handle: ({ deps, actor }) => AuditRead.verifyChain(deps, actor),
  },
  {
    method: "GET",
    path: "/audit/trail",
    summary:
      "Observed CloudTrail events of EC2 Instance Connect, by event time, classified (auditors); filtered by " +
      "classification, time, user (an email: events correlated to that person's grants or made as them by " +
      "SourceIdentity, session name, IAM user name or directory AWS principals; an ARN: that caller or principal) " +
      "and instance (the event's, or its grant's)",
    auth: true,
    query: TrailSchema.ListQuery,
    response: list(TrailSchema.Observation),
    status: 200,
    handle: async ({ deps, actor, query }) => (await trailRead()).list(deps, actor, query),
  },
  {
    method: "POST",
    path: "/audit/trail",
    summary: "Import CloudTrail records (what `access audit import` reads from log files; auditors)",
    auth: true,
    body: TrailSchema.ImportInput,
    response: TrailSchema.IngestSummary,
    status: 200,
    handle: async ({ deps, actor, body }) => (await trailRead()).importRecords(deps, actor, body),
  },
  {
    method: "GET",
    path: "/reports/access",
    summary:
      "Access report for a period: format=json (default), csv (section=grants|events|controls) or html",
    auth: true,
    query: ReportSchema.Query,
    response: ReportSchema.AccessReport,
    status: 200,
    handle: async ({ deps, actor, query }) => {
      // Loaded on first use: the report builder is not needed to serve any other route.
      const { Report } = await import("../../core/report/index.ts");
      const rendered = await Report.access(deps, actor, query);
      if (rendered.format === "json") return rendered.report;
      return new RawResponse(rendered.contentType, rendered.body, {
        "content-disposition": `attachment; filename="${rendered.filename}"`,
        ...(rendered.format === "html"
          ? { "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'" }
          : {}),
      });
    },
  },
];
