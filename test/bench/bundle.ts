import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { type BuildOptions, build } from "esbuild";
import { ROOT } from "../helpers/runtime.ts";

/**
 * Every Lambda handler infra/ deploys (infra/functions.ts, infra/trail.ts), by the file its `handler:`
 * names (`functions/<name>.handler`). benchBundles checks the list against infra/ before measuring.
 */
export const HANDLERS = {
  api: "functions/api.ts",
  sweeper: "functions/sweeper.ts",
  expire: "functions/expire.ts",
  slack: "functions/slack.ts",
  "slack-worker": "functions/slack-worker.ts",
  "trail-events": "functions/trail-events.ts",
  "trail-backfill": "functions/trail-backfill.ts",
  "trail-import": "functions/trail-import.ts",
} as const;

/** The files infra/ deploys as handlers (`handler: "functions/<name>.handler"`), sorted. */
export function deployedHandlers(): string[] {
  const infra = join(ROOT, "infra");
  return readdirSync(infra)
    .filter((file) => file.endsWith(".ts"))
    .flatMap((file) =>
      [...readFileSync(join(infra, file), "utf8").matchAll(/\bhandler:\s*"(functions\/[\w/-]+)\.\w+"/g)].map(
        (match) => `${match[1]}.ts`,
      ),
    )
    .sort();
}

/**
 * The production bundle, as infra/functions.ts configures SST's esbuild: ESM, minified, module-first
 * main fields (zod and the SDK ship smaller ESM builds), code splitting (the SDK loads rarely used
 * credential providers, event streams and its browser user-agent parser with dynamic imports, which
 * then stay out of the cold start), and a `require` for CJS dependencies.
 */
export const PRODUCTION: BuildOptions = {
  bundle: true,
  splitting: true,
  platform: "node",
  target: "node20",
  format: "esm",
  minify: true,
  mainFields: ["module", "main"],
  outExtension: { ".js": ".mjs" },
  banner: {
    js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
  logLevel: "silent",
};

/** What a first attempt produces: esbuild's defaults for Node (CommonJS, main-first, not minified). */
export const NAIVE: BuildOptions = { bundle: true, platform: "node", target: "node20", logLevel: "silent" };

export interface BundleSize {
  /** The entry file and every chunk it imports statically: what a cold start reads and parses. */
  loaded: number;
  /** Every file written, including chunks only reached through dynamic imports. */
  total: number;
  entryFile: string;
}

export async function bundle(entry: string, options: BuildOptions, outdir: string): Promise<BundleSize> {
  const result = await build({ ...options, entryPoints: [join(ROOT, entry)], outdir, metafile: true });
  const outputs = result.metafile.outputs;
  // With splitting, chunks reached by dynamic import count as entry points too: find ours by its source.
  const source = relative(process.cwd(), join(ROOT, entry));
  const entryPath = Object.keys(outputs).find((path) => outputs[path]?.entryPoint === source);
  if (!entryPath) throw new Error(`no entry output for ${entry}`);
  const loaded = new Set<string>();
  const visit = (path: string) => {
    if (loaded.has(path)) return;
    loaded.add(path);
    for (const imported of outputs[path]?.imports ?? []) {
      if (imported.kind === "import-statement" && !imported.external) visit(imported.path);
    }
  };
  visit(entryPath);
  const size = (paths: Iterable<string>) =>
    [...paths].reduce((sum, path) => sum + (outputs[path]?.bytes ?? 0), 0);
  return { loaded: size(loaded), total: size(Object.keys(outputs)), entryFile: resolve(entryPath) };
}

/** Cold import of a bundle in a fresh Node process, min of `runs` (the handler is resolved, not called). */
export function importMs(file: string, runs = 5): number {
  const script = `const t=performance.now();await import(${JSON.stringify(file)});process.stdout.write(String(performance.now()-t))`;
  const times = Array.from({ length: runs }, () =>
    Number(
      execFileSync(process.execPath, ["--input-type=module", "-e", script], {
        env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
      }),
    ),
  );
  return Math.min(...times);
}

export interface BundleRow {
  handler: string;
  loadedKB: number;
  totalKB: number;
  importMs: number;
  naiveKB: number;
  naiveImportMs: number;
}

export async function benchBundles(): Promise<BundleRow[]> {
  const listed = Object.values(HANDLERS).sort();
  const deployed = deployedHandlers();
  if (listed.join() !== deployed.join())
    throw new Error(`HANDLERS lists ${listed.join(", ")}; infra/ deploys ${deployed.join(", ")}`);
  const dir = mkdtempSync(join(tmpdir(), "bundle-bench-"));
  try {
    const rows: BundleRow[] = [];
    for (const [name, entry] of Object.entries(HANDLERS)) {
      const production = await bundle(entry, PRODUCTION, join(dir, name));
      const naive = await bundle(entry, NAIVE, join(dir, `${name}-naive`));
      rows.push({
        handler: name,
        loadedKB: production.loaded / 1024,
        totalKB: production.total / 1024,
        importMs: importMs(production.entryFile),
        naiveKB: naive.total / 1024,
        naiveImportMs: importMs(naive.entryFile),
      });
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
