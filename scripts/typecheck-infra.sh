#!/usr/bin/env bash
# Type-checks sst.config.ts and infra/*.ts against the real SST component types without AWS or Pulumi.
# The types live in .sst/platform/, which `sst install` fills from the npm registry (~40 s, ~320 MB).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=node_modules/.bin
platform=.sst/platform
wanted=$(node -p 'JSON.parse(require("node:fs").readFileSync("node_modules/sst/package.json", "utf8")).version')
installed=$(cat "$platform/version" 2>/dev/null || true)

# A stale platform after an sst upgrade would check the config against the old component types.
if [[ ! -f "$platform/config.d.ts" || "$installed" != "$wanted" ]]; then
  echo "typecheck:infra: installing SST $wanted platform types into $platform (once)" >&2
  # Plain `sst` commands try to download Pulumi first; these variables keep install to the npm registry.
  SST_SKIP_DEPENDENCY_CHECK=1 SST_NO_BUN=1 SST_TELEMETRY_DISABLED=1 "$bin/sst" install --stage ci
fi

exec "$bin/tsc" --noEmit -p tsconfig.infra.json
