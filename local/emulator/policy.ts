/**
 * IAM policy documents: the schema (what `PutRolePolicy` / `AssumeRole` accept) and the evaluator the
 * emulator authorizes every call with. Pure: no state, no clock — the caller supplies the request context.
 *
 * Semantics follow the IAM User Guide ("Policy evaluation logic", "Condition operators"):
 * - explicit Deny wins over any Allow; no matching Allow means an implicit deny;
 * - Action matches case-insensitively with `*`/`?`, Resource case-sensitively with `*`/`?`;
 * - several values for one condition key are ORed, several keys and operators are ANDed;
 * - a key missing from the context makes a condition false, except for negated operators
 *   (`StringNotEquals`, `NotIpAddress`, …), `…IfExists`, `ForAllValues:` and `Null`.
 */
import { BlockList, isIP } from "node:net";
import * as z from "zod";

const Strings = z.union([z.string(), z.array(z.string()).min(1)]);
const ConditionScalar = z.union([z.string(), z.number(), z.boolean()]);
const ConditionValues = z.union([ConditionScalar, z.array(ConditionScalar).min(1)]);

type Family = "String" | "Numeric" | "Date" | "Bool" | "Ip" | "Arn" | "Null";
interface OperatorInfo {
  family: Family;
  compare: string;
  negated: boolean;
}

const OPERATORS: Record<string, OperatorInfo> = {
  StringEquals: { family: "String", compare: "equals", negated: false },
  StringNotEquals: { family: "String", compare: "equals", negated: true },
  StringEqualsIgnoreCase: { family: "String", compare: "equalsIgnoreCase", negated: false },
  StringNotEqualsIgnoreCase: { family: "String", compare: "equalsIgnoreCase", negated: true },
  StringLike: { family: "String", compare: "like", negated: false },
  StringNotLike: { family: "String", compare: "like", negated: true },
  NumericEquals: { family: "Numeric", compare: "eq", negated: false },
  NumericNotEquals: { family: "Numeric", compare: "eq", negated: true },
  NumericLessThan: { family: "Numeric", compare: "lt", negated: false },
  NumericLessThanEquals: { family: "Numeric", compare: "le", negated: false },
  NumericGreaterThan: { family: "Numeric", compare: "gt", negated: false },
  NumericGreaterThanEquals: { family: "Numeric", compare: "ge", negated: false },
  DateEquals: { family: "Date", compare: "eq", negated: false },
  DateNotEquals: { family: "Date", compare: "eq", negated: true },
  DateLessThan: { family: "Date", compare: "lt", negated: false },
  DateLessThanEquals: { family: "Date", compare: "le", negated: false },
  DateGreaterThan: { family: "Date", compare: "gt", negated: false },
  DateGreaterThanEquals: { family: "Date", compare: "ge", negated: false },
  Bool: { family: "Bool", compare: "equalsIgnoreCase", negated: false },
  IpAddress: { family: "Ip", compare: "in", negated: false },
  NotIpAddress: { family: "Ip", compare: "in", negated: true },
  ArnEquals: { family: "Arn", compare: "like", negated: false },
  ArnLike: { family: "Arn", compare: "like", negated: false },
  ArnNotEquals: { family: "Arn", compare: "like", negated: true },
  ArnNotLike: { family: "Arn", compare: "like", negated: true },
  Null: { family: "Null", compare: "null", negated: false },
};

interface ParsedOperator extends OperatorInfo {
  name: string;
  ifExists: boolean;
  set?: "ForAnyValue" | "ForAllValues";
}

