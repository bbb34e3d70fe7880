#!/usr/bin/env bash
# libvirt (9.0.0, or 11.3.0) with its QEMU bitmap code delegated to virtcheckpoint,
# checked by libvirt's own tests and on a real QEMU.
#
# 1. Fetches libvirt's source with Debian's own client (a private deb-src
#    entry for bookworm, `apt-get source --download-only libvirt`) and applies
#    Debian's patches.
# 2. Installs the build dependencies a minimal QEMU-driver build needs.
# 3. Delegates at build time, with its own transformation: libvirt's definitions of
#    the delegated functions are renamed out of the way (kept, unused), the
#    project's adapter (libvirt/vcp_adapter.c, our C over include/virtcheckpoint.h)
#    is added to the QEMU driver, which links the library's static archive.
# 4. Builds tests/qemublocktest and tests/qemudomaincheckpointxml2xmltest and runs
#    them, and again under valgrind; then builds and runs libvirt's whole test suite
#    (of the minimal configure) and its expensive checkpoint and snapshot virsh tests.
#    Then the library alone runs every bitmap and checkpoint vector of that version's
#    tests (scripts/libvirt-conformance.py lists them) through tests/conformance.rs.
# 5. Builds virsh and the QEMU driver module and runs scripts/libvirt-virsh.py: the
#    stand-in drives a real QEMU through virsh (qemu:///embed), its bitmap commands
#    compared with stock libvirt's recorded ones, the backups checked with qemu-img.
# 6. Builds stock libvirt's virsh and QEMU driver from the pristine tree and runs
#    scripts/libvirt-virsh-diff.py: the same seeded virsh sequences on stock libvirt
#    and on the stand-in must print, send and back up the same.
# 7. Runs scripts/libvirt-vs-library.py: the same sequences on stock libvirt alone,
#    each checkpoint creation, delete, size query and disk-only snapshot planned
#    again by the library (the vcp command line) from what libvirt held, its
#    commands compared with what stock libvirt sent.
#    Prints the counts per test and "N passed, N failed".
#
# Delegated today: qemuBlockBitmapChainIsValid, qemuBlockGetBitmapMergeActions (which
# libvirt's pull bitmap code goes through), qemuBlockBitmapsHandleBlockcopy,
# qemuBlockBitmapsHandleCommitFinish, qemuBackupDiskPrepareOneBitmapsChain,
# qemuCheckpointDiscardDiskBitmaps, and the static qemuCheckpointAddActions (the seed),
# qemuCheckpointDiscardBitmaps (the whole delete step, run through vcp_step_run),
# qemuCheckpointRedefineValidateBitmaps, qemuCheckpointGetXMLDescUpdateSize (the size
# query) and qemuSnapshotDiskBitmapsPropagate; the static block job completion handlers
# qemuBlockJobProcessEventCompleted{Pull,Commit,Copy}Bitmaps (the library's step for a
# completed job, run through vcp_step_run); libvirt's
# node-data parse (qemuMonitorJSONBlockGetNamedNodeDataJSON); and in libvirt's conf
# library the checkpoint XML parse and format (virDomainCheckpointDefParseString,
# virDomainCheckpointDefFormat) and the alignment of a checkpoint's disks with its
# domain (virDomainCheckpointAlignDisks).
#
# Usage: scripts/libvirt-standin.sh [VERSION [WORKDIR]]
#   VERSION 9.0.0 (Debian bookworm, the default) or 11.3.0 (Debian trixie);
#   WORKDIR defaults to build-libvirt/VERSION.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=${1:-9.0.0}
case "$version" in
    9.0.0) suite=bookworm ;;
    11.3.0) suite=trixie ;;
    *) echo "libvirt stand-in: unknown version $version (9.0.0 or 11.3.0)"; echo "0 passed, 1 failed"; exit 1 ;;
esac
work=${2:-$root/build-libvirt/$version}
mkdir -p "$work"
work=$(cd "$work" && pwd)
cd "$work"
fail() { echo "libvirt stand-in $version: $*"; echo "0 passed, 1 failed"; exit 1; }
# tally NAME OK-WORD BAD-WORD LOG COMMAND...: runs COMMAND (output to LOG), reports and
# counts it as passed or failed.
tally() {
    local name=$1 good=$2 bad=$3 log=$4
    shift 4
    if "$@" >"$log" 2>&1; then
        echo "$name: $good"
        passed=$((passed + 1))
    else
        echo "$name: $bad (see $log)"
        failed=$((failed + 1))
    fi
}

