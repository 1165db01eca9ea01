import * as z from "zod";
import { Info } from "../request/schema.ts";

/**
 * What Slack sends (after the signature checked out), as far as the broker reads it. Objects are loose:
 * Slack adds fields over time and the broker must not break on them; what it relies on is required.
 */

const SlackId = z.string().regex(/^[A-Z0-9]{2,32}$/, "is not a Slack id");
/** response_url and trigger_id are opaque; bounded so a forged-but-signed body cannot bloat a job. */
const Opaque = z.string().min(1).max(2_048);

/** Slash command form fields (`application/x-www-form-urlencoded`), protocols.md §5.2. */
export const SlashCommand = z.looseObject({
  command: z.string().min(1).max(64),
  text: z.string().default(""),
  user_id: SlackId,
  team_id: SlackId,
  channel_id: z.string().max(64).optional(),
  enterprise_id: z.string().max(64).optional(),
  response_url: Opaque,
  trigger_id: Opaque,
});
export type SlashCommand = z.infer<typeof SlashCommand>;

const User = z.looseObject({ id: SlackId, team_id: z.string().max(64).optional() });
const Team = z.looseObject({ id: SlackId }).nullish();
const Enterprise = z.looseObject({ id: z.string().max(64) }).nullish();

export const Action = z.looseObject({
  action_id: z.string().min(1).max(255),
  block_id: z.string().max(255).optional(),
  value: z.string().max(2_000).optional(),
  action_ts: z.string().max(64).optional(),
});

/** `block_actions` (a button in a message), protocols.md §5.4. */
export const BlockActions = z.looseObject({
  type: z.literal("block_actions"),
  user: User,
  team: Team,
  enterprise: Enterprise,
  actions: z.array(Action).min(1),
  response_url: Opaque.optional(),
  trigger_id: Opaque.optional(),
  channel: z.looseObject({ id: z.string().max(64) }).optional(),
  container: z
    .looseObject({ message_ts: z.string().optional(), channel_id: z.string().optional() })
    .optional(),
});
export type BlockActions = z.infer<typeof BlockActions>;

/** One input's state in a submitted modal: text inputs, selects and checkboxes. */
export const InputState = z.looseObject({
  type: z.string(),
  value: z.string().nullish(),
  selected_option: z.looseObject({ value: z.string() }).nullish(),
  selected_options: z.array(z.looseObject({ value: z.string() })).optional(),
});

/** `view_submission` (the request modal's Submit). */
export const ViewSubmission = z.looseObject({
  type: z.literal("view_submission"),
  user: User,
  team: Team,
  enterprise: Enterprise,
  view: z.looseObject({
    id: z.string().min(1).max(64),
    callback_id: z.string().max(255).optional(),
    state: z
      .looseObject({ values: z.record(z.string(), z.record(z.string(), InputState)) })
      .default({ values: {} }),
  }),
});
export type ViewSubmission = z.infer<typeof ViewSubmission>;

/** Anything else Slack may send to the interactivity URL (view_closed, shortcuts…): acknowledged, ignored. */
export const OtherInteraction = z.looseObject({ type: z.string() });

export const DmKind = z.enum([
  "approved",
  "started",
  "break-glass",
  "denied",
  "timed-out",
  "revoked",
  "expired",
  "expiring",
  "extended",
  "extension-requested",
  "extension-denied",
]);
export type DmKind = z.infer<typeof DmKind>;

/** What a committed transition means for Slack (notices.ts `noticesOf`). */
export const Notice = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("approval.post") }),
  z.strictObject({ kind: z.literal("approval.sync") }),
  z.strictObject({ kind: z.literal("alert.post") }),
  z.strictObject({ kind: z.literal("alert.sync") }),
  z.strictObject({ kind: z.literal("extension.post"), requestedAt: z.string() }),
  z.strictObject({
    kind: z.literal("extension.final"),
    requestedAt: z.string(),
    decision: z.enum(["approved", "denied", "ended"]),
    by: z.array(z.string()),
  }),
  z.strictObject({ kind: z.literal("dm"), dm: DmKind }),
]);
export type Notice = z.infer<typeof Notice>;

/**
 * Work the acknowledging handler hands to the worker (a Lambda invoked asynchronously in AWS, the same code
 * in-process locally). Validated again by the worker: the payload crossed a process boundary.
 */
export const Job = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("command"),
    teamId: SlackId,
    enterpriseId: z.string().max(64).optional(),
    userId: SlackId,
    channelId: z.string().max(64).optional(),
    text: z.string().max(4_000),
    responseUrl: Opaque,
    triggerId: Opaque,
  }),
  z.strictObject({
    kind: z.literal("action"),
    teamId: SlackId.optional(),
    enterpriseId: z.string().max(64).optional(),
    userId: SlackId,
    actionId: z.string().max(255),
    value: z.string().max(2_000),
    responseUrl: Opaque.optional(),
    triggerId: Opaque.optional(),
  }),
  z.strictObject({
    kind: z.literal("notify"),
    /** The request as the transition left it: DMs describe that moment, not whatever came after. */
    next: Info,
    notices: z.array(Notice).min(1),
  }),
]);
export type Job = z.infer<typeof Job>;
export type JobInput = z.input<typeof Job>;
