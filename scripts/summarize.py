#!/usr/bin/env python3
"""Totals every suite of a run into one line `N passed, N failed`.

Usage: summarize.py LOG... [--extra NAME STATUS]... (STATUS 0 = passed).

Reads Meson's test logs (testlog*.json, one JSON object per test). A `cargo test`
entry counts its individual Rust tests ("test result: ok. N passed; M failed"), a TAP
entry its `ok` / `not ok` lines, the conformance runner its own "N passed, N failed"
line, anything else counts as one test."""
import json
import re
import sys
from pathlib import Path

passed = failed = 0
args = sys.argv[1:]
extras = []
while "--extra" in args:
    i = args.index("--extra")
    extras.append((args[i + 1], args[i + 2]))
    del args[i:i + 3]
for name, status in extras:
    if status == "0":
        passed += 1
    else:
        print(f"summarize: check failed: {name}", file=sys.stderr)
        failed += 1
for log in args:
    path = Path(log)
    if not path.exists():
        print(f"summarize: {log} missing", file=sys.stderr)
        failed += 1
        continue
    for line in path.read_text().splitlines():
        t = json.loads(line)
        out = t.get("stdout") or ""
        ok = t["result"] in ("OK", "EXPECTEDFAIL")
        bad = t["result"] in ("FAIL", "ERROR", "TIMEOUT", "UNEXPECTEDPASS")
        rust = re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed", out)
        tap_ok = re.findall(r"^ok \d+", out, re.M)
        tap_bad = re.findall(r"^not ok \d+", out, re.M)
        own = re.findall(r"^(\d+) passed, (\d+) failed$", out, re.M)
        if rust:
            p = sum(int(a) for a, _ in rust)
            f = sum(int(b) for _, b in rust)
        elif t.get("protocol") == "tap" or tap_ok or tap_bad:
            p, f = len(tap_ok), len(tap_bad)
        elif own:
            p, f = int(own[-1][0]), int(own[-1][1])
        else:
            p, f = (1, 0) if ok else (0, 1 if bad else 0)
        if bad and f == 0:
            f = 1  # a crashed or timed-out suite counts as a failure
        passed += p
        failed += f
print(f"{passed} passed, {failed} failed")
