import * as z from "zod";
import { InstanceId, Method, OsUser, Port, PrincipalArn } from "../policy/schema.ts";
import { Network } from "../target/index.ts";

export const Status = z.enum([
  "pending",
  "approved",
  "active",
  "expired",
  "revoked",
  "denied",
  "cancelled",
  "timed-out",
]);
export type Status = z.infer<typeof Status>;

export const GRANT_STATUSES = [
  "approved",
  "active",
  "expired",
  "revoked",
] as const satisfies readonly Status[];
export const FINAL_STATUSES = [
  "expired",
  "revoked",
  "denied",
  "cancelled",
  "timed-out",
] as const satisfies readonly Status[];

const Email = z.string();
const Time = z.iso.datetime();
/** Times from callers may carry any offset; they are stored and compared in UTC. */
export const InputTime = z.iso.datetime({ offset: true }).transform((value) => new Date(value).toISOString());

export const Approval = z.object({ by: Email, at: Time, comment: z.string().optional() });
export type Approval = z.infer<typeof Approval>;

/** A request and, once approved, the grant made from it: one item, so every transition is one write. */
export const Info = z.object({
  id: z.string(),
  grantId: z.string(),
  status: Status,
  /** Optimistic-concurrency counter: every transition writes `version + 1` on condition of `version`. */
  version: z.number().int().nonnegative(),
  requester: Email,
  instanceId: InstanceId,
  account: z.string(),
  region: z.string(),
  target: z.string(),
  method: Method,
  osUser: OsUser.optional(),
  port: Port.optional(),
  durationSeconds: z.number().int().positive(),
  reason: z.string(),
  ticket: z.string().optional(),
  ruleId: z.string(),
  /**
   * How access is delivered, as the rule said at request time: the broker pushes keys and presigns tunnels
   * (`broker`, also when absent, as on items written before grant modes existed), or the user's own IAM (`iam`).
   */
  grantMode: z.enum(["broker", "iam"]).optional(),
  /** IAM grant mode: the requester's own role/user in the grant's account that receives the inline policy. */
  awsPrincipal: PrincipalArn.optional(),
  /** Instance, IP and route when the request was made (absent when only the policy was known). */
  network: Network.optional(),
  breakGlass: z.boolean(),
  /** Break-glass only: an auditor's or admin's after-the-fact review (design §3). */
  review: z
    .object({
      status: z.enum(["pending", "done"]),
      by: Email.optional(),
      at: Time.optional(),
      comment: z.string().optional(),
    })
    .optional(),
  approvalsRequired: z.number().int().nonnegative(),
  /** Who may approve, as the rule said when the request was made (the current policy decides at click time). */
  approvalsFrom: z.array(z.string()).default([]),
  approvals: z.array(Approval),
  decision: z.object({ by: Email, at: Time, reason: z.string().optional() }).optional(),
  createdAt: Time,
  pendingUntil: Time,
  startAt: Time.optional(),
  startsAt: Time.optional(),
  endsAt: Time.optional(),
  endedAt: Time.optional(),
  extendedSeconds: z.number().int().nonnegative(),
  pendingExtension: z
    .object({
      durationSeconds: z.number().int().positive(),
      reason: z.string(),
      requestedAt: Time,
      approvals: z.array(Approval),
    })
    .optional(),
});
export type Info = z.infer<typeof Info>;

const MAX_REASON = 1_000;

/** Body of `POST /requests` (design §9). Unknown fields are rejected, not ignored. */
export const CreateInput = z.strictObject({
  instanceId: InstanceId,
  method: Method,
  osUser: OsUser.optional(),
  port: Port.optional(),
  durationSeconds: z.number().int().positive(),
  reason: z.string().trim().max(MAX_REASON),
  ticket: z
    .string()
    .trim()
    .min(1)
    .max(64)
    .regex(/^[\w.:#/-]+$/, "letters, digits and . : # / - _ only")
    .optional(),
  breakGlass: z.boolean().default(false),
  startAt: InputTime.optional(),
});
export type CreateInput = z.input<typeof CreateInput>;

export const DecisionInput = z.strictObject({ comment: z.string().trim().max(MAX_REASON).optional() });
export const RevokeInput = z.strictObject({ reason: z.string().trim().max(MAX_REASON).optional() });
export const ExtendInput = z.strictObject({
  durationSeconds: z.number().int().positive(),
  reason: z.string().trim().min(1).max(MAX_REASON),
});

/** The grant as clients see it: the constraints and the window, named by the grant id. */
export const Grant = z.object({
  id: z.string(),
  requestId: z.string(),
  status: z.enum(GRANT_STATUSES),
  requester: Email,
  instanceId: InstanceId,
  account: z.string(),
  region: z.string(),
  method: Method,
  osUser: OsUser.optional(),
  port: Port.optional(),
  ruleId: z.string(),
  grantMode: Info.shape.grantMode,
  awsPrincipal: Info.shape.awsPrincipal,
  network: Info.shape.network,
  breakGlass: z.boolean(),
  startsAt: Time.optional(),
  endsAt: Time.optional(),
  endedAt: Time.optional(),
  approvers: z.array(Email),
  pendingExtension: Info.shape.pendingExtension,
});
export type Grant = z.infer<typeof Grant>;

export function toGrant(request: Info): Grant | undefined {
  if (!(GRANT_STATUSES as readonly Status[]).includes(request.status)) return undefined;
  return {
    id: request.grantId,
    requestId: request.id,
    status: request.status as Grant["status"],
    requester: request.requester,
    instanceId: request.instanceId,
    account: request.account,
    region: request.region,
    method: request.method,
    osUser: request.osUser,
    port: request.port,
    ruleId: request.ruleId,
    grantMode: request.grantMode,
    awsPrincipal: request.awsPrincipal,
    network: request.network,
    breakGlass: request.breakGlass,
    startsAt: request.startsAt,
    endsAt: request.endsAt,
    endedAt: request.endedAt,
    approvers: request.approvals.map((approval) => approval.by),
    pendingExtension: request.pendingExtension,
  };
}

const Flag = z.enum(["true", "false"]).transform((value) => value === "true");

/** Query of `GET /requests`. */
export const ListQuery = z.strictObject({
  status: Status.optional(),
  mine: Flag.optional(),
  pendingForMe: Flag.optional(),
  /** One requester's requests (those the caller may see): an approver's view of someone's history. */
  requester: z
    .email()
    .transform((email) => email.toLowerCase())
    .optional(),
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: z.string().max(2_048).optional(),
});

/** Query of `GET /grants`. */
export const GrantListQuery = z.strictObject({
  active: Flag.optional(),
  mine: Flag.optional(),
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: z.string().max(2_048).optional(),
});
