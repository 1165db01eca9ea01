export * as Policy from "./index.ts";

import type { Actor } from "../identity/index.ts";
import * as Identity from "../identity/index.ts";
import { formatDuration } from "../util/duration.ts";
import { type Config, type Deny, type Method, RDP_PORT, type Rule, type Target } from "./schema.ts";

export { ConfigError, loadCompiledConfig, renderIssues, validateConfig } from "./load.ts";
export * from "./schema.ts";

/** What the broker knows about an instance when it evaluates a request. */
export interface InstanceInfo {
  instanceId: string;
  account?: string;
  region?: string;
  tags?: Record<string, string>;
}

export interface AccessQuery {
  actor: Actor;
  instance: InstanceInfo;
  method: Method;
  osUser?: string;
  port?: number;
  /** Omitted by `policy explain` when only "who may do what" is asked. */
  durationSeconds?: number;
  reason?: string;
  ticket?: string;
  breakGlass?: boolean;
}

export interface TraceLine {
  rule: string;
  outcome: "matched" | "skipped" | "violated";
  why: string;
}

export type Violation = { field: string; message: string };

export type Evaluation =
  | {
      outcome: "allowed";
      rule: Rule;
      target: Target;
      osUser?: string;
      port?: number;
      approvals: Rule["approvals"];
      trace: TraceLine[];
    }
  | { outcome: "denied"; code: string; message: string; deny?: Deny; trace: TraceLine[] }
  | { outcome: "invalid"; rule: Rule; violations: Violation[]; trace: TraceLine[] };

/** Targets an instance belongs to: listed by id, or selected by every tag of the target's selector. */
export function targetsOf(config: Config, instance: InstanceInfo): Target[] {
  return config.targets.filter((target) => {
    if (instance.account && instance.account !== target.account) return false;
    if (instance.region && instance.region !== target.region) return false;
    if (target.instances.includes(instance.instanceId)) return true;
    const selector = target.tags;
    if (!selector || !instance.tags || !instance.account) return false;
    return Object.entries(selector).every(([key, value]) => instance.tags?.[key] === value);
  });
}

function denyApplies(entry: Deny, query: AccessQuery, targetNames: Set<string>): boolean {
  if (entry.principals.length > 0 && !Identity.matchesAny(query.actor, entry.principals)) return false;
  if (entry.methods && !entry.methods.includes(query.method)) return false;
  if (entry.instances && !entry.instances.includes(query.instance.instanceId)) return false;
  if (entry.targets && !entry.targets.some((name) => targetNames.has(name))) return false;
  return true;
}

function violationsOf(
  rule: Rule,
  query: AccessQuery,
): { violations: Violation[]; osUser?: string; port?: number } {
  const violations: Violation[] = [];
  let osUser = query.osUser;
  let port = query.port;
  if (query.method === "ssh") {
    const allowed = rule.methods.ssh?.osUsers ?? [];
    if (osUser === undefined && allowed.length === 1) osUser = allowed[0];
    if (osUser === undefined)
      violations.push({ field: "osUser", message: `choose an OS user: ${allowed.join(", ")}` });
    else if (!allowed.includes(osUser))
      violations.push({
        field: "osUser",
        message: `OS user "${osUser}" is not allowed; allowed: ${allowed.join(", ")}`,
      });
    if (port !== undefined) violations.push({ field: "port", message: "port applies to tunnel, not ssh" });
  } else if (query.method === "tunnel") {
    const allowed = rule.methods.tunnel?.ports ?? [];
    if (port === undefined && allowed.length === 1) port = allowed[0];
    if (port === undefined)
      violations.push({ field: "port", message: `choose a port: ${allowed.join(", ")}` });
    else if (!allowed.includes(port))
      violations.push({
        field: "port",
        message: `port ${port} is not allowed; allowed: ${allowed.join(", ")}`,
      });
  } else {
    if (port !== undefined && port !== RDP_PORT)
      violations.push({ field: "port", message: `rdp uses port ${RDP_PORT}` });
    port = RDP_PORT;
  }
  if (query.method !== "ssh" && osUser !== undefined)
    violations.push({ field: "osUser", message: `osUser applies to ssh, not ${query.method}` });
  if (query.durationSeconds !== undefined && query.durationSeconds > rule.maxDuration)
    violations.push({
      field: "durationSeconds",
      message: `${formatDuration(query.durationSeconds)} exceeds the rule's maximum of ${formatDuration(rule.maxDuration)}`,
    });
  if (query.reason !== undefined) {
    if (rule.reason.required && query.reason.trim() === "")
      violations.push({ field: "reason", message: "a reason is required" });
    if (rule.reason.pattern && !new RegExp(rule.reason.pattern).test(query.reason))
      violations.push({ field: "reason", message: `reason must match /${rule.reason.pattern}/` });
  }
  if (query.reason !== undefined || query.ticket !== undefined) {
    if (rule.ticket.required && !query.ticket)
      violations.push({ field: "ticket", message: "a ticket is required" });
    if (query.ticket && rule.ticket.pattern && !new RegExp(rule.ticket.pattern).test(query.ticket))
      violations.push({ field: "ticket", message: `ticket must match /${rule.ticket.pattern}/` });
  }
  return { violations, osUser, port };
}