# 1. Source, with Debian's own client. For trixie's 11.3.0 the .dsc is gone from the
# mirror (404) while the tarballs are there: they are taken when their SHA-256 is the
# one the signed Sources index gives.
if [ ! -d "libvirt-$version" ]; then
    cat > deb-src.sources <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    mkdir -p apt/lists/partial
    apt=(-o Dir::Etc::SourceList="$work/deb-src.sources" -o Dir::Etc::SourceParts=/dev/null
         -o Dir::State::Lists="$work/apt/lists")
    apt-get "${apt[@]}" update >/dev/null 2>&1 || fail "apt-get update of the deb-src entry failed"
    apt-get "${apt[@]}" source --download-only libvirt >"$work/apt-source.log" 2>&1
    ls libvirt_"$version".orig.tar.xz libvirt_"$version"-*.debian.tar.xz >/dev/null 2>&1 \
        || fail "apt-get source libvirt fetched no tarballs (see $work/apt-source.log)"
    apt-cache "${apt[@]}" showsrc libvirt >"$work/sources-index.txt" 2>/dev/null
    python3 - "$work/sources-index.txt" libvirt_"$version".orig.tar.xz \
        libvirt_"$version"-*.debian.tar.xz <<'PY' || fail "the tarballs do not match the signed Sources index"
import hashlib, os, sys
index = open(sys.argv[1]).read()
for tarball in sys.argv[2:]:
    digest = hashlib.sha256(open(tarball, "rb").read()).hexdigest()
    if " %s %d %s" % (digest, os.path.getsize(tarball), tarball) not in index:
        sys.exit(tarball + ": not in the Sources index")
PY
    tar xf libvirt_"$version".orig.tar.xz || fail "unpacking failed"
    (cd "libvirt-$version" && tar xf ../libvirt_"$version"-*.debian.tar.xz &&
        grep -v '^#' debian/patches/series | while read -r p; do
            [ -n "$p" ] && patch -p1 -s < "debian/patches/$p"
        done) || fail "Debian's patches do not apply"
fi

# 2. Build dependencies (quick when present): the project's own tools (Meson, Ninja,
# a C compiler, valgrind), then libvirt's.
command -v meson >/dev/null && command -v ninja >/dev/null && command -v valgrind >/dev/null \
    || bash "$root/scripts/install-deps.sh" >/dev/null 2>&1 || fail "installing Meson/Ninja/valgrind failed"
need=()
# (libnl: libvirt 11.3's src/util/virnetdevbridge.c does not build without it.)
for pkg in libglib2.0-dev libxml2-dev libxml2-utils libgnutls28-dev libyajl-dev libtirpc-dev \
           xsltproc python3-docutils libjson-c-dev libnl-3-dev libnl-route-3-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
        >/dev/null 2>&1 || fail "installing ${need[*]} failed"
fi

# The library's static archive, built by Cargo.
cargo build --release --locked -p virtcheckpoint-c --manifest-path "$root/Cargo.toml" \
    --target-dir "$work/cargo-target" >/dev/null 2>&1 || fail "cargo build of the C crate failed"
archive="$work/cargo-target/release/libvirtcheckpoint_c.a"

