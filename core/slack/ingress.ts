import { AppError } from "../error.ts";
import * as Policy from "../policy/index.ts";
import * as Request from "../request/index.ts";
import { log } from "../util/log.ts";
import { MAX_TEXT, osUserHints, parseCommand, parseModal, usage } from "./command.ts";
import { actorFor, fieldErrorsOf, idempotencyKey, notRegistered, toCreateInput } from "./intake.ts";
import { ephemeral, MODAL_BLOCKS, MODAL_CALLBACK, submittedView } from "./kit.ts";
import type { SlackJobs } from "./ports.ts";
import { BlockActions, OtherInteraction, SlashCommand, ViewSubmission } from "./schema.ts";
import { verify } from "./verify.ts";

/**
 * The acknowledging side of `POST /slack/commands` and `POST /slack/interactions` (functions/slack.ts):
 * verify, then answer within Slack's 3 seconds and leave the work to the worker.
 *
 * Order matters: nothing is parsed, looked up, written or enqueued before the signature and the timestamp
 * checked out; a failure is one log line and a 401. The only answer given before verification is the
 * `ssl_check` ping (as bolt does), recognised byte-for-byte and answered with an empty 200 that does nothing.
 */

export interface IngressDeps extends Request.Deps {
  /** Undefined (or the deploy placeholder) when this stage has no Slack app: every request is refused. */
  signingSecret: string | undefined;
  jobs: SlackJobs;
}

export interface Incoming {
  path: string;
  /** Lower-case names. */
  headers: Record<string, string | undefined>;
  /** The body exactly as Slack sent it (API Gateway's base64 already undone). */
  body: Buffer;
}

export interface Outgoing {
  status: number;
  /** JSON body; undefined means an empty 200, which is how Slack wants most acknowledgements. */
  body?: unknown;
}

/** Slack's bodies are a few KB; anything this large is refused before it is hashed. */
export const MAX_BODY_BYTES = 128 * 1024;
const SSL_CHECK = /^(?:token=[\w-]{0,128}&)?ssl_check=1(?:&token=[\w-]{0,128})?$/;

const now = (deps: Pick<Request.Deps, "clock">) => (deps.clock ? deps.clock() : new Date());
const error = (status: number, code: string, message: string): Outgoing => ({
  status,
  body: { error: { code, message } },
});

export async function receive(deps: IngressDeps, incoming: Incoming): Promise<Outgoing> {
  if (incoming.body.byteLength > MAX_BODY_BYTES) {
    log.warn("slack request rejected", { reason: "body_too_large", bytes: incoming.body.byteLength });
    return error(413, "input.body_too_large", `Slack bodies are limited to ${MAX_BODY_BYTES} bytes`);
  }
  if (incoming.body.byteLength < 300 && SSL_CHECK.test(incoming.body.toString("latin1")))
    return { status: 200 };
  const verdict = verify(deps.signingSecret, incoming, now(deps));
  if (!verdict.ok) {
    log.warn("slack request rejected", { reason: verdict.reason, path: incoming.path });
    return verdict.reason === "not_configured"
      ? error(404, "slack.not_configured", "Slack is not configured on this deployment")
      : error(401, "slack.unverified", "Missing or invalid Slack signature");
  }
  const form = new URLSearchParams(incoming.body.toString("utf8"));
  if (incoming.path === "/slack/commands") return command(deps, form);
  if (incoming.path === "/slack/interactions") return interaction(deps, form);
  return error(404, "route.not_found", `No route ${incoming.path}`);
}

async function command(deps: IngressDeps, form: URLSearchParams): Promise<Outgoing> {
  const parsed = SlashCommand.safeParse(Object.fromEntries(form));
  if (!parsed.success) return error(400, "slack.invalid_command", "Not a slash command payload");
  const slash = parsed.data;
  if (slash.text.length > MAX_TEXT)
    return {
      status: 200,
      body: ephemeral(
        `Your ${slash.command} text is ${slash.text.length} characters; the limit is ${MAX_TEXT}. Nothing was requested — shorten the reason, or run ${slash.command} alone for a form.`,
      ),
    };
  if (!actorFor(deps.config, [slash.team_id, slash.enterprise_id], slash.user_id))
    return { status: 200, body: ephemeral(notRegistered(slash.user_id)) };
  const { draft, errors, help } = parseCommand(slash.text, osUserHints(deps.config));
  if (help) return { status: 200, body: ephemeral(usage(slash.command)) };
  try {
    await deps.jobs.enqueue({
      kind: "command",
      teamId: slash.team_id,
      enterpriseId: slash.enterprise_id,
      userId: slash.user_id,
      channelId: slash.channel_id,
      text: slash.text,
      responseUrl: slash.response_url,
      triggerId: slash.trigger_id,
    });
  } catch (failure) {
    // The worker could not be reached: say so in the channel rather than let Slack show a bare failure.
    log.error("slack command could not be handed to the worker", { error: failure });
    return {
      status: 200,
      body: ephemeral(
        "The access broker could not take this request right now; nothing was requested. Try again in a minute.",
      ),
    };
  }
  // Incomplete: the worker opens the form; an empty 200 keeps the channel quiet meanwhile.
  if (errors.length > 0) return { status: 200 };
  const what = [
    draft.breakGlass ? "break-glass " : "",
    draft.method,
    draft.osUser ? ` as ${draft.osUser}` : "",
    draft.port ? ` to port ${draft.port}` : "",
    ` on ${draft.instanceId}`,
  ].join("");
  return { status: 200, body: ephemeral(`⏳ Working on it: ${what}…`) };
}

