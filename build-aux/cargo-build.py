#!/usr/bin/env python3
"""Meson custom_target helper: run `cargo build --lib`, copy the static library, the
shared library (as libvirtcheckpoint.so.<soversion> plus a libvirtcheckpoint.so link)
and the generated header into @OUTDIR@ -- each only when its bytes changed, so ninja's
restat skips needless relinks -- and turn cargo's dep-info into a depfile."""
import argparse
import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

p = argparse.ArgumentParser()
p.add_argument("--cargo", required=True)
p.add_argument("--manifest-path", required=True, type=Path)
p.add_argument("--target-dir", required=True, type=Path)
p.add_argument("--profile", choices=["debug", "release"], default="debug")
p.add_argument("--lib-name", required=True)
p.add_argument("--soversion", required=True)
p.add_argument("--header", required=True, type=Path)
p.add_argument("--outdir", required=True, type=Path)
p.add_argument("--depfile", required=True, type=Path)
p.add_argument("--depfile-target", required=True)
a = p.parse_args()

cmd = [a.cargo, "build", "--lib", "--manifest-path", str(a.manifest_path),
       "--target-dir", str(a.target_dir)]
if a.profile == "release":
    cmd.append("--release")
r = subprocess.run(cmd)
if r.returncode != 0:
    sys.exit(r.returncode)

art = a.target_dir / a.profile
name = a.lib_name


def install(src: Path, dst: Path) -> None:
    if dst.exists() and not dst.is_symlink() and filecmp.cmp(src, dst, shallow=False):
        return
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)


install(art / f"lib{name}.a", a.outdir / f"lib{name}.a")
install(art / f"lib{name}.so", a.outdir / f"lib{name}.so.{a.soversion}")
link = a.outdir / f"lib{name}.so"
if not link.is_symlink():
    if link.exists():
        link.unlink()
    link.symlink_to(f"lib{name}.so.{a.soversion}")
install(a.header, a.outdir / a.header.name)

deps = (art / f"lib{name}.d").read_text().split(":", 1)[1].strip()
a.depfile.write_text(f"{a.depfile_target}: {deps}\n")
