#!/usr/bin/env bash
# Installs what the console's browser tests need, and nothing that downloads
# a browser of its own: Debian's chromium (apt) and the playwright-core
# pinned in package-lock.json (npm ci, with PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD).
# Idempotent, and quick when both are there: `make test` runs it every time.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v chromium >/dev/null 2>&1; then
  echo "console e2e: installing Debian's chromium (apt-get) ..."
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "console e2e: chromium is missing; install it with: apt-get install chromium" >&2
    exit 1
  fi
fi

# The same stamp the Go test checks (e2e_test.go): node_modules matches the
# lock file it was installed from.
stamp=node_modules/.entrasync-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "console e2e: npm ci (playwright-core, pinned) ..."
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
