import { mkdtempSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import * as Slack from "../../core/slack/index.ts";
import { createSlackHandler } from "../../functions/slack/app.ts";
import { createDevIssuer } from "../../local/issuer.ts";
import { createDevServer, listen } from "../../local/server.ts";
import { snapshot } from "../helpers/broker.ts";
import {
  buttonsOf,
  createSlackHarness,
  DEMO_INSTANCE,
  SECRET,
  type SlackHarness,
  STAGING_INSTANCE,
  textOf,
} from "../helpers/slack.ts";

const { ACTIONS } = Slack;
let slack: SlackHarness;

afterEach(async () => {
  await slack?.close();
});

async function requestsOf(harness: SlackHarness, email: string) {
  return (await harness.broker.store.listByRequester(email, { limit: 50 })).items;
}

async function auditTypes(harness: SlackHarness, requestId: string) {
  const page = await harness.broker.store.list({ subject: requestId, order: "asc" }, { limit: 200 });
  return page.items.map((record) => record.type);
}

describe("the Slack flow, end to end against DynamoDB Local and the fake Slack", () => {
  it("slash command → approval message → approver's click → active grant → DM → expiry warning → expiry DM", async () => {
    slack = await createSlackHarness();
    const { broker, fake } = slack;

    const ack = await slack.command("U0ALICE", `${DEMO_INSTANCE} ssh for 30m INC-42 disk full on /var`);
    expect(ack.status).toBe(200);
    expect(ack.body).toEqual({
      response_type: "ephemeral",
      replace_original: false,
      text: `⏳ Working on it: ssh on ${DEMO_INSTANCE}…`,
    });
    await slack.drain();

    const [request] = await requestsOf(slack, "alice@example.com");
    expect(request).toMatchObject({
      status: "pending",
      ruleId: "dev-demo",
      method: "ssh",
      osUser: "ec2-user", // the rule's only OS user, as the API defaults it
      durationSeconds: 1800,
      ticket: "INC-42",
      reason: "INC-42 disk full on /var",
    });
    if (!request) throw new Error("no request");
    expect(slack.replies(ack.responseUrl)).toEqual([
      expect.stringMatching(
        new RegExp(`Requested ssh as \`ec2-user\` on \`${DEMO_INSTANCE}\` for 30m — \`${request.id}\``),
      ),
    ]);

    const posted = fake
      .callsTo("chat.postMessage")
      .filter((call) => call.fields.channel === "#access-approvals");
    expect(posted).toHaveLength(1);
    expect(posted[0]?.token).toBe(fake.token);
    expect(buttonsOf(posted[0]?.fields)).toEqual({
      [ACTIONS.approve]: request.id,
      [ACTIONS.deny]: request.id,
    });
    const shown = textOf(posted[0]?.fields);
    for (const part of [
      "<@U0ALICE>",
      "INC-42 disk full on /var",
      "`dev-demo`",
      "🟢 low",
      "No earlier requests",
    ])
      expect(shown).toContain(part);

    const click = await slack.click("U0BOB", ACTIONS.approve, request.id);
    expect(click).toMatchObject({ status: 200, body: undefined });
    await slack.drain();

    const active = await broker.store.get(request.id);
    expect(active).toMatchObject({
      status: "active",
      approvals: [expect.objectContaining({ by: "bob@example.com" })],
    });
    const message = await slack.message(request.id);
    expect(message?.updates).toBe(1);
    expect(buttonsOf(message)).toEqual({});
    expect(textOf(message)).toMatch(/Approved\* by <@U0BOB> · active until/);
    expect(slack.replies(click.responseUrl)).toEqual([]);

    const [approvedDm] = slack.dms("U0ALICE");
    expect(textOf(approvedDm?.fields)).toContain(`\`\`\`access ssh ${request.grantId}\`\`\``);
    expect(textOf(approvedDm?.fields)).toContain("approved by <@U0BOB>");
    expect(buttonsOf(approvedDm?.fields)).toEqual({
      [ACTIONS.extend]: `${request.grantId}|1800|${active?.endsAt}`,
      [ACTIONS.end]: request.grantId,
    });

    broker.clock.advance(19 * 60); // 11 minutes left: not yet
    expect((await slack.sweep()).warned).toBe(0);
    broker.clock.advance(2 * 60); // 9 minutes left
    expect((await slack.sweep()).warned).toBe(1);
    expect((await slack.sweep()).warned).toBe(0); // once
    const warnings = slack.dms("U0ALICE").filter((dm) => textOf(dm.fields).includes("⏰"));
    expect(warnings).toHaveLength(1);
    expect(textOf(warnings[0]?.fields)).toContain("in about 9 minutes");
    expect(Object.keys(buttonsOf(warnings[0]?.fields))).toEqual([ACTIONS.extend, ACTIONS.end]);

    broker.clock.advance(10 * 60);
    expect((await slack.sweep()).expired).toBe(1);
    const last = slack.dms("U0ALICE").at(-1);
    expect(textOf(last?.fields)).toMatch(
      /Your access to ssh as `ec2-user` on `i-0a1b2c3d4e5f60718` .* has ended/,
    );
    expect(buttonsOf(last?.fields)).toEqual({});
    expect(slack.dms("U0ALICE")).toHaveLength(3);
    expect(await auditTypes(slack, request.id)).toEqual([
      "request.created",
      "request.approval_recorded",
      "request.approved",
      "grant.activated",
      "grant.expired",
    ]);
  });

  it("shows quorum progress, names both deciders, and tells the approvers what their click did", async () => {
    slack = await createSlackHarness();
    await slack.command("U0ALICE", `${STAGING_INSTANCE} ssh ubuntu for 1h CHG-7 rotate certificates`);
    await slack.drain();
    const [request] = await requestsOf(slack, "alice@example.com");
    if (!request) throw new Error("no request");
    expect(request).toMatchObject({
      ruleId: "staging-two-person",
      osUser: "ubuntu",
      ticket: "CHG-7",
      approvalsRequired: 2,
    });
    expect(slack.fake.callsTo("chat.postMessage")[0]?.fields.channel).toBe("#staging-approvals");

    const bob = await slack.click("U0BOB", ACTIONS.approve, request.id);
    await slack.drain();
    expect(slack.replies(bob.responseUrl)).toEqual(["Recorded your approval: 1 of 2."]);
    let message = await slack.message(request.id);
    expect(textOf(message)).toContain("1 of 2 approvals:* <@U0BOB>");
    expect(Object.keys(buttonsOf(message))).toHaveLength(2);
    expect(textOf(message)).toContain("🔴 high");

    const again = await slack.click("U0BOB", ACTIONS.approve, request.id);
    await slack.drain();
    expect(slack.replies(again.responseUrl)).toEqual([
      "You already approved this; each approver counts once.",
    ]);

    await slack.click("U0DAVE", ACTIONS.approve, request.id);
    await slack.drain();
    message = await slack.message(request.id);
    expect(textOf(message)).toMatch(/Approved\* by <@U0BOB>, <@U0DAVE>/);
    expect(buttonsOf(message)).toEqual({});
    expect((await slack.broker.store.get(request.id))?.status).toBe("active");
  });

  it("a denial locks the message and tells the requester who denied", async () => {
    slack = await createSlackHarness();
    await slack.command("U0ALICE", `${DEMO_INSTANCE} for 15m peek`);
    await slack.drain();
    const [request] = await requestsOf(slack, "alice@example.com");
    if (!request) throw new Error("no request");
    await slack.click("U0DAVE", ACTIONS.deny, request.id);
    await slack.drain();
    expect((await slack.broker.store.get(request.id))?.status).toBe("denied");
    expect(textOf(await slack.message(request.id))).toMatch(/Denied\* by <@U0DAVE>/);
    expect(textOf(slack.dms("U0ALICE")[0]?.fields)).toMatch(/was denied by <@U0DAVE>/);
  });

  it("a request nobody decides times out: the message says so and the requester hears it", async () => {
    slack = await createSlackHarness();
    await slack.command("U0ALICE", `${DEMO_INSTANCE} for 15m peek`);
    await slack.drain();
    const [request] = await requestsOf(slack, "alice@example.com");
    if (!request) throw new Error("no request");
    slack.broker.clock.advance(31 * 60);
    expect((await slack.sweep()).timedOut).toBe(1);
    expect(textOf(await slack.message(request.id))).toMatch(/Timed out\*: nobody decided within 30m/);
    expect(buttonsOf(await slack.message(request.id))).toEqual({});
    expect(textOf(slack.dms("U0ALICE")[0]?.fields)).toMatch(/timed out/);
  });

  it("Extend asks the approvers again (the rule needs approval), End now revokes as the requester", async () => {
    slack = await createSlackHarness();
    await slack.command("U0ALICE", `${DEMO_INSTANCE} for 30m deploy`);
    await slack.drain();
    const [request] = await requestsOf(slack, "alice@example.com");
    if (!request) throw new Error("no request");
    await slack.click("U0BOB", ACTIONS.approve, request.id);
    await slack.drain();
    const extendValue = buttonsOf(slack.dms("U0ALICE")[0]?.fields)[ACTIONS.extend] ?? "";

    await slack.click("U0ALICE", ACTIONS.extend, extendValue);
    await slack.drain();
    const asked = await slack.broker.store.get(request.id);
    expect(asked?.pendingExtension).toMatchObject({ durationSeconds: 1800 });
    expect(textOf(slack.dms("U0ALICE").at(-1)?.fields)).toMatch(/waits for approval in #access-approvals/);
    const extensionKey = `extension#${asked?.pendingExtension?.requestedAt}` as const;
    const prompt = await slack.message(request.id, extensionKey);
    const approveValue = buttonsOf(prompt)[ACTIONS.approveExtension];
    expect(approveValue).toBe(`${request.id}|${asked?.pendingExtension?.requestedAt}`);

    // Alice cannot approve her own extension; Dave can.
    const own = await slack.click("U0ALICE", ACTIONS.approveExtension, approveValue ?? "");
    await slack.drain();
    expect(slack.replies(own.responseUrl)).toEqual([
      "You can't approve or deny your own request; another approver has to.",
    ]);
    await slack.click("U0DAVE", ACTIONS.approveExtension, approveValue ?? "");
    await slack.drain();
    const extended = await slack.broker.store.get(request.id);
    expect(extended?.endsAt).toBe(new Date(Date.parse(asked?.endsAt ?? "") + 1_800_000).toISOString());
    expect(textOf(await slack.message(request.id, extensionKey))).toMatch(/Extended\* by <@U0DAVE>/);
    expect(buttonsOf(await slack.message(request.id, extensionKey))).toEqual({});
    expect(textOf(slack.dms("U0ALICE").at(-1)?.fields)).toMatch(/Extended: your access .* now lasts until/);

    // The first DM's Extend button was for the old end time: clicking it again extends nothing.
    const stale = await slack.click("U0ALICE", ACTIONS.extend, extendValue);
    await slack.drain();
    expect(slack.replies(stale.responseUrl)).toEqual([
      "Already extended — see the latest message for the new end time.",
    ]);
    expect((await slack.broker.store.get(request.id))?.pendingExtension).toBeUndefined();

    await slack.click("U0ALICE", ACTIONS.end, request.grantId);
    await slack.drain();
    expect(await slack.broker.store.get(request.id)).toMatchObject({
      status: "revoked",
      decision: { by: "alice@example.com", reason: "ended from Slack" },
    });
    expect(textOf(slack.dms("U0ALICE").at(-1)?.fields)).toMatch(/You ended your access/);
    const endAgain = await slack.click("U0ALICE", ACTIONS.end, request.grantId);
    await slack.drain();
    expect(slack.replies(endAgain.responseUrl)).toEqual(["Cannot revoke: the grant is revoked."]);
  });

  it("announces requests and decisions made through the HTTP API too", async () => {
    slack = await createSlackHarness();
    const created = await slack.broker.call("alice@example.com", "POST", "/requests", {
      body: { instanceId: DEMO_INSTANCE, method: "ssh", durationSeconds: 600, reason: "from the CLI" },
    });
    await slack.drain();
    expect(buttonsOf(await slack.message(created.body.id))).toEqual({
      [ACTIONS.approve]: created.body.id,
      [ACTIONS.deny]: created.body.id,
    });
    await slack.broker.call("bob@example.com", "POST", `/requests/${created.body.id}/approve`);
    await slack.drain();
    expect(buttonsOf(await slack.message(created.body.id))).toEqual({});
    expect(textOf(slack.dms("U0ALICE")[0]?.fields)).toContain(`access ssh ${created.body.grantId}`);
  });
});

describe("the request form (views.open, then view_submission)", () => {
  it("opens pre-filled with what was understood, with the problems shown, when the one-liner is incomplete", async () => {
    slack = await createSlackHarness();
    const ack = await slack.command("U0ALICE", `${DEMO_INSTANCE} tunnel 22 for 45m`);
    expect(ack).toMatchObject({ status: 200, body: undefined });
    await slack.drain();
    const [open] = slack.fake.callsTo("views.open");
    expect(open?.fields.trigger_id).toBe(ack.triggerId);
    const block = (id: string) =>
      open?.fields.view.blocks.find((candidate: any) => candidate.block_id === id);
    expect(block("instance").element.initial_value).toBe(DEMO_INSTANCE);
    expect(block("method").element.initial_option.value).toBe("tunnel");
    expect(block("target").element.initial_value).toBe("22");
    expect(block("duration").element.initial_value).toBe("45m");
    expect(block("reason").hint.text).toBe("⚠️ Say why you need access");
    expect(block("break_glass")).toBeUndefined(); // Alice may not break glass anywhere
    expect(await requestsOf(slack, "alice@example.com")).toEqual([]);
  });

  it("opens with the rule's complaint on its field when the policy refuses the one-liner as asked", async () => {
    slack = await createSlackHarness();
    await slack.command("U0ALICE", `${STAGING_INSTANCE} ssh ubuntu for 1h rotate certificates`);
    await slack.drain();
    const [open] = slack.fake.callsTo("views.open");
    const ticket = open?.fields.view.blocks.find((candidate: any) => candidate.block_id === "ticket");
    expect(ticket.hint.text).toBe("⚠️ a ticket is required");
    expect(await requestsOf(slack, "alice@example.com")).toEqual([]);
  });

  it("falls back to a text reply when the form cannot be opened (trigger expired)", async () => {
    slack = await createSlackHarness();
    slack.fake.failNext("views.open", "expired_trigger_id");
    const ack = await slack.command("U0ALICE", `${DEMO_INSTANCE} for 10m`);
    await slack.drain();
    expect(slack.replies(ack.responseUrl)[0]).toMatch(/^Nothing was requested:\n• Say why you need access/);
  });

  it("answers errors per field on submit, and creates the request once it is right", async () => {
    slack = await createSlackHarness();
    const bad = await slack.submit("U0ALICE", {
      instance: "i-nope",
      method: "ssh",
      duration: "forever",
      reason: "",
    });
    expect(bad).toEqual({
      status: 200,
      body: {
        response_action: "errors",
        errors: {
          instance: "An instance id: i- and 8 or 17 hex digits",
          duration: "A duration like 30m, 1h or 1h30m",
          reason: "Say why you need access",
        },
      },
    });
    const refused = await slack.submit("U0ALICE", {
      instance: STAGING_INSTANCE,
      method: "ssh",
      target: "ubuntu",
      duration: "1h",
      reason: "certs",
      ticket: "JIRA-1",
    });
    expect(refused.body).toEqual({
      response_action: "errors",
      errors: { ticket: "ticket must match /^(INC|CHG)-\\d+$/" },
    });
    const unknown = await slack.submit("U0ALICE", {
      instance: "i-00000000000000001",
      method: "ssh",
      duration: "1h",
      reason: "x",
    });
    expect(unknown.body.errors.instance).toMatch(/not part of any target/);
    expect(await snapshot(slack.broker)).toEqual({ head: 0, requests: 0 });

    const viewId = "V0FORM0001";
    const good = await slack.submit(
      "U0ALICE",
      { instance: DEMO_INSTANCE, method: "tunnel", duration: "1h", reason: "db migration" },
      viewId,
    );
    expect(good.body).toMatchObject({ response_action: "update", view: { type: "modal" } });
    expect(textOf({ blocks: good.body.view.blocks })).toMatch(
      /a tunnel to port 22 .*\nWaiting for 1 approval in #access-approvals/s,
    );
    const again = await slack.submit(
      "U0ALICE",
      { instance: DEMO_INSTANCE, method: "tunnel", duration: "1h", reason: "db migration" },
      viewId,
    );
    expect(again.body.response_action).toBe("update");
    await slack.drain();
    const requests = await requestsOf(slack, "alice@example.com");
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ method: "tunnel", port: 22, durationSeconds: 3600 });
    expect(
      slack.fake.callsTo("chat.postMessage").filter((call) => call.fields.channel === "#access-approvals"),
    ).toHaveLength(1);
  });
});

