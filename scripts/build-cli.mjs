#!/usr/bin/env node
// Compiles the `access` CLI into dist/cli/ so each invocation starts in ~70 ms instead of ~240 ms through
// tsx (it matters most to `access ssh`, on the way from approval to the first command). cli/bin.js uses
// the compiled copy only while it is fresh: dist/cli/inputs.json lists every source file that went in,
// and one edited since the build sends bin.js back to the sources. So a stale build can be slow, never wrong.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const outdir = `${root}dist/cli`;

export async function buildCli() {
  let esbuild;
  try {
    esbuild = await import("esbuild");
  } catch {
    return false; // no dev dependencies installed: bin.js runs the sources through tsx
  }
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: ["cli/main.ts"],
    outdir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    splitting: true, // commands load their modules on first use, as they do from sources
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external", // resolved from node_modules at run time, as tsx would
    mainFields: ["module", "main"],
    tsconfig: "tsconfig.json",
    metafile: true,
    logLevel: "warning",
  });
  const inputs = Object.keys(result.metafile.inputs).filter((input) => !input.startsWith("node_modules/"));
  // How it was compiled counts as much as what.
  inputs.push("tsconfig.json", "scripts/build-cli.mjs");
  // Written last: its presence says the build is complete.
  writeFileSync(`${outdir}/inputs.json`, `${JSON.stringify({ inputs })}\n`);
  return true;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const built = await buildCli();
  console.log(
    built ? `access CLI compiled to ${outdir}` : "esbuild is not installed; the CLI runs from sources",
  );
}
