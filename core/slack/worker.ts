import { AppError, InputError } from "../error.ts";
import type { Actor } from "../identity/index.ts";
import * as Policy from "../policy/index.ts";
import * as Request from "../request/index.ts";
import { ID_PATTERN } from "../util/id.ts";
import { log } from "../util/log.ts";
import { ACTIONS, ephemeral, namer, requestModal } from "./blocks.ts";
import { type Draft, type FieldError, osUserHints, parseCommand, usage } from "./command.ts";
import {
  actorFor,
  explain,
  fieldErrorsOf,
  idempotencyKey,
  mayBreakGlass,
  notRegistered,
  requestedText,
  toCreateInput,
} from "./intake.ts";
import * as Notify from "./notify.ts";
import { Job } from "./schema.ts";

/**
 * The worker: what the acknowledging handler handed off (functions/slack-worker.ts in AWS, invoked
 * asynchronously; in-process after the ack locally). Slash commands become requests (or a form when
 * something is missing), button clicks become decisions, and notifications are sent. Results reach the
 * user through the response_url or a DM; nothing here throws back at Slack.
 */

export interface WorkerDeps extends Request.Deps, Notify.Deps {}

type CommandJob = Extract<Job, { kind: "command" }>;
type ActionJob = Extract<Job, { kind: "action" }>;

export async function runJob(deps: WorkerDeps, payload: unknown): Promise<void> {
  const parsed = Job.safeParse(payload);
  if (!parsed.success) {
    log.error("slack job rejected: not a job this worker knows", { issues: parsed.error.issues.length });
    return;
  }
  const job = parsed.data;
  if (job.kind === "notify") return Notify.apply(deps, job.next, job.notices);
  const reply = async (text: string) => {
    if (!job.responseUrl) return;
    try {
      await deps.slack.respond(job.responseUrl, ephemeral(text));
    } catch (error) {
      log.warn("slack reply failed", { kind: job.kind, error });
    }
  };
  try {
    const actor = actorFor(deps.config, [job.teamId, job.enterpriseId], job.userId);
    if (!actor) return await reply(notRegistered(job.userId));
    if (job.kind === "command") await command(deps, job, actor, reply);
    else await action(deps, job, actor, reply);
  } catch (error) {
    if (!(error instanceof AppError)) log.error("slack job failed", { kind: job.kind, error });
    await reply(explain(error, namer(deps.config)));
  }
}

async function openForm(
  deps: WorkerDeps,
  job: CommandJob,
  actor: Actor,
  draft: Partial<Draft>,
  errors: FieldError[],
  reply: (text: string) => Promise<void>,
): Promise<void> {
  try {
    await deps.slack.openView(
      job.triggerId,
      requestModal({ draft, errors, breakGlassAllowed: mayBreakGlass(deps.config, actor, draft.instanceId) }),
    );
  } catch (error) {
    // The trigger lives 3 seconds: a slow start or a Slack hiccup leaves the user with text instead.
    log.warn("slack views.open failed", { error });
    const problems = errors.map((problem) => `• ${problem.message}`).join("\n");
    await reply(`Nothing was requested:\n${problems}\n\n${usage()}`);
  }
}

async function command(
  deps: WorkerDeps,
  job: CommandJob,
  actor: Actor,
  reply: (text: string) => Promise<void>,
): Promise<void> {
  const { draft, errors } = parseCommand(job.text, osUserHints(deps.config));
  if (errors.length > 0 || !draft.instanceId) return openForm(deps, job, actor, draft, errors, reply);
  const input = toCreateInput(deps.config, actor, { ...draft, instanceId: draft.instanceId });
  try {
    // Slack's trigger id is unique per invocation: a retried or replayed delivery makes the same key.
    const { request } = await Request.create(
      deps,
      actor,
      input,
      idempotencyKey("cmd", job.teamId, job.triggerId),
    );
    const rule = Policy.ruleById(deps.config, request.ruleId);
    const channel = rule?.slackChannel ?? deps.config.settings.slack.approvalsChannel;
    await reply(requestedText(request, channel, namer(deps.config)));
  } catch (error) {
    const { fields } = fieldErrorsOf(error);
    if (error instanceof InputError && fields.length > 0)
      return openForm(deps, job, actor, { ...draft, durationSeconds: input.durationSeconds }, fields, reply);
    throw error;
  }
}

const REQUEST_VALUE = /^req_[0-9a-z]{26}$/;
const EXTENSION_VALUE = /^(req_[0-9a-z]{26})\|([0-9TZ:.-]{10,40})$/;
const EXTEND_VALUE = /^(gr_[0-9a-z]{26})\|(\d{1,6})\|([0-9TZ:.-]{0,40})$/;

async function action(
  deps: WorkerDeps,
  job: ActionJob,
  actor: Actor,
  reply: (text: string) => Promise<void>,
): Promise<void> {
  const value = job.value;
  switch (job.actionId) {
    case ACTIONS.approve:
    case ACTIONS.deny: {
      if (!REQUEST_VALUE.test(value)) return reply("That button does not name a request.");
      const verb = job.actionId === ACTIONS.approve ? Request.approve : Request.deny;
      const after = await verb(deps, actor, value, {}, { kind: "request" });
      if (after.status === "pending")
        await reply(`Recorded your approval: ${after.approvals.length} of ${after.approvalsRequired}.`);
      return;
    }
    case ACTIONS.approveExtension:
    case ACTIONS.denyExtension: {
      const match = EXTENSION_VALUE.exec(value);
      if (!match?.[1] || !match[2]) return reply("That button does not name an extension.");
      const verb = job.actionId === ACTIONS.approveExtension ? Request.approve : Request.deny;
      const after = await verb(deps, actor, match[1], {}, { kind: "extension", requestedAt: match[2] });
      if (after.pendingExtension?.requestedAt === match[2])
        await reply(
          `Recorded your approval: ${after.pendingExtension.approvals.length} of ${after.approvalsRequired}.`,
        );
      return;
    }
    case ACTIONS.extend: {
      const match = EXTEND_VALUE.exec(value);
      if (!match?.[1] || !match[2]) return reply("That button does not name a grant.");
      const current = await Request.loadByGrantId(deps, actor, match[1]);
      // The button was made for one end time: a second click (or a stale message) must not extend again.
      if (current.status !== "active" || current.endsAt !== match[3])
        return reply(
          current.status === "active"
            ? "Already extended — see the latest message for the new end time."
            : `Nothing to extend: the grant is ${current.status}.`,
        );
      if (!(await deps.slackStore.claim(current.id, `extend#${current.endsAt}`)))
        return reply("Already extending — see the latest message for the new end time.");
      await Request.extend(deps, actor, match[1], {
        durationSeconds: Number(match[2]),
        reason: "extended from Slack",
      });
      return;
    }
    case ACTIONS.end:
      if (!ID_PATTERN.grant.test(value)) return reply("That button does not name a grant.");
      await Request.revoke(deps, actor, value, { reason: "ended from Slack" });
      return;
    case ACTIONS.review:
      if (!REQUEST_VALUE.test(value)) return reply("That button does not name a request.");
      await Request.review(deps, actor, value);
      return;
    default:
      log.warn("slack action ignored", { actionId: job.actionId.slice(0, 64) });
  }
}
