#!/usr/bin/env bash
# Fast gate before a commit: lint, format and types (the slower tiers run in npm test).
set -euo pipefail
npx biome ci .
npx tsc --noEmit -p .
npx tsc --noEmit -p web