/** `ForAllValues:StringLikeIfExists` → its parts, or undefined when IAM would not know the operator. */
export function parseOperator(text: string): ParsedOperator | undefined {
  let rest = text;
  let set: ParsedOperator["set"];
  const colon = rest.indexOf(":");
  if (colon >= 0) {
    const prefix = rest.slice(0, colon);
    if (prefix !== "ForAnyValue" && prefix !== "ForAllValues") return undefined;
    set = prefix;
    rest = rest.slice(colon + 1);
  }
  let ifExists = false;
  if (rest.endsWith("IfExists") && rest !== "IfExists") {
    ifExists = true;
    rest = rest.slice(0, -"IfExists".length);
  }
  const info = Object.hasOwn(OPERATORS, rest) ? OPERATORS[rest] : undefined;
  if (info === undefined || (info.family === "Null" && (ifExists || set !== undefined))) return undefined;
  return { ...info, name: rest, ifExists, ...(set === undefined ? {} : { set }) };
}

function parseDate(value: string | number): number {
  if (typeof value === "number") return value * 1000;
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  // IAM accepts ISO 8601 dates and date-times; a bare date is midnight UTC.
  if (!/^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?)?$/.test(value))
    return Number.NaN;
  const iso = /^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value;
  const withZone = /([Zz]|[+-]\d{2}:?\d{2})$/.test(iso) ? iso : `${iso}Z`;
  return Date.parse(withZone);
}

function parseCidr(text: string): { address: string; prefix: number; family: "ipv4" | "ipv6" } | undefined {
  const [address = "", prefixText, ...extra] = text.trim().split("/");
  if (extra.length > 0) return undefined;
  const version = isIP(address);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefix > max) return undefined;
  return { address, prefix, family: version === 4 ? "ipv4" : "ipv6" };
}

/** True when `ip` (IPv4, IPv6 or IPv4-mapped IPv6) lies in `cidr` (a bare address means /32 or /128). */
export function ipInCidr(ip: string, cidr: string): boolean {
  const range = parseCidr(cidr);
  if (range === undefined) return false;
  let address = ip.trim();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1] !== undefined && range.family === "ipv4") address = mapped[1];
  const version = isIP(address);
  if (version === 0 || (version === 4) !== (range.family === "ipv4")) return false;
  const list = new BlockList();
  list.addSubnet(range.address, range.prefix, range.family);
  return list.check(address, range.family);
}

const globCache = new Map<string, RegExp>();

/** IAM wildcard match: `*` any run of characters, `?` exactly one; everything else literal. */
export function globMatch(pattern: string, value: string, ignoreCase = false): boolean {
  const cacheKey = `${ignoreCase ? "i" : "s"}:${pattern}`;
  let regex = globCache.get(cacheKey);
  if (regex === undefined) {
    const source = pattern
      .split("")
      .map((char) =>
        char === "*" ? ".*" : char === "?" ? "." : char.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&"),
      )
      .join("");
    regex = new RegExp(`^${source}$`, ignoreCase ? "is" : "s");
    if (globCache.size > 5000) globCache.clear();
    globCache.set(cacheKey, regex);
  }
  return regex.test(value);
}

/** ArnLike: wildcards stay inside their colon-separated segment (the sixth segment keeps its colons). */
function arnMatch(pattern: string, value: string): boolean {
  const split = (text: string) => {
    const parts = text.split(":");
    return parts.length <= 6 ? parts : [...parts.slice(0, 5), parts.slice(5).join(":")];
  };
  const p = split(pattern);
  const v = split(value);
  if (p.length !== 6 || v.length !== 6) return false;
  return p.every((segment, index) => globMatch(segment, v[index] as string));
}

function checkValue(operator: ParsedOperator, value: string, ctx: ConditionIssueSink): void {
  if (operator.family === "Numeric" && !Number.isFinite(Number(value)))
    ctx(`Condition ${operator.name} needs numbers, not '${value}'`);
  if (operator.family === "Date" && Number.isNaN(parseDate(value)))
    ctx(`Condition ${operator.name} needs ISO 8601 dates or epoch seconds, not '${value}'`);
  if (operator.family === "Ip" && parseCidr(value) === undefined)
    ctx(`Condition ${operator.name} needs IP addresses or CIDR blocks, not '${value}'`);
  if ((operator.family === "Bool" || operator.family === "Null") && !/^(true|false)$/i.test(value))
    ctx(`Condition ${operator.name} needs true or false, not '${value}'`);
}
type ConditionIssueSink = (message: string) => void;

