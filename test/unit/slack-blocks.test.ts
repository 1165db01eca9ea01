import { describe, expect, it } from "vitest";
import { parseConfig } from "../../core/policy/yaml.ts";
import type { Info } from "../../core/request/schema.ts";
import {
  ACTIONS,
  approvalMessage,
  breakGlassAlert,
  connectCommand,
  escapeText,
  extendStep,
  namer,
  requesterDm,
  requestModal,
} from "../../core/slack/blocks.ts";
import { noticesOf } from "../../core/slack/notices.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";
import { pending } from "../helpers/requests.ts";
import { buttonsOf, textOf } from "../helpers/slack.ts";

const config = parseConfig(DEMO_CONFIG_TEXT);
const names = namer(config);
const rule = (id: string) => config.rules.find((candidate) => candidate.id === id);
const T0 = "2026-11-21T10:00:00.000Z";

/** Alice's pending request, with a reason that tries Slack mrkdwn injection and a ticket. */
const item = (overrides: Partial<Info> = {}): Info =>
  pending({ reason: "disk <!channel> full & <https://evil.example|click>", ticket: "INC-42", ...overrides });

const approved = (by: string[], overrides: Partial<Info> = {}) =>
  item({
    status: "active",
    version: 2,
    approvals: by.map((email) => ({ by: email, at: T0 })),
    startsAt: T0,
    endsAt: "2026-11-21T10:30:00.000Z",
    ...overrides,
  });

describe("the approval message", () => {
  it("shows who, what, why, ticket, rule, risk and history, with Approve / Deny carrying the request id", () => {
    const history = [
      item({
        id: "req_01m7y9ms5fjay2j5d0d4qd3aaa",
        status: "expired",
        approvals: [{ by: "bob@example.com", at: T0 }],
      }),
      item({
        id: "req_01m7y9ms5fjay2j5d0d4qd3bbb",
        status: "denied",
        decision: { by: "dave@example.com", at: T0 },
      }),
    ];
    const message = approvalMessage({ request: item(), rule: rule("dev-demo"), names, history });
    const text = textOf(message);
    expect(text).toContain("<@U0ALICE>");
    expect(text).toContain("ssh as `ec2-user` on `i-0a1b2c3d4e5f60718` for *30m*");
    expect(text).toContain("INC-42");
    expect(text).toContain("`dev-demo`");
    expect(text).toContain("🟢 low");
    expect(text).toContain("Recent requests by <@U0ALICE>");
    expect(text).toMatch(/expired, approved by <@U0BOB>/);
    expect(text).toMatch(/denied by <@U0DAVE>/);
    expect(text).toContain("Needs 1 approval from `group:sre-leads`");
    expect(buttonsOf(message)).toEqual({ [ACTIONS.approve]: item().id, [ACTIONS.deny]: item().id });
    expect(message.text).toContain(item().id);
  });

  it("escapes what the requester typed, so a reason cannot ping a channel or fake a link", () => {
    const text = textOf(approvalMessage({ request: item(), rule: rule("dev-demo"), names, history: [] }));
    expect(text).toContain("disk &lt;!channel&gt; full &amp; &lt;https://evil.example|click&gt;");
    expect(text).not.toContain("<!channel>");
    expect(escapeText("<@U1>&")).toBe("&lt;@U1&gt;&amp;");
  });

  it("shows quorum progress while pending", () => {
    const message = approvalMessage({
      request: item({
        ruleId: "staging-two-person",
        approvalsRequired: 2,
        approvals: [{ by: "bob@example.com", at: T0 }],
      }),
      rule: rule("staging-two-person"),
      names,
      history: [],
    });
    expect(textOf(message)).toContain("1 of 2 approvals:* <@U0BOB>");
    expect(textOf(message)).toContain("🔴 high");
    expect(Object.keys(buttonsOf(message))).toHaveLength(2);
  });

  it.each<[string, Info, RegExp]>([
    [
      "approved",
      approved(["bob@example.com", "dave@example.com"]),
      /Approved\* by <@U0BOB>, <@U0DAVE> · active until/,
    ],
    [
      "denied",
      item({ status: "denied", decision: { by: "bob@example.com", at: T0, reason: "not now" } }),
      /Denied\* by <@U0BOB>: not now/,
    ],
    ["timed out", item({ status: "timed-out" }), /Timed out\*: nobody decided within 30m/],
    ["cancelled", item({ status: "cancelled" }), /Cancelled\* by the requester/],
  ])("once %s, names the outcome and has no buttons", (_name, request, pattern) => {
    const message = approvalMessage({ request, rule: rule("dev-demo"), names, history: [] });
    expect(textOf(message)).toMatch(pattern);
    expect(buttonsOf(message)).toEqual({});
  });
});

