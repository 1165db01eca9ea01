#!/usr/bin/env node
// The `access` command. It runs the compiled copy in dist/cli (scripts/build-cli.mjs; `npm start` and
// `npm test` build it) while no source file that went into it has changed since, else the TypeScript
// sources directly through tsx: never a stale build, and no build step needed while editing.
import { readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

function compiledIsFresh() {
  try {
    const built = statSync(`${root}dist/cli/inputs.json`).mtimeMs;
    const { inputs } = JSON.parse(readFileSync(`${root}dist/cli/inputs.json`, "utf8"));
    return inputs.every((input) => statSync(`${root}${input}`).mtimeMs <= built);
  } catch {
    return false; // not built, half built, or a source file gone
  }
}

async function loadMain() {
  if (process.env.ACCESS_CLI_FROM_SOURCE !== "1" && compiledIsFresh()) {
    return import(`${root}dist/cli/main.mjs`);
  }
  const { register } = await import("tsx/esm/api");
  // Pin the repository's tsconfig so a tsconfig in the caller's working directory cannot change how we compile.
  register({ tsconfig: `${root}tsconfig.json` });
  return import("./main.ts");
}

// `access ls | head` closes the pipe early; that is the reader's choice, not an error worth a stack trace.
process.stdout.on("error", (error) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
});
const { main } = await loadMain();
process.exitCode = await main(process.argv.slice(2));
