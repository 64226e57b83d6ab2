#!/usr/bin/env bash
# Make Debian's chromium available for the browser tests (tests/ops/test_browser.py).
# Installs it with apt-get only when /usr/bin/chromium is missing and we are root.
# Never fails the caller: without a browser those tests skip and say why.
set -u
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "ensure_chromium: $CHROMIUM missing and not root; browser tests will skip" \
         "(install it: sudo apt-get install chromium)" >&2
    exit 0
fi
echo "ensure_chromium: installing Debian's chromium for the browser tests (log: .run/apt-chromium.log)" >&2
mkdir -p .run
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
        >.run/apt-chromium.log 2>&1; then
    echo "ensure_chromium: apt-get could not install chromium (see .run/apt-chromium.log);" \
         "browser tests will skip" >&2
fi
exit 0
