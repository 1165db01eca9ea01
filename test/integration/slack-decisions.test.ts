import { afterEach, describe, expect, it } from "vitest";
import * as Audit from "../../core/audit/index.ts";
import * as Slack from "../../core/slack/index.ts";
import { snapshot } from "../helpers/broker.ts";
import {
  buttonsOf,
  createSlackHarness,
  DEMO_INSTANCE,
  type SlackHarness,
  STAGING_INSTANCE,
  textOf,
} from "../helpers/slack.ts";

const { ACTIONS } = Slack;
let slack: SlackHarness;

afterEach(async () => {
  await slack?.close();
});

async function pendingRequest(harness: SlackHarness, text = `${DEMO_INSTANCE} for 30m check the logs`) {
  await harness.command("U0ALICE", text);
  await harness.drain();
  const [request] = (await harness.broker.store.listByRequester("alice@example.com", { limit: 1 })).items;
  if (!request) throw new Error("no request was created");
  harness.fake.clearLog();
  return request;
}

async function auditTypes(harness: SlackHarness, requestId: string) {
  const page = await harness.broker.store.list({ subject: requestId, order: "asc" }, { limit: 200 });
  return page.items.map((record) => record.type);
}

async function expectChainIntact(harness: SlackHarness) {
  expect(await Audit.verify(harness.broker.store.walk(), await harness.broker.store.head())).toMatchObject({
    ok: true,
  });
}

describe("approvers racing in Slack (each click its own worker run and store, decided by DynamoDB)", () => {
  it("two approvers clicking at once on a one-approval rule: one outcome, one message update to the final state", async () => {
    slack = await createSlackHarness(undefined, { isolatedStores: true });
    const request = await pendingRequest(slack);
    const [bob, dave] = await Promise.all([
      slack.click("U0BOB", ACTIONS.approve, request.id),
      slack.click("U0DAVE", ACTIONS.approve, request.id),
    ]);
    await slack.drain();

    const stored = await slack.broker.store.get(request.id);
    expect(stored?.status).toBe("active");
    expect(stored?.approvals).toHaveLength(1);
    const winner = stored?.approvals[0]?.by === "bob@example.com" ? "U0BOB" : "U0DAVE";
    const loser = winner === "U0BOB" ? dave : bob;
    expect(slack.replies(loser.responseUrl)).toEqual([
      `Already decided by <@${winner}>: this request is active.`,
    ]);
    expect(slack.replies((winner === "U0BOB" ? bob : dave).responseUrl)).toEqual([]);

    const updates = slack.fake.callsTo("chat.update");
    expect(updates).toHaveLength(1);
    const message = await slack.message(request.id);
    expect(buttonsOf(message)).toEqual({});
    expect(textOf(message)).toContain(`Approved* by <@${winner}>`);
    const types = await auditTypes(slack, request.id);
    expect(types.filter((type) => type === "request.approval_recorded")).toHaveLength(1);
    expect(types.filter((type) => type === "grant.activated")).toHaveLength(1);
    expect(slack.dms("U0ALICE")).toHaveLength(1);
    await expectChainIntact(slack);
  });

  it("two approvers clicking at once on a two-approval rule: both count, one grant, the message ends final", async () => {
    slack = await createSlackHarness(undefined, { isolatedStores: true });
    const request = await pendingRequest(slack, `${STAGING_INSTANCE} ssh ubuntu for 1h INC-5 certs`);
    await Promise.all([
      slack.click("U0BOB", ACTIONS.approve, request.id),
      slack.click("U0DAVE", ACTIONS.approve, request.id),
    ]);
    await slack.drain();
    const stored = await slack.broker.store.get(request.id);
    expect(stored?.status).toBe("active");
    expect(stored?.approvals.map((approval) => approval.by).sort()).toEqual([
      "bob@example.com",
      "dave@example.com",
    ]);
    const message = await slack.message(request.id);
    expect(buttonsOf(message)).toEqual({});
    expect(textOf(message)).toMatch(/Approved\* by <@U0(BOB|DAVE)>, <@U0(BOB|DAVE)>/);
    expect((await auditTypes(slack, request.id)).filter((type) => type === "grant.activated")).toHaveLength(
      1,
    );
    expect(slack.dms("U0ALICE")).toHaveLength(1);
    await expectChainIntact(slack);
  });

  it("a double click records one approval; the second click is told it was already decided", async () => {
    slack = await createSlackHarness(undefined, { isolatedStores: true });
    const request = await pendingRequest(slack);
    const clicks = await Promise.all([
      slack.click("U0BOB", ACTIONS.approve, request.id),
      slack.click("U0BOB", ACTIONS.approve, request.id),
    ]);
    await slack.drain();
    expect((await slack.broker.store.get(request.id))?.approvals).toHaveLength(1);
    const replies = clicks.flatMap((click) => slack.replies(click.responseUrl));
    expect(replies).toEqual(["Already decided by <@U0BOB>: this request is active."]);
    expect(slack.fake.callsTo("chat.update")).toHaveLength(1);
    const late = await slack.click("U0DAVE", ACTIONS.deny, request.id);
    await slack.drain();
    expect(slack.replies(late.responseUrl)).toEqual(["Already decided by <@U0BOB>: this request is active."]);
    expect((await slack.broker.store.get(request.id))?.status).toBe("active");
  });
});

