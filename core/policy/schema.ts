import * as z from "zod";
import { Duration } from "../util/duration.ts";

/** Instance ids as EC2 issues them (8 or 17 hex digits after `i-`; the range keeps older lengths valid). */
export const InstanceId = z.string().regex(/^i-[0-9a-f]{8,17}$/, "must look like i-0123456789abcdef0");
/** Linux user names as EC2 Instance Connect accepts them (seed: first char letter/digit/_; then @ . _ -). */
export const OsUser = z
  .string()
  .regex(
    /^[A-Za-z0-9_][A-Za-z0-9@._-]{0,30}$/,
    "must be 1-31 characters: a letter, digit or _ first, then letters, digits, @ . _ -",
  );
export const Port = z.number().int().min(1).max(65_535);
export const Method = z.enum(["ssh", "tunnel", "rdp"]);
export type Method = z.infer<typeof Method>;
export const RDP_PORT = 3389;

export const Principal = z
  .string()
  .regex(/^(group:[\w.@-]+|user:[^\s@]+@[^\s@]+)$/, 'must be "group:<name>" or "user:<email>"');
export type Principal = z.infer<typeof Principal>;

const Email = z.email().transform((email) => email.toLowerCase());
export const AccountId = z.string().regex(/^\d{12}$/, "must be a 12-digit AWS account id");
/** An IAM role or user ARN (the broker's roles, or a person's own AWS identity for IAM grant mode). */
export const PrincipalArn = z
  .string()
  .regex(/^arn:aws[a-z-]*:iam::\d{12}:(role|user)\/[\w+=,.@/-]{1,512}$/, "must be an IAM role or user ARN");
const Name = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "lowercase letters, digits, - and _ only");

const RegExpSource = z.string().refine(
  (source) => {
    try {
      new RegExp(source);
      return true;
    } catch {
      return false;
    }
  },
  { message: "is not a valid regular expression" },
);

export const Target = z
  .strictObject({
    name: Name,
    account: AccountId,
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, "must be an AWS region like eu-west-1"),
    instances: z.array(InstanceId).default([]),
    /** Every listed tag must match for an instance to be part of the target. */
    tags: z.record(z.string().min(1), z.string()).optional(),
  })
  .refine((target) => target.instances.length > 0 || (target.tags && Object.keys(target.tags).length > 0), {
    message: "a target needs instance ids or a tag selector",
  });
export type Target = z.infer<typeof Target>;

const Methods = z
  .strictObject({
    ssh: z.strictObject({ osUsers: z.array(OsUser).min(1) }).optional(),
    tunnel: z.strictObject({ ports: z.array(Port).min(1) }).optional(),
    rdp: z.strictObject({}).optional(),
  })
  .refine((methods) => Object.values(methods).some(Boolean), {
    message: "a rule must allow at least one method",
  });

/** EICE cuts tunnels at 3600 s, but SSH key pushes can be renewed, so grants may run longer than that. */
const MAX_GRANT_SECONDS = 12 * 3_600;

export const Rule = z
  .strictObject({
    id: Name,
    description: z.string().optional(),
    targets: z.array(Name).min(1),
    requesters: z.array(Principal).min(1),
    methods: Methods,
    maxDuration: Duration.pipe(z.number().max(MAX_GRANT_SECONDS, "must be at most 12h")),
    approvals: z
      .strictObject({
        count: z.number().int().min(0).max(10),
        from: z.array(Principal).default([]),
      })
      .refine((approvals) => approvals.count === 0 || approvals.from.length > 0, {
        message: "approvals.from must name who approves when count > 0",
      }),
    reason: z
      .strictObject({ required: z.boolean().default(true), pattern: RegExpSource.optional() })
      .default({ required: true }),
    ticket: z
      .strictObject({ required: z.boolean().default(false), pattern: RegExpSource.optional() })
      .default({ required: false }),
    breakGlass: z
      .strictObject({ allowed: z.boolean().default(false), by: z.array(Principal).default([]) })
      .default({ allowed: false, by: [] }),
    pendingTimeout: Duration.default(3_600),
    extend: z
      .strictObject({ allowed: z.boolean().default(false), maxTotal: Duration.optional() })
      .default({ allowed: false }),
    /**
     * `broker`: the broker pushes keys and presigns tunnels for the user. `iam`: the broker attaches a
     * time-boxed inline policy to the user's own AWS identity (directory `awsPrincipals`) instead.
     */
    grantMode: z.enum(["broker", "iam"]).default("broker"),
    /** Shown to approvers (Slack, web) so they weigh the request; the policy's own judgement. */
    risk: z.enum(["low", "medium", "high"]).default("medium"),
    /** Where approval requests under this rule are posted (default: settings.slack.approvalsChannel). */
    slackChannel: z.string().min(1).optional(),
  })
  .refine((rule) => !rule.breakGlass.allowed || rule.breakGlass.by.length > 0, {
    message: "breakGlass.by must name who may break glass",
    path: ["breakGlass", "by"],
  });
export type Rule = z.infer<typeof Rule>;

export const Deny = z.strictObject({
  /** Who is denied; empty means everyone. */
  principals: z.array(Principal).default([]),
  targets: z.array(Name).optional(),
  instances: z.array(InstanceId).optional(),
  methods: z.array(Method).optional(),
  reason: z.string().min(1),
});
export type Deny = z.infer<typeof Deny>;

