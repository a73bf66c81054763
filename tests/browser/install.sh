#!/usr/bin/env bash
# Installs playwright-core (the driver only, never a browser: the tests launch Debian's
# /usr/bin/chromium) into tests/browser/node_modules. Idempotent.
set -euo pipefail
cd "$(dirname "$0")"
if [ -f node_modules/playwright-core/package.json ]; then
  exit 0
fi
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm install --no-save --no-audit --no-fund playwright-core@1 >/dev/null
