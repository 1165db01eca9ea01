// npm run bench [-- api|bundle]: prints each benchmark against its baseline measured in the same run.
import { benchApiOverhead } from "./api-overhead.ts";
import { benchBundles } from "./bundle.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const only = process.argv[2];
const verdict = (ok: boolean) => (ok ? "meets goal" : "MISSES goal");
const fixed = (value: number, digits = 1) => value.toFixed(digits);

if (!only || only === "api") {
  console.log(
    "\nAPI overhead: create + approve, in-process handler vs the raw DynamoDB round trips it needs",
  );
  const result = await benchApiOverhead();
  console.table({
    "handler (ms/flow)": fixed(result.apiMsPerFlow, 2),
    "raw DynamoDB (ms/flow)": fixed(result.rawMsPerFlow, 2),
    "ratio raw/handler": fixed(result.ratio, 2),
    "goal ≥ 0.5": verdict(result.ratio >= 0.5),
    flows: result.flows,
  });
}

if (!only || only === "bundle") {
  console.log(
    "\nLambda bundles: production build (ESM, minified, split) vs a naive esbuild bundle; import = min of 5",
  );
  const rows = await benchBundles();
  console.table(
    rows.map((row) => ({
      handler: row.handler,
      "loaded at cold start (KB)": fixed(row.loadedKB),
      "all files (KB)": fixed(row.totalKB),
      "import (ms)": fixed(row.importMs),
      "naive (KB)": fixed(row.naiveKB),
      "naive import (ms)": fixed(row.naiveImportMs),
      "size ratio": fixed(row.loadedKB / row.naiveKB, 2),
      "goal ≤ 450 KB, ≤ 50 ms": verdict(row.loadedKB <= 450 && row.importMs <= 50),
    })),
  );
}