export const User = z.strictObject({
  email: Email,
  name: z.string().optional(),
  groups: z.array(z.string().regex(/^[\w.@-]+$/)).default([]),
  slackUserId: z
    .string()
    .regex(/^[UW][A-Z0-9]{2,}$/, "must be a Slack user id like U0123ABC")
    .optional(),
  /** The person's own IAM roles/users, one per account at most, for rules with grantMode: iam. */
  awsPrincipals: z.array(PrincipalArn).default([]),
});
export type User = z.infer<typeof User>;

/** Trail classifications that can alert (core/trail/schema.ts; everything but `brokered`). */
const ALERTABLE = [
  "outside-window",
  "constraint-mismatch",
  "denied-attempt",
  "unbrokered",
  "unparsed",
] as const;
const TRAIL_ALERT_DEFAULTS = { on: [...ALERTABLE], every: 300, grace: 120 };

/** Alerts on trail events that the broker did not broker, to settings.slack.securityChannel. */
const TrailAlerts = z
  .strictObject({
    /** Which classifications notify (default: all of them). */
    on: z.array(z.enum(ALERTABLE)).default([...ALERTABLE]),
    /** At most one message per classification this often; events in between are grouped into it. */
    every: Duration.default(300),
    /** Unbrokered events wait this long for a push or grant record that arrives late before they alert. */
    grace: z.union([z.literal(0), Duration]).default(120),
  })
  .default(TRAIL_ALERT_DEFAULTS);

export const Settings = z
  .strictObject({
    /** Principals that may read every request, grant and audit record. */
    auditors: z.array(Principal).default([]),
    /** Principals that may approve, deny and revoke under any rule (never their own requests). */
    admins: z.array(Principal).default([]),
    slack: z
      .strictObject({
        /** Default channel (id like C0123 or #name) for approval messages. */
        approvalsChannel: z.string().min(1).default("#access-approvals"),
        /** Break-glass alerts and non-brokered access alerts. */
        securityChannel: z.string().min(1).default("#security-alerts"),
        /**
         * The workspace (team id `T…`, or an Enterprise Grid org `E…`) allowed to use the Slack endpoints.
         * Unset: whichever workspace the app is installed in (the signing secret is per app).
         */
        teamId: z
          .string()
          .regex(/^[TE][A-Z0-9]{2,}$/, "must be a Slack team id like T0123ABC")
          .optional(),
      })
      .default({ approvalsChannel: "#access-approvals", securityChannel: "#security-alerts" }),
    aws: z
      .strictObject({
        /** Per target account: the roles the broker assumes there (cross-account, through STS). */
        accounts: z
          .record(
            AccountId,
            z.strictObject({
              /** Describe instances and endpoints, push keys, attach IAM grants. */
              brokerRoleArn: PrincipalArn,
              /** Assumed per grant (session `grant-<id>`, SourceIdentity = user) to presign OpenTunnel URLs. */
              signerRoleArn: PrincipalArn,
            }),
          )
          .default({}),
      })
      .default({ accounts: {} }),
    alerts: TrailAlerts,
  })
  .default({
    auditors: [],
    admins: [],
    slack: { approvalsChannel: "#access-approvals", securityChannel: "#security-alerts" },
    aws: { accounts: {} },
    alerts: TRAIL_ALERT_DEFAULTS,
  });

export const Config = z
  .strictObject({
    settings: Settings,
    directory: z.strictObject({ users: z.array(User).default([]) }).default({ users: [] }),
    targets: z.array(Target).min(1),
    rules: z.array(Rule).min(1),
    deny: z.array(Deny).default([]),
  })
  .superRefine((config, ctx) => {
    const issue = (path: (string | number)[], message: string) =>
      ctx.addIssue({ code: "custom", path, message });
    /** Reports every repeat of a value that must be unique across a list. */
    const unique = <T>(
      items: readonly T[],
      key: (item: T) => string | undefined,
      at: (index: number) => (string | number)[],
      message: (value: string) => string,
    ) => {
      const seen = new Set<string>();
      items.forEach((item, index) => {
        const value = key(item);
        if (value === undefined) return;
        if (seen.has(value)) issue(at(index), message(value));
        seen.add(value);
      });
    };
    const targetNames = new Set(config.targets.map((target) => target.name));
    const known = (names: readonly string[] | undefined, at: (index: number) => (string | number)[]) =>
      names?.forEach((name, index) => {
        if (!targetNames.has(name)) issue(at(index), `unknown target "${name}"`);
      });

    unique(
      config.targets,
      (target) => target.name,
      (i) => ["targets", i, "name"],
      (name) => `duplicate target "${name}"`,
    );
    unique(
      config.rules,
      (rule) => rule.id,
      (i) => ["rules", i, "id"],
      (id) => `duplicate rule id "${id}"`,
    );
    unique(
      config.directory.users,
      (user) => user.email,
      (i) => ["directory", "users", i, "email"],
      () => "duplicate user",
    );
    unique(
      config.directory.users,
      (user) => user.slackUserId,
      (i) => ["directory", "users", i, "slackUserId"],
      () => "Slack user id bound to two users",
    );
    for (const [r, rule] of config.rules.entries()) known(rule.targets, (t) => ["rules", r, "targets", t]);
    for (const [t, target] of config.targets.entries()) {
      // An invalid account id is reported by the field itself; one error per problem.
      if (AccountId.safeParse(target.account).success && !config.settings.aws.accounts[target.account])
        issue(
          ["targets", t, "account"],
          `no settings.aws.accounts entry for ${target.account}: the broker needs roles there`,
        );
    }
    for (const [d, entry] of config.deny.entries()) known(entry.targets, (t) => ["deny", d, "targets", t]);
  });
export type Config = z.infer<typeof Config>;
