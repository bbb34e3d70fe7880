#!/usr/bin/env python3
"""Stock libvirt and the stand-in, side by side on a real QEMU.

The same seeded sequences of virsh operations run once over stock libvirt and once
over the stand-in (each with qemu:///embed, so the QEMU driver runs inside virsh, and
fresh images), on a domain with two qcow2 disks (and on every third seed a raw one,
which a checkpoint must leave out until a snapshot puts a qcow2 overlay on it):
guest writes, checkpoints (some leaving a disk out, some with a description), push backups (full or
incremental, some creating a checkpoint, some with a disk's own checkpoint or a disk
in full), pull backups (incremental or full, some creating a checkpoint, some
naming a disk's export and its bitmap), deletes
(plain, with children, children only, metadata only), size queries, redefines
(validated or not), checkpoint listings, external snapshots, block commits (active
and not), block copies (shallow and deep, some into raw files or onto qcow2 v2
images), block pulls,
restarts, crashes (QEMU killed), restarts of the driver (QEMU left running: the
driver reconnects and reloads the checkpoint files) and bitmaps removed behind
libvirt's back, then a
fixed end whose commit (below the active layer) and pull carry a checkpoint's
bitmaps, and a backup from it. Nothing is predicted: for every operation, what virsh
printed (creation times and the run's own folder aside), every bitmap command sent
to QEMU (transactions, reopens, bitmap commands), the data each push backup holds
(qemu-img map) and the dirty extents each pull backup's export shows must be the
same from both (for a full backup, the clusters that are not all zeros). The first
difference of a sequence is printed with the operations before it.

Usage: scripts/libvirt-virsh-diff.py STOCK_BUILD STANDIN_BUILD WORKDIR [SEEDS [OPS]]
  SEEDS: FIRST..LAST or a comma-separated list (default 1..4); OPS: per sequence
  (default 40). Prints one line per sequence and ends with "N passed, N failed".
"""

import importlib.util
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("scenario", os.path.join(HERE, "libvirt-virsh.py"))
scenario = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scenario)

DOM = "lvrand"
DISKS = ("vda", "vdb")
# Every third seed's domain also has a raw disk, which cannot hold a bitmap: a
# checkpoint must leave it out (most of them do, the others compare libvirt's refusal)
# until a snapshot puts a qcow2 overlay on it, over a base with no bitmap.
RAW_DISK = "vdc"


def has_raw_disk(seed):
    return seed % 3 == 0


K, M = 65536, 1 << 20
SIZE = 64 * M
# Checkpoint XML that libvirt refuses (with --redefine or not): each must give the
# same error from both, and change nothing.
HOSTILE = [
    "<domaincheckpoint><name>x",
    "",
    "<domaincheckpoint><name>a/b</name></domaincheckpoint>",
    "<domaincheckpoint><name>.</name></domaincheckpoint>",
    "<domaincheckpoint><name>x</name><disks><disk name='vdz'/></disks></domaincheckpoint>",
    "<domaincheckpoint><name>x</name><disks><disk name='vda'/><disk name='vda'/></disks>"
    "</domaincheckpoint>",
    "<domaincheckpoint><name>x</name><disks><disk name='vda' checkpoint='bogus'/></disks>"
    "</domaincheckpoint>",
    "<domaincheckpoint><name>x</name><disks><disk name='vda' checkpoint='no'/>"
    "<disk name='vdb' checkpoint='no'/></disks></domaincheckpoint>",
    "<domaincheckpoint><name>x</name><disks><disk name='vda' bitmap='b'/></disks>"
    "</domaincheckpoint>",
    "<domaincheckpoint><name>x</name><creationTime>soon</creationTime></domaincheckpoint>",
    "<domaincheckpoint><name>x</name><parent><name>nope</name></parent>"
    "<creationTime>1</creationTime></domaincheckpoint>",
    "<domaincheckpoint><name>x</name><disks><disk/></disks></domaincheckpoint>",
    "<notacheckpoint><name>x</name></notacheckpoint>",
]

# Checkpoint descriptions (virsh checkpoint-create-as --description).
DESCRIPTIONS = ["before the upgrade: <db> & 'logs' > 2 GiB", "nächtlich ✓ — Ünïcode"]


