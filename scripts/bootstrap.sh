#!/usr/bin/env bash
# Creates .venv (once) and installs gridbridge with its test extras into it. Sourced by the other scripts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  "$PY" -m venv "$ROOT/.venv"
fi
STAMP="$ROOT/.venv/.gridbridge-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
  echo "gridbridge: installing into $ROOT/.venv (log: $ROOT/.venv/install.log)" >&2
  "$ROOT/.venv/bin/python" -m pip install -q --upgrade pip >"$ROOT/.venv/install.log" 2>&1 || true
  if ! "$ROOT/.venv/bin/python" -m pip install -e "$ROOT[test]" >>"$ROOT/.venv/install.log" 2>&1; then
    tail -30 "$ROOT/.venv/install.log" >&2
    echo "gridbridge: installation failed" >&2
    exit 1
  fi
  touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
# crypto/pm keeps live state in a real Redis; its tests start redis-server (Debian package) themselves.
if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "gridbridge: installing redis-server (Debian package)" >&2
  { apt-get update -qq && apt-get install -y -qq redis-server; } >/dev/null 2>&1 || \
    echo "gridbridge: could not install redis-server; the Redis tests will fail" >&2
fi
