import { parseDocument } from "yaml";
import { ConfigError, readConfigFile, validateConfig } from "./load.ts";
import type { Config } from "./schema.ts";

/*
 * YAML is how people write the policy. It lives apart from load.ts because the YAML parser is CommonJS
 * and cannot be tree-shaken: Lambda bundles load the compiled JSON instead and never import this file.
 */

/** Parses and validates YAML (or JSON, a subset of it) config text. */
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
  return validateConfig(document.toJS(), source);
}

/** Loads a YAML policy file (the format people write). */
export function loadConfig(path: string): Config {
  return parseConfig(readConfigFile(path), path);
}