describe("clicks that must change nothing", () => {
  it.each([
    ["the requester", "U0ALICE", "You can't approve or deny your own request; another approver has to."],
    [
      "a non-approver (an auditor)",
      "U0CAROL",
      "You are not an approver for this request, so your click changed nothing.",
    ],
  ])("a click by %s gets an ephemeral explanation", async (_who, user, reply) => {
    slack = await createSlackHarness();
    const request = await pendingRequest(slack);
    const before = await snapshot(slack.broker);
    for (const action of [ACTIONS.approve, ACTIONS.deny]) {
      const click = await slack.click(user, action, request.id);
      await slack.drain();
      expect(slack.replies(click.responseUrl)).toEqual([reply]);
    }
    expect(await snapshot(slack.broker)).toEqual(before);
    expect((await slack.broker.store.get(request.id))?.status).toBe("pending");
    expect(slack.fake.callsTo("chat.update")).toEqual([]);
  });

  it("a button value that names no request is refused without a lookup", async () => {
    slack = await createSlackHarness();
    const click = await slack.click("U0BOB", ACTIONS.approve, "req_../../etc/passwd");
    await slack.drain();
    expect(slack.replies(click.responseUrl)).toEqual(["That button does not name a request."]);
  });
});

describe("Slack users the directory does not know", () => {
  it("get an ephemeral 'not registered' for a command, and nothing is created or enqueued", async () => {
    slack = await createSlackHarness();
    const before = await snapshot(slack.broker);
    const answer = await slack.command("U0MALLORY", `${DEMO_INSTANCE} for 30m let me in`);
    expect(answer.status).toBe(200);
    expect(answer.body.response_type).toBe("ephemeral");
    expect(answer.body.text).toMatch(/not registered .*`U0MALLORY`.*nothing was requested/s);
    await slack.drain();
    expect(await snapshot(slack.broker)).toEqual(before);
    expect(slack.jobs.accepted).toBe(0);
    expect(slack.fake.calls).toEqual([]);
  });

  it("get the same for a click, and the request is untouched", async () => {
    slack = await createSlackHarness();
    const request = await pendingRequest(slack);
    const click = await slack.click("U0MALLORY", ACTIONS.approve, request.id);
    await slack.drain();
    expect(slack.replies(click.responseUrl)[0]).toMatch(/not registered/);
    expect((await slack.broker.store.get(request.id))?.status).toBe("pending");
  });

  it("include users of another workspace when settings.slack.teamId pins one", async () => {
    slack = await createSlackHarness(
      (await import("../helpers/config.ts")).DEMO_CONFIG_TEXT.replace(
        '    securityChannel: "#security-alerts"',
        '    securityChannel: "#security-alerts"\n    teamId: T0OTHER',
      ),
    );
    const answer = await slack.command("U0ALICE", `${DEMO_INSTANCE} for 30m logs`);
    expect(answer.body.text).toMatch(/not registered/);
    expect(slack.jobs.accepted).toBe(0);
  });
});