# 3. The delegation, applied to a copy each time (the pristine tree stays as fetched).
rm -rf delegated
cp -a "libvirt-$version" delegated
python3 - "$root" "$archive" <<'PY' || fail "the delegation could not be applied"
import re, sys
root, archive = sys.argv[1], sys.argv[2]
src = "delegated/src/qemu/"
delegated = {
    "qemu_block.c": ["qemuBlockBitmapChainIsValid", "qemuBlockGetBitmapMergeActions",
                     "qemuBlockBitmapsHandleBlockcopy", "qemuBlockBitmapsHandleCommitFinish"],
    "qemu_backup.c": ["qemuBackupDiskPrepareOneBitmapsChain"],
    "qemu_checkpoint.c": ["qemuCheckpointDiscardDiskBitmaps"],
    "qemu_snapshot.c": [],
    "qemu_blockjob.c": [],
    # Its definition is libvirt/vcp_adapter_monitor.c, included at the end of the file.
    "qemu_monitor_json.c": ["qemuMonitorJSONBlockGetNamedNodeDataJSON"],
}
# Static in libvirt: renamed the same way, and the adapter's external definition is
# declared in their place.
delegated_static = {
    "qemu_checkpoint.c": {
        "qemuCheckpointAddActions":
            "int qemuCheckpointAddActions(virDomainObj *vm, virJSONValue *actions, "
            "virDomainCheckpointDef *def);",
        "qemuCheckpointRedefineValidateBitmaps":
            "int qemuCheckpointRedefineValidateBitmaps(virDomainObj *vm, "
            "virDomainCheckpointDef *chkdef);",
        "qemuCheckpointGetXMLDescUpdateSize":
            "int qemuCheckpointGetXMLDescUpdateSize(virDomainObj *vm, "
            "virDomainCheckpointDef *chkdef);",
        "qemuCheckpointDiscardBitmaps":
            "int qemuCheckpointDiscardBitmaps(virDomainObj *vm, "
            "virDomainCheckpointDef *chkdef);",
    },
    # Its definition is libvirt/vcp_adapter_snapshot.c, included at the end of the
    # file, for it needs the file's private qemuSnapshotDiskData.
    "qemu_snapshot.c": {
        "qemuSnapshotDiskBitmapsPropagate":
            "static int qemuSnapshotDiskBitmapsPropagate(qemuSnapshotDiskData *dd, "
            "virJSONValue *actions, GHashTable *blockNamedNodeData);",
    },
    # Their definitions are libvirt/vcp_adapter_blockjob.c, included at the end of the
    # file, for they need its private types.
    "qemu_blockjob.c": {
        "qemuBlockJobProcessEventCompleted%sBitmaps" % kind:
            "static int qemuBlockJobProcessEventCompleted%sBitmaps(virDomainObj *vm, "
            "qemuBlockJobData *job, virDomainAsyncJob asyncJob);" % kind
        for kind in ["Pull", "Commit", "Copy"]
    },
}
prototypes = []
for path, fns in delegated.items():
    text = open(src + path).read()
    # The kept definitions are declared in vcp_replaced.h (written below).
    text = text.replace("#define VIR_FROM_THIS VIR_FROM_QEMU\n",
                        "#define VIR_FROM_THIS VIR_FROM_QEMU\n#include \"vcp_replaced.h\"\n", 1)
    for fn in fns:
        # "<type>\nfn(...)\n{" at the start of a line is the definition: rename it and
        # declare it (the benchmark calls it); every caller now reaches the adapter's.
        m = re.search(r"\n(bool|int|GHashTable \*)\n" + fn + r"\(([^)]*)\)\n\{", text)
        if not m or text.count("\n" + fn + "(") != 1:
            sys.exit(f"{fn}: no single definition found")
        prototypes.append("%s vcp_replaced_%s(%s);" % (m.group(1), fn, m.group(2)))
        text = text[:m.start()] + "\n%s\nvcp_replaced_%s(%s)\n{" % (m.group(1), fn, m.group(2)) \
            + text[m.end():]
    for fn, proto in delegated_static.get(path, {}).items():
        text, n = re.subn(r"\nstatic int\n" + fn + r"\(",
                          "\n" + proto + "\nG_GNUC_UNUSED static int\nvcp_replaced_" + fn + "(", text)
        if n != 1:
            sys.exit(f"{fn}: {n} static definitions found")
    # libvirt's own code, kept for the benchmark, calls libvirt's own code: inside the
    # kept definitions (and the merge's helper) the delegated names are the kept ones.
    names = [f for fs in delegated.values() for f in fs]
    for fn in ["vcp_replaced_" + f for f in fns] + ["qemuBlockGetBitmapMergeActionsGetBitmaps"]:
        start = text.find("\n" + fn + "(")
        if start < 0:
            continue
        end = text.index("\n}\n", start)
        body = re.sub(r"\b(" + "|".join(names) + r")\(", r"vcp_replaced_\1(", text[start:end])
        text = text[:start] + body + text[end:]
    included = {"qemu_snapshot.c": "vcp_adapter_snapshot.c",
                "qemu_blockjob.c": "vcp_adapter_blockjob.c",
                "qemu_monitor_json.c": "vcp_adapter_monitor.c"}
    if path in included:
        text += '\n#include "%s"\n' % included[path]
    open(src + path, "w").write(text)