describe("break-glass from Slack", () => {
  it("is active at once, alerts the security channel with a review task, and DMs the connect command", async () => {
    slack = await createSlackHarness();
    const ack = await slack.command(
      "U0BOB",
      `${DEMO_INSTANCE} ssh for 30m --break-glass prod is down INC-99`,
    );
    expect(ack.body.text).toBe(`⏳ Working on it: break-glass ssh on ${DEMO_INSTANCE}…`);
    await slack.drain();
    const [request] = await requestsOf(slack, "bob@example.com");
    if (!request) throw new Error("no request");
    expect(request).toMatchObject({
      status: "active",
      breakGlass: true,
      review: { status: "pending" },
      approvals: [],
    });
    expect(slack.replies(ack.responseUrl)[0]).toMatch(/Break-glass: active now, without approval/);
    expect(
      slack.fake.callsTo("chat.postMessage").filter((call) => call.fields.channel === "#access-approvals"),
    ).toEqual([]);
    const alert = await slack.message(request.id, "alert");
    expect(
      slack.fake.callsTo("chat.postMessage").find((call) => call.fields.channel === "#security-alerts"),
    ).toBeDefined();
    expect(textOf(alert)).toContain("<@U0BOB> broke the glass");
    expect(buttonsOf(alert)).toEqual({ [ACTIONS.review]: request.id });
    expect(textOf(slack.dms("U0BOB")[0]?.fields)).toContain(`access ssh ${request.grantId}`);

    for (const [user, reply] of [
      ["U0BOB", "You cannot review your own break-glass access."],
      ["U0DAVE", "Only auditors and admins can mark break-glass access reviewed."],
    ] as const) {
      const refused = await slack.click(user, ACTIONS.review, request.id);
      await slack.drain();
      expect(slack.replies(refused.responseUrl)).toEqual([reply]);
    }
    await slack.click("U0CAROL", ACTIONS.review, request.id);
    await slack.drain();
    expect((await slack.broker.store.get(request.id))?.review).toMatchObject({
      status: "done",
      by: "carol@example.com",
    });
    expect(textOf(await slack.message(request.id, "alert"))).toMatch(/Reviewed\* by <@U0CAROL>/);
    expect(buttonsOf(await slack.message(request.id, "alert"))).toEqual({});
    expect(await auditTypes(slack, request.id)).toContain("breakglass.reviewed");
    const late = await slack.click("U0CAROL", ACTIONS.review, request.id);
    await slack.drain();
    expect(slack.replies(late.responseUrl)).toEqual(["Already reviewed by <@U0CAROL>."]);
  });

  it("is refused to someone no rule lets break glass, and offered in the form to someone one does", async () => {
    slack = await createSlackHarness();
    const ack = await slack.command("U0ALICE", `${DEMO_INSTANCE} for 30m --break-glass prod is down`);
    await slack.drain();
    expect(slack.replies(ack.responseUrl)[0]).toMatch(/No rule lets alice@example.com use ssh/);
    expect(await requestsOf(slack, "alice@example.com")).toEqual([]);

    await slack.command("U0BOB", `${DEMO_INSTANCE} for 30m`);
    await slack.drain();
    const form = slack.fake.callsTo("views.open")[0]?.fields.view;
    expect(form.blocks.find((block: any) => block.block_id === "break_glass")).toBeDefined();
    const submitted = await slack.submit("U0BOB", {
      instance: DEMO_INSTANCE,
      method: "ssh",
      duration: "30m",
      reason: "prod is down",
      breakGlass: true,
    });
    expect(submitted.body.response_action).toBe("update");
    await slack.drain();
    const [request] = await requestsOf(slack, "bob@example.com");
    expect(request).toMatchObject({ status: "active", breakGlass: true });
  });
});

