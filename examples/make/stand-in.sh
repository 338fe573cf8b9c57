#!/bin/sh
# Stand-in for an emulator session or test suite, so this example (and test/examples.test.ts) runs on any
# machine: it appends "start LABEL NANOSECONDS" and "end LABEL NANOSECONDS" (date +%s%N) to $STAMPS,
# "works" for $STAND_IN_SECONDS, and prints the structured result lines a guest test harness would, so
# `lockd run --require-structured` passes it.
#
#   stand-in.sh LABEL
#   STAMPS=FILE              where the timestamps go (default: ./stamps.log)
#   STAND_IN_SECONDS=S       how long the "session" lasts (default 0.3)
#   STAND_IN_MEET=DIR        rendezvous: wait (at most 60 s) until STAND_IN_MEET_COUNT stand-ins have arrived
#   STAND_IN_MEET_COUNT=N    in DIR. Proves that N jobs really ran at the same time (different arches may).
#   STAND_IN_FAIL=1          report one failed test (exit status stays 0, like an emulator's)
set -eu
label=${1:?usage: stand-in.sh LABEL}
stamps=${STAMPS:-./stamps.log}

echo "start $label $(date +%s%N)" >> "$stamps"
echo "[$label] booting"

if [ -n "${STAND_IN_MEET:-}" ]; then
    mkdir -p "$STAND_IN_MEET"
    : > "$STAND_IN_MEET/$label"
    want=${STAND_IN_MEET_COUNT:?STAND_IN_MEET_COUNT is needed with STAND_IN_MEET}
    tries=0
    while [ "$(ls "$STAND_IN_MEET" | wc -l)" -lt "$want" ]; do
        tries=$((tries + 1))
        if [ "$tries" -gt 1200 ]; then
            echo "[$label] only $(ls "$STAND_IN_MEET" | wc -l) of $want jobs ever ran at the same time"
            echo "TEST_RESULT_JSON: {\"schema_version\":1,\"failed\":1,\"done\":true}"
            echo "TEST_SUMMARY: failed=1"
            echo "end $label $(date +%s%N)" >> "$stamps"
            exit 0
        fi
        sleep 0.05
    done
fi

sleep "${STAND_IN_SECONDS:-0.3}"
failed=0
[ "${STAND_IN_FAIL:-0}" = 1 ] && failed=1
echo "[$label] tests done"
echo "TEST_RESULT_JSON: {\"schema_version\":1,\"failed\":$failed,\"done\":true}"
echo "TEST_SUMMARY: failed=$failed"
echo "end $label $(date +%s%N)" >> "$stamps"