open(src + "vcp_replaced.h", "w").write(
    "/* libvirt's own definitions, kept under these names (generated). */\n#pragma once\n"
    "#include \"qemu_block.h\"\n" + "\n".join(prototypes) + "\n")
for f in ["vcp_adapter.c", "vcp_adapter.h", "vcp_adapter_report.h", "vcp_adapter_snapshot.c",
          "vcp_adapter_monitor.c", "vcp_adapter_blockjob.c"]:
    open(src + f, "w").write(open(root + "/libvirt/" + f).read())
# The checkpoint XML parse, format and disk alignment, in libvirt's conf library
# (linked into libvirt.so): renamed the same way, kept with a prototype of their own, and the
# adapter's definitions (libvirt/vcp_adapter_conf.c) included at the end of the file.
conf = "delegated/src/conf/checkpoint_conf.c"
text = open(conf).read()
for fn in ["virDomainCheckpointDefParseString", "virDomainCheckpointDefFormat",
           "virDomainCheckpointAlignDisks"]:
    m = re.search(r"\n(virDomainCheckpointDef \*|char \*|int)\n" + fn + r"\(([^)]*)\)\n\{", text)
    if not m or text.count("\n" + fn + "(") != 1:
        sys.exit(f"{fn}: no single definition found")
    text = text[:m.start()] + "\n%s vcp_replaced_%s(%s);\n%s\nvcp_replaced_%s(%s)\n{" % (
        m.group(1), fn, m.group(2), m.group(1), fn, m.group(2)) + text[m.end():]
open(conf, "w").write(text + '\n#include "vcp_adapter_conf.c"\n')
for f in ["vcp_adapter_conf.c", "vcp_adapter_report.h"]:
    open("delegated/src/conf/" + f, "w").write(open(root + "/libvirt/" + f).read())
# The benchmark (libvirt/vcp_bench.c) as a test program beside qemublocktest.
tm = open("delegated/tests/meson.build").read()
line = next(l for l in tm.splitlines() if "'name': 'qemublocktest'" in l)
bench = line.replace("'qemublocktest'", "'vcpbench'").replace(
    "storage_file_inc_dir ]", "storage_file_inc_dir, vcp_inc ]")
tm = tm.replace(line, line + "\n" + bench, 1)
tm = "vcp_inc = include_directories('%s/include')\n" % root + tm
open("delegated/tests/meson.build", "w").write(tm)
open("delegated/tests/vcpbench.c", "w").write(open(root + "/libvirt/vcp_bench.c").read())
# The library's archive, declared before the conf library (the first that takes it).
sm = open("delegated/src/meson.build").read()
dep = ("vcp_dep = declare_dependency(include_directories: include_directories('%s/include'),\n"
       "  link_args: ['%s', '-lpthread', '-ldl', '-lm'])\n" % (root, archive))
sm = sm.replace("subdir('conf')\n", dep + "subdir('conf')\n", 1)
cm = open("delegated/src/conf/meson.build").read()
cm = cm.replace("  dependencies: [\n    src_dep,\n  ],\n)\n\nlibvirt_libs += virt_conf_lib",
                "  dependencies: [\n    src_dep,\n    vcp_dep,\n  ],\n)\n\nlibvirt_libs += virt_conf_lib", 1)
mb = open(src + "meson.build").read()
mb = mb.replace("  'qemu_block.c',\n", "  'qemu_block.c',\n  'vcp_adapter.c',\n", 1)
mb = mb.replace("    dependencies: [\n      access_dep,", "    dependencies: [\n      vcp_dep,\n      access_dep,", 1)
if "vcp_dep = " not in sm or "vcp_dep," not in cm or "vcp_adapter.c" not in mb or "vcp_dep," not in mb:
    sys.exit("libvirt's meson files did not take the adapter")
open("delegated/src/meson.build", "w").write(sm)
open("delegated/src/conf/meson.build", "w").write(cm)
open(src + "meson.build", "w").write(mb)
PY

