#!/usr/bin/env bash
# phlite's benchmark in one command: bash bench/run.sh  (see bench/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  for attempt in 1 2 3 4 5 6; do  # another apt-get may hold the lock for a while
    if $SUDO apt-get install -y -qq wrk >/dev/null 2>&1 || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq wrk >/dev/null 2>&1; }; then
      break
    fi
    sleep 10
  done
  command -v wrk >/dev/null || { echo "could not install wrk" >&2; exit 1; }
fi
if [ "${BENCH_PROFILE:-}" = 1 ] && ! command -v py-spy >/dev/null; then
  "$PY" -m pip install -q py-spy
fi
"$PY" -c "import posthog" 2>/dev/null || "$PY" -m pip install -q "posthog==7.91.1"

exec "$PY" bench/bench.py "$@"
