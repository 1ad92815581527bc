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