# 4. Build only the two tests, then run them.
# The minimal configure: the QEMU driver and nothing it can do without.
minimal=(-Ddocs=disabled -Ddriver_qemu=enabled -Ddriver_libxl=disabled
    -Ddriver_lxc=disabled -Ddriver_ch=disabled -Ddriver_vbox=disabled -Ddriver_esx=disabled
    -Ddriver_hyperv=disabled -Ddriver_openvz=disabled -Ddriver_vmware=disabled -Ddriver_vz=disabled
    -Ddriver_bhyve=disabled -Ddriver_network=disabled -Ddriver_interface=disabled
    -Dselinux=disabled -Dapparmor=disabled -Dsecdriver_apparmor=disabled -Dsecdriver_selinux=disabled
    -Dnls=disabled -Dwireshark_dissector=disabled -Dexpensive_tests=disabled
    -Dqemu_user=root -Dqemu_group=root)
cd delegated
meson setup build -Dtests=enabled "${minimal[@]}" >"$work/setup.log" 2>&1 \
    || fail "meson setup of libvirt failed (see $work/setup.log)"
ninja -C build tests/qemublocktest tests/qemudomaincheckpointxml2xmltest >"$work/build.log" 2>&1 \
    || { tail -20 "$work/build.log"; fail "building libvirt's tests failed"; }
passed=0
failed=0
for t in qemublocktest qemudomaincheckpointxml2xmltest; do
    VIR_TEST_VERBOSE=1 "./build/tests/$t" >"$work/$t.log" 2>&1
    rc=$?
    # A result ends the test's line ("... OK") or, after the messages an expected
    # failure prints, stands on a line of its own.
    ok=$(grep -cE '(\.\.\. |^)OK$' "$work/$t.log")
    bad=$(grep -cE '(\.\.\. |^)FAILED$' "$work/$t.log")
    skip=$(grep -cE '(\.\.\. |^)SKIP$' "$work/$t.log")
    bitmap=$(grep -ciE '^ *[0-9]+\) .*(bitmap|checkpoint)' "$work/$t.log")
    echo "libvirt $version $t: $ok OK, $bad failed, $skip skipped ($bitmap bitmap/checkpoint cases), exit $rc"
    grep -B3 -E '(\.\.\. |^)FAILED$' "$work/$t.log" | grep -E '^ *[0-9]+\) ' | head -10
    passed=$((passed + ok))
    failed=$((failed + bad))
    [ "$rc" -eq 0 ] || [ "$bad" -gt 0 ] || failed=$((failed + 1))
done
# The same tests under valgrind: no memory error and no definite leak.
if command -v valgrind >/dev/null; then
    for t in qemublocktest qemudomaincheckpointxml2xmltest; do
        tally "libvirt $version $t under valgrind" clean errors "$work/$t.valgrind.log" \
            valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=9 --quiet \
            "./build/tests/$t"
    done
fi
# libvirt's whole test suite over the stand-in (every test the minimal configure
# builds), then the two expensive virsh tests that drive checkpoint and snapshot XML
# through libvirt's test driver (and so the delegated XML parse and format); 11.3 has
# them as cases of virshtest, which the suite runs.
if ninja -C build >>"$work/build.log" 2>&1; then
    meson test -C build --no-rebuild --num-processes 2 >"$work/suite.log" 2>&1
    ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$work/suite.log")
    bad=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$work/suite.log")
    skip=$(sed -n 's/^Skipped: *\([0-9]*\).*/\1/p' "$work/suite.log")
    timeout=$(sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' "$work/suite.log")
    xpass=$(sed -n 's/^Unexpected Pass: *\([0-9]*\).*/\1/p' "$work/suite.log")
    echo "libvirt $version whole test suite: ${ok:-0} OK, ${bad:-?} failed, ${skip:-?} skipped," \
        "${timeout:-?} timed out"
    grep -E '^ *[0-9]+/[0-9]+ .* (FAIL|TIMEOUT|UNEXPECTEDPASS) ' "$work/suite.log" | head -10
    passed=$((passed + ${ok:-0}))
    failed=$((failed + ${bad:-1} + ${timeout:-0} + ${xpass:-0}))
    for t in virsh-checkpoint virsh-snapshot; do
        # libvirt 11 folded these scripts into virshtest (its "checkpoint" and
        # "snapshot" cases, not gated as expensive): the suite above ran them.
        if [ ! -f "tests/$t" ]; then
            echo "libvirt $version $t: part of virshtest in this version (run by the suite)"
            continue
        fi
        tally "libvirt $version $t (expensive)" OK FAILED "$work/$t.log" \
            env -C build VIR_TEST_EXPENSIVE=1 LC_ALL=C abs_top_builddir="$PWD/build" \
            abs_top_srcdir="$PWD" abs_srcdir="$PWD/tests" abs_builddir="$PWD/build/tests" \
            sh "$PWD/tests/$t"
    done
else
    echo "libvirt stand-in: building libvirt's whole test suite failed (see $work/build.log)"
    failed=$((failed + 1))
fi
# The cost, in instructions (callgrind, one binary, 16 layers x 250 bitmaps): libvirt's
# own merge and delete against the same calls through the adapter, and parse plus merge
# by libvirt's C against the library alone. Reported, not asserted.
if ninja -C build tests/vcpbench >>"$work/build.log" 2>&1 &&
    valgrind --tool=callgrind --callgrind-out-file="$work/vcpbench.cg" ./build/tests/vcpbench \
        >"$work/vcpbench.out" 2>&1; then
    callgrind_annotate --inclusive=yes --threshold=100 "$work/vcpbench.cg" >"$work/vcpbench.txt" 2>/dev/null
    python3 - "$work/vcpbench.txt" <<'PY'
import re, sys
cost = {}
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d,]+) \([^)]*\)\s+\S*:(bench\w+)", line)
    if m:  # a function is listed once per source file it spans: keep its total
        cost[m.group(2)] = max(cost.get(m.group(2), 0), int(m.group(1).replace(",", "")))
