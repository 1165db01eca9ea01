import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";
import type { WebConfig } from "./config.ts";

const ROOT = resolve(import.meta.dirname);

export interface BuiltFile {
  /** Path under the output directory, e.g. `assets/main-XYZ.js`. */
  path: string;
  bytes: number;
  gzipBytes: number;
  /** Loaded by index.html itself (as opposed to a chunk imported on demand by some page). */
  initial: boolean;
}

export interface WebBuild {
  outDir: string;
  files: BuiltFile[];
}

/** The web app's settings from the environment (`sst deploy` sets these for the StaticSite build). */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): WebConfig {
  const apiUrl = (env.WEB_API_URL ?? "").replace(/\/+$/, "");
  if (env.WEB_AUTH === "oidc") {
    const issuer = env.WEB_OIDC_ISSUER ?? "";
    const clientId = env.WEB_OIDC_CLIENT_ID ?? "";
    if (!issuer.startsWith("https://") || !clientId)
      throw new Error("WEB_AUTH=oidc needs WEB_OIDC_ISSUER (https) and WEB_OIDC_CLIENT_ID");
    return {
      apiUrl,
      auth: { kind: "oidc", issuer, clientId, scope: env.WEB_OIDC_SCOPE ?? "openid email profile" },
    };
  }
  return { apiUrl, auth: { kind: "dev" } };
}

/**
 * Builds web/ with esbuild into `outDir` (replaced whole, atomically): hashed, immutable assets under
 * `assets/` and an `index.html` naming them. Pages other than the inbox, the form and my access are
 * separate chunks loaded when opened.
 */
export async function buildWeb(
  options: { outDir?: string; config?: WebConfig; minify?: boolean } = {},
): Promise<WebBuild> {
  const outDir = resolve(options.outDir ?? join(ROOT, "dist"));
  const config = options.config ?? { apiUrl: "", auth: { kind: "dev" } };
  const staging = `${outDir}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(staging, { recursive: true });
  const result = await esbuild.build({
    entryPoints: [join(ROOT, "src/main.tsx")],
    outdir: join(staging, "assets"),
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "browser",
    target: ["chrome120", "firefox120", "safari17"],
    mainFields: ["module", "main"],
    minify: options.minify ?? true,
    sourcemap: false,
    legalComments: "none",
    jsx: "automatic",
    jsxImportSource: "preact",
    entryNames: "[name]-[hash]",
    chunkNames: "[name]-[hash]",
    assetNames: "[name]-[hash]",
    metafile: true,
    define: { __WEB_CONFIG__: JSON.stringify(config) },
    logLevel: "silent",
  });
  const outputs = result.metafile.outputs;
  const entry = Object.keys(outputs).find((path) => outputs[path]?.entryPoint?.endsWith("src/main.tsx"));
  if (!entry) throw new Error("web build produced no entry chunk");
  const css = outputs[entry]?.cssBundle;
  // What index.html loads: the entry and, transitively, what it imports statically (not the pages it
  // imports on demand), plus its CSS.
  const initial = new Set<string>(css ? [css] : []);
  const visit = (path: string) => {
    if (initial.has(path)) return;
    initial.add(path);
    for (const imported of outputs[path]?.imports ?? [])
      if (imported.kind === "import-statement" && !imported.external) visit(imported.path);
  };
  visit(entry);
  const asset = (path: string) => `/assets/${basename(path)}`;
  const template = readFileSync(join(ROOT, "index.html"), "utf8");
  const html = template
    .replace("<!--css-->", css ? `<link rel="stylesheet" href="${asset(css)}" />` : "")
    .replace(
      "<!--js-->",
      [
        ...[...initial]
          .filter((path) => path.endsWith(".js") && path !== entry)
          .map((path) => `<link rel="modulepreload" href="${asset(path)}" />`),
        `<script type="module" src="${asset(entry)}"></script>`,
      ].join("\n    "),
    );
  writeFileSync(join(staging, "index.html"), html);
  const files: BuiltFile[] = [
    { path: "index.html", content: Buffer.from(html), initial: true },
    ...Object.keys(outputs).map((path) => ({
      path: `assets/${basename(path)}`,
      content: readFileSync(path),
      initial: initial.has(path),
    })),
  ].map(({ path, content, initial }) => ({
    path,
    bytes: content.length,
    gzipBytes: gzipSync(content, { level: 9 }).length,
    initial,
  }));
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(dirname(outDir), { recursive: true });
  renameSync(staging, outDir);
  return { outDir, files };
}

/** `node --import tsx web/build.ts [outDir]`: a production build with the settings from the environment. */
if (process.argv[1] && resolve(process.argv[1]) === resolve(ROOT, "build.ts")) {
  const built = await buildWeb({ outDir: process.argv[2], config: configFromEnv() });
  for (const file of built.files)
    console.log(
      `${relative(process.cwd(), join(built.outDir, file.path))}  ${(file.bytes / 1024).toFixed(1)} KB (${(file.gzipBytes / 1024).toFixed(1)} KB gzip)`,
    );
}
