#!/usr/bin/env node
// Makes `npm start` and `npm test` work on a fresh clone: installs npm packages from the lockfile when
// they are missing or stale, and Java (for DynamoDB Local) from Debian when running as root.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";

const marker = "node_modules/.package-lock.json";
if (!existsSync(marker) || statSync("package-lock.json").mtimeMs > statSync(marker).mtimeMs) {
  // `npm install`, not `npm ci`: the lockfile pins every version either way, but npm ci refuses lockfiles
  // that lack the optional per-platform packages a registry mirror may not carry (e.g. Biome's).
  console.log("Installing npm packages from package-lock.json…");
  const result = spawnSync("npm", ["install", "--no-audit", "--no-fund"], { stdio: "inherit" });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

function has(command, args) {
  return spawnSync(command, args, { stdio: "ignore" }).status === 0;
}

if (!has("java", ["-version"])) {
  if (process.getuid?.() === 0 && has("apt-get", ["--version"])) {
    console.log("Installing Java for DynamoDB Local (apt-get install openjdk-17-jre-headless)…");
    execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
    execFileSync("apt-get", ["install", "-y", "-qq", "openjdk-17-jre-headless"], { stdio: "inherit" });
  } else {
    console.error(
      "Java 17+ is required for DynamoDB Local: install openjdk-17-jre-headless (or any JRE 17+).",
    );
    process.exit(1);
  }
}
