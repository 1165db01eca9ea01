import * as z from "zod";
import { InputTime } from "../request/schema.ts";
import { Classification } from "../trail/schema.ts";

/*
 * The report's shapes, apart from the code that builds it: the API's route table (and so every Lambda
 * cold start) needs the schemas for validation and OpenAPI, but only report requests need the builder.
 */

const MAX_PERIOD_MS = 366 * 86_400_000;

export const Query = z
  .strictObject({
    from: InputTime,
    to: InputTime,
    format: z.enum(["json", "csv", "html"]).default("json"),
    section: z.enum(["grants", "events", "controls"]).default("grants"),
  })
  .refine((query) => Date.parse(query.from) < Date.parse(query.to), { message: "from must be before to" })
  .refine((query) => Date.parse(query.to) - Date.parse(query.from) <= MAX_PERIOD_MS, {
    message: "a report covers at most 366 days",
  });
export type Query = z.input<typeof Query>;

const Time = z.string();
const Counts = z.partialRecord(Classification, z.number());

export const GrantRow = z.object({
  requestId: z.string(),
  grantId: z.string(),
  status: z.string(),
  requester: z.string(),
  approvers: z.array(z.string()),
  rule: z.string(),
  reason: z.string(),
  ticket: z.string().optional(),
  target: z.string(),
  instanceId: z.string(),
  account: z.string(),
  region: z.string(),
  method: z.string(),
  osUser: z.string().optional(),
  port: z.number().optional(),
  grantMode: z.string(),
  breakGlass: z.boolean(),
  reviewStatus: z.string().optional(),
  requestedAt: Time,
  requestedStart: Time,
  requestedSeconds: z.number(),
  extendedSeconds: z.number(),
  startsAt: Time.optional(),
  endsAt: Time.optional(),
  endedAt: Time.optional(),
  /** How long access was actually open: start to the earlier of end and revoke/expiry. */
  usedWindowSeconds: z.number().optional(),
  approvalLatencySeconds: z.number().optional(),
  events: Counts,
  firstUse: Time.optional(),
  lastUse: Time.optional(),
  unused: z.boolean(),
});
export type GrantRow = z.infer<typeof GrantRow>;

export const EventRow = z.object({
  eventId: z.string(),
  eventTime: Time.optional(),
  eventName: z.string().optional(),
  classification: Classification,
  account: z.string().optional(),
  region: z.string().optional(),
  principal: z.string().optional(),
  /** Instance and OS user, or endpoint, IP and port. */
  target: z.string().optional(),
  requestId: z.string().optional(),
  grantId: z.string().optional(),
  errorCode: z.string().optional(),
  reasons: z.array(z.string()),
});
export type EventRow = z.infer<typeof EventRow>;

export const ControlRow = z.object({
  control: z.enum(["access approved", "least privilege", "time-boxed", "logged"]),
  status: z.enum(["pass", "attention", "fail"]),
  evidence: z.string(),
});
export type ControlRow = z.infer<typeof ControlRow>;

export const AccessReport = z.object({
  period: z.object({ from: Time, to: Time }),
  generatedAt: Time,
  generatedBy: z.string(),
  summary: z.object({
    grants: z.number(),
    used: z.number(),
    unused: z.number(),
    breakGlass: z.number(),
    breakGlassAwaitingReview: z.number(),
    events: Counts,
    approvalLatencySeconds: z.object({
      count: z.number(),
      median: z.number().optional(),
      p95: z.number().optional(),
      max: z.number().optional(),
    }),
  }),
  grants: z.array(GrantRow),
  unusedGrants: z.array(z.string()),
  nonBrokeredEvents: z.array(EventRow),
  breakGlass: z.array(
    z.object({
      requestId: z.string(),
      grantId: z.string(),
      requester: z.string(),
      at: Time,
      reason: z.string(),
      ticket: z.string().optional(),
      review: z.object({
        status: z.string(),
        by: z.string().optional(),
        at: Time.optional(),
        comment: z.string().optional(),
      }),
    }),
  ),
  controls: z.array(ControlRow),
  chain: z.object({
    ok: z.boolean(),
    records: z.number(),
    brokenAt: z.object({ seq: z.number(), reason: z.string() }).optional(),
    anchor: z.object({ ok: z.boolean(), seq: z.number(), at: z.string(), location: z.string() }).optional(),
  }),
  /** Whether trail events were available to the report (a broker without a trail store has none). */
  trail: z.boolean(),
});
export type AccessReport = z.infer<typeof AccessReport>;
