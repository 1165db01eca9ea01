import { readFileSync } from "node:fs";
import { AppError, type Issue } from "../error.ts";
import { formatIssues } from "../util/issues.ts";
import { Config } from "./schema.ts";

export class ConfigError extends AppError {
  readonly issues: Issue[];
  constructor(source: string, issues: Issue[]) {
    super(
      "input",
      "config.invalid",
      `${source} is not a valid access-broker config:\n${renderIssues(issues)}`,
      {
        details: issues,
      },
    );
    this.name = "ConfigError";
    this.issues = issues;
  }
}

export function renderIssues(issues: readonly Issue[]): string {
  return issues.map((issue) => `  ${issue.path}: ${issue.message}`).join("\n");
}

/** Validates an already-parsed config; every problem is reported at once, never just the first. */
export function validateConfig(value: unknown, source = "config"): Config {
  const parsed = Config.safeParse(value);
  if (!parsed.success) throw new ConfigError(source, formatIssues(parsed.error.issues));
  return parsed.data;
}

export function readConfigFile(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(path, [
      { path: "(file)", message: `cannot read: ${(error as NodeJS.ErrnoException).code}` },
    ]);
  }
}

/**
 * Loads the compiled JSON policy that deployments ship (scripts/compile-config.ts). Lambda uses this
 * one, so the YAML parser stays out of its bundle.
 */
export function loadCompiledConfig(path: string): Config {
  let value: unknown;
  try {
    value = JSON.parse(readConfigFile(path));
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(path, [{ path: "(file)", message: "is not valid JSON" }]);
  }
  return validateConfig(value, path);
}
