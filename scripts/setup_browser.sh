#!/usr/bin/env bash
# Install Debian's Chromium (for the browser tests, driven by Playwright with executable /usr/bin/chromium).
# Playwright's own browser download cannot work offline, so the system browser is used.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "setup_browser.sh: Chromium is missing and this is not root; install the 'chromium' package." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium >/dev/null