class VirshDied(Exception):
    """virsh (and the driver inside it) ended in the middle of a sequence."""


class Run:
    """One libvirt (a build folder) running one sequence in its own folder."""

    def __init__(self, build, work, raw=False):
        self.build, self.work = build, work
        self.on_virsh = None  # called with each virsh a driver restart starts
        self.img = scenario.make_root(work)
        self.disks = DISKS + ((RAW_DISK,) if raw else ())
        disks = ""
        for d in self.disks:
            fmt = "raw" if d == RAW_DISK else "qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", fmt, self.path(self.image(d)),
                            str(SIZE)], check=True)
            disks += ("<disk type='file' device='disk'><driver name='qemu' type='%s'/>"
                      "<source file='%s'/><target dev='%s' bus='virtio'/></disk>"
                      % (fmt, self.path(self.image(d)), d))
        with open(self.path("dom.xml", top=True), "w") as f:
            f.write("<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory>"
                    "<vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>"
                    "<features><acpi/></features><devices><emulator>%s</emulator>%s</devices></domain>"
                    % (DOM, shutil.which("qemu-system-x86_64"), disks))
        os.chdir(work)
        self.virsh = scenario.Virsh(build, work)
        self.log = os.path.join(work, "libvirt.log")

    def path(self, name, top=False):
        return os.path.join(self.work if top else self.img, name)

    @staticmethod
    def image(disk):
        """The file disk @disk starts with."""
        return disk + (".raw" if disk == RAW_DISK else ".qcow2")

    def others(self, disk, what="snapshot"):
        """--diskspec options setting @what to no on every disk but @disk."""
        return " ".join("--diskspec %s,%s=no" % (d, what) for d in self.disks if d != disk)

    def normal(self, text, command=""):
        """@text without what differs between two runs of the same sequence: the echo
        of @command (readline redraws a long one with escapes), creation times, the
        run's own folder, the build's schema folder, the domain's UUID."""
        first, nl, rest = text.partition("\n")
        if command and nl and command[:24] in first:
            text = rest
        text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]|\r", "", text)
        text = text.replace(self.work, "W")
        # Each build reads the schemas from its own source tree.
        text = re.sub(r"\S*/src/conf/schemas/", "SCHEMAS/", text)
        text = re.sub(r"<creationTime>\d+</creationTime>", "<creationTime>T</creationTime>", text)
        text = re.sub(r"<uuid>[-0-9a-f]+</uuid>", "<uuid>U</uuid>", text)
        return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", "TIME", text)

    def sent_since(self, offset):
        """The bitmap commands the driver sent after byte @offset of its log."""
        got = []
        with open(self.log, errors="replace") as f:
            f.seek(offset)
            for line in f:
                m = re.search(r"QEMU_MONITOR_SEND_MSG: mon=\S+ msg=(\{.*\})", line)
                if m and scenario.keep(m.group(1)):
                    got.append(self.normal(scenario.keep(m.group(1))))
        return got

    def log_size(self):
        try:
            return os.path.getsize(self.log)
        except OSError:
            return 0

    def monitor(self, command):
        return self.virsh.run("qemu-monitor-command %s '%s'" % (DOM, json.dumps(command)))

    def top_node(self, disk):
        try:
            blocks = json.loads(self.monitor({"execute": "query-block"}))["return"]
            return next(b["inserted"]["node-name"] for b in blocks
                        if b.get("qdev", "").startswith("/machine/peripheral/virtio-disk%d/"
                                                        % self.disks.index(disk)))
        except (ValueError, KeyError, StopIteration):
            return None

    def wait_job(self):
        """Waits for the domain's job to end: 'Completed', 'Failed' or 'none'."""
        for _ in range(400):
            if re.search(r"Job type:\s+None", self.virsh.run("domjobinfo " + DOM)):
                break
            time.sleep(0.05)
        out = self.virsh.run("domjobinfo %s --completed" % DOM)
        m = re.search(r"Job type:\s+(\w+)", out)
        return m.group(1) if m else "none"

    def pid(self):
        try:
            return int(open(self.path("root/run/qemu/%s.pid" % DOM, top=True)).read())
        except (OSError, ValueError):
            return None

    def restart_driver(self):
        """Ends virsh, and the QEMU driver inside it, and starts them again: QEMU keeps
        running (embed mode), the driver reconnects to it and reloads the checkpoints
        from their files."""
        self.virsh.close()
        self.virsh = scenario.Virsh(self.build, self.work)
        # libvirt reconnects to the running QEMU in a thread of its own, which holds a
        # job; a command that takes one (qemu-monitor-command) waits for it to end. Else
        # a second restart right after could end virsh in the middle of the reconnect:
        # the reply QEMU still owes the old driver then reaches the new one, which
        # refuses it ("Unexpected JSON reply") and stops the domain (seen with libvirt
        # 11.3 in a loop of restarts).
        self.virsh.run("qemu-monitor-command %s '{\"execute\": \"query-status\"}'" % DOM)
        if self.on_virsh:
            self.on_virsh(self.virsh)

    def close(self):
        if self.virsh.proc.poll() is None:
            self.virsh.run("destroy " + DOM)
            self.virsh.close()