describe("the dev server", () => {
  it("routes /slack/* to the Slack handler without a token, with the raw bytes (base64 like API Gateway)", async () => {
    slack = await createSlackHarness();
    const issuer = await createDevIssuer(
      "http://127.0.0.1/dev",
      join(mkdtempSync(join(tmpdir(), "issuer-")), "k.jwk"),
    );
    const server: Server = createDevServer({
      deps: slack.broker.deps,
      issuer,
      port: 0,
      slack: createSlackHandler(() => slack.ingress),
    }).server;
    const base = `http://127.0.0.1:${await listen(server, 0)}`;
    try {
      const body = new URLSearchParams({
        team_id: "T0TEAM",
        user_id: "U0ALICE",
        command: "/access",
        text: `${DEMO_INSTANCE} for 30m over real HTTP ✓`,
        response_url: slack.fake.responseUrl(),
        trigger_id: "9.9.9",
      }).toString();
      const timestamp = String(Math.floor(slack.broker.clock.now.getTime() / 1000));
      const send = (signature: string) =>
        fetch(`${base}/slack/commands`, {
          method: "POST",
          headers: {
            "content-type": "application/x-www-form-urlencoded",
            "x-slack-request-timestamp": timestamp,
            "x-slack-signature": signature,
          },
          body,
        });
      expect((await send(Slack.sign("wrong", timestamp, body))).status).toBe(401);
      const ok = await send(Slack.sign(SECRET, timestamp, body));
      expect(ok.status).toBe(200);
      await slack.drain();
      const [request] = await requestsOf(slack, "alice@example.com");
      expect(request?.reason).toBe("over real HTTP ✓");
      expect((await fetch(`${base}/requests`)).status).toBe(401); // the rest still needs a token
    } finally {
      await new Promise<void>((done) => server.close(() => done()));
    }
  });
});
