import * as z from "zod";
import { type Actor, Identity } from "../identity/index.ts";
import { type Config, InstanceId, Method, OsUser, Port, type Rule } from "./schema.ts";

/*
 * The policy as one caller may act on it: what the web app's request form offers (instances, methods, OS
 * users, ports, limits) and what its inbox shows about a rule (risk, description, quorum). Only rules the
 * caller is concerned with are listed, so it reveals no more of the policy than the caller's own reach.
 */

export const RuleView = z.object({
  id: z.string(),
  description: z.string().optional(),
  risk: z.enum(["low", "medium", "high"]),
  targets: z.array(z.string()),
  methods: z.object({
    ssh: z.object({ osUsers: z.array(OsUser) }).optional(),
    tunnel: z.object({ ports: z.array(Port) }).optional(),
    rdp: z.object({}).optional(),
  }),
  maxDurationSeconds: z.number().int().positive(),
  pendingTimeoutSeconds: z.number().int().positive(),
  approvals: z.object({ count: z.number().int().nonnegative(), from: z.array(z.string()) }),
  reason: z.object({ required: z.boolean(), pattern: z.string().optional() }),
  ticket: z.object({ required: z.boolean(), pattern: z.string().optional() }),
  extend: z.object({ allowed: z.boolean(), maxTotalSeconds: z.number().int().positive().optional() }),
  grantMode: z.enum(["broker", "iam"]),
  /** The caller may ask for access under this rule. */
  mayRequest: z.boolean(),
  /** The caller may break glass under this rule (active at once, reviewed afterwards). */
  mayBreakGlass: z.boolean(),
  /** The caller may approve or deny others' requests under this rule (admins: every rule). */
  mayApprove: z.boolean(),
});
export type RuleView = z.infer<typeof RuleView>;

export const TargetView = z.object({
  name: z.string(),
  account: z.string(),
  region: z.string(),
  /** Instances listed by id; a tag-selector target may match others, which EC2 resolves at request time. */
  instances: z.array(InstanceId),
  tags: z.record(z.string(), z.string()).optional(),
});
export type TargetView = z.infer<typeof TargetView>;

export const View = z.object({
  rules: z.array(RuleView),
  targets: z.array(TargetView),
  /** Whether the caller approves anything at all (an approvals inbox is worth showing). */
  approver: z.boolean(),
  /** Every method some listed rule lets the caller request. */
  methods: z.array(Method),
});
export type View = z.infer<typeof View>;

function ruleView(rule: Rule, actor: Actor, admin: boolean): RuleView {
  return {
    id: rule.id,
    description: rule.description,
    risk: rule.risk,
    targets: rule.targets,
    methods: rule.methods,
    maxDurationSeconds: rule.maxDuration,
    pendingTimeoutSeconds: rule.pendingTimeout,
    approvals: rule.approvals,
    reason: rule.reason,
    ticket: rule.ticket,
    extend: { allowed: rule.extend.allowed, maxTotalSeconds: rule.extend.maxTotal },
    grantMode: rule.grantMode,
    mayRequest: Identity.matchesAny(actor, rule.requesters),
    mayBreakGlass: rule.breakGlass.allowed && Identity.matchesAny(actor, rule.breakGlass.by),
    mayApprove: admin || Identity.matchesAny(actor, rule.approvals.from),
  };
}

/**
 * The rules `actor` may request, break glass or approve under (auditors and admins: every rule), in policy
 * order (the first that fits a request wins), and the targets they cover.
 */
export function view(config: Config, actor: Actor): View {
  const admin = Identity.matchesAny(actor, config.settings.admins);
  const everything = admin || Identity.isAuditor(actor, config);
  const rules = config.rules
    .map((rule) => ruleView(rule, actor, admin))
    .filter((rule) => everything || rule.mayRequest || rule.mayBreakGlass || rule.mayApprove);
  const named = new Set(rules.flatMap((rule) => rule.targets));
  const targets = config.targets
    .filter((target) => named.has(target.name))
    .map(({ name, account, region, instances, tags }) => ({ name, account, region, instances, tags }));
  const methods = Method.options.filter((method) =>
    rules.some((rule) => (rule.mayRequest || rule.mayBreakGlass) && rule.methods[method]),
  );
  return { rules, targets, approver: rules.some((rule) => rule.mayApprove), methods };
}
