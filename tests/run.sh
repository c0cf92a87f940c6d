#!/usr/bin/env bash
# phlite's whole test suite, from a fresh clone: installs what the tests need
# (idempotently: fast when already there), then runs pytest. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

# Browser tests drive Debian's Chromium (posthog-js and mixpanel-browser).
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# The TLS proxies docs/operations.md shows, run on loopback by tests/test_deploy.py: Debian's nginx and Caddy
# binaries unpacked into tests/.tools (nothing is installed system-wide, no service is started).
if [ ! -x tests/.tools/usr/sbin/nginx ] || [ ! -x tests/.tools/usr/bin/caddy ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  debs=$(mktemp -d)
  (cd "$debs" && apt-get download -qq nginx caddy 2>/dev/null) || {
    $SUDO apt-get update -qq && (cd "$debs" && apt-get download -qq nginx caddy); }
  for deb in "$debs"/*.deb; do dpkg -x "$deb" tests/.tools; done
  rm -rf "$debs"
fi

# The real JavaScript clients, pinned by tests/js/package-lock.json.
if [ ! -d tests/js/node_modules ] || [ tests/js/package-lock.json -nt tests/js/node_modules ]; then
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi

exec python3 -m pytest "$@"
