#!/usr/bin/env node
// Makes `npm start` and `npm test` work on a fresh clone: installs npm packages from the lockfile when
// they are missing or stale, and (as root, from Debian) Java, OpenSSH, the AWS CLI and Chromium.
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

/** What the local runtime and the tests run for real: DynamoDB Local (Java), the demo sshd, the AWS CLI. */
const systemPackages = [
  {
    check: () => has("java", ["-version"]),
    apt: "openjdk-17-jre-headless",
    why: "Java 17+ for DynamoDB Local",
  },
  {
    check: () => existsSync("/usr/sbin/sshd"),
    apt: "openssh-server",
    why: "OpenSSH server for the demo instance",
  },
  { check: () => has("ssh", ["-V"]), apt: "openssh-client", why: "OpenSSH client for access ssh" },
  { check: () => existsSync("/usr/bin/aws"), apt: "awscli", why: "the AWS CLI (a second client in tests)" },
  {
    // Driven by playwright-core in the web app's tests (never `npx playwright install`: no browser downloads).
    check: () => existsSync("/usr/bin/chromium"),
    apt: "chromium",
    why: "Chromium for the web app's browser tests",
  },
];
const missing = systemPackages.filter((entry) => !entry.check());
if (missing.length > 0) {
  if (process.getuid?.() === 0 && has("apt-get", ["--version"])) {
    console.log(`Installing ${missing.map((entry) => entry.apt).join(", ")} with apt-get…`);
    execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
    execFileSync("apt-get", ["install", "-y", "-qq", ...missing.map((entry) => entry.apt)], {
      stdio: "inherit",
    });
  } else {
    for (const entry of missing) console.error(`missing: ${entry.why} — install the ${entry.apt} package`);
    // Java is required for anything to run; the others only for the demo instance and some tests.
    if (missing.some((entry) => entry.apt.startsWith("openjdk"))) process.exit(1);
  }
}

// The compiled CLI (dist/cli): `access` starts ~3× faster with it; bin.js ignores it once sources change.
const { buildCli } = await import("./build-cli.mjs");
await buildCli();
