#!/usr/bin/env bash
# The Windows suite (test/windows/*.test.ts): lockd's daemon and CLI as Node's Windows build under Wine, with real
# Windows children. Called by `npm test` after the Linux suite and by `npm run test:windows`.
#  - It runs once per CI run: under LOCKD_LAUNCHER=portable (.ci/run's second pass) it says so and stops, since
#    Windows has only the portable launcher and the first pass already ran it.
#  - Without Wine it prints one skip line and exits 0.
#  - ava's lines are prefixed with "[windows] " (so they do not mix with the Linux run's counts), and it ends with
#    the line `windows: N passed, N failed`, which .ci/run adds to its total.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${LOCKD_LAUNCHER:-}" = portable ] && [ "${LOCKD_WINDOWS_SUITE:-}" != force ]; then
  echo "windows: suite skipped under LOCKD_LAUNCHER=portable (it runs once, in the default pass)"
  exit 0
fi
if [ "${LOCKD_WINDOWS_SUITE:-}" = skip ]; then
  echo "windows: suite skipped (LOCKD_WINDOWS_SUITE=skip)"
  exit 0
fi
if ! vars=$(scripts/wine-node.sh); then
  echo "windows: suite skipped: no Wine or no Node Windows build (install wine64; see docs/windows.md)"
  exit 0
fi
eval "$vars"
log=$(mktemp)
# Windows processes under Wine are slow to start (about 0.5 s each): one file at a time keeps the load bounded.
# Arguments (test files) narrow the run; none: the whole Windows suite.
[ $# -gt 0 ] || set -- test/windows/*.test.ts   # explicit paths: the ava config leaves test/windows out of its globs
# ava's own reporter, each line prefixed with "[windows] " so that .ci/run's count of the Linux run ignores them.
npx ava --concurrency 1 --timeout 180s "$@" 2>&1 | sed -u 's/^/[windows] /' | tee "$log"
st=${PIPESTATUS[0]}
count() { grep -Eo "^\[windows\] +[0-9]+ $1" "$log" | grep -Eo '[0-9]+' | tail -1; }
passed=$(count 'tests? passed')
failed=$(count 'tests? failed')
other=$(grep -Eo '^\[windows\] +[0-9]+ (uncaught exceptions?|unhandled rejections?|tests? remained pending)' "$log" | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
# With failures ava prints no "N tests passed": count the passing tests' lines.
[ -n "$passed" ] || passed=$(grep -cE '^\[windows\] +✔' "$log")
passed=${passed:-0}
failed=$(( ${failed:-0} + ${other:-0} ))
if [ "$st" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
rm -f "$log"
echo "windows: ${passed} passed, ${failed} failed"
exit "$st"
