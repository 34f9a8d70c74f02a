#!/usr/bin/env bash
# Installs what the headless-Chromium test (host/standalone/tests/all/browser.rs) needs, idempotently:
# Debian's `chromium`, Node.js with npm, and `playwright-core` (pinned) into
# ~/.cache/gatehouse-ci-tools/playwright-core-<version>, outside the clone so re-runs reuse it.
# Never downloads a browser build of Playwright's own: the test drives /usr/bin/chromium.
set -euo pipefail

PLAYWRIGHT_CORE_VERSION=1.56.1
dir="${HOME:-/tmp}/.cache/gatehouse-ci-tools/playwright-core-${PLAYWRIGHT_CORE_VERSION}"

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
    sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -f "$dir/node_modules/playwright-core/package.json" ]; then
    mkdir -p "$dir"
    # No browser download: playwright-core ships none, and the test uses Debian's chromium.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$dir" --no-audit --no-fund \
        --no-save --loglevel=error "playwright-core@${PLAYWRIGHT_CORE_VERSION}" >/dev/null
fi
echo "browser test tools: $(/usr/bin/chromium --version 2>/dev/null | head -1), node $(node --version), playwright-core ${PLAYWRIGHT_CORE_VERSION} in $dir"
