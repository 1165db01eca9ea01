import { describe, expect, it } from "vitest";
import { parseCommand, parseModal } from "../../core/slack/command.ts";

const HINTS = new Set(["ec2-user", "ubuntu"]);
const I = "i-0a1b2c3d4e5f60718";

type Expected = Record<string, unknown>;

describe("the /access one-liner", () => {
  it.each<[string, Expected]>([
    [
      `${I} ssh ec2-user for 30m look at the logs`,
      { instanceId: I, method: "ssh", osUser: "ec2-user", durationSeconds: 1800, reason: "look at the logs" },
    ],
    [
      `${I} look at the logs`,
      {
        instanceId: I,
        method: "ssh",
        methodGiven: false,
        osUser: undefined,
        durationSeconds: undefined,
        reason: "look at the logs",
      },
    ],
    [
      `${I} for 1h30m deploy went wrong`,
      { method: "ssh", durationSeconds: 5400, reason: "deploy went wrong" },
    ],
    [`${I} ssh ubuntu restart nginx`, { osUser: "ubuntu", reason: "restart nginx" }],
    [`${I} ssh root cause analysis`, { osUser: undefined, reason: "root cause analysis" }],
    [`${I} ssh deploy for 15m ship it`, { osUser: "deploy", durationSeconds: 900, reason: "ship it" }],
    [
      `ubuntu@${I} for 10m tail syslog`,
      { instanceId: I, osUser: "ubuntu", durationSeconds: 600, reason: "tail syslog" },
    ],
    [
      `${I} tunnel 22 for 2h INC-42 db migration`,
      { method: "tunnel", port: 22, durationSeconds: 7200, ticket: "INC-42", reason: "INC-42 db migration" },
    ],
    [`${I} tunnel for 1h db`, { method: "tunnel", port: undefined, durationSeconds: 3600, reason: "db" }],
    [`${I} 22 for 30m quick look`, { method: "tunnel", port: 22, reason: "quick look" }],
    [`${I} 3389 for 1h windows update`, { method: "rdp", port: 3389 }],
    [`${I} rdp for 1h windows update`, { method: "rdp", port: undefined, reason: "windows update" }],
    [`${I} ssh for 30m --break-glass prod is down`, { breakGlass: true, reason: "prod is down" }],
    [`--break-glass ${I} for 30m prod is down`, { breakGlass: true, instanceId: I, reason: "prod is down" }],
    [`${I} for 30m need it for the deploy`, { durationSeconds: 1800, reason: "need it for the deploy" }],
    [`${I} ssh for the deploy`, { durationSeconds: undefined, reason: "for the deploy" }],
    [`${I} for 30m fixing CHG-7, see (OPS-12)`, { ticket: "CHG-7" }],
    [`${I} for 30m --ticket INC-9 restart`, { ticket: "INC-9", reason: "restart" }],
    [`${I} for 30m run --force push`, { reason: "run --force push" }],
    [
      `I-0A1B2C3D4E5F60718 SSH for 30m caps`,
      { instanceId: I, method: "ssh", methodGiven: true, reason: "caps" },
    ],
  ])("%s", (text, expected) => {
    const parsed = parseCommand(text, HINTS);
    expect(parsed.errors).toEqual([]);
    expect(parsed.help).toBe(false);
    expect(parsed.draft).toMatchObject(
      Object.fromEntries(Object.entries(expected).filter(([, v]) => v !== undefined)),
    );
    for (const [key, value] of Object.entries(expected))
      if (value === undefined) expect(parsed.draft[key as keyof typeof parsed.draft]).toBeUndefined();
  });

  it.each<[string, Record<string, RegExp>]>([
    ["", { instanceId: /which instance/i, reason: /say why/i }],
    ["look at the logs", { instanceId: /which instance/i }],
    ["i-xyz ssh for 30m logs", { instanceId: /not an instance id/ }],
    [`${I} for 30m`, { reason: /say why/i }],
    [`${I} for 30x logs`, { durationSeconds: /not a duration/ }],
    [`${I} tunnel 99999 for 30m logs`, { port: /not a port/ }],
    [`${I} ssh 22 for 30m logs`, { port: /ssh takes no port/ }],
    [`${I} ssh -bad- for 30m logs`, { osUser: /not a valid OS user/ }],
    [`${I} for 30m ${"x".repeat(1001)}`, { reason: /1001 characters; at most 1000/ }],
  ])("reports what is wrong with %j per field", (text, expected) => {
    const { errors } = parseCommand(text, HINTS);
    expect(Object.keys(expected).sort()).toEqual([...new Set(errors.map((error) => error.field))].sort());
    for (const [field, pattern] of Object.entries(expected))
      expect(errors.find((error) => error.field === field)?.message).toMatch(pattern);
  });

  it("keeps what it understood when something is missing, for the form", () => {
    const { draft, errors } = parseCommand(`${I} ssh ubuntu for 45m`, HINTS);
    expect(errors.map((error) => error.field)).toEqual(["reason"]);
    expect(draft).toMatchObject({ instanceId: I, method: "ssh", osUser: "ubuntu", durationSeconds: 2700 });
  });

  it.each(["help", "?", "--help"])("%s asks for the usage", (text) => {
    expect(parseCommand(text).help).toBe(true);
  });
});

describe("the request modal's values", () => {
  const state = (values: Record<string, string | undefined>, method = "ssh", breakGlass = false) => ({
    instance: { value: { value: values.instance } },
    method: { value: { selected_option: { value: method } } },
    target: { value: { value: values.target ?? null } },
    duration: { value: { value: values.duration } },
    reason: { value: { value: values.reason } },
    ticket: { value: { value: values.ticket ?? null } },
    break_glass: { value: { selected_options: breakGlass ? [{ value: "yes" }] : [] } },
  });

  it("become a complete draft", () => {
    const parsed = parseModal(
      state(
        {
          instance: ` ${I.toUpperCase()} `,
          target: "22",
          duration: "1h",
          reason: "migrate",
          ticket: "INC-1",
        },
        "tunnel",
        true,
      ),
    );
    expect(parsed.errors).toEqual([]);
    expect(parsed.draft).toMatchObject({
      instanceId: I,
      method: "tunnel",
      port: 22,
      durationSeconds: 3600,
      reason: "migrate",
      ticket: "INC-1",
      breakGlass: true,
    });
  });

  it("report each invalid field", () => {
    const parsed = parseModal(state({ instance: "nope", target: "x y", duration: "forever", reason: "" }));
    expect(parsed.errors.map((error) => error.field).sort()).toEqual([
      "durationSeconds",
      "instanceId",
      "osUser",
      "reason",
    ]);
  });
});
