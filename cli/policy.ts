/** `access policy check|explain`: offline, straight from the policy file, no API or login needed. */
import { DEFAULT_CONFIG_PATH } from "../core/config.ts";
import type { Actor } from "../core/identity/index.ts";
import * as Identity from "../core/identity/index.ts";
import { type Config, ConfigError, type Method, Policy } from "../core/policy/index.ts";
import { loadConfig } from "../core/policy/yaml.ts";
import * as Target from "../core/target/index.ts";
import { duration } from "./commands.ts";
import { type Ctx, EXIT } from "./context.ts";
import * as Format from "./format.ts";

export function configPath(ctx: Ctx, file: string | undefined): string {
  return file ?? (ctx.io.env.ACCESS_CONFIG?.trim() || DEFAULT_CONFIG_PATH);
}

function plural(count: number, word: string, many = `${word}s`): string {
  return `${count} ${count === 1 ? word : many}`;
}

/** Loads the config, or reports every problem as `path: reason` and returns undefined. */
function load(ctx: Ctx, path: string): Config | undefined {
  try {
    return loadConfig(path);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    if (ctx.json)
      ctx.io.stdout(`${JSON.stringify({ ok: false, file: path, issues: error.issues }, null, 2)}\n`);
    const lines = [
      `error: ${path} is not a valid access-broker config (${plural(error.issues.length, "problem")}) [${error.code}]`,
      ...error.issues.map((issue) => `  ${issue.path}: ${Format.clean(issue.message)}`),
    ];
    if (error.issues.some((issue) => issue.path === "(file)")) {
      lines.push("hint: name the policy file, or set ACCESS_CONFIG (the default is ./access.yaml)");
    }
    ctx.io.stderr(`${lines.join("\n")}\n`);
    return undefined;
  }
}

export function check(ctx: Ctx, file: string | undefined): number {
  const path = configPath(ctx, file);
  const config = load(ctx, path);
  if (!config) return EXIT.error;
  const summary = {
    ok: true,
    file: path,
    targets: config.targets.length,
    rules: config.rules.length,
    deny: config.deny.length,
    users: config.directory.users.length,
  };
  ctx.emit(
    summary,
    () =>
      `${path}: valid — ${plural(summary.targets, "target")}, ${plural(summary.rules, "rule")}, ` +
      `${plural(summary.deny, "deny entry", "deny entries")}, ${plural(summary.users, "user")}`,
  );
  return EXIT.ok;
}

export interface ExplainOptions {
  user: string;
  instance: string;
  method: Method;
  osUser?: string;
  port?: number;
  for?: string;
  reason?: string;
  ticket?: string;
  breakGlass?: boolean;
  groups?: string;
  config?: string;
}

/** Dry run of a request: who the user is per the directory, which target, and what the policy decides. */
export async function explain(ctx: Ctx, options: ExplainOptions): Promise<number> {
  const path = configPath(ctx, options.config);
  const config = load(ctx, path);
  if (!config) return EXIT.error;
  const durationSeconds = options.for === undefined ? undefined : duration(options.for);

  const known = Identity.fromDirectory(options.user, config);
  const extra = (options.groups ?? "")
    .split(",")
    .map((group) => group.trim())
    .filter(Boolean);
  const actor: Actor = {
    email: options.user.trim().toLowerCase(),
    groups: [...new Set([...(known?.groups ?? []), ...extra])].sort(),
  };
  const instance = (await Target.fromPolicy(config).describe(options.instance)) ?? {
    instanceId: options.instance,
  };
  const evaluation = Policy.evaluate(config, {
    actor,
    instance,
    method: options.method,
    osUser: options.osUser,
    port: options.port,
    durationSeconds,
    reason: options.reason,
    ticket: options.ticket,
    breakGlass: options.breakGlass,
  });

  ctx.emit({ actor, inDirectory: known !== undefined, instance, evaluation }, () => {
    const who = `${actor.email} (groups: ${actor.groups.length ? actor.groups.join(", ") : "none"})`;
    const where = instance.account
      ? `${instance.instanceId} (${instance.account}/${instance.region})`
      : `${instance.instanceId} (not listed by id in any target)`;
    return [
      Format.fields([
        ["who", `${Format.clean(who)}${known ? "" : " — not in the directory"}`],
        ["instance", Format.clean(where)],
        ["config", path],
      ]),
      "",
      Policy.explain(evaluation),
    ].join("\n");
  });
  return evaluation.outcome === "allowed" ? EXIT.ok : EXIT.negative;
}