class Current:
    """@run's virsh as it is now (a driver restart starts another)."""

    def __init__(self, run):
        self._run = run

    def run(self, command):
        return self._run.virsh.run(command)

    @property
    def proc(self):
        return self._run.virsh.proc


def sequence(run, seed, ops):
    """Runs sequence @seed on @run; returns its records, one per operation: (what was
    done, what virsh printed, the bitmap commands sent, what the data showed)."""
    rng = random.Random(seed)
    v = Current(run)
    records = []
    chains = {d: [run.path(run.image(d))] for d in run.disks}
    names = []  # the checkpoints libvirt lists
    made = [0]

    def fresh(prefix):
        made[0] += 1
        return "%s%d" % (prefix, made[0])

    def do(what, command, data=None, printed=True, job=False):
        """Runs @command; records what it printed (with @printed; else only whether it
        failed), the bitmap commands it sent, in order, and what @data then reads. For a
        @job, the commands after its transaction are its end, whose disks finish in any
        order: they are compared as a sorted list."""
        start = run.log_size()
        out = v.run(command)
        if v.proc.poll() is not None:
            records.append((what, "virsh died (%d)" % v.proc.returncode, [], None))
            raise VirshDied()
        extra = data() if data else None
        sent = run.sent_since(start)
        if job:
            begun = next((i + 1 for i, c in enumerate(sent) if '"transaction"' in c), 0)
            sent = sent[:begun] + sorted(sent[begun:])
        shown = run.normal(out, command).strip() if printed or "error" in out else ""
        records.append((what, shown, sent, extra))
        return "error:" not in out

    do("define", "define " + run.path("dom.xml", top=True))
    do("start", "start " + DOM)
    try:
        for _ in range(ops):
            disk = rng.choice(run.disks)
            r = rng.randrange(100)
            if r < 2:
                xml = run.path("hostile.xml", top=True)
                with open(xml, "w") as f:
                    f.write(rng.choice(HOSTILE))
                redefine = rng.choice(["", " --redefine"])
                do("hostile checkpoint XML%s" % redefine,
                   "checkpoint-create %s %s%s" % (DOM, xml, redefine))
            elif r < 30:
                off, length = rng.randrange(SIZE // K - 8) * K, rng.randrange(1, 5) * K
                do("write %s %d %d" % (disk, off, length),
                   scenario.qemu_io(DOM, run.disks.index(disk), '"write -P 0x%02x %d %d"'
                                    % (rng.randrange(1, 256), off, length)), printed=False)
            elif r < 42 and len(names) < 6:
                name = fresh("c")
                spec = ""
                if rng.randrange(4) == 0:
                    spec = " --diskspec %s,checkpoint=no" % disk
                if disk != RAW_DISK and raw_top(run, chains) and rng.randrange(8):
                    spec += " --diskspec %s,checkpoint=no" % RAW_DISK
                if rng.randrange(4) == 0:
                    # A description, with what XML must escape and what it need not.
                    spec = " --description \"%s\"" % rng.choice(DESCRIPTIONS) + spec
                do("checkpoint " + name + spec, "checkpoint-create-as %s --name %s%s"
                   % (DOM, name, spec))
            elif r < 57:
                inc = rng.choice(names) if names and rng.randrange(5) else None
                new = fresh("c") if len(names) < 6 and rng.randrange(3) == 0 else None
                tag = fresh("b")
                xml = "<domainbackup mode='push'>%s<disks>" % (
                    "<incremental>%s</incremental>" % inc if inc else "")
                only = rng.choice([None, None] + list(run.disks))
                full = {}  # per disk: whether libvirt backs it up in full
                for d in run.disks:
                    if only and d != only:
                        xml += "<disk name='%s' backup='no'/>" % d
                        continue
                    # One disk in eight its own checkpoint (incremental='c'), one in
                    # eight in full under the backup's <incremental> (backupmode='full').
                    mode, full[d] = "", not inc
                    r2 = rng.randrange(8)
                    if r2 == 0 and names:
                        own = rng.choice(names)
                        mode, full[d] = " incremental='%s'" % own, False
                    elif r2 == 1 and inc:
                        mode, full[d] = " backupmode='full'", True
                    xml += ("<disk name='%s' type='file'%s><target file='%s'/><driver type='qcow2'/>"
                            "</disk>" % (d, mode, run.path("%s-%s.qcow2" % (tag, d))))
                with open(run.path(tag + ".xml", top=True), "w") as f:
                    f.write(xml + "</disks></domainbackup>")
                command = "backup-begin %s %s" % (DOM, run.path(tag + ".xml", top=True))
                if new:
                    with open(run.path(new + ".xml", top=True), "w") as f:
                        f.write("<domaincheckpoint><name>%s</name></domaincheckpoint>" % new)
                    command += " " + run.path(new + ".xml", top=True)

                def pushed():
                    job = run.wait_job()
                    return (job, [allocated(run.path("%s-%s.qcow2" % (tag, d)), full[d])
                                  for d in run.disks if d == only or not only])
                do("push backup from %s creating %s" % (inc, new), command, pushed, job=True)
            elif r < 61 and names:
                # One in four in full (an export with no dirty bitmap), one in three
                # creating a checkpoint.
                inc = rng.choice(names) if rng.randrange(4) else None
                new = fresh("c") if len(names) < 6 and rng.randrange(3) == 0 else None
                tag = fresh("n")
                sock = run.path("nbd-%s.sock" % tag, top=True)
                xml = ("<domainbackup mode='pull'>%s<server transport='unix' socket='%s'/><disks>"
                       % ("<incremental>%s</incremental>" % inc if inc else "", sock))
                named = {}  # one disk in four: its export and bitmap named by the request
                for d in run.disks:
                    if rng.randrange(4) == 0:
                        named[d] = ("x%s-%s" % (tag, d), "xb%s-%s" % (tag, d))
                    xml += ("<disk name='%s' backup='yes' type='file'%s><scratch file='%s'/>"
                            "<driver type='qcow2'/></disk>"
                            % (d, " exportname='%s' exportbitmap='%s'" % named[d] if d in named
                               else "", run.path("%s-%s.qcow2" % (tag, d))))
                with open(run.path("pull.xml", top=True), "w") as f:
                    f.write(xml + "</disks></domainbackup>")
                command = "backup-begin %s %s" % (DOM, run.path("pull.xml", top=True))
                if new:
                    with open(run.path(new + ".xml", top=True), "w") as f:
                        f.write("<domaincheckpoint><name>%s</name></domaincheckpoint>" % new)
                    command += " " + run.path(new + ".xml", top=True)
                if do("pull backup from %s creating %s" % (inc, new), command,
                      lambda: [scenario.nbd_dirty(sock, d, *named.get(d, ())) for d in run.disks]):
                    do("end the pull backup", "domjobabort " + DOM, run.wait_job, job=True)
            elif r < 69 and names:
                name = rng.choice(names)
                how = rng.choice(["", "", " --children", " --children-only", " --metadata"])
                if not do("delete " + name + how, "checkpoint-delete %s %s%s" % (DOM, name, how)) \
                        and "children" in how:
                    # libvirt (9.0 and 11.3) frees the descendants it deleted before the
                    # failure but leaves them linked in its tree (qemuCheckpointDelete's
                    # error path): what follows reads freed memory, in either build.
                    records.append(("stopped: libvirt's tree holds freed checkpoints", "",
                                    [], None))
                    break
            elif r < 75 and names:
                how = rng.choice([" --size --no-domain", " --size", "", " --no-domain",
                                  " --security-info"])
                do("dumpxml" + how, "checkpoint-dumpxml %s %s%s" % (DOM, rng.choice(names), how))
            elif r < 77:
                do("list", "checkpoint-list %s --tree" % DOM)
            elif r < 80 and names:
                name = rng.choice(names)
                xml = run.path("redefine-%s.xml" % name, top=True)
                with open(xml, "w") as f:
                    f.write(v.run("checkpoint-dumpxml %s %s" % (DOM, name)))
                validate = rng.choice(["", " --redefine-validate"])
                do("redefine %s%s" % (name, validate),
                   "checkpoint-create %s %s --redefine%s" % (DOM, xml, validate))
            elif r < 86 and len(chains[disk]) < 4:
                overlay = run.path("%s-%s.qcow2" % (disk, fresh("s")))
                if do("snapshot " + disk, "snapshot-create-as %s --disk-only --no-metadata "
                      "--diskspec %s,snapshot=external,file=%s %s"
                      % (DOM, disk, overlay, run.others(disk))):
                    chains[disk].insert(0, overlay)
            elif r < 91 and len(chains[disk]) > 1:
                chain = chains[disk]
                top = rng.randrange(len(chain) - 1)
                base = rng.randrange(top + 1, len(chain))
                if top == 0:
                    command = "blockcommit %s %s --active --pivot --wait --base %s" % (
                        DOM, disk, chain[base])
                else:
                    command = "blockcommit %s %s --wait --top %s --base %s" % (
                        DOM, disk, chain[top], chain[base])
                if do("commit %s %d into %d" % (disk, top, base), command):
                    chains[disk] = chain[:top] + chain[base:] if top else chain[base:]
            elif r < 94:
                shallow = len(chains[disk]) > 1 and rng.randrange(2) == 0
                # One deep copy in four goes into a raw file (libvirt 9.0 sends bitmaps
                # QEMU refuses there, 11.3 none); later snapshots and commits then
                # have a raw layer in the chain.
                fmt = "raw" if not shallow and rng.randrange(4) == 0 else "qcow2"
                dest = run.path("%s-%s.%s" % (disk, fresh("copy"), fmt))
                # One deep qcow2 copy in five onto an image made beforehand as qcow2
                # v2 (compat 0.10), which holds no persistent bitmap either.
                reuse = ""
                if fmt == "qcow2" and not shallow and rng.randrange(5) == 0:
                    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                                    "compat=0.10", dest, str(SIZE)], check=True)
                    reuse = " --reuse-external"
                if do("copy %s shallow %s format %s%s" % (disk, shallow, fmt, reuse),
                      "blockcopy %s %s %s --transient-job --wait --pivot --format %s%s%s"
                      % (DOM, disk, dest, fmt, " --shallow" if shallow else "", reuse)):
                    chains[disk] = [dest] + (chains[disk][1:] if shallow else [])
            elif r < 96 and len(chains[disk]) > 1:
                chain = chains[disk]
                base = rng.randrange(2, len(chain)) if len(chain) > 2 and rng.randrange(2) else None
                if do("pull %s base %s" % (disk, base), "blockpull %s %s --wait%s"
                      % (DOM, disk, " --base %s" % chain[base] if base else "")):
                    chains[disk] = chain[:1] + (chain[base:] if base else [])
            elif r < 98:
                how = rng.randrange(3)
                if how == 2:
                    # The driver restarted with QEMU left running: it reconnects, and
                    # reloads the checkpoint files (through the stand-in's parse).
                    # (Not the topological listing: once reloaded, libvirt's order of
                    # siblings is that of its hash table, whose seed is random.)
                    run.restart_driver()
                    do("driver restart: the tree", "checkpoint-list %s --tree" % DOM)
                elif how:
                    do("restart", "destroy " + DOM)
                else:
                    # The guest's writes flushed first (else whether the last ones
                    # survive the kill is a matter of timing), then QEMU killed.
                    for d in range(len(run.disks)):
                        v.run(scenario.qemu_io(DOM, d, "flush"))
                    pid = run.pid()
                    if pid:
                        os.kill(pid, signal.SIGKILL)
                    for _ in range(200):
                        if "shut off" in v.run("domstate " + DOM):
                            break
                        time.sleep(0.05)
                    records.append(("crash", "", [], None))
                if how < 2 and names and rng.randrange(2):
                    # While it is shut off: what libvirt does then, or refuses.
                    name = rng.choice(names)
                    xml = run.path("offline-%s.xml" % name, top=True)
                    with open(xml, "w") as f:
                        f.write(v.run("checkpoint-dumpxml %s %s" % (DOM, name)))
                    command = rng.choice([
                        "checkpoint-create %s %s --redefine" % (DOM, xml),
                        "checkpoint-create %s %s --redefine --redefine-validate" % (DOM, xml),
                        "checkpoint-delete %s %s" % (DOM, name),
                        "checkpoint-delete %s %s --metadata" % (DOM, name),
                        "checkpoint-dumpxml %s %s --size" % (DOM, name),
                        "checkpoint-create-as %s --name %s" % (DOM, fresh("c")),
                    ])
                    do("shut off: " + command.split()[0], command)
                if how < 2:
                    do("start again", "start " + DOM)
            elif names:
                name = rng.choice(names)
                node = run.top_node(disk)
                run.monitor({"execute": "block-dirty-bitmap-remove",
                             "arguments": {"node": node, "name": name}})
                records.append(("remove %s from %s behind libvirt's back" % (name, disk), "", [], None))
            # The checkpoints as libvirt lists them (the same from both while the runs agree).
            listed = v.run("checkpoint-list %s --name" % DOM).split()
            names = sorted(n for n in listed if re.fullmatch(r"c\d+", n))
        if not (records and records[-1][0].startswith("stopped")):
            tail(run, do, fresh, chains)
    except (VirshDied, BrokenPipeError):
        if not records or not records[-1][1].startswith("virsh died"):
            records.append(("(between operations)", "virsh died (%s)" % v.proc.wait(), [], None))
    return records