def times(x):
    return "%.3fx" % x
def ratio(a, b):
    return times(cost[a] / cost[b]) if a in cost and b in cost and cost[b] else "n/a"
for name in sorted(cost):
    print("vcpbench: %-24s %15d instructions" % (name, cost[name]))
print("vcpbench: merge through the adapter / libvirt's C:", ratio("benchAdapterMerge", "benchLibvirtMerge"))
print("vcpbench: delete through the adapter / libvirt's C:", ratio("benchAdapterDelete", "benchLibvirtDelete"))
print("vcpbench: delete of the oldest checkpoint (QEMU lists it last) through the adapter / libvirt's C:",
      ratio("benchAdapterDeleteOldest", "benchLibvirtDeleteOldest"))
# The removals' JSON values alone, which both deletes build: the floor of any adapter
# that hands libvirt its own values, and what each delete costs beyond it.
if all(k in cost for k in ("benchJsonFloorDelete", "benchAdapterDelete", "benchLibvirtDelete")):
    floor = cost["benchJsonFloorDelete"]
    print("vcpbench: delete, the removals' JSON alone / libvirt's C:",
          times(floor / cost["benchLibvirtDelete"]))
    print("vcpbench: delete beyond the JSON, the adapter / libvirt's C:",
          times((cost["benchAdapterDelete"] - floor) / (cost["benchLibvirtDelete"] - floor)))
if "benchJsonDirectDelete" in cost and "benchLibvirtDelete" in cost:
    print("vcpbench: delete, the removals built with libvirt's JSON API directly / libvirt's C:",
          times(cost["benchJsonDirectDelete"] / cost["benchLibvirtDelete"]))
print("vcpbench: node-data parse through the adapter / libvirt's C:", ratio("benchAdapterParse", "benchLibvirtParse"))
print("vcpbench: query (text, parse, merge) through the adapter / libvirt's C:", ratio("benchAdapterParseMerge", "benchLibvirtParseMerge"))
print("vcpbench: parse+merge, libvirt's C / the library alone:", ratio("benchLibvirtParseMerge", "benchLibraryParseMerge"))
PY
    grep '^vcpbench:' "$work/vcpbench.out"
    passed=$((passed + 1))
else
    echo "libvirt stand-in: the benchmark failed (see $work/vcpbench.out)"
    failed=$((failed + 1))
fi
# The adapter's size against the libvirt C it replaces (reported, not asserted).
python3 "$root/scripts/adapter-lines.py" "$work/libvirt-$version" \
    || echo "libvirt stand-in: the adapter could not be measured"

# add_counts OUT: adds the "N passed, N failed" that ends OUT (one failure without it).
add_counts() {
    local vp vf
    read -r vp _ vf _ < <(tail -n 1 "$1")
    passed=$((passed + ${vp:-0}))
    failed=$((failed + ${vf:-1}))
}