async function interaction(deps: IngressDeps, form: URLSearchParams): Promise<Outgoing> {
  const raw = form.get("payload");
  if (raw === null) return error(400, "slack.invalid_payload", "The payload field is missing");
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    log.warn("slack interaction rejected", { reason: "malformed_payload" });
    return error(400, "slack.malformed_payload", "The payload field is not valid JSON");
  }
  const kind = OtherInteraction.safeParse(json);
  if (!kind.success) return error(400, "slack.invalid_payload", "The payload has no type");
  if (kind.data.type === "block_actions") {
    const parsed = BlockActions.safeParse(json);
    if (!parsed.success) return error(400, "slack.invalid_payload", "Not a block_actions payload");
    const actions = parsed.data;
    const [action] = actions.actions;
    if (action)
      await deps.jobs.enqueue({
        kind: "action",
        teamId: actions.team?.id ?? actions.user.team_id,
        enterpriseId: actions.enterprise?.id,
        userId: actions.user.id,
        actionId: action.action_id,
        value: action.value ?? "",
        responseUrl: actions.response_url,
        triggerId: actions.trigger_id,
      });
    return { status: 200 };
  }
  if (kind.data.type === "view_submission") {
    const parsed = ViewSubmission.safeParse(json);
    if (!parsed.success) return error(400, "slack.invalid_payload", "Not a view_submission payload");
    return submit(deps, parsed.data);
  }
  // view_closed, shortcuts and the like: nothing to do, and Slack only needs the 200.
  return { status: 200 };
}

const errorsFor = (fields: { field: keyof typeof MODAL_BLOCKS; message: string }[]) => {
  const errors: Record<string, string> = {};
  for (const { field, message } of fields) {
    const block = MODAL_BLOCKS[field];
    errors[block] = (errors[block] ? `${errors[block]}; ${message}` : message).slice(0, 300);
  }
  return { status: 200, body: { response_action: "errors", errors } };
};

/**
 * The request modal's Submit: answered synchronously, because only this answer can put errors on its
 * fields. Creating the request is one DynamoDB transaction (and an EC2 describe); the notifications it
 * triggers go to the worker.
 */
async function submit(deps: IngressDeps, payload: ViewSubmission): Promise<Outgoing> {
  if (payload.view.callback_id !== MODAL_CALLBACK) return { status: 200 };
  const teamId = payload.team?.id ?? payload.user.team_id;
  const actor = actorFor(deps.config, [teamId, payload.enterprise?.id], payload.user.id);
  if (!actor)
    return errorsFor([{ field: "instanceId", message: notRegistered(payload.user.id).slice(0, 150) }]);
  const { draft, errors } = parseModal(payload.view.state.values);
  if (errors.length > 0 || !draft.instanceId) return errorsFor(errors);
  const input = toCreateInput(deps.config, actor, { ...draft, instanceId: draft.instanceId });
  try {
    const { request } = await Request.create(
      deps,
      actor,
      input,
      idempotencyKey("view", teamId, payload.view.id),
    );
    const rule = Policy.ruleById(deps.config, request.ruleId);
    const channel = rule?.slackChannel ?? deps.config.settings.slack.approvalsChannel;
    return { status: 200, body: { response_action: "update", view: submittedView(request, channel) } };
  } catch (failure) {
    if (!(failure instanceof AppError)) throw failure;
    const { fields, general } = fieldErrorsOf(failure);
    return errorsFor(fields.length ? fields : [{ field: "instanceId", message: general ?? failure.message }]);
  }
}
