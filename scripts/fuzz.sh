#!/usr/bin/env bash
# Runs the cargo-fuzz targets one after another, each for SECONDS (default 30), and
# fails if any crashes. Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# VCP_FUZZ_RUNS=N stops each target after N executions instead (a campaign).
# Prints, per target, libFuzzer's executions, executions per second and coverage, and
# ends with "N passed, N failed" (one per target).
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(domain_xml checkpoint_xml node_data image_info metadata_load c_abi)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked >/dev/null 2>&1 \
    || { echo "cargo-fuzz could not be installed"; echo "0 passed, 1 failed"; exit 1; }
export RUSTC_BOOTSTRAP=1
passed=0
failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus-run/$t"
    log=$(mktemp)
    # The run corpus first (where new inputs go), the committed seeds second.
    if cargo fuzz run --release "$t" "corpus-run/$t" "corpus/$t" -- \
        -max_total_time="$secs" ${VCP_FUZZ_RUNS:+-runs=$VCP_FUZZ_RUNS} -max_len=1048576 -rss_limit_mb=4096 -print_final_stats=1 \
        >"$log" 2>&1; then
        passed=$((passed + 1))
        status=ok
    else
        failed=$((failed + 1))
        status=CRASH
        grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -20
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    echo "fuzz $t: $status, ${execs:-0} execs, ${rate:-0} exec/s, ${cov:-cov: ?}, ${secs}s"
    rm -f "$log"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
