// Validates the YAML policy and writes the JSON that deployments ship with each function:
//   node --import tsx scripts/compile-config.ts [access.yaml] [.build/access.json]
// A policy with errors stops the deploy here, listing every error as `path: reason`.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { ConfigError } from "../core/policy/index.ts";
import { loadConfig } from "../core/policy/yaml.ts";

const [source = process.env.ACCESS_CONFIG_FILE ?? "access.yaml", target = ".build/access.json"] =
  process.argv.slice(2);
try {
  const config = loadConfig(source);
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, JSON.stringify(config));
  console.log(`${source} → ${target}: ${config.targets.length} targets, ${config.rules.length} rules`);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(error.message);
  process.exit(1);
}
