import { readFileSync } from "node:fs";
import { parseDocument } from "yaml";
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

/** Parses and validates config text; every problem is reported at once, never just the first. */
export function parseConfig(text: string, source = "config"): Config {
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    throw new ConfigError(
      source,
      document.errors.map((error) => ({
        path: error.linePos ? `line ${error.linePos[0].line}` : "(yaml)",
        message: error.message.split("\n")[0] ?? error.message,
      })),
    );
  }
  const parsed = Config.safeParse(document.toJS());
  if (!parsed.success) throw new ConfigError(source, formatIssues(parsed.error.issues));
  return parsed.data;
}

export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(path, [
      { path: "(file)", message: `cannot read: ${(error as NodeJS.ErrnoException).code}` },
    ]);
  }
  return parseConfig(text, path);
}
