#!/usr/bin/env python3
"""Print, one per line, the native libraries a Rust staticlib needs on this platform
(`rustc --print native-static-libs` on an empty crate): pkg-config's Libs.private."""
import subprocess
import sys
import tempfile
from pathlib import Path

rustc = sys.argv[1] if len(sys.argv) > 1 else "rustc"
with tempfile.TemporaryDirectory() as d:
    src = Path(d) / "empty.rs"
    src.write_text("")
    r = subprocess.run([rustc, "--crate-type", "staticlib", "--print", "native-static-libs",
                        "-o", str(Path(d) / "libempty.a"), str(src)],
                       capture_output=True, text=True)
    for line in r.stderr.splitlines():
        if "native-static-libs:" in line:
            for flag in line.split("native-static-libs:", 1)[1].split():
                print(flag)
            break
    else:
        sys.exit("rustc did not print native-static-libs")