describe("the requester's DMs", () => {
  it.each<[Partial<Info>, string]>([
    [{}, "access ssh gr_01m7y9ms5fjay2j5d0d4qd3wev"],
    [
      { method: "tunnel", osUser: undefined, port: 22 },
      "access tunnel gr_01m7y9ms5fjay2j5d0d4qd3wev --local-port 2222",
    ],
    [
      { method: "rdp", osUser: undefined, port: 3389 },
      "access tunnel gr_01m7y9ms5fjay2j5d0d4qd3wev --local-port 13389",
    ],
    [
      { grantMode: "iam" },
      "aws ec2-instance-connect ssh --instance-id i-0a1b2c3d4e5f60718 --os-user ec2-user",
    ],
    [
      { grantMode: "iam", method: "tunnel", osUser: undefined, port: 22 },
      "aws ec2-instance-connect open-tunnel --instance-id i-0a1b2c3d4e5f60718 --remote-port 22 --local-port 2222",
    ],
  ])("give the exact command to connect (%o)", (overrides, command) => {
    expect(connectCommand(approved(["bob@example.com"], overrides))).toBe(command);
    const dm = requesterDm("approved", {
      request: approved(["bob@example.com"], overrides),
      rule: rule("dev-demo"),
      names,
    });
    expect(textOf(dm)).toContain(`\`\`\`${command}\`\`\``);
  });

  it("offer Extend (what the rule still allows) and End now while access lasts", () => {
    const dm = requesterDm("approved", {
      request: approved(["bob@example.com"]),
      rule: rule("dev-demo"),
      names,
    });
    expect(textOf(dm)).toContain("approved by <@U0BOB>");
    expect(buttonsOf(dm)).toEqual({
      [ACTIONS.extend]: "gr_01m7y9ms5fjay2j5d0d4qd3wev|1800|2026-11-21T10:30:00.000Z",
      [ACTIONS.end]: "gr_01m7y9ms5fjay2j5d0d4qd3wev",
    });
    // dev-demo allows 2h in total: after 1h30m of extensions only 30m are left, after 2h nothing.
    expect(extendStep(approved([], { extendedSeconds: 5400 - 1800 }), rule("dev-demo"))).toBe(1800);
    expect(extendStep(approved([], { extendedSeconds: 7200 - 1800 }), rule("dev-demo"))).toBe(0);
    expect(extendStep(approved([]), rule("staging-two-person"))).toBe(0);
    const noExtend = requesterDm("expiring", {
      request: approved([], { ruleId: "staging-two-person" }),
      rule: rule("staging-two-person"),
      names,
      now: new Date("2026-11-21T10:21:00.000Z"),
    });
    expect(Object.keys(buttonsOf(noExtend))).toEqual([ACTIONS.end]);
    expect(textOf(noExtend)).toContain("in about 9 minutes");
  });

  it.each<["denied" | "timed-out" | "revoked" | "expired", Partial<Info>, RegExp]>([
    [
      "denied",
      { status: "denied", decision: { by: "bob@example.com", at: T0, reason: "use staging" } },
      /denied by <@U0BOB>: use staging/,
    ],
    ["timed-out", { status: "timed-out" }, /timed out/],
    ["revoked", { status: "revoked", decision: { by: "bob@example.com", at: T0 } }, /revoked by <@U0BOB>/],
    [
      "revoked",
      { status: "revoked", decision: { by: "alice@example.com", at: T0 } },
      /You ended your access/,
    ],
    ["expired", { status: "expired", endedAt: T0 }, /has ended/],
  ])("tell about %s without buttons", (kind, overrides, pattern) => {
    const dm = requesterDm(kind, { request: item(overrides), rule: rule("dev-demo"), names });
    expect(textOf(dm)).toMatch(pattern);
    expect(buttonsOf(dm)).toEqual({});
  });
});

describe("the break-glass alert", () => {
  it("carries a Mark reviewed task until someone reviewed it, then names them", () => {
    const used = approved([], { breakGlass: true, review: { status: "pending" }, approvalsRequired: 0 });
    const alert = breakGlassAlert(used, rule("dev-demo"), names);
    expect(textOf(alert)).toContain("<@U0ALICE> broke the glass");
    expect(buttonsOf(alert)).toEqual({ [ACTIONS.review]: used.id });
    const reviewed = breakGlassAlert(
      { ...used, review: { status: "done", by: "carol@example.com", at: T0 } },
      rule("dev-demo"),
      names,
    );
    expect(textOf(reviewed)).toContain("Reviewed* by <@U0CAROL>");
    expect(buttonsOf(reviewed)).toEqual({});
  });
});

