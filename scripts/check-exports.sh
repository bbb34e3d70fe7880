#!/usr/bin/env bash
# The shared library exports the C ABI's vcp_* functions and nothing else, and the
# header defines only VCP_/vcp_ names (and its include guard).
# Usage: check-exports.sh LIBRARY HEADER
set -euo pipefail
lib=$1
header=$2
others=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^vcp_' || true)
if [ -n "$others" ]; then
    echo "exported beyond vcp_*:"; echo "$others" | head -20; exit 1
fi
count=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -c '^vcp_')
macros=$(grep -oE '^#define [A-Za-z_][A-Za-z0-9_]*' "$header" | awk '{print $2}' \
    | grep -vE '^(VCP_|VIRTCHECKPOINT_H$)' || true)
if [ -n "$macros" ]; then
    echo "unprefixed macros in the header:"; echo "$macros"; exit 1
fi
echo "ok: $count vcp_* symbols exported, nothing else; header macros prefixed"
