#!/usr/bin/env bash
# Runs every test: the Rust tests (unit, conformance, integration), the C tests against
# the static and the shared library, the header checks, the Meson subproject proof, then
# the C tests again under valgrind (any leak or error fails) and under ASan + UBSan, and checks that no QEMU
# process outlived them. QEMU must be installed (scripts/install-deps.sh). Ends with one line
# "N passed, N failed" over all of them; exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${VCP_BUILD_DIR:-build}

# What a fresh machine lacks (Meson, Ninja, valgrind, QEMU 10); quick when present.
bash scripts/install-deps.sh >/dev/null || { echo "dependency installation failed"; echo "0 passed, 1 failed"; exit 1; }

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" >/dev/null || { echo "meson setup failed"; echo "0 passed, 1 failed"; exit 1; }
fi
rm -f "$build"/meson-logs/testlog*.json
# Every process the tests start inherits this marker: afterwards the check below finds
# exactly those (QEMU, qemu-nbd, ...) that outlived them, and no unrelated process.
export VCP_TEST_RUN="vcp-test-$$-$(date +%s%N)"
survivors() {
    local p
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = "$$" ] && continue
        if { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qx "VCP_TEST_RUN=$VCP_TEST_RUN"; then
            { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q '^qemu' && echo "${p#/proc/}"
        fi
    done
}
rc=0
meson test -C "$build" --print-errorlogs || rc=1
meson test -C "$build" --setup valgrind --suite c --print-errorlogs || rc=1
# The C tests again in a build with AddressSanitizer and UndefinedBehaviorSanitizer
# (the first memory or UB error, or any leak, fails the test).
asan="$build-asan"
if [ ! -f "$asan/build.ninja" ]; then
    meson setup "$asan" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null \
        || { echo "meson setup of the sanitizer build failed"; rc=1; }
fi
rm -f "$asan"/meson-logs/testlog*.json
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C "$asan" --suite c --print-errorlogs || rc=1
leftover=0
left=$(survivors)
if [ -n "$left" ]; then
    echo "FAIL: processes started by the tests outlived them:"
    for p in $left; do echo "  $p: $(tr '\0' ' ' <"/proc/$p/cmdline")"; done
    leftover=1; rc=1
fi
python3 scripts/summarize.py "$build/meson-logs/testlog.json" "$build/meson-logs/testlog-valgrind.json" \
    "$asan/meson-logs/testlog.json" \
    --extra "no QEMU left behind" "$leftover" | tee "$build/summary.txt"
grep -q ' 0 failed$' "$build/summary.txt" || rc=1
exit $rc
