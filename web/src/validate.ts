import type { RuleView, View } from "../../core/policy/view.ts";
import { CreateInput } from "../../core/request/schema.ts";
import { formatDuration, parseDuration } from "../../core/util/duration-text.ts";

/** The request form as typed: every field a string (or a checkbox), as the inputs hold them. */
export interface Draft {
  instanceId: string;
  /**
   * The tag-selector target a typed instance id is asked under; empty when the id was picked from those the
   * policy lists. The form cannot see EC2 tags, so it offers that target's rules and the API checks the tags.
   */
  target: string;
  method: string;
  osUser: string;
  port: string;
  duration: string;
  reason: string;
  ticket: string;
  breakGlass: boolean;
}

export type Field =
  | "instanceId"
  | "method"
  | "osUser"
  | "port"
  | "duration"
  | "reason"
  | "ticket"
  | "breakGlass";
export type Errors = Partial<Record<Field, string>>;

export interface InstanceOption {
  instanceId: string;
  target: string;
  account: string;
  region: string;
}

/** Instances the caller may ask for: listed in a target of a rule they may request (or break glass) under. */
export function instanceOptions(view: View): InstanceOption[] {
  const usable = new Set(
    view.rules.filter((rule) => rule.mayRequest || rule.mayBreakGlass).flatMap((rule) => rule.targets),
  );
  const seen = new Set<string>();
  const options: InstanceOption[] = [];
  for (const target of view.targets) {
    if (!usable.has(target.name)) continue;
    for (const instanceId of target.instances) {
      if (seen.has(instanceId)) continue;
      seen.add(instanceId);
      options.push({ instanceId, target: target.name, account: target.account, region: target.region });
    }
  }
  return options;
}

export interface TagTargetOption {
  target: string;
  account: string;
  region: string;
  tags: Record<string, string>;
}

/** Tag-selector targets of a rule the caller may request (or break glass) under: any instance id may be typed. */
export function tagTargetOptions(view: View): TagTargetOption[] {
  const usable = new Set(
    view.rules.filter((rule) => rule.mayRequest || rule.mayBreakGlass).flatMap((rule) => rule.targets),
  );
  return view.targets.flatMap(({ name, account, region, tags }) =>
    usable.has(name) && tags && Object.keys(tags).length > 0 ? [{ target: name, account, region, tags }] : [],
  );
}

/**
 * Rules that could take a request for this instance, in policy order (the first that fits wins): those of
 * the targets listing it, and of `tagTarget` when the id was typed for it (assuming EC2 finds its tags).
 */
export function rulesFor(view: View, instanceId: string, breakGlass = false, tagTarget = ""): RuleView[] {
  const targets = new Set(
    view.targets
      .filter((target) => target.instances.includes(instanceId) || target.name === tagTarget)
      .map((target) => target.name),
  );
  return view.rules.filter(
    (rule) =>
      (breakGlass ? rule.mayBreakGlass : rule.mayRequest) && rule.targets.some((name) => targets.has(name)),
  );
}

/** The rule the broker would apply to a request for `method` on the instance (as far as the form can tell). */
export function ruleFor(view: View, draft: Pick<Draft, "instanceId" | "target" | "method" | "breakGlass">) {
  return rulesFor(view, draft.instanceId, draft.breakGlass, draft.target).find(
    (rule) => rule.methods[draft.method as keyof RuleView["methods"]] !== undefined,
  );
}

/** A draft with what the rule leaves no choice about filled in (its only OS user, its only port). */
export function withDefaults(view: View, draft: Draft): Draft {
  const rule = ruleFor(view, draft);
  const next = { ...draft };
  const users = rule?.methods.ssh?.osUsers ?? [];
  if (draft.method === "ssh" && !users.includes(draft.osUser)) next.osUser = users[0] ?? "";
  const ports = rule?.methods.tunnel?.ports ?? [];
  if (draft.method === "tunnel" && !ports.map(String).includes(draft.port))
    next.port = String(ports[0] ?? "");
  return next;
}

