#!/usr/bin/env bash
# Installs what the browser test (TestBrowserChat, test/browser_test.go) needs:
# Debian's Chromium at /usr/bin/chromium and the pinned npm packages of
# test/browser (playwright-core, cometd, cometd-nodejs-client). Idempotent:
# what is already there is not installed again. Never downloads a browser
# build of its own: playwright-core drives the Debian package.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium
fi

# npm ci only when node_modules was not installed from this very lock file.
stamp=node_modules/.bayeuxhub-setup-stamp
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --no-audit --no-fund
  echo "$want" > "$stamp"
fi
echo "browser test prerequisites ready: $(/usr/bin/chromium --version 2>/dev/null), node $(node --version)"
