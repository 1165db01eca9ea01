import { describe, expect, it } from "vitest";
import { ConfigError, Policy } from "../../core/policy/index.ts";
import { parseConfig } from "../../core/policy/yaml.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";

const config = parseConfig(DEMO_CONFIG_TEXT);
const alice = { email: "alice@example.com", groups: ["dev"] };
const bob = { email: "bob@example.com", groups: ["sre-leads"] };
const demo = { instanceId: "i-0a1b2c3d4e5f60718", account: "111122223333", region: "us-east-1" };

function configError(text: string): ConfigError {
  try {
    parseConfig(text);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("config was accepted");
}

describe("config validation", () => {
  it("accepts the demo config with the seeded users, target and rule", () => {
    expect(config.directory.users.map((user) => [user.email, user.slackUserId])).toEqual([
      ["alice@example.com", "U0ALICE"],
      ["bob@example.com", "U0BOB"],
      ["carol@example.com", "U0CAROL"],
      ["dave@example.com", "U0DAVE"],
    ]);
    const rule = Policy.ruleById(config, "dev-demo");
    expect(rule).toMatchObject({
      requesters: ["group:dev"],
      maxDuration: 3600,
      approvals: { count: 1, from: ["group:sre-leads"] },
      methods: { ssh: { osUsers: ["ec2-user"] }, tunnel: { ports: [22] } },
      breakGlass: { allowed: true, by: ["group:sre-leads"] },
    });
  });

  it("lists every error with its path, not only the first", () => {
    const error = configError(`
targets:
  - { name: a, account: "12", region: mars, instances: [i-xyz] }
rules:
  - id: r
    targets: [a, b]
    requesters: [dev]
    methods: {}
    maxDuration: forever
    approvals: { count: 2 }
    surprise: true
`);
    const rendered = error.issues.map((issue) => `${issue.path}: ${issue.message}`);
    expect(rendered).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^targets\.0\.account: /),
        expect.stringMatching(/^targets\.0\.region: /),
        expect.stringMatching(/^targets\.0\.instances\.0: /),
        expect.stringMatching(/^rules\.0\.requesters\.0: .*group:/),
        expect.stringMatching(/^rules\.0\.maxDuration: .*forever/),
        expect.stringMatching(/^rules\.0\.approvals: .*from/),
        expect.stringMatching(/^rules\.0: .*surprise/),
        expect.stringMatching(/^rules\.0\.methods: /),
      ]),
    );
    expect(error.message).toContain("rules.0.maxDuration");
  });

  it("reports unknown target references, duplicate ids and double-bound Slack ids", () => {
    const error = configError(`
directory:
  users:
    - { email: a@x.io, slackUserId: U1 }
    - { email: b@x.io, slackUserId: U1 }
targets:
  - { name: t, account: "111122223333", region: us-east-1, instances: [i-0123456789abcdef0] }
rules:
  - { id: r, targets: [nope], requesters: [group:g], methods: { rdp: {} }, maxDuration: 1h, approvals: { count: 0 } }
  - { id: r, targets: [t], requesters: [group:g], methods: { rdp: {} }, maxDuration: 13h, approvals: { count: 0 } }
`);
    const paths = error.issues.map((issue) => issue.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "rules.0.targets.0",
        "rules.1.id",
        "rules.1.maxDuration",
        "directory.users.1.slackUserId",
      ]),
    );
  });

  it("requires broker roles for every target account", () => {
    const error = configError(DEMO_CONFIG_TEXT.replace('"444455556666":\n', '"999999999999":\n'));
    expect(error.issues).toContainEqual({
      path: "targets.2.account",
      message: expect.stringContaining("no settings.aws.accounts entry for 444455556666"),
    });
  });

  it("reports YAML syntax errors with a line", () => {
    expect(configError("targets: [\n  - a: b\n").issues[0]?.path).toMatch(/^line \d+/);
  });

  it("rejects invalid regular expressions in reason patterns", () => {
    const error = configError(
      DEMO_CONFIG_TEXT.replace("reason: { required: true }", 'reason: { pattern: "([" }'),
    );
    expect(error.issues.map((issue) => issue.path)).toContain("rules.0.reason.pattern");
  });
});

