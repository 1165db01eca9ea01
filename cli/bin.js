#!/usr/bin/env node
// The `access` command runs its TypeScript sources directly through tsx: no build step.
import { fileURLToPath } from "node:url";
import { register } from "tsx/esm/api";

// Pin the repository's tsconfig so a tsconfig in the caller's working directory cannot change how we compile.
register({ tsconfig: fileURLToPath(new URL("../tsconfig.json", import.meta.url)) });
// `access ls | head` closes the pipe early; that is the reader's choice, not an error worth a stack trace.
process.stdout.on("error", (error) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
});
const { main } = await import("./main.ts");
process.exitCode = await main(process.argv.slice(2));
