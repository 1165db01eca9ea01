import * as Identity from "../identity/index.ts";
import * as Policy from "../policy/index.ts";
import type { Info } from "../request/schema.ts";
import { log } from "../util/log.ts";
import {
  approvalMessage,
  breakGlassAlert,
  extensionMessage,
  type Message,
  namer,
  requesterDm,
} from "./blocks.ts";
import type { MessageKey, MessageRef, NotifyDeps } from "./ports.ts";
import type { Notice } from "./schema.ts";

/**
 * Lifecycle notifications carried out: the messages and DMs that notices.ts says a committed transition
 * calls for, and the expiry warnings of the sweeper. Notification failures are logged and never undo or
 * fail a transition.
 */

export type Deps = NotifyDeps;

/** The expiry warning goes out this long before a grant ends (once per end time). */
export const WARNING_LEAD_SECONDS = 10 * 60;

const now = (deps: Pick<Deps, "clock">) => (deps.clock ? deps.clock() : new Date());

function approvalsChannel(deps: Deps, item: Info): string {
  return (
    Policy.ruleById(deps.config, item.ruleId)?.slackChannel ?? deps.config.settings.slack.approvalsChannel
  );
}

async function renderApproval(deps: Deps, item: Info): Promise<Message> {
  const history = await deps.requests.listByRequester(item.requester, {
    limit: 5,
    filter: (entry) => entry.id !== item.id && entry.createdAt <= item.createdAt,
  });
  return approvalMessage({
    request: item,
    rule: Policy.ruleById(deps.config, item.ruleId),
    names: namer(deps.config),
    history: history.items,
  });
}

async function renderAlert(deps: Deps, item: Info): Promise<Message> {
  return breakGlassAlert(item, Policy.ruleById(deps.config, item.ruleId), namer(deps.config));
}

/**
 * Makes the message show the request as the table holds it now. Approvers race: two updates can reach
 * Slack out of order, so after each update the item is read again and, if it changed meanwhile, rendered
 * again. Whichever update lands last was made from a state at least as new as every transition before it,
 * so the message ends in the final state (design §3: the DynamoDB transition decides; the message follows).
 */
async function converge(
  deps: Deps,
  ref: MessageRef,
  id: string,
  render: (item: Info) => Promise<Message>,
  rendered?: number,
): Promise<void> {
  let shown = rendered;
  for (let round = 0; round < 5; round++) {
    const item = await deps.requests.get(id);
    if (!item || item.version === shown) return;
    await deps.slack.update(ref, await render(item));
    shown = item.version;
  }
}

async function postOrSync(
  deps: Deps,
  id: string,
  key: MessageKey,
  channel: string,
  render: (item: Info) => Promise<Message>,
): Promise<void> {
  const existing = await deps.slackStore.getMessage(id, key);
  if (existing) return converge(deps, existing, id, render);
  const item = await deps.requests.get(id);
  if (!item) return;
  const ref = await deps.slack.postMessage(channel, await render(item));
  await deps.slackStore.putMessage(id, key, ref);
  await converge(deps, ref, id, render, item.version);
}

async function sync(
  deps: Deps,
  id: string,
  key: MessageKey,
  render: (item: Info) => Promise<Message>,
): Promise<void> {
  const ref = await deps.slackStore.getMessage(id, key);
  // No message yet: the job posting it is still running, and it re-reads after storing the ref.
  if (ref) await converge(deps, ref, id, render);
}

async function directMessage(deps: Deps, item: Info, kind: Extract<Notice, { kind: "dm" }>["dm"]) {
  const user = Identity.slackUserIdOf(item.requester, deps.config);
  if (!user) return;
  const rule = Policy.ruleById(deps.config, item.ruleId);
  await deps.slack.postMessage(
    user,
    requesterDm(kind, {
      request: item,
      rule,
      names: namer(deps.config),
      channel: approvalsChannel(deps, item),
      now: now(deps),
    }),
  );
}

async function run(deps: Deps, item: Info, notice: Notice): Promise<void> {
  const names = namer(deps.config);
  switch (notice.kind) {
    case "approval.post":
      return postOrSync(deps, item.id, "approval", approvalsChannel(deps, item), (fresh) =>
        renderApproval(deps, fresh),
      );
    case "approval.sync":
      return sync(deps, item.id, "approval", (fresh) => renderApproval(deps, fresh));
    case "alert.post":
      return postOrSync(deps, item.id, "alert", deps.config.settings.slack.securityChannel, (fresh) =>
        renderAlert(deps, fresh),
      );
    case "alert.sync":
      return sync(deps, item.id, "alert", (fresh) => renderAlert(deps, fresh));
    case "extension.post": {
      const key: MessageKey = `extension#${notice.requestedAt}`;
      if (await deps.slackStore.getMessage(item.id, key)) return;
      const ref = await deps.slack.postMessage(
        approvalsChannel(deps, item),
        extensionMessage(item, notice.requestedAt, names),
      );
      await deps.slackStore.putMessage(item.id, key, ref);
      // Decided while we posted: the final update found no message, so lock this one now.
      const fresh = await deps.requests.get(item.id);
      if (fresh && fresh.pendingExtension?.requestedAt !== notice.requestedAt)
        await deps.slack.update(ref, extensionMessage(fresh, notice.requestedAt, names));
      return;
    }
    case "extension.final": {
      const ref = await deps.slackStore.getMessage(item.id, `extension#${notice.requestedAt}`);
      if (ref)
        await deps.slack.update(
          ref,
          extensionMessage(item, notice.requestedAt, names, { decision: notice.decision, by: notice.by }),
        );
      return;
    }
    case "dm":
      return directMessage(deps, item, notice.dm);
  }
}

/** Carries out `notices` for the request as `next` left it; each is tried, failures are logged. */
export async function apply(deps: Deps, next: Info, notices: readonly Notice[]): Promise<void> {
  for (const notice of notices) {
    try {
      await run(deps, next, notice);
    } catch (error) {
      log.error("slack notification failed", { requestId: next.id, notice: notice.kind, error });
    }
  }
}

export interface WarnResult {
  warned: number;
}

/**
 * The sweeper's part: a DM 10 minutes before a grant ends, once per end time (an extension moves the end,
 * and earns a new warning). "Once" is a conditional write claimed before sending: at most one warning even
 * with overlapping sweeps; a crash right after the claim loses that warning, never doubles it.
 */
export async function warnExpiring(deps: Deps): Promise<WarnResult> {
  const at = now(deps).getTime();
  const horizon = new Date(at + WARNING_LEAD_SECONDS * 1000);
  let warned = 0;
  for (const due of await deps.requests.listDue(horizon, 100)) {
    if (due.status !== "active" || !due.endsAt || !due.startsAt) continue;
    const endsAt = Date.parse(due.endsAt);
    // A grant no longer than the lead would be "warned" as it starts: that is noise, not a warning.
    if (endsAt <= at || endsAt - Date.parse(due.startsAt) <= WARNING_LEAD_SECONDS * 1000) continue;
    if (!Identity.slackUserIdOf(due.requester, deps.config)) continue;
    if (!(await deps.slackStore.claim(due.id, `warned#${due.endsAt}`))) continue;
    try {
      await directMessage(deps, due, "expiring");
      warned++;
    } catch (error) {
      log.error("slack expiry warning failed", { requestId: due.id, error });
    }
  }
  return { warned };
}