const StatementSchema = z
  .strictObject({
    Sid: z
      .string()
      .regex(/^[A-Za-z0-9 ]*$/, "Sid may hold only letters, digits and spaces")
      .optional(),
    Effect: z.enum(["Allow", "Deny"]),
    Action: Strings.optional(),
    NotAction: Strings.optional(),
    Resource: Strings.optional(),
    NotResource: Strings.optional(),
    Condition: z.record(z.string(), z.record(z.string().min(1), ConditionValues)).optional(),
  })
  .superRefine((statement, ctx) => {
    const issue = (message: string) => ctx.addIssue({ code: "custom", message });
    if ((statement.Action === undefined) === (statement.NotAction === undefined))
      issue("A statement needs exactly one of Action and NotAction");
    if ((statement.Resource === undefined) === (statement.NotResource === undefined))
      issue("Policy statement must contain resources.");
    for (const action of [statement.Action ?? [], statement.NotAction ?? []].flat()) {
      if (action !== "*" && !/^[a-zA-Z0-9-]+:[a-zA-Z0-9*?]+$/.test(action))
        issue(`Action '${action}' must be '*' or '<service>:<action>'`);
    }
    for (const [name, keys] of Object.entries(statement.Condition ?? {})) {
      const operator = parseOperator(name);
      if (operator === undefined) {
        issue(`Unknown condition operator '${name}'`);
        continue;
      }
      for (const values of Object.values(keys)) {
        for (const value of [values].flat()) checkValue(operator, String(value), issue);
      }
    }
  });

/** An identity-based (or session) policy document as IAM accepts it. No `Principal`: these are not resource policies. */
export const PolicyDocument = z.strictObject({
  Version: z.enum(["2012-10-17", "2008-10-17"]).optional(),
  Id: z.string().optional(),
  Statement: z.union([StatementSchema, z.array(StatementSchema).min(1)]),
});
export type PolicyDocument = z.input<typeof PolicyDocument>;

export interface Condition {
  operator: ParsedOperator;
  key: string;
  values: string[];
}

export interface Statement {
  effect: "Allow" | "Deny";
  actions?: string[];
  notActions?: string[];
  resources?: string[];
  notResources?: string[];
  conditions: Condition[];
}

/** A validated policy in the shape the evaluator walks. */
export interface Policy {
  statements: Statement[];
}

const list = (value: string | string[] | undefined) => (value === undefined ? undefined : [value].flat());

/** Validated document → evaluator form. */
export function compilePolicy(document: z.output<typeof PolicyDocument>): Policy {
  const statements = [document.Statement].flat().map((statement): Statement => {
    const conditions: Condition[] = [];
    for (const [name, keys] of Object.entries(statement.Condition ?? {})) {
      const operator = parseOperator(name);
      if (operator === undefined) continue; // unreachable: the schema rejected it
      for (const [key, values] of Object.entries(keys)) {
        conditions.push({ operator, key, values: [values].flat().map(String) });
      }
    }
    const compiled: Statement = { effect: statement.Effect, conditions };
    const actions = list(statement.Action);
    const notActions = list(statement.NotAction);
    const resources = list(statement.Resource);
    const notResources = list(statement.NotResource);
    if (actions) compiled.actions = actions;
    if (notActions) compiled.notActions = notActions;
    if (resources) compiled.resources = resources;
    if (notResources) compiled.notResources = notResources;
    return compiled;
  });
  return { statements };
}

export type PolicyParse = { ok: true; policy: Policy; document: unknown } | { ok: false; message: string };

/** Parses policy JSON text as IAM does for `PutRolePolicy` and `AssumeRole`'s `Policy`. */
export function parsePolicyText(text: string): PolicyParse {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, message: "This policy contains invalid Json" };
  }
  return parsePolicyObject(json);
}