def raw_top(run, chains):
    """Whether the domain's raw disk still has a raw image on top."""
    return RAW_DISK in run.disks and chains[RAW_DISK][0].endswith(".raw")


def tail(run, do, fresh, chains):
    """After the random operations, a fixed end whose block jobs carry bitmaps: a
    checkpoint grown under snapshots of each disk, then a commit below the active
    layer (the base reopened around the merges), a pull down to a base, and a backup
    from the checkpoint, whose data must be the same from both."""
    do("tail: start", "start " + DOM)
    do("tail: checkpoint ctail", "checkpoint-create-as %s --name ctail%s"
       % (DOM, " --diskspec %s,checkpoint=no" % RAW_DISK if raw_top(run, chains) else ""))
    layers = {}
    for disk, count in (("vda", 2), ("vdb", 3)):
        layers[disk] = []
        for i in range(count):
            do("tail: write " + disk, scenario.qemu_io(DOM, run.disks.index(disk), '"write -P 0x5a %d %d"'
                                                       % (i * M, 2 * K)), printed=False)
            overlay = run.path("%s-%s.qcow2" % (disk, fresh("t")))
            do("tail: snapshot " + disk, "snapshot-create-as %s --disk-only --no-metadata "
               "--diskspec %s,snapshot=external,file=%s %s"
               % (DOM, disk, overlay, run.others(disk)))
            layers[disk].insert(0, overlay)
    # vda: the middle layer committed into the one below it, both holding ctail.
    do("tail: commit below the active layer", "blockcommit %s vda --wait --top %s"
       % (DOM, layers["vda"][1]))
    # vdb: the middle layer pulled into the top, the oldest overlay kept as the base.
    do("tail: pull down to a base", "blockpull %s vdb --wait --base %s"
       % (DOM, layers["vdb"][2]))
    tag = fresh("b")
    xml = "<domainbackup mode='push'><incremental>ctail</incremental><disks>"
    for d in run.disks:
        xml += ("<disk name='%s' type='file'><target file='%s'/><driver type='qcow2'/></disk>"
                % (d, run.path("%s-%s.qcow2" % (tag, d))))
    with open(run.path(tag + ".xml", top=True), "w") as f:
        f.write(xml + "</disks></domainbackup>")

    def pushed():
        job = run.wait_job()
        return (job, [allocated(run.path("%s-%s.qcow2" % (tag, d))) for d in run.disks])
    do("tail: push backup from ctail", "backup-begin %s %s"
       % (DOM, run.path(tag + ".xml", top=True)), pushed, job=True)