# 4b. The library alone on every bitmap and checkpoint vector of this libvirt version
# (tests/data carries a copy of one version's; scripts/libvirt-conformance.py lists
# them all from the fetched source), through the project's conformance runner.
manifest="$work/libvirt-$version/vcp-CASES.json"
if python3 "$root/scripts/libvirt-conformance.py" "$work/libvirt-$version" "$manifest" &&
        VCP_CONFORMANCE_MANIFEST="$manifest" cargo test --release --locked -q --test conformance \
            --manifest-path "$root/Cargo.toml" --target-dir "$work/cargo-target" \
            >"$work/conformance.log" 2>&1; then
    grep '^kind ' "$work/conformance.log" | sed "s/^/libvirt $version vectors, library alone: /"
else
    tail -20 "$work/conformance.log" 2>/dev/null
fi
grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/conformance.log" 2>/dev/null | tail -n 1 >"$work/conformance.out"
add_counts "$work/conformance.out"

# 5. Real QEMU: virsh (qemu:///embed) over the stand-in replays stock libvirt's
# recorded operations and more (scripts/libvirt-virsh.py).
virsh_targets=(tools/virsh src/libvirt_driver_qemu.so)
# libvirt 9.0 loads its file storage backend as a module; 11.3 has it built in.
# (grep reads the whole list: with pipefail, an early exit would fail the pipeline.)
if ninja -C build -t targets all 2>/dev/null | grep '^src/libvirt_storage_file_fs.so:' >/dev/null; then
    virsh_targets+=(src/libvirt_storage_file_fs.so)
fi
if ninja -C build "${virsh_targets[@]}" >"$work/build-virsh.log" 2>&1; then
    python3 "$root/scripts/libvirt-virsh.py" "$PWD/build" "$work/virsh" | tee "$work/virsh.out"
    add_counts "$work/virsh.out"
else
    tail -20 "$work/build-virsh.log"
    echo "libvirt stand-in: building virsh and the QEMU driver failed"
    failed=$((failed + 1))
fi
# The adapter and the benchmark compile without a warning under libvirt's own warning
# flags (its meson.build enables some two hundred).
if grep -hE '(vcp_adapter[a-z_]*\.[ch]|vcpbench\.c):[0-9]+:[0-9]+: (warning|error):' \
        "$work/build.log" "$work/build-virsh.log" >"$work/adapter-warnings.log"; then
    echo "libvirt $version adapter under libvirt's warning flags: warnings (see $work/adapter-warnings.log)"
    failed=$((failed + 1))
else
    echo "libvirt $version adapter under libvirt's warning flags: no warning"
    passed=$((passed + 1))
fi

# 6. Stock libvirt beside the stand-in: the pristine tree's virsh and QEMU driver,
# then the same seeded virsh sequences on both (scripts/libvirt-virsh-diff.py), whose
# every output, bitmap command and backup must be the same.
# VCP_VIRSH_SEEDS (FIRST..LAST or a list) and VCP_VIRSH_OPS widen the search.
rm -rf "$work/stock"
cp -a "$work/libvirt-$version" "$work/stock"
if (cd "$work/stock" && meson setup build -Dtests=disabled "${minimal[@]}" &&
        ninja -C build "${virsh_targets[@]}") >"$work/build-stock.log" 2>&1; then
    python3 "$root/scripts/libvirt-virsh-diff.py" "$work/stock/build" "$PWD/build" \
        "$work/virsh-diff" "${VCP_VIRSH_SEEDS:-1..4}" "${VCP_VIRSH_OPS:-40}" | tee "$work/virsh-diff.out"
    add_counts "$work/virsh-diff.out"
    # 7. Stock libvirt as the oracle for the library's own plans (the vcp command line
    # over the same inputs a driver holds): scripts/libvirt-vs-library.py.
    if cargo build --release --locked -p vcp-cli --manifest-path "$root/Cargo.toml" \
            --target-dir "$work/cargo-target" >"$work/build-vcp.log" 2>&1; then
        python3 "$root/scripts/libvirt-vs-library.py" "$work/stock/build" \
            "$work/cargo-target/release/vcp" "$work/vs-library" "${VCP_VIRSH_SEEDS:-1..4}" \
            "${VCP_VIRSH_OPS:-40}" | tee "$work/vs-library.out"
        add_counts "$work/vs-library.out"
    else
        echo "libvirt stand-in: cargo build of the vcp command line failed"
        failed=$((failed + 1))
    fi
else
    tail -20 "$work/build-stock.log"
    echo "libvirt stand-in: building stock libvirt's virsh and QEMU driver failed"
    failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