/** Same as {@link parsePolicyText} for an already-parsed document (the inventory's YAML). */
export function parsePolicyObject(json: unknown): PolicyParse {
  const parsed = PolicyDocument.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first && first.path.length > 0 ? ` (at ${first.path.join(".")})` : "";
    return { ok: false, message: `Syntax errors in policy. ${first?.message ?? ""}${where}`.trim() };
  }
  return { ok: true, policy: compilePolicy(parsed.data), document: parsed.data };
}

export type ContextValue = string | number | boolean | undefined;
export type RequestContext = Record<string, ContextValue>;

export interface EvaluationRequest {
  action: string;
  resource: string;
  context: RequestContext;
}

function lookup(context: RequestContext, key: string): string | undefined {
  const direct = context[key];
  if (direct !== undefined) return String(direct);
  // Condition keys are case-insensitive in IAM.
  const lower = key.toLowerCase();
  for (const [name, value] of Object.entries(context)) {
    if (value !== undefined && name.toLowerCase() === lower) return String(value);
  }
  return undefined;
}

function compare(operator: ParsedOperator, actual: string, expected: string): boolean {
  switch (operator.family) {
    case "String":
      if (operator.compare === "equals") return actual === expected;
      if (operator.compare === "equalsIgnoreCase") return actual.toLowerCase() === expected.toLowerCase();
      return globMatch(expected, actual);
    case "Bool":
      return actual.toLowerCase() === expected.toLowerCase();
    case "Arn":
      return arnMatch(expected, actual);
    case "Ip":
      return ipInCidr(actual, expected);
    case "Numeric":
    case "Date": {
      const a = operator.family === "Numeric" ? Number(actual) : parseDate(actual);
      const e = operator.family === "Numeric" ? Number(expected) : parseDate(expected);
      if (!Number.isFinite(a) || !Number.isFinite(e)) return false;
      if (operator.compare === "eq") return a === e;
      if (operator.compare === "lt") return a < e;
      if (operator.compare === "le") return a <= e;
      if (operator.compare === "gt") return a > e;
      return a >= e;
    }
    case "Null":
      return false;
  }
}

/** One condition (one operator, one key, its values) against the request context. */
export function conditionHolds(condition: Condition, context: RequestContext): boolean {
  const { operator, key, values } = condition;
  const actual = lookup(context, key);
  if (operator.family === "Null") {
    const absent = actual === undefined;
    return values.some((value) => (value.toLowerCase() === "true") === absent);
  }
  if (actual === undefined) {
    if (operator.ifExists || operator.set === "ForAllValues") return true;
    return operator.negated;
  }
  const matched = values.some((value) => compare(operator, actual, value));
  return operator.negated ? !matched : matched;
}

function statementApplies(statement: Statement, request: EvaluationRequest): boolean {
  const actionMatches = (patterns: string[]) => patterns.some((p) => globMatch(p, request.action, true));
  const resourceMatches = (patterns: string[]) => patterns.some((p) => globMatch(p, request.resource));
  if (statement.actions && !actionMatches(statement.actions)) return false;
  if (statement.notActions && actionMatches(statement.notActions)) return false;
  if (statement.resources && !resourceMatches(statement.resources)) return false;
  if (statement.notResources && resourceMatches(statement.notResources)) return false;
  return statement.conditions.every((condition) => conditionHolds(condition, request.context));
}

/** `deny` if any statement explicitly denies, else `allow` if one allows, else `none` (implicit deny). */
export function evaluatePolicies(
  policies: Iterable<Policy>,
  request: EvaluationRequest,
): "allow" | "deny" | "none" {
  let allowed = false;
  for (const policy of policies) {
    for (const statement of policy.statements) {
      if (!statementApplies(statement, request)) continue;
      if (statement.effect === "Deny") return "deny";
      allowed = true;
    }
  }
  return allowed ? "allow" : "none";
}

/** Characters IAM counts toward size quotas: it ignores whitespace. */
export function policySize(text: string): number {
  return text.replace(/\s+/g, "").length;
}
