import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as Slack from "../../core/slack/index.ts";
import { ROOT, type RunningRuntime, startRuntime } from "../helpers/runtime.ts";

const run = promisify(execFile);
let runtime: RunningRuntime;
let fake: string;

beforeAll(async () => {
  // No SLACK_BOT_TOKEN: the runtime must use its fake Slack, and the documented dev signing secret.
  runtime = await startRuntime(undefined, { env: { SLACK_BOT_TOKEN: "", SLACK_SIGNING_SECRET: "" } });
  fake = /Slack: fake Web API at (http:\/\/127\.0\.0\.1:\d+\/)api\//.exec(runtime.output())?.[1] ?? "";
});

afterAll(async () => {
  await runtime?.stop();
});

async function slackCommand(...args: string[]): Promise<string> {
  const { stdout } = await run(
    process.execPath,
    ["--import", "tsx", "scripts/slack-command.ts", "--api", runtime.url, "--fake", fake, ...args],
    { cwd: ROOT, env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" } },
  );
  return stdout;
}

describe("npm start with Slack and no workspace", () => {
  it("prints the fake Slack's URL and how to send a signed command", () => {
    expect(fake).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(runtime.output()).toContain("scripts/slack-command.ts");
  });

  it("takes a signed /access, posts the approval to the fake, and an approver's click grants and DMs", async () => {
    const asked = await slackCommand("--user", "U0ALICE", "i-0a1b2c3d4e5f60718 for 30m e2e through Slack");
    expect(asked).toContain("ack: 200");
    expect(asked).toMatch(/reply \(ephemeral\): 📨 Requested ssh as `ec2-user`/);
    expect(asked).toMatch(/chat\.postMessage → #access-approvals/);
    const id = /--click approve '(req_[0-9a-z]{26})'/.exec(asked)?.[1];
    expect(id).toBeDefined();

    const approved = await slackCommand("--user", "U0BOB", "--click", "approve", id ?? "");
    expect(approved).toContain("ack: 200 (empty)");
    expect(approved).toMatch(/chat\.update → C[0-9A-F]+\n .*Approved by bob@example.com/);
    expect(approved).toMatch(/chat\.postMessage → U0ALICE\n .*approved by <@U0BOB>/);
    expect(approved).toMatch(/--click end 'gr_[0-9a-z]{26}'/);
  });

  it("refuses a request signed with anything but its signing secret", async () => {
    const body = "team_id=T0&user_id=U0ALICE&command=%2Faccess&text=x&response_url=x&trigger_id=x";
    const timestamp = Math.floor(Date.now() / 1000);
    const answer = await fetch(`${runtime.url}/slack/commands`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": String(timestamp),
        "x-slack-signature": Slack.sign("not-the-secret", timestamp, body),
      },
      body,
    });
    expect(answer.status).toBe(401);
  });
});