describe("evaluate", () => {
  it("matches dev-demo for alice's ssh and fills the only allowed OS user", () => {
    const result = Policy.evaluate(config, {
      actor: alice,
      instance: demo,
      method: "ssh",
      durationSeconds: 1800,
    });
    expect(result).toMatchObject({ outcome: "allowed", rule: { id: "dev-demo" }, osUser: "ec2-user" });
  });

  it("fills port 22 for a tunnel and refuses other ports", () => {
    expect(Policy.evaluate(config, { actor: alice, instance: demo, method: "tunnel" })).toMatchObject({
      outcome: "allowed",
      port: 22,
    });
    const other = Policy.evaluate(config, { actor: alice, instance: demo, method: "tunnel", port: 3389 });
    expect(other).toMatchObject({ outcome: "invalid", violations: [{ field: "port" }] });
  });

  it("refuses rdp where the rule does not allow it", () => {
    expect(Policy.evaluate(config, { actor: alice, instance: demo, method: "rdp" })).toMatchObject({
      outcome: "denied",
      code: "policy.no_matching_rule",
    });
  });

  it("enforces max duration, reason and ticket patterns", () => {
    const staging = { instanceId: "i-0fedcba9876543210" };
    const base = {
      actor: alice,
      instance: staging,
      method: "ssh" as const,
      osUser: "ubuntu",
      durationSeconds: 3600,
    };
    expect(Policy.evaluate(config, { ...base, reason: "x", ticket: "INC-9" }).outcome).toBe("allowed");
    const bad = Policy.evaluate(config, { ...base, durationSeconds: 3 * 3600, reason: "", ticket: "JIRA-1" });
    expect(bad.outcome).toBe("invalid");
    if (bad.outcome === "invalid") {
      expect(bad.violations.map((violation) => violation.field).sort()).toEqual([
        "durationSeconds",
        "reason",
        "ticket",
      ]);
    }
  });

  it("lets deny entries win over any rule", () => {
    const contractor = { email: "c@example.com", groups: ["dev", "contractors"] };
    const result = Policy.evaluate(config, {
      actor: contractor,
      instance: { instanceId: "i-0fedcba9876543210" },
      method: "ssh",
      osUser: "ubuntu",
    });
    expect(result).toMatchObject({ outcome: "denied", code: "policy.denied" });
  });

  it("matches tag selectors when the instance's account, region and tags fit", () => {
    const tagged = { instanceId: "i-0123456789abcdef0", account: "444455556666", region: "eu-west-1" };
    const ask = (tags: Record<string, string>) =>
      Policy.evaluate(config, {
        actor: alice,
        instance: { ...tagged, tags },
        method: "ssh",
        osUser: "ubuntu",
      });
    expect(ask({ env: "staging", app: "web", owner: "x" })).toMatchObject({ outcome: "allowed" });
    expect(ask({ env: "staging" })).toMatchObject({ outcome: "denied", code: "policy.unknown_target" });
  });

  it("allows break-glass only to those the rule names", () => {
    const ask = (actor: typeof alice) =>
      Policy.evaluate(config, { actor, instance: demo, method: "ssh", breakGlass: true }).outcome;
    expect(ask(bob)).toBe("allowed");
    expect(ask(alice)).toBe("denied");
  });

  it("never lets the requester approve, whatever their groups", () => {
    const rule = Policy.ruleById(config, "dev-demo");
    expect(Policy.canApprove(bob, rule, "alice@example.com")).toBe(true);
    expect(Policy.canApprove(bob, rule, "bob@example.com")).toBe(false);
    expect(Policy.canApprove(alice, rule, "bob@example.com")).toBe(false);
  });

  it("explains the match, the approvals and the rules it skipped", () => {
    const text = Policy.explain(Policy.evaluate(config, { actor: alice, instance: demo, method: "ssh" }));
    expect(text).toContain('ALLOWED by rule "dev-demo"');
    expect(text).toContain("approvals: 1 from group:sre-leads");
    const denied = Policy.explain(
      Policy.evaluate(config, {
        actor: { email: "carol@example.com", groups: ["security"] },
        instance: demo,
        method: "ssh",
      }),
    );
    expect(denied).toContain("DENIED (policy.no_matching_rule)");
    expect(denied).toContain("dev-demo: skipped — carol@example.com is not one of group:dev");
  });
});