/**
 * Decides a request against the policy. Deny entries always win; then the first rule that matches
 * target, method and requester and whose limits the request respects. The trace says why for each rule.
 */
export function evaluate(config: Config, query: AccessQuery): Evaluation {
  const trace: TraceLine[] = [];
  const targets = targetsOf(config, query.instance);
  if (targets.length === 0) {
    return {
      outcome: "denied",
      code: "policy.unknown_target",
      message: `${query.instance.instanceId} is not part of any target in the policy`,
      trace,
    };
  }
  const targetNames = new Set(targets.map((target) => target.name));
  const deny = config.deny.find((entry) => denyApplies(entry, query, targetNames));
  if (deny)
    return {
      outcome: "denied",
      code: "policy.denied",
      message: `Denied by policy: ${deny.reason}`,
      deny,
      trace,
    };

  let firstInvalid: { rule: Rule; violations: Violation[] } | undefined;
  for (const rule of config.rules) {
    const target = targets.find((candidate) => rule.targets.includes(candidate.name));
    if (!target) {
      trace.push({ rule: rule.id, outcome: "skipped", why: `does not cover ${query.instance.instanceId}` });
      continue;
    }
    if (!rule.methods[query.method]) {
      trace.push({ rule: rule.id, outcome: "skipped", why: `does not allow ${query.method}` });
      continue;
    }
    const requester = Identity.matchesAny(query.actor, rule.requesters);
    const breakGlass = query.breakGlass === true && rule.breakGlass.allowed;
    if (query.breakGlass && !breakGlass) {
      trace.push({ rule: rule.id, outcome: "skipped", why: "does not allow break-glass" });
      continue;
    }
    if (breakGlass ? !Identity.matchesAny(query.actor, rule.breakGlass.by) : !requester) {
      const who = breakGlass ? rule.breakGlass.by : rule.requesters;
      trace.push({
        rule: rule.id,
        outcome: "skipped",
        why: `${query.actor.email} is not one of ${who.join(", ")}`,
      });
      continue;
    }
    const { violations, osUser, port } = violationsOf(rule, query);
    if (violations.length > 0) {
      trace.push({ rule: rule.id, outcome: "violated", why: violations.map((v) => v.message).join("; ") });
      firstInvalid ??= { rule, violations };
      continue;
    }
    trace.push({ rule: rule.id, outcome: "matched", why: "target, method, requester and limits match" });
    return { outcome: "allowed", rule, target, osUser, port, approvals: rule.approvals, trace };
  }
  if (firstInvalid) return { outcome: "invalid", ...firstInvalid, trace };
  return {
    outcome: "denied",
    code: "policy.no_matching_rule",
    message: `No rule lets ${query.actor.email} use ${query.method} on ${query.instance.instanceId}`,
    trace,
  };
}

export function ruleById(config: Config, id: string): Rule | undefined {
  return config.rules.find((rule) => rule.id === id);
}

/** Whether `actor` may approve a request made under `rule` by `requester`; nobody approves their own. */
export function canApprove(actor: Actor, rule: Rule | undefined, requester: string): boolean {
  if (!rule || actor.email === requester) return false;
  return Identity.matchesAny(actor, rule.approvals.from);
}

/** Human-readable explanation for `access policy explain`. */
export function explain(evaluation: Evaluation): string {
  const lines: string[] = [];
  if (evaluation.outcome === "allowed") {
    const { rule, approvals } = evaluation;
    lines.push(`ALLOWED by rule "${rule.id}"${rule.description ? ` (${rule.description})` : ""}`);
    lines.push(
      `  target: ${evaluation.target.name} (${evaluation.target.account}/${evaluation.target.region})`,
    );
    if (evaluation.osUser) lines.push(`  OS user: ${evaluation.osUser}`);
    if (evaluation.port) lines.push(`  port: ${evaluation.port}`);
    lines.push(`  max duration: ${formatDuration(rule.maxDuration)}`);
    lines.push(
      approvals.count === 0
        ? "  approvals: none (auto-approved)"
        : `  approvals: ${approvals.count} from ${approvals.from.join(", ")} (never the requester)`,
    );
    if (rule.reason.required || rule.reason.pattern)
      lines.push(`  reason: required${rule.reason.pattern ? ` matching /${rule.reason.pattern}/` : ""}`);
    if (rule.ticket.required)
      lines.push(`  ticket: required${rule.ticket.pattern ? ` /${rule.ticket.pattern}/` : ""}`);
    lines.push(
      `  break-glass: ${rule.breakGlass.allowed ? `allowed for ${rule.breakGlass.by.join(", ")}` : "no"}`,
    );
    lines.push(`  pending timeout: ${formatDuration(rule.pendingTimeout)}`);
  } else if (evaluation.outcome === "invalid") {
    lines.push(`NOT ALLOWED AS ASKED by rule "${evaluation.rule.id}":`);
    for (const violation of evaluation.violations) lines.push(`  ${violation.field}: ${violation.message}`);
  } else {
    lines.push(`DENIED (${evaluation.code}): ${evaluation.message}`);
  }
  if (evaluation.trace.length > 0) {
    lines.push("rules considered:");
    for (const line of evaluation.trace) lines.push(`  ${line.rule}: ${line.outcome} — ${line.why}`);
  }
  return lines.join("\n");
}
