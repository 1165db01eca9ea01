// Sends a slash command or a button click to a running broker exactly as Slack would — form-encoded and
// signed with the signing secret — and prints what the broker answered and what it then sent to Slack (the
// local fake's record). For trying the Slack side without a workspace (README § Slack setup):
//
//   node --import tsx scripts/slack-command.ts --user U0ALICE "i-0a1b2c3d4e5f60718 for 30m look at the logs"
//   node --import tsx scripts/slack-command.ts --user U0BOB --click approve req_…
//
// --api (default http://127.0.0.1:8787), --fake (default http://127.0.0.1:8789/, the runtime's fake Slack),
// --secret (default $SLACK_SIGNING_SECRET or the local runtime's dev secret), --team (default T0LOCAL).
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { Slack } from "../core/slack/index.ts";
import { DEV_SLACK_SIGNING_SECRET } from "../local/slack-fake.ts";

interface Element {
  action_id: string;
  value?: string;
  text?: { text?: string };
}
interface Recorded {
  method?: string;
  id?: string;
  fields?: {
    channel?: string;
    trigger_id?: string;
    text?: string;
    blocks?: { type: string; elements?: Element[] }[];
    view?: { blocks?: { type: string; elements?: Element[] }[] };
  };
  body?: { text?: string };
}

const SHORT_ACTIONS: Record<string, string> = {
  approve: Slack.ACTIONS.approve,
  deny: Slack.ACTIONS.deny,
  "approve-extension": Slack.ACTIONS.approveExtension,
  "deny-extension": Slack.ACTIONS.denyExtension,
  extend: Slack.ACTIONS.extend,
  end: Slack.ACTIONS.end,
  review: Slack.ACTIONS.review,
};
const SHORT_NAMES = Object.fromEntries(Object.entries(SHORT_ACTIONS).map(([short, id]) => [id, short]));

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    api: { type: "string", default: "http://127.0.0.1:8787" },
    fake: { type: "string", default: "http://127.0.0.1:8789/" },
    secret: { type: "string" },
    team: { type: "string", default: "T0LOCAL" },
    user: { type: "string" },
    click: { type: "string" },
    command: { type: "string", default: "/access" },
    help: { type: "boolean", short: "h" },
  },
});

if (flags.help || !flags.user) {
  process.stdout.write(
    [
      'usage: node --import tsx scripts/slack-command.ts --user <Slack user id> "<text>"',
      "       node --import tsx scripts/slack-command.ts --user <Slack user id> --click <action> <value>",
      `actions: ${Object.keys(SHORT_ACTIONS).join(", ")}`,
      "options: --api <broker URL> --fake <fake Slack URL> --secret <signing secret> --team <team id>",
      "",
    ].join("\n"),
  );
  process.exit(flags.help ? 0 : 2);
}

const user = flags.user;
const fake = flags.fake.endsWith("/") ? flags.fake : `${flags.fake}/`;
const secret = flags.secret ?? process.env.SLACK_SIGNING_SECRET ?? DEV_SLACK_SIGNING_SECRET;
const responseUrl = `${fake}response/${randomUUID()}`;

async function fakeRecord(kind: "calls" | "responses"): Promise<Recorded[] | undefined> {
  try {
    const answer = await fetch(`${fake}_fake/${kind}`, { signal: AbortSignal.timeout(2_000) });
    return answer.ok ? ((await answer.json()) as Recorded[]) : undefined;
  } catch {
    return undefined;
  }
}

function body(): string {
  if (!flags.click) {
    return new URLSearchParams({
      token: "unused",
      team_id: flags.team,
      channel_id: "C0LOCAL",
      user_id: user,
      user_name: user.toLowerCase(),
      command: flags.command,
      text: positionals.join(" "),
      response_url: responseUrl,
      trigger_id: `${Date.now()}.${randomUUID()}`,
    }).toString();
  }
  const actionId = SHORT_ACTIONS[flags.click] ?? flags.click;
  const payload = {
    type: "block_actions",
    user: { id: user, team_id: flags.team },
    team: { id: flags.team },
    trigger_id: `${Date.now()}.${randomUUID()}`,
    response_url: responseUrl,
    actions: [
      {
        type: "button",
        action_id: actionId,
        value: positionals.join(" "),
        action_ts: `${Date.now() / 1000}`,
      },
    ],
  };
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

function show(call: Recorded): string {
  const fields = call.fields ?? {};
  const text = String(fields.text ?? "").replace(/<!date\^\d+\^[^|]+\|([^>]+)>/g, "$1");
  const lines = [
    `  ${call.method} → ${fields.channel ?? fields.trigger_id ?? ""}`,
    `    ${text.slice(0, 300)}`,
  ];
  const blocks = fields.blocks ?? fields.view?.blocks ?? [];
  for (const block of blocks)
    if (block.type === "actions")
      for (const element of block.elements ?? [])
        lines.push(
          `    [${element.text?.text}] --click ${SHORT_NAMES[element.action_id] ?? element.action_id} '${element.value}'`,
        );
  return lines.join("\n");
}

const before = (await fakeRecord("calls"))?.length ?? 0;
const raw = body();
const timestamp = Math.floor(Date.now() / 1000);
const path = flags.click ? "/slack/interactions" : "/slack/commands";
const answer = await fetch(`${flags.api}${path}`, {
  method: "POST",
  headers: {
    "content-type": "application/x-www-form-urlencoded",
    "x-slack-request-timestamp": String(timestamp),
    "x-slack-signature": Slack.sign(secret, timestamp, raw),
  },
  body: raw,
});
const ack = await answer.text();
process.stdout.write(`ack: ${answer.status} ${ack || "(empty)"}\n`);
if (!answer.ok) process.exit(1);

// The worker answers after the ack: wait until what it sent to "Slack" stops changing (at most 10 s).
let replies: Recorded[] = [];
let calls: Recorded[] | undefined = [];
let seen = -1;
for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
  await new Promise((resolve) => setTimeout(resolve, 400));
  replies = ((await fakeRecord("responses")) ?? []).filter((post) => responseUrl.endsWith(post.id ?? "-"));
  calls = await fakeRecord("calls");
  const count = replies.length + (calls?.length ?? 0);
  if (calls === undefined || (count === seen && count > before)) break;
  seen = count;
}
for (const reply of replies) process.stdout.write(`reply (ephemeral): ${String(reply.body?.text)}\n`);
if (calls === undefined)
  process.stdout.write(`(no fake Slack at ${fake}: replies went to the real workspace)\n`);
else {
  const fresh = calls.slice(before);
  if (fresh.length) process.stdout.write(`sent to Slack:\n${fresh.map(show).join("\n")}\n`);
}
