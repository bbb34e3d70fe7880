#!/usr/bin/env python3
"""Adapter size against the libvirt C it replaces, per function.

Counts non-blank, non-comment lines of each function definition (signature to closing
brace) in libvirt's pristine source and in the project's adapter (libvirt/), plus the
adapter's shared helpers (every other line of its .c files, includes and declarations
included).

Usage: scripts/adapter-lines.py LIBVIRT_SOURCE_DIR
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUNCTIONS = {
    "qemuCheckpointAddActions": "qemu_checkpoint.c",
    "qemuCheckpointRedefineValidateBitmaps": "qemu_checkpoint.c",
    "qemuCheckpointDiscardDiskBitmaps": "qemu_checkpoint.c",
    "qemuCheckpointDiscardBitmaps": "qemu_checkpoint.c",
    "qemuCheckpointGetXMLDescUpdateSize": "qemu_checkpoint.c",
    "qemuBlockBitmapChainIsValid": "qemu_block.c",
    "qemuBlockGetBitmapMergeActions": "qemu_block.c",
    "qemuBlockBitmapsHandleBlockcopy": "qemu_block.c",
    "qemuBlockBitmapsHandleCommitFinish": "qemu_block.c",
    "qemuBackupDiskPrepareOneBitmapsChain": "qemu_backup.c",
    "qemuSnapshotDiskBitmapsPropagate": "qemu_snapshot.c",
    "qemuBlockJobProcessEventCompletedPullBitmaps": "qemu_blockjob.c",
    "qemuBlockJobProcessEventCompletedCommitBitmaps": "qemu_blockjob.c",
    "qemuBlockJobProcessEventCompletedCopyBitmaps": "qemu_blockjob.c",
    "virDomainCheckpointDefParseString": "../conf/checkpoint_conf.c",
    "virDomainCheckpointDefFormat": "../conf/checkpoint_conf.c",
    "virDomainCheckpointAlignDisks": "../conf/checkpoint_conf.c",
}
# libvirt helpers only the replaced functions use, replaced with them.
HELPERS = {
    "qemuBlockGetBitmapMergeActionsGetBitmaps": "qemu_block.c",
    "virDomainCheckpointDefParse": "../conf/checkpoint_conf.c",
    "virDomainCheckpointDiskDefParseXML": "../conf/checkpoint_conf.c",
    "virDomainCheckpointDefFormatInternal": "../conf/checkpoint_conf.c",
    "virDomainCheckpointDiskDefFormat": "../conf/checkpoint_conf.c",
}


def code_lines(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return [l for l in (re.sub(r"//.*", "", l).strip() for l in text.splitlines()) if l]


def definition(text, name):
    """The definition of @name: from its return type line to the closing brace."""
    m = re.search(r"\n((?:static )?[A-Za-z_][\w ]*\*?)\n" + name + r"\([^;{]*\)\n\{", text)
    if not m:
        return None, None
    end = text.index("\n}\n", m.end()) + 3
    return m.start() + 1, end


def main():
    src = os.path.join(sys.argv[1], "src/qemu")
    adapter = {}
    for f in sorted(os.listdir(os.path.join(ROOT, "libvirt"))):
        if f.startswith("vcp_adapter"):
            adapter[f] = open(os.path.join(ROOT, "libvirt", f)).read()
    rows, total_lv, total_ad = [], 0, 0
    spans = {f: [] for f in adapter}
    for name, file in list(FUNCTIONS.items()) + list(HELPERS.items()):
        text = open(os.path.join(src, file)).read()
        s, e = definition(text, name)
        lv = len(code_lines(text[s:e])) if s is not None else 0
        ad = 0
        for f, t in adapter.items():
            a, b = definition(t, name)
            if a is not None:
                ad = len(code_lines(t[a:b]))
                spans[f].append((a, b))
        rows.append((name, lv, ad))
        total_lv += lv
        total_ad += ad
    shared = 0
    for f, t in adapter.items():
        rest, last = "", 0
        for a, b in sorted(spans[f]):
            rest += t[last:a]
            last = b
        rest += t[last:]
        shared += len(code_lines(rest))
    for name, lv, ad in rows:
        print("adapter lines: %-42s libvirt %4d  adapter %4d" % (name, lv, ad))
    print("adapter lines: %-42s libvirt %4s  adapter %4d" % ("(shared helpers, declarations)", "-", shared))
    print("adapter lines: total: libvirt %d, adapter %d (%.2fx)"
          % (total_lv, total_ad + shared, (total_ad + shared) / total_lv))


if __name__ == "__main__":
    main()
