#!/usr/bin/env python3
"""Structure metrics of the C layer, for the restructuring's before/after figures:
lines of the C crate, the largest `extern "C"` body, and how often each exported
number (VCP_ERR_*, VCP_FROM_*, flag bits) is defined in Rust sources.
Usage: abi-metrics.py C_LAYER_DIR [RUST_SRC_DIR ...]"""
import re
import sys
from pathlib import Path

c_dir = Path(sys.argv[1])
src_dirs = [Path(p) for p in sys.argv[2:]] or [c_dir]
files = sorted(c_dir.rglob("*.rs"))
total = sum(len(f.read_text().splitlines()) for f in files)
largest = (0, "")
for f in files:
    lines = f.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.search(r'extern "C" fn (\w+)', line)
        if not m:
            continue
        depth, started, n = 0, False, 0
        for body in lines[i:]:
            n += 1
            depth += body.count("{") - body.count("}")
            started = started or "{" in body
            if started and depth <= 0:
                break
        largest = max(largest, (n, m.group(1)))
print(f"C layer: {len(files)} files, {total} lines")
print(f"largest extern \"C\" fn: {largest[1]} ({largest[0]} lines)")
defs = {}
for d in src_dirs:
    for f in d.rglob("*.rs"):
        for m in re.finditer(r"\bconst (VCP_[A-Z0-9_]+|[A-Z][A-Z0-9_]+)\s*:", f.read_text()):
            defs.setdefault(m.group(1), []).append(str(f))
        for m in re.finditer(r"^\s+([A-Z][A-Za-z]+) = (\d+),", f.read_text(), re.M):
            defs.setdefault("enum " + m.group(1), []).append(str(f))
exported = [k for k in defs if k.startswith("VCP_")]
print(f"exported numbers: {len(exported)}; defined more than once in Rust: "
      f"{sum(1 for k in defs if k.startswith('VCP_') and len(defs[k]) > 1)}")