describe("malformed and oversized input", () => {
  it("a payload that is not JSON is a 400, and nothing happens", async () => {
    slack = await createSlackHarness();
    const before = await snapshot(slack.broker);
    for (const payload of ["{not json", '{"type":', ""]) {
      const answer = await slack.post("/slack/interactions", new URLSearchParams({ payload }).toString());
      expect(answer.status).toBe(400);
      expect(answer.body.error.code).toBe(
        payload === "" ? "slack.malformed_payload" : "slack.malformed_payload",
      );
    }
    const missing = await slack.post("/slack/interactions", "nothing=here");
    expect(missing).toMatchObject({ status: 400, body: { error: { code: "slack.invalid_payload" } } });
    const wrongShape = await slack.post(
      "/slack/interactions",
      new URLSearchParams({ payload: JSON.stringify({ type: "block_actions", user: "U0BOB" }) }).toString(),
    );
    expect(wrongShape).toMatchObject({ status: 400, body: { error: { code: "slack.invalid_payload" } } });
    const notACommand = await slack.post("/slack/commands", "text=hello");
    expect(notACommand).toMatchObject({ status: 400, body: { error: { code: "slack.invalid_command" } } });
    await slack.drain();
    expect(await snapshot(slack.broker)).toEqual(before);
    expect(slack.jobs.accepted).toBe(0);
  });

  it("oversized text gets a clear ephemeral answer, and nothing is created or enqueued", async () => {
    slack = await createSlackHarness();
    const before = await snapshot(slack.broker);
    const text = `${DEMO_INSTANCE} for 30m ${"because ".repeat(250)}`.trim();
    const answer = await slack.command("U0ALICE", text);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      response_type: "ephemeral",
      text: expect.stringContaining(
        `/access text is ${text.length} characters; the limit is 1500. Nothing was requested`,
      ),
    });
    await slack.drain();
    expect(await snapshot(slack.broker)).toEqual(before);
    expect(slack.jobs.accepted).toBe(0);
  });

  it("a reason over 1000 characters (within the text limit) opens the form with the problem instead", async () => {
    slack = await createSlackHarness();
    await slack.command("U0ALICE", `${DEMO_INSTANCE} for 30m ${"x".repeat(1200)}`);
    await slack.drain();
    const reason = slack.fake
      .callsTo("views.open")[0]
      ?.fields.view.blocks.find((block: any) => block.block_id === "reason");
    expect(reason.hint.text).toBe("⚠️ The reason is 1200 characters; at most 1000");
    expect(await snapshot(slack.broker)).toEqual({ head: 0, requests: 0 });
  });
});

describe("Slack retries and repeated payloads", () => {
  it("a command delivered again (X-Slack-Retry-Num) creates one request and answers with it each time", async () => {
    slack = await createSlackHarness(undefined, { isolatedStores: true });
    const first = await slack.command("U0ALICE", `${DEMO_INSTANCE} for 30m retried`);
    const retries = await Promise.all(
      [1, 2].map((attempt) =>
        slack.command("U0ALICE", "", {
          body: first.raw,
          headers: { "X-Slack-Retry-Num": String(attempt), "X-Slack-Retry-Reason": "http_timeout" },
        }),
      ),
    );
    for (const retry of retries) expect(retry.status).toBe(200);
    await slack.drain();
    const requests = (await slack.broker.store.listAll({ limit: 10 })).items;
    expect(requests).toHaveLength(1);
    const id = requests[0]?.id ?? "";
    const replies = slack.replies(first.responseUrl);
    expect(replies).toHaveLength(3); // the same response_url: every delivery answers on it
    for (const reply of replies) expect(reply).toContain(id);
    expect(slack.fake.callsTo("chat.postMessage")).toHaveLength(1);
  });

  it("a repeated click payload decides once", async () => {
    slack = await createSlackHarness();
    const request = await pendingRequest(slack);
    await slack.click("U0BOB", ACTIONS.deny, request.id);
    await slack.click("U0BOB", ACTIONS.deny, request.id);
    await slack.drain();
    expect((await auditTypes(slack, request.id)).filter((type) => type === "request.denied")).toHaveLength(1);
    expect(slack.dms("U0ALICE")).toHaveLength(1);
  });
});