const FIELDS: readonly Field[] = ["instanceId", "method", "osUser", "port", "duration", "reason", "ticket"];

/**
 * Checks a draft the way the API will: the API's own body schema (`CreateInput`, the zod schema the handler
 * validates with) for shape, then the limits of the rule that would apply (OS users, ports, maximum
 * duration, reason and ticket requirements). Returns the body to send when there is nothing to fix.
 */
export function validateDraft(
  view: View,
  draft: Draft,
): { errors: Errors; input?: CreateInput; rule?: RuleView } {
  const errors: Errors = {};
  const durationSeconds = parseDuration(draft.duration);
  if (durationSeconds === undefined) errors.duration = "Give a duration like 30m, 1h or 1h30m";
  const body = {
    // A pasted id often brings a space or newline along; what is asked for is the id.
    instanceId: draft.instanceId.trim(),
    method: draft.method,
    ...(draft.method === "ssh" && draft.osUser ? { osUser: draft.osUser } : {}),
    ...(draft.method === "tunnel" && draft.port ? { port: Number(draft.port) } : {}),
    durationSeconds: durationSeconds ?? 0,
    reason: draft.reason,
    ...(draft.ticket.trim() ? { ticket: draft.ticket } : {}),
    breakGlass: draft.breakGlass,
  };
  const parsed = CreateInput.safeParse(body);
  if (!parsed.success)
    for (const issue of parsed.error.issues) {
      const key = issue.path[0] === "durationSeconds" ? "duration" : (issue.path[0] as Field);
      if (FIELDS.includes(key) && !errors[key])
        errors[key] =
          key === "instanceId" && !draft.instanceId
            ? draft.target
              ? "Type an instance id"
              : "Choose an instance"
            : issue.message;
    }
  if (!draft.method) errors.method = "Choose how to connect";
  // A tag target's rules apply before its instance id is typed, so its OS users and ports can be offered.
  const where = draft.instanceId || draft.target;
  const rule = where && draft.method ? ruleFor(view, draft) : undefined;
  if (where && draft.method && !rule && !errors.method)
    errors.method = draft.breakGlass
      ? `You may not break glass for ${draft.method} on ${where}`
      : `No rule lets you use ${draft.method} on ${where}`;
  if (rule) {
    const users = rule.methods.ssh?.osUsers ?? [];
    if (draft.method === "ssh" && !errors.osUser && !users.includes(draft.osUser))
      errors.osUser = `Choose one of: ${users.join(", ")}`;
    const ports = rule.methods.tunnel?.ports ?? [];
    if (draft.method === "tunnel" && !errors.port && !ports.includes(Number(draft.port)))
      errors.port = `Choose one of: ${ports.join(", ")}`;
    if (durationSeconds !== undefined && durationSeconds > rule.maxDurationSeconds && !errors.duration)
      errors.duration = `At most ${formatDuration(rule.maxDurationSeconds)} under rule ${rule.id}`;
    if (!errors.reason) {
      if (rule.reason.required && !draft.reason.trim()) errors.reason = "Say why you need access";
      else if (rule.reason.pattern && !new RegExp(rule.reason.pattern).test(draft.reason))
        errors.reason = `Must match ${rule.reason.pattern}`;
    }
    if (!errors.ticket) {
      if (rule.ticket.required && !draft.ticket.trim()) errors.ticket = `Rule ${rule.id} needs a ticket`;
      else if (
        draft.ticket.trim() &&
        rule.ticket.pattern &&
        !new RegExp(rule.ticket.pattern).test(draft.ticket.trim())
      )
        errors.ticket = `Must match ${rule.ticket.pattern}`;
    }
  }
  return Object.keys(errors).length === 0 && parsed.success
    ? { errors, input: parsed.data as CreateInput, rule }
    : { errors, rule };
}
