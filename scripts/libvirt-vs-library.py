#!/usr/bin/env python3
"""Stock libvirt's own bitmap commands against the library's plans, on a real QEMU.

The seeded sequences of scripts/libvirt-virsh-diff.py run over stock libvirt alone
(qemu:///embed, two qcow2 disks, the second with the <driver> options a reopen carries,
and on every third seed a raw disk, snapshots growing each chain to four layers,
commits, copies, pulls, backups, deletes). Before each checkpoint creation, plain
checkpoint delete, size query (checkpoint-dumpxml --size), external disk-only
snapshot and backup (push or pull, incremental or not, creating a checkpoint or not), the state libvirt holds is taken as a driver would hand it to the library:
the status XML of the running domain (its chains with their node names) and, for a
delete or a size query, the checkpoint's stored definition. Afterwards the
query-named-block-nodes reply libvirt planned from is taken from its monitor log (and
for a snapshot or a backup, the node names it gave the images it added). The library (the vcp command line) then plans
the same operation from those inputs as a whole step, and its commands (reopens and
transactions, in order) must equal what stock libvirt sent, byte for byte; where
libvirt refused before sending anything, the library must refuse with libvirt's code
and text. Redefines with validation are checked the same way. Nothing is predicted:
libvirt is the oracle.

Usage: scripts/libvirt-vs-library.py STOCK_BUILD VCP_BINARY WORKDIR [SEEDS [OPS]]
  SEEDS: FIRST..LAST or a comma-separated list (default 1..4); OPS: per sequence
  (default 40). Prints one line per sequence and ends with "N passed, N failed".
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("diff", os.path.join(HERE, "libvirt-virsh-diff.py"))
diff = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(diff)
scenario = diff.scenario
DOM = diff.DOM


def monitor_lines(log, offset):
    """(sent, replies) after byte @offset of libvirt's log: the commands sent, in
    order (ids kept), and the replies by id."""
    sent, replies = [], {}
    with open(log, errors="replace") as f:
        f.seek(offset)
        for line in f:
            m = re.search(r"QEMU_MONITOR_SEND_MSG: mon=\S+ msg=(\{.*\})", line)
            if m:
                try:
                    sent.append(json.loads(m.group(1)))
                except ValueError:
                    pass
                continue
            m = re.search(r"QEMU_MONITOR_RECV_REPLY: mon=\S+ reply=(\{.*\})", line)
            if m:
                try:
                    reply = json.loads(m.group(1))
                except ValueError:
                    continue
                replies[reply.get("id")] = m.group(1)
    return sent, replies


def compact(cmd):
    cmd = dict(cmd)
    cmd.pop("id", None)
    return json.dumps(cmd, separators=(",", ":"))


class Oracle:
    """Wraps one stock run's virsh: compares the library's plan for each checkpoint
    creation and plain delete with what libvirt sent."""

    def __init__(self, run, vcp, work):
        self.run, self.vcp, self.work = run, vcp, work
        self.compared, self.differences, self.n, self.reopens = 0, [], 0, 0
        self.kinds = {}
        self.known = {}  # known differences (docs/NOTES.md), by kind
        self.refusals = 0
        self.restarted = False  # whether the driver has been restarted
        self.wrap(run.virsh)
        run.on_virsh = self.restart  # a driver restart starts another virsh

    def wrap(self, virsh):
        self.inner = virsh.run
        virsh.run = self.intercept

    def restart(self, virsh):
        self.restarted = True
        self.wrap(virsh)

    def path(self, name):
        return os.path.join(self.work, "oracle", name)

    def status_xml(self):
        src = os.path.join(self.run.work, "root/run/qemu/%s.xml" % DOM)
        return open(src).read() if os.path.exists(src) else None

    def intercept(self, command):
        words = command.split()
        kind = None
        if words[:2] == ["checkpoint-delete", DOM] and len(words) == 3:
            kind = "delete"
        elif words[:2] == ["checkpoint-delete", DOM] and words[3:] in (["--children"],
                                                                      ["--children-only"]):
            kind = "delete-tree"
        elif words[:2] == ["checkpoint-create-as", DOM]:
            kind = "create"
        elif words[:2] == ["checkpoint-dumpxml", DOM] and "--size" in words:
            kind = "size"
        elif words[:3] == ["snapshot-create-as", DOM, "--disk-only"]:
            kind = "snapshot"
        elif words[:2] == ["backup-begin", DOM]:
            kind = "backup"
        elif words[:2] in (["blockcommit", DOM], ["blockcopy", DOM], ["blockpull", DOM]):
            kind = words[0][5:]
        elif words[:2] == ["checkpoint-create", DOM] and "--redefine-validate" in words:
            kind = "validate"
        status = self.status_xml() if kind else None
        if not status:
            return self.inner(command)
        self.n += 1
        os.makedirs(self.path(""), exist_ok=True)
        dom = self.path("%d-domain.xml" % self.n)
        with open(dom, "w") as f:
            f.write(status)
        args = [self.vcp, "plan", kind, "--step", "--domain", dom]
        chk = self.path("%d-checkpoint.xml" % self.n)
        if kind == "delete-tree":
            # The stored tree as libvirt keeps it on disk.
            meta = self.path("%d-metadata" % self.n)
            shutil.copytree(os.path.join(self.run.work, "root/lib/qemu/checkpoint"), meta)
            args = [self.vcp, "plan", "delete", "--step", "--domain", dom, "--metadata", meta,
                    "--name", DOM, "--checkpoint", words[2], words[3]]
        elif kind == "validate":
            shutil.copy(words[2], chk)
            args += ["--checkpoint", chk]
        elif kind in ("delete", "size"):
            stored = os.path.join(self.run.work, "root/lib/qemu/checkpoint/%s/%s.xml"
                                  % (DOM, words[2]))
            if not os.path.exists(stored):
                return self.inner(command)
            shutil.copy(stored, chk)
            args += ["--checkpoint", chk]
        elif kind == "create":
            name = words[words.index("--name") + 1]
            disks = "".join("<disk name='%s' checkpoint='no'/>" % s.split(",")[0]
                            for s in re.findall(r"--diskspec (\S+)", command))
            with open(chk, "w") as f:
                f.write("<domaincheckpoint><name>%s</name>%s</domaincheckpoint>"
                        % (name, "<disks>%s</disks>" % disks if disks else ""))
            args += ["--checkpoint", chk]
        elif kind == "backup":
            backup = open(words[2]).read()
            inc = re.search(r"<incremental>([^<]+)</incremental>", backup)
            args += ["--from", inc.group(1)] if inc else []
            args += ["--pull"] if "mode='pull'" in backup else []
            args += ["--checkpoint", words[3]] if len(words) > 3 else []
            # Per disk: its own checkpoint, or full under the backup's <incremental>.
            for disk, own in re.findall(r"<disk name='(\w+)'[^>]* incremental='([^']+)'", backup):
                args += ["--incremental", "%s=%s" % (disk, own)]
            for disk in re.findall(r"<disk name='(\w+)'[^>]* backupmode='full'", backup):
                args += ["--full", disk]
            for disk, bitmap in re.findall(r"<disk name='(\w+)'[^>]* exportbitmap='([^']+)'",
                                           backup):
                args += ["--export-bitmap", "%s=%s" % (disk, bitmap)]
        start = self.run.log_size()
        out = self.inner(command)
        sent, replies = monitor_lines(self.run.log, start)
        want = [compact(c) for c in sent if c.get("execute") in ("transaction", "blockdev-reopen")]
        query = [c for c in sent if c.get("execute") == "query-named-block-nodes"]
        if query:
            # The reply libvirt planned from: the first of the operation (a block job:
            # the last, read once the job is over).
            nodes = self.path("%d-nodes.json" % self.n)
            with open(nodes, "w") as f:
                f.write(replies.get(query[-1 if kind in ("commit", "copy", "pull") else 0]
                                    .get("id"), "{}"))
            args += ["--nodes", nodes]
        elif kind != "create":
            return out
        if kind in ("commit", "copy", "pull"):
            # The job libvirt started, with the nodes it named (its own choice).
            start_cmd = {"commit": "block-commit", "copy": "blockdev-mirror",
                         "pull": "block-stream"}[kind]
            job = [c.get("arguments", {}) for c in sent if c.get("execute") == start_cmd]
            if not job or not query:
                return out
            job = job[0]
            args += ["--disk", words[2]]
            if kind == "commit":
                top = job.get("top-node") or self.top_of(status, job.get("device", ""))
                args += ["--top", top, "--base", job["base-node"]]
            elif kind == "copy":
                args += ["--mirror", job["target"]]
                args += ["--shallow"] if "--shallow" in words else []
                args += ["--mirror-format", "raw"] if "raw" in words else []
            elif job.get("base-node"):
                args += ["--base", job["base-node"]]
        if kind in ("snapshot", "backup"):
            # The images libvirt added (their node names are libvirt's to choose): the
            # overlays of its blockdev-snapshot actions, the stores (or scratch
            # images) of its blockdev-backup actions. The first transaction only: a
            # backup's end is the job's.
            tx = [c for c in sent if c.get("execute") == "transaction"][:1]
            want = [compact(c) for c in tx]
            for a in tx[0]["arguments"]["actions"] if tx else []:
                if a.get("type") == "blockdev-snapshot":
                    disk = self.disk_of(status, a["data"]["node"])
                    args += ["--disk", "%s=%s" % (disk, a["data"]["overlay"])]
                elif a.get("type") == "blockdev-backup":
                    disk = self.disk_of(status, a["data"]["device"])
                    args += ["--disk", "%s=%s" % (disk, a["data"]["target"])]
            if "--disk" not in args:
                return out
        planned = subprocess.run(args, capture_output=True, text=True)
        # What each sent, then how each ended: libvirt's error (virsh's last line) and
        # the library's (the command line's first), with libvirt's code and text.
        got = self.commands(planned.stdout, kind) if planned.stdout.strip() else []
        if planned.returncode:
            got += [l for l in planned.stderr.splitlines() if l.startswith("error: ")][:1] \
                or ["refused: " + planned.stderr.strip()]
        if "error:" in out:
            self.refusals += 1
            if not want or kind == "delete-tree":
                # Refused by libvirt itself (not after QEMU refused a command).
                want += [l.strip() for l in out.splitlines() if l.startswith("error: ")][-1:]
            elif planned.returncode == 0:
                got += ["(QEMU refused it)"]
                want += ["(QEMU refused it)"]
        self.compared += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if "--incremental" in args or "--full" in args or "--export-bitmap" in args:
            self.kinds["backup per disk"] = self.kinds.get("backup per disk", 0) + 1
        self.reopens += any('"blockdev-reopen"' in c for c in want)
        known = None
        if got != want:
            if self.known_difference(want, got) or (
                    kind == "commit" and self.base_holds_no_bitmap(args)
                    and self.lost_copies(want, got)):
                known = "a target holding no bitmap"
            elif self.refused_before_qemu(want, got, out):
                known = "a bitmap QEMU cannot take, refused before sending"
            elif self.restarted and self.reopens_after_restart(want, got):
                known = "a reopen after a driver restart"
        if known:
            self.known[known] = self.known.get(known, 0) + 1
        elif got != want:
            self.differences.append((command, want, got, " ".join(args)))
        return out

    @classmethod
    def known_difference(cls, want, got):
        try:
            return cls.leaked_activewrite(want, got) or cls.refused_merge(want, got)
        except (ValueError, KeyError, IndexError, TypeError):
            return False  # not commands: a refusal on one side

    @staticmethod
    def refused_merge(want, got):
        """libvirt 9.0 merges persistent bitmaps into a mirror or commit base that
        cannot hold them (raw), a transaction QEMU refuses whole ("Can't store
        persistent bitmaps"); the library merges none and only removes the pivot's
        transient bitmap, which 9.0's refused transaction would have removed."""
        if len(got) != len(want) or got[:-1] != want[:-1]:
            return False
        mine = json.loads(got[-1])["arguments"]["actions"]
        theirs = json.loads(want[-1])["arguments"]["actions"]
        node = mine[0]["data"]["node"] if len(mine) == 1 else None
        return mine[0]["type"] == "block-dirty-bitmap-remove" and \
            mine[0]["data"]["name"] == "libvirt-tmp-activewrite" and \
            any(a["type"] == "block-dirty-bitmap-add" and a["data"]["node"] == node
                and a["data"].get("persistent") for a in theirs) and theirs[-1] == mine[0]

    @staticmethod
    def refused_before_qemu(want, got, out):
        """A new bitmap QEMU cannot take: libvirt sends its transaction and QEMU
        refuses it whole (a qcow2 v2 image: "Cannot store dirty bitmaps in qcow2 v2
        files"); the library, given the node data, refuses before sending anything,
        with its create-time check (docs/NOTES.md, "Create-time checks beyond
        libvirt"). Either way nothing changed."""
        return "unable to execute QEMU command 'transaction'" in out and \
            "Cannot store dirty bitmaps in qcow2 v2" in out and want and \
            all('"transaction"' in c for c in want) and len(got) == 1 and \
            got[0].startswith("error: unsupported configuration: checkpoint for disk ") and \
            got[0].endswith("is qcow2 v2 (compat 0.10), which cannot store persistent bitmaps")

    @staticmethod
    def reopens_after_restart(want, got):
        """Once the driver has restarted, libvirt reopens a backing layer without the
        disk's discard and cache options (and 11.3 without its detect-zeroes):
        reconnecting prepares only the disk's top image again
        (qemuDomainPrepareDiskSourceData), so a backing layer's options are unset,
        and the reopen resets them in QEMU. The library keeps the disk's options.
        That difference, and no other, is known."""
        def strip(commands):
            out = []
            for c in commands:
                cmd = json.loads(c)
                if cmd.get("execute") == "blockdev-reopen":
                    for o in cmd["arguments"]["options"]:
                        for member in ("discard", "cache", "detect-zeroes"):
                            o.pop(member, None)
                out.append(cmd)
            return out
        try:
            return len(want) == len(got) and strip(want) == strip(got)
        except (ValueError, KeyError, TypeError):
            return False

    @staticmethod
    def base_holds_no_bitmap(args):
        """Whether a commit's base (--base) is, in the node data libvirt read (--nodes),
        an image of a format that holds no bitmap (raw: a raw format node, or libvirt
        11's storage node alone; qcow2 v2, compat 0.10)."""
        try:
            base = args[args.index("--base") + 1]
            with open(args[args.index("--nodes") + 1]) as f:
                reply = json.load(f)
            nodes = reply.get("return", reply) if isinstance(reply, dict) else reply
            def v2(n):
                return n.get("image", {}).get("format-specific", {}).get("data", {}) \
                    .get("compat") == "0.10"
            return any(n.get("node-name") == base and (n.get("drv") != "qcow2" or v2(n))
                       for n in nodes)
        except (ValueError, OSError, AttributeError):
            return False

    @staticmethod
    def lost_copies(want, got):
        """A commit below the active layer into a base that holds no bitmap: libvirt
        sends nothing (11.3) or merges QEMU refuses (9.0), and the bitmaps only the
        committed layers carried are lost while their copies above still look valid;
        the library removes those copies instead, reopening the layers that hold them
        (commit_lost_bitmaps, docs/NOTES.md). Known when the library's one transaction
        only removes, on nodes libvirt's adds and merges do not target."""
        try:
            mine = [json.loads(c)["arguments"]["actions"] for c in got if '"transaction"' in c]
            theirs = [a for c in want if '"transaction"' in c
                      for a in json.loads(c)["arguments"]["actions"]]
        except (ValueError, KeyError, TypeError):
            return False
        if len(mine) != 1 or not mine[0] or \
                any(a["type"] != "block-dirty-bitmap-remove" for a in mine[0]):
            return False
        targets = {a["data"]["node"] for a in theirs}
        return all(a["type"] in ("block-dirty-bitmap-add", "block-dirty-bitmap-merge")
                   for a in theirs) and not targets & {a["data"]["node"] for a in mine[0]}

    @staticmethod
    def leaked_activewrite(want, got):
        """libvirt 11 adds the pivot's transient libvirt-tmp-activewrite bitmap to a
        mirror or commit base that holds no bitmap (raw) and never removes it (its
        merge returns early on raw; docs/NOTES.md); the library removes it
        at the end, as libvirt 9.0 does. That difference, and no other, is known."""
        if len(got) != len(want) + 1 or got[:-1] != want:
            return False
        removal = json.loads(got[-1])["arguments"]["actions"]
        return [a["type"] for a in removal] == ["block-dirty-bitmap-remove"] and \
            removal[0]["data"]["name"] == "libvirt-tmp-activewrite" and \
            '"libvirt-tmp-activewrite"' in want[-1] and "block-dirty-bitmap-add" in want[-1]

    def commands(self, step, kind):
        """The reopens and transactions of a step (--step JSON), in the order a driver
        sends them: now, then at the end (a backup: its first transaction)."""
        got, decoder, text = [], json.JSONDecoder(), step.strip()
        while text:  # one step per discarded checkpoint for a tree's delete
            step, end = decoder.raw_decode(text)
            text = text[end:].strip()
            got += [compact(c) for c in step["now"] + step["on-ready"] + step["on-end"]
                    if c.get("execute") in ("transaction", "blockdev-reopen")]
        return got[:1] if kind == "backup" else got

    @staticmethod
    def top_of(status, device):
        """The top node of the disk whose top is @device (a job's device argument)."""
        return device

    @staticmethod
    def disk_of(status, node):
        """The target of the disk one of whose images has node @node in @status."""
        for disk in re.findall(r"<disk .*?</disk>", status, re.S):
            if re.search(r"<nodename type='\w+' name='%s'/>" % re.escape(node), disk) \
                    and re.search(r"<target dev='(\w+)'", disk):
                return re.search(r"<target dev='(\w+)'", disk).group(1)
        return "?"


def deep(run):
    """After the random sequence, a fixed one that grows both chains under a checkpoint:
    its delete removes the bitmap from several backing layers of both disks (the
    reopens around it, in libvirt's order), and the size query merges across them."""
    v = run.virsh
    # The raw disk (every third seed's) left out of these checkpoints.
    no_raw = " --diskspec %s,checkpoint=no" % diff.RAW_DISK if diff.RAW_DISK in run.disks else ""
    v.run("start " + DOM)  # refused when running already
    v.run("checkpoint-create-as %s --name deep1%s" % (DOM, no_raw))
    for i, disk in enumerate(["vda", "vdb", "vda", "vdb"]):
        v.run("snapshot-create-as %s --disk-only --no-metadata --diskspec %s,snapshot=external,"
              "file=%s %s" % (DOM, disk, run.path("%s-deep%d.qcow2" % (disk, i)), run.others(disk)))
        v.run("checkpoint-create-as %s --name deep%d%s" % (DOM, i + 2, no_raw))
    v.run("checkpoint-dumpxml %s deep1 --size" % DOM)
    v.run("checkpoint-delete %s deep1" % DOM)
    v.run("checkpoint-dumpxml %s deep2 --size" % DOM)
    v.run("checkpoint-delete %s deep3" % DOM)
    # deep2 -> deep4 -> deep5: a tree's delete discards the descendants in libvirt's
    # order, then the checkpoint itself.
    v.run("checkpoint-delete %s deep2 --children" % DOM)
    # Both disks in one snapshot, under a checkpoint of both, then a backup from it.
    v.run("checkpoint-create-as %s --name deep6%s" % (DOM, no_raw))
    v.run("snapshot-create-as %s --disk-only --no-metadata --diskspec vda,snapshot=external,"
          "file=%s --diskspec vdb,snapshot=external,file=%s%s"
          % (DOM, run.path("vda-deep9.qcow2"), run.path("vdb-deep9.qcow2"),
             no_raw.replace("checkpoint", "snapshot")))
    with open(run.path("deep-backup.xml"), "w") as f:
        f.write("<domainbackup mode='push'><incremental>deep6</incremental><disks>%s</disks>"
                "</domainbackup>" % "".join(
                    "<disk name='%s' type='file'><target file='%s'/><driver type='qcow2'/></disk>"
                    % (d, run.path("deep-backup-%s.qcow2" % d)) for d in run.disks))
    v.run("backup-begin %s %s" % (DOM, run.path("deep-backup.xml")))
    run.wait_job()


def main():
    stock, vcp, work = (os.path.abspath(a) for a in sys.argv[1:4])
    seeds = diff.seeds_of(sys.argv[4] if len(sys.argv) > 4 else "1..4")
    ops = int(sys.argv[5]) if len(sys.argv) > 5 else 40
    passed = failed = 0
    for seed in seeds:
        seq_work = os.path.join(work, str(seed))
        run = diff.Run(stock, seq_work, diff.has_raw_disk(seed))
        # vdb with every <driver> option a reopen carries (odd seeds: discard and zero
        # detection; even seeds: those and a cache mode), vda without.
        dom_xml = run.path("dom.xml", top=True)
        options = "discard='unmap' detect_zeroes='unmap'" + ("" if seed % 2 else " cache='unsafe'")
        with open(dom_xml) as f:
            text = f.read()
        first = text.index("<driver name='qemu' type='qcow2'/>")
        second = text.index("<driver name='qemu' type='qcow2'/>", first + 1)
        with open(dom_xml, "w") as f:
            f.write(text[:second] + "<driver name='qemu' type='qcow2' %s/>" % options
                    + text[second + len("<driver name='qemu' type='qcow2'/>"):])
        oracle = Oracle(run, vcp, seq_work)
        died = None  # where stock libvirt's virsh died, if it did
        try:
            records = diff.sequence(run, seed, ops)
            if records and records[-1][1].startswith("virsh died"):
                died = "%s (%s)" % records[-1][:2]
            else:
                deep(run)
        except (diff.VirshDied, BrokenPipeError):
            died = "the fixed sequence after it (virsh died (%s))" % run.virsh.proc.wait()
        finally:
            run.close()
            diff.stop_qemu(run)  # the sequence's domain, should it outlive virsh
        if oracle.differences:
            failed += 1
            print("libvirt vs library, seed %d: %d of %d plans differ"
                  % (seed, len(oracle.differences), oracle.compared))
            for command, want, got, args in oracle.differences[:3]:
                print("  %s\n    libvirt sent: %s\n    the library:  %s\n    (%s)"
                      % (command, want, got, args))
        else:
            passed += 1
            print("libvirt vs library, seed %d: %d plans (%s; %d with reopens, %d refused), "
                  "all the same%s"
                  % (seed, oracle.compared, ", ".join("%s %d" % k for k in sorted(oracle.kinds.items())),
                     oracle.reopens, oracle.refusals, "" if not oracle.known else
                     " but known differences (docs/NOTES.md): " + ", ".join(
                         "%s %d" % k for k in sorted(oracle.known.items()))))
        if died:
            # Only stock libvirt runs here: its plans up to there were compared.
            print("libvirt vs library, seed %d: stock libvirt's virsh died at %s" % (seed, died))
    print("%d passed, %d failed" % (passed, failed))


if __name__ == "__main__":
    main()
