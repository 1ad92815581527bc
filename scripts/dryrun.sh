#!/usr/bin/env bash
# The main job: bootstraps .venv, then runs the full dry run on generated data. Extra args go to `gridbridge dry-run`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
exec gridbridge dry-run "$@"
