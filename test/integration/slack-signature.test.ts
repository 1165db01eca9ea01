import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import * as Slack from "../../core/slack/index.ts";
import { snapshot } from "../helpers/broker.ts";
import { createSlackHarness, DEMO_INSTANCE, SECRET, type SlackHarness } from "../helpers/slack.ts";

let slack: SlackHarness;

beforeAll(async () => {
  slack = await createSlackHarness();
});
afterAll(() => slack.close());
beforeEach(() => slack.fake.reset());

const TEXT = `${DEMO_INSTANCE} for 30m look at the logs`;

/** Nothing in the table, nothing sent to Slack, no work handed to the worker. */
async function expectNothingHappened(before: { head: number; requests: number }, jobsBefore: number) {
  await slack.drain();
  expect(await snapshot(slack.broker)).toEqual(before);
  expect(slack.fake.calls).toEqual([]);
  expect(slack.fake.responses).toEqual([]);
  expect(slack.jobs.accepted).toBe(jobsBefore);
}

describe("Slack requests are verified before anything else", () => {
  it("accepts a correctly signed slash command (base64-encoded like API Gateway) and creates one request", async () => {
    const before = await snapshot(slack.broker);
    const answer = await slack.command("U0ALICE", TEXT);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      response_type: "ephemeral",
      text: expect.stringContaining("Working on it"),
    });
    await slack.drain();
    expect((await snapshot(slack.broker)).requests).toBe(before.requests + 1);
    expect(slack.replies(answer.responseUrl)[0]).toMatch(/Requested ssh as `ec2-user`/);
  });

  it("accepts the same request delivered as plain text (isBase64Encoded false)", async () => {
    const answer = await slack.command("U0ALICE", "help", { base64: false });
    expect(answer.status).toBe(200);
    expect(answer.body.text).toContain("/access <instance>");
  });

  const now = () => Math.floor(slack.broker.clock.now.getTime() / 1000);
  const tamper = (raw: string) => raw.replace("look+at+the+logs", "look+at+the+logs+as+root");
  const cases: [string, (raw: string) => Promise<{ status: number; body: any }>][] = [
    [
      "a tampered body",
      (raw) => {
        const ts = now();
        return slack.post("/slack/commands", tamper(raw), {
          timestamp: ts,
          signature: Slack.sign(SECRET, ts, raw),
        });
      },
    ],
    [
      "a tampered timestamp",
      (raw) =>
        slack.post("/slack/commands", raw, {
          timestamp: now() - 60,
          signature: Slack.sign(SECRET, now(), raw),
        }),
    ],
    [
      "a stale timestamp (5 min 1 s old)",
      (raw) => slack.post("/slack/commands", raw, { timestamp: now() - 301 }),
    ],
    [
      "a future timestamp (5 min 1 s ahead)",
      (raw) => slack.post("/slack/commands", raw, { timestamp: now() + 301 }),
    ],
    ["no signature header", (raw) => slack.post("/slack/commands", raw, { signature: null })],
    ["no timestamp header", (raw) => slack.post("/slack/commands", raw, { noTimestamp: true })],
    [
      "no Slack headers at all",
      (raw) => slack.post("/slack/commands", raw, { signature: null, noTimestamp: true }),
    ],
    ["the wrong secret", (raw) => slack.post("/slack/commands", raw, { secret: "some-other-apps-secret" })],
    [
      "a signature over the base64 text instead of the body",
      (raw) => {
        const ts = now();
        const encoded = Buffer.from(raw).toString("base64");
        return slack.post("/slack/commands", raw, {
          timestamp: ts,
          signature: Slack.sign(SECRET, ts, encoded),
        });
      },
    ],
    ["a v1 signature", (raw) => slack.post("/slack/commands", raw, { signature: `v1=${"0".repeat(64)}` })],
  ];

  it.each(cases)("rejects %s with 401, and nothing is created, sent or enqueued", async (_name, send) => {
    const before = await snapshot(slack.broker);
    const jobs = slack.jobs.accepted;
    const raw = new URLSearchParams({
      team_id: "T0TEAM",
      user_id: "U0ALICE",
      command: "/access",
      text: TEXT,
      response_url: slack.fake.responseUrl(),
      trigger_id: "1.2.3",
    }).toString();
    const answer = await send(raw);
    expect(answer.status).toBe(401);
    expect(answer.body).toEqual({
      error: { code: "slack.unverified", message: "Missing or invalid Slack signature" },
    });
    await expectNothingHappened(before, jobs);
  });

  it("rejects a forged button click the same way: no decision is made", async () => {
    const created = await slack.broker.call("alice@example.com", "POST", "/requests", {
      body: { instanceId: DEMO_INSTANCE, method: "ssh", durationSeconds: 600, reason: "forgery test" },
    });
    await slack.drain();
    slack.fake.reset();
    const before = await snapshot(slack.broker);
    const jobs = slack.jobs.accepted;
    const payload = JSON.stringify({
      type: "block_actions",
      user: { id: "U0BOB" },
      team: { id: "T0TEAM" },
      actions: [{ action_id: Slack.ACTIONS.approve, value: created.body.id }],
      response_url: slack.fake.responseUrl(),
    });
    const answer = await slack.post("/slack/interactions", new URLSearchParams({ payload }).toString(), {
      secret: "attacker-guess",
    });
    expect(answer.status).toBe(401);
    await expectNothingHappened(before, jobs);
    expect((await slack.broker.store.get(created.body.id))?.status).toBe("pending");
  });

  it("logs one line for a rejection and nothing else", async () => {
    const lines: string[] = [];
    const capture = (chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    };
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(capture);
    const stdout = vi.spyOn(process.stdout, "write").mockImplementation(capture);
    try {
      await slack.post("/slack/commands", "text=anything&user_id=U0ALICE", { secret: "wrong" });
    } finally {
      stderr.mockRestore();
      stdout.mockRestore();
    }
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? "{}")).toMatchObject({
      level: "warn",
      message: "slack request rejected",
      reason: "bad_signature",
    });
    expect(lines[0]).not.toContain("anything");
  });

  it("answers Slack's ssl_check with an empty 200 and does nothing", async () => {
    const before = await snapshot(slack.broker);
    const jobs = slack.jobs.accepted;
    const answer = await slack.post("/slack/commands", "ssl_check=1&token=abc123", {
      signature: null,
      noTimestamp: true,
    });
    expect(answer).toEqual({ status: 200, body: undefined });
    await expectNothingHappened(before, jobs);
  });

  it("refuses oversized bodies before hashing them", async () => {
    const before = await snapshot(slack.broker);
    const answer = await slack.post("/slack/commands", `text=${"a".repeat(Slack.MAX_BODY_BYTES)}`);
    expect(answer.status).toBe(413);
    await expectNothingHappened(before, slack.jobs.accepted);
  });
});

describe("a stage without a Slack app (the deploy placeholder)", () => {
  it.each([undefined, Slack.SLACK_PLACEHOLDER])(
    "answers 404 to everything, even requests signed with %s",
    async (secret) => {
      const disabled = await createSlackHarness();
      try {
        disabled.ingress.signingSecret = secret;
        const before = await snapshot(disabled.broker);
        const answer = await disabled.command("U0ALICE", TEXT, { secret: secret ?? "" });
        expect(answer.status).toBe(404);
        expect(answer.body.error.code).toBe("slack.not_configured");
        await disabled.drain();
        expect(await snapshot(disabled.broker)).toEqual(before);
        expect(disabled.fake.calls).toEqual([]);
      } finally {
        await disabled.close();
      }
    },
  );
});