def allocated(path, nonzero=False):
    """The data ranges of a backup image, as (start, length), adjacent ones merged
    (where the clusters landed in the file does not matter); read shared, for the
    driver may not have closed it yet when its job has ended. With @nonzero, only the
    64 KiB clusters that hold a byte other than zero: what a full backup copies of
    zeros depends on what the source's block status says of them, and a raw file's
    (SEEK_DATA) changes as the kernel writes it back, so two full backups of the same
    chain can differ in their zero clusters alone."""
    out = subprocess.run(["qemu-img", "map", "-U", "--output=json", path],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return out.stderr.replace(os.path.dirname(path), "W").strip()
    ranges = []

    def add(start, length):
        if ranges and ranges[-1][0] + ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], ranges[-1][1] + length)
        else:
            ranges.append((start, length))

    with open(path, "rb") as f:
        for e in json.loads(out.stdout):
            if not e["data"] or e["depth"] != 0:
                continue
            if not nonzero:
                add(e["start"], e["length"])
                continue
            for at in range(0, e["length"], K):
                f.seek(e["offset"] + at)
                if f.read(min(K, e["length"] - at)).strip(b"\0"):
                    add(e["start"] + at, min(K, e["length"] - at))
    return ranges


def seeds_of(text):
    if ".." in text:
        a, b = text.split("..")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def main():
    stock, standin, work = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
    seeds = seeds_of(sys.argv[4] if len(sys.argv) > 4 else "1..4")
    ops = int(sys.argv[5]) if len(sys.argv) > 5 else 40
    passed = failed = 0
    for seed in seeds:
        got = {}
        for label, build in (("stock", stock), ("stand-in", standin)):
            run = Run(build, os.path.join(work, "%d-%s" % (seed, label)), has_raw_disk(seed))
            try:
                got[label] = sequence(run, seed, ops)
                with open(os.path.join(run.work, "records.json"), "w") as f:
                    json.dump(got[label], f, indent=1)
            finally:
                run.close()
                stop_qemu(run)
        a, b = got["stock"], got["stand-in"]
        diff = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
        if diff is None and len(a) != len(b):
            diff = min(len(a), len(b))
        died = diff is not None and diff < len(a) and a[diff][1].startswith("virsh died")
        if died and not (diff < len(b) and b[diff][1].startswith("virsh died")):
            # Stock libvirt crashed where the stand-in did not: stock has nothing to
            # compare with from there on.
            passed += 1
            print("virsh stock/stand-in seed %d: stock libvirt's virsh died at operation %d "
                  "(%s: %s), the stand-in did not; the same before it: ok"
                  % (seed, diff + 1, a[diff][0], a[diff][1]))
            continue
        if diff is None:
            passed += 1
            commands = sum(len(r[2]) for r in a)
            errors = sum(1 for r in a if "error:" in r[1])
            print("virsh stock/stand-in seed %d: %d operations, %d bitmap commands, %d errors, "
                  "all the same: ok" % (seed, len(a), commands, errors))
            continue
        failed += 1
        print("virsh stock/stand-in seed %d: operation %d differs: FAILED" % (seed, diff + 1))
        for r in a[max(0, diff - 8):diff]:
            print("    %s" % r[0])
        for label, rec in (("stock", a), ("stand-in", b)):
            r = rec[diff] if diff < len(rec) else None
            print("  %s: %r" % (label, r))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


def stop_qemu(run):
    """Kills a run's QEMU if it outlived virsh."""
    pid = run.pid()
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


if __name__ == "__main__":
    signal.alarm(1800)  # never hang CI: SIGALRM ends the run
    sys.exit(main())
