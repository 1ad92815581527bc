#!/usr/bin/env bash
# The test command: bootstraps .venv, then runs the whole suite. Extra args go to pytest.
# With no args, the real-time tests (five minutes at 1x speed, mostly asleep) run in a second pytest
# process beside the rest, so the suite takes the longer of the two rather than their sum; the command
# fails when either fails.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
if [ "$#" -gt 0 ]; then
  exec python -m pytest "$@"
fi
mkdir -p artifacts
RT_TMP="$(mktemp -d)"
RT_LOG="artifacts/realtime-tests.log"
python -m pytest -m realtime --basetemp "$RT_TMP/basetemp" >"$RT_LOG" 2>&1 &
RT_PID=$!
trap 'kill "$RT_PID" 2>/dev/null || true' INT TERM
rc=0
python -m pytest -m "not realtime" || rc=$?
rt=0
wait "$RT_PID" || rt=$?
echo "--- real-time tests (pytest -m realtime, log $RT_LOG) ---"
tail -n 15 "$RT_LOG"
rm -rf "$RT_TMP"
if [ "$rc" -ne 0 ]; then exit "$rc"; fi
exit "$rt"
