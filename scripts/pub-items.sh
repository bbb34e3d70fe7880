#!/usr/bin/env bash
# Counts the public items of a crate (rustdoc JSON "paths" of the crate itself), by kind.
# Usage: scripts/pub-items.sh [PACKAGE]   (default: virtcheckpoint). Needs RUSTC_BOOTSTRAP.
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=${1:-virtcheckpoint}
out=$(mktemp -d)
RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="-Z unstable-options --output-format json" \
    cargo doc --no-deps -p "$pkg" --lib --target-dir "$out" >/dev/null 2>&1
python3 - "$out"/doc/*.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
kinds = {}
for v in d["paths"].values():
    if v["crate_id"] == 0:
        kinds[v["kind"]] = kinds.get(v["kind"], 0) + 1
print(sum(kinds.values()), "public items:", ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
PY
rm -rf "$out"
