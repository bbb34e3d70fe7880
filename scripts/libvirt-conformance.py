#!/usr/bin/env python3
"""Every bitmap and checkpoint case of a libvirt source tree, as a conformance manifest.

Reads the case lists of libvirt's own tests/qemublocktest.c (TEST_BITMAP_DETECT,
TEST_BACKUP_BITMAP_CALCULATE, TEST_CHECKPOINT_DELETE, TEST_BITMAP_VALIDATE,
TEST_BITMAP_BLOCKCOPY, TEST_BITMAP_BLOCKCOMMIT) and tests/qemudomaincheckpointxml2xmltest.c
(DO_TEST_OUT, DO_TEST_INOUT, DO_TEST_INVALID) and writes a manifest in the format of
tests/data/conformance/CASES.json, with paths relative to the libvirt source tree, so
that the project's conformance runner (tests/conformance.rs) runs the library on every
one of that version's vectors, not only on the copy the project carries.

Arguments are taken as libvirt's test program takes them: the fake chain is libvirt's
testQemuBackupIncrementalBitmapCalculateGetFakeChain (five qcow2 images), the backup
target is node "target_node" with bitmap "target-bitmap-name", the block copy mirror
is "mirror-format-node", the delete's disk is "testdisk", and a commit is active when
its top is the chain's top.

Usage: scripts/libvirt-conformance.py LIBVIRT_SOURCE_DIR OUTPUT_MANIFEST
(OUTPUT_MANIFEST must be inside LIBVIRT_SOURCE_DIR: the runner reads paths from it.)
"""

import json
import os
import re
import sys


def calls(text, macro):
    """The argument lists of every call of @macro, as Python values."""
    out = []
    for m in re.finditer(r"^\s*" + macro + r"\(([^;]*?)\);", text, flags=re.M):
        args = [a.strip() for a in re.split(r",(?![^(]*\))", m.group(1))]
        vals = []
        for a in args:
            if a.startswith('"'):
                vals.append(json.loads(a))
            elif a in ("true", "false"):
                vals.append(a == "true")
            elif re.fullmatch(r"\d+", a):
                vals.append(int(a))
            else:
                vals.append(a)  # a symbol (flags, the chain variable)
        out.append(vals)
    return out


def fake_chain():
    return {
        "images": [{"index": i, "path": f"/image{i}", "format": "qcow2",
                    "nodeformat": f"libvirt-{i}-format", "nodestorage": f"libvirt-{i}-storage"}
                   for i in range(1, 6)],
        "order": "image1 is the top (active) layer; imageN's backing store is image N+1",
    }


def blocktest(text):
    data = "tests/qemublocktestdata"
    m = {"fake_chain": fake_chain()}
    m["bitmap_detect"] = [{"name": n, "nodedata": f"{data}/bitmap/{n}.json",
                           "expected": f"{data}/bitmap/{n}.out"}
                          for (n,) in calls(text, "TEST_BITMAP_DETECT")]
    m["bitmap_validate"] = [{"nodedata": nd, "bitmap": b, "expect": e}
                            for nd, b, e in calls(text, "TEST_BITMAP_VALIDATE")]
    m["backup_incremental_merge"] = [
        {"name": n, "nodedata": nd, "incremental": inc, "target_node": "target_node",
         "target_bitmap": "target-bitmap-name", "expected": f"{data}/backupmerge/{n}-out.json"}
        for n, _chain, inc, nd in calls(text, "TEST_BACKUP_BITMAP_CALCULATE")]
    m["checkpoint_delete"] = [
        {"name": n, "delete_bitmap": b, "nodedata": nd, "disk_dst": "testdisk",
         "expected": f"{data}/checkpointdelete/{n}-out.json"}
        for n, b, nd in calls(text, "TEST_CHECKPOINT_DELETE")]
    m["bitmap_blockcopy"] = [
        {"name": n, "shallow": sh, "nodedata": nd, "mirror_node": "mirror-format-node",
         "expected": f"{data}/bitmapblockcopy/{n}-out.json"}
        for n, sh, nd in calls(text, "TEST_BITMAP_BLOCKCOPY")]
    m["bitmap_blockcommit"] = [
        {"name": n, "top": top, "base": base, "active": top == 1, "nodedata": nd,
         "expected": f"{data}/bitmapblockcommit/{n}"}
        for n, top, base, nd in calls(text, "TEST_BITMAP_BLOCKCOMMIT")]
    return m


def xml2xml(text):
    cases = []
    inp, out = "tests/qemudomaincheckpointxml2xmlin", "tests/qemudomaincheckpointxml2xmlout"
    for n, flags in calls(text, "DO_TEST_OUT"):
        cases.append({"name": n, "kind": "out->out", "input": f"{out}/{n}.xml",
                      "expected": f"{out}/{n}.xml", "parse_redefine": True,
                      "mock_creation_time": None, "set_parent": "TEST_PARENT" in str(flags),
                      "vda_bitmap": "TEST_VDA_BITMAP" in str(flags),
                      "size": "TEST_SIZE" in str(flags)})
    for n, time, flags in calls(text, "DO_TEST_INOUT"):
        flags = str(flags)
        cases.append({"name": n, "kind": "in->out", "input": f"{inp}/{n}.xml",
                      "expected": f"{out}/{n}.xml", "parse_redefine": False,
                      "mock_creation_time": time, "set_parent": "TEST_PARENT" in flags,
                      "vda_bitmap": "TEST_VDA_BITMAP" in flags, "size": "TEST_SIZE" in flags})
    for (n,) in calls(text, "DO_TEST_INVALID"):
        cases.append({"name": n, "kind": "invalid", "input": f"{inp}/{n}.xml",
                      "expected": None, "expect_parse_failure": True})
    return cases


def main():
    src, dest = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    if os.path.dirname(dest) != src:
        sys.exit("the manifest must be written at the top of the libvirt source tree")
    tests = os.path.join(src, "tests")
    m = {"_about": f"every bitmap and checkpoint case of {src}, by scripts/libvirt-conformance.py"}
    m.update(blocktest(open(os.path.join(tests, "qemublocktest.c")).read()))
    m["checkpoint_xml2xml"] = xml2xml(open(os.path.join(tests, "qemudomaincheckpointxml2xmltest.c")).read())
    with open(dest, "w") as f:
        json.dump(m, f, indent=1)
    kinds = {k: len(v) for k, v in m.items() if isinstance(v, list)}
    if not all(kinds.values()):  # a renamed macro must fail, not pass with no case
        sys.exit(f"no case found of: {', '.join(k for k, n in kinds.items() if not n)}")
    print(f"{dest}: {sum(kinds.values())} cases ({', '.join(f'{k} {n}' for k, n in kinds.items())})")


if __name__ == "__main__":
    main()
