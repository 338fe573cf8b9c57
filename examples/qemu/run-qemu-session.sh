#!/bin/sh
# Run one QEMU session under lockd and print where its result went.
#
# lockd holds the per-arch emulator lock ($BUILD_ROOT/$ARCH/.locks/qemu.lock) for exactly as long as QEMU
# runs, kills QEMU's whole process tree after $SESSION_TIMEOUT seconds, and judges the session by what the
# guest printed (--require-structured: a TEST_RESULT_JSON line and a TEST_SUMMARY line), not by QEMU's exit
# status, which says nothing about the guest's tests.
#
#   ARCH=riscv64 ./run-qemu-session.sh [extra qemu args...]
#
# Settings (environment):
#   ARCH             x86_64 (default), aarch64 or riscv64; picks the machine and console defaults
#   BUILD_ROOT       build root holding the kernel and the locks (default: build)
#   QEMU             emulator binary (default: qemu-system-$ARCH)
#   KERNEL, INITRD   boot images (default: $BUILD_ROOT/$ARCH/Image, no initrd)
#   QEMU_MACHINE     machine options (default per arch), MEMORY (default 1G), APPEND (kernel command line)
#   SESSION_TIMEOUT  seconds before the session is killed (default 900)
#   LOCK_WAIT        seconds to queue for the emulator (default: lockd's: 0 on a desk, 1800 in CI)
#   RUNS_ROOT        where run directories go (default: $BUILD_ROOT/runs); RUN_ID names this run's
#   LOCKD            the lockd command (default: lockd)
#
# Exit status: 0 pass, 1 tests failed or timed out, 2 no usable result from the guest, 75 emulator busy,
# 125 lockd itself failed (lockd run's exit codes).
set -eu

ARCH=${ARCH:-x86_64}
BUILD_ROOT=${BUILD_ROOT:-build}
QEMU=${QEMU:-qemu-system-$ARCH}
KERNEL=${KERNEL:-$BUILD_ROOT/$ARCH/Image}
INITRD=${INITRD:-}
MEMORY=${MEMORY:-1G}
SESSION_TIMEOUT=${SESSION_TIMEOUT:-900}
LOCK_WAIT=${LOCK_WAIT:-}
LOCKD=${LOCKD:-lockd}
RUNS_ROOT=${RUNS_ROOT:-$BUILD_ROOT/runs}
case $RUNS_ROOT in /*) ;; *) RUNS_ROOT=$(pwd)/$RUNS_ROOT ;; esac
# Chosen here rather than by lockd, so the result's path is known without parsing lockd's messages.
RUN_ID=${RUN_ID:-qemu-$ARCH-$(date -u +%Y%m%dT%H%M%SZ)-$$}

case $ARCH in
    x86_64)  machine="-machine q35 -cpu max"; console=ttyS0 ;;
    aarch64) machine="-machine virt -cpu max"; console=ttyAMA0 ;;
    riscv64) machine="-machine virt"; console=ttyS0 ;;
    *)       machine=""; console=ttyS0 ;;
esac
QEMU_MACHINE=${QEMU_MACHINE:-$machine}
if [ -z "$QEMU_MACHINE" ]; then
    echo "run-qemu-session.sh: no machine defaults for ARCH=$ARCH; set QEMU_MACHINE" >&2
    exit 2
fi
# panic=-1 and -no-reboot: a guest that panics or powers off ends QEMU instead of rebooting forever.
APPEND=${APPEND:-console=$console panic=-1}

# The QEMU command line: the user's extra arguments ("$@") go last.
if [ -n "$INITRD" ]; then
    set -- -initrd "$INITRD" "$@"
fi
# QEMU_MACHINE is unquoted on purpose: it holds several options.
# shellcheck disable=SC2086
set -- $QEMU_MACHINE -m "$MEMORY" -nographic -no-reboot -kernel "$KERNEL" -append "$APPEND" "$@"

wait_opt=""
[ -n "$LOCK_WAIT" ] && wait_opt="--wait $LOCK_WAIT"

status=0
# LOCKD and wait_opt are unquoted on purpose: LOCKD may be "node /path/to/bin/lockd.js".
# shellcheck disable=SC2086
$LOCKD run --root "$BUILD_ROOT" --arch "$ARCH" --lock qemu $wait_opt \
    --timeout "$SESSION_TIMEOUT" --require-structured \
    --runs-root "$RUNS_ROOT" --run-id "$RUN_ID" \
    -- "$QEMU" "$@" || status=$?

result=$RUNS_ROOT/$RUN_ID/result.json
if [ -f "$result" ]; then
    echo "result: $result"
else
    echo "run-qemu-session.sh: no result was written (exit $status); see lockd's message above" >&2
fi
exit "$status"