describe("the request modal", () => {
  it("is pre-filled with what was understood and shows each error on its field", () => {
    const view = requestModal({
      draft: { instanceId: "i-0a1b2c3d4e5f60718", method: "tunnel", port: 22, reason: "" },
      errors: [{ field: "reason", message: "Say why you need access" }],
      breakGlassAllowed: false,
    });
    const block = (id: string) => view.blocks.find((candidate) => candidate.block_id === id) as any;
    expect(block("instance").element.initial_value).toBe("i-0a1b2c3d4e5f60718");
    expect(block("method").element.initial_option.value).toBe("tunnel");
    expect(block("target").element.initial_value).toBe("22");
    expect(block("duration").element.initial_value).toBe("30m");
    expect(block("reason").hint.text).toBe("⚠️ Say why you need access");
    expect(block("instance").hint).toBeUndefined();
    expect(block("break_glass")).toBeUndefined();
    expect(textOf({ blocks: view.blocks })).toContain("Please check:");
    expect(block("break_glass")).toBeUndefined();
    const withGlass = requestModal({ draft: { breakGlass: true }, errors: [], breakGlassAllowed: true });
    const glass = withGlass.blocks.find((candidate) => candidate.block_id === "break_glass") as any;
    expect(glass.element.initial_options).toHaveLength(1);
  });
});

describe("which transitions Slack hears about", () => {
  const pending = item();
  it.each<[string, Info | undefined, Info, string[]]>([
    ["a new request", undefined, pending, ["approval.post"]],
    [
      "a break-glass request",
      undefined,
      approved([], { breakGlass: true, review: { status: "pending" } }),
      ["alert.post", "dm:break-glass"],
    ],
    ["an auto-approved request", undefined, approved([]), ["dm:approved"]],
    [
      "one approval of two",
      item({ approvalsRequired: 2 }),
      item({ approvalsRequired: 2, version: 2, approvals: [{ by: "bob@example.com", at: T0 }] }),
      ["approval.sync"],
    ],
    ["the final approval", pending, approved(["bob@example.com"]), ["approval.sync", "dm:approved"]],
    ["a denial", pending, item({ status: "denied" }), ["approval.sync", "dm:denied"]],
    ["a timeout", pending, item({ status: "timed-out" }), ["approval.sync", "dm:timed-out"]],
    ["a cancellation", pending, item({ status: "cancelled" }), ["approval.sync"]],
    [
      "a revoke",
      approved(["bob@example.com"]),
      approved(["bob@example.com"], { status: "revoked" }),
      ["dm:revoked"],
    ],
    [
      "an expiry",
      approved(["bob@example.com"]),
      approved(["bob@example.com"], { status: "expired" }),
      ["dm:expired"],
    ],
    [
      "a scheduled start",
      approved(["bob@example.com"], { status: "approved" }),
      approved(["bob@example.com"]),
      ["dm:started"],
    ],
    [
      "an extension without approval",
      approved([]),
      approved([], { endsAt: "2026-11-21T11:00:00.000Z" }),
      ["dm:extended"],
    ],
    [
      "an extension request",
      approved([]),
      approved([], {
        pendingExtension: { durationSeconds: 600, reason: "x", requestedAt: T0, approvals: [] },
      }),
      ["extension.post", "dm:extension-requested"],
    ],
    [
      "a review",
      approved([], { breakGlass: true, review: { status: "pending" } }),
      approved([], { breakGlass: true, review: { status: "done" } }),
      ["alert.sync"],
    ],
  ])("%s", (_name, previous, next, expected) => {
    expect(
      noticesOf(previous, next).map((notice) => (notice.kind === "dm" ? `dm:${notice.dm}` : notice.kind)),
    ).toEqual(expected);
  });

  it("names who decided an extension, from the transition's audit events", () => {
    const asked = approved([], {
      pendingExtension: { durationSeconds: 600, reason: "x", requestedAt: T0, approvals: [] },
    });
    const extended = approved([], { endsAt: "2026-11-21T10:40:00.000Z" });
    const events = [
      {
        type: "grant.extended" as const,
        at: T0,
        actor: "dave@example.com",
        subject: asked.id,
        data: { approvers: ["dave@example.com"] },
      },
    ];
    expect(noticesOf(asked, extended, events)).toEqual([
      { kind: "extension.final", requestedAt: T0, decision: "approved", by: ["dave@example.com"] },
      { kind: "dm", dm: "extended" },
    ]);
    const denied = [
      {
        type: "grant.extension_denied" as const,
        at: T0,
        actor: "bob@example.com",
        subject: asked.id,
        data: {},
      },
    ];
    expect(noticesOf(asked, approved([]), denied)).toEqual([
      { kind: "extension.final", requestedAt: T0, decision: "denied", by: ["bob@example.com"] },
      { kind: "dm", dm: "extension-denied" },
    ]);
  });
});
