#!/usr/bin/env python3
"""The stand-in libvirt on a real QEMU.

One virsh session (qemu:///embed, so the QEMU driver with its delegated bitmap code
runs inside virsh) replays the operations stock libvirt 9.0 was recorded doing
(tests/data/libvirt-9.0-qmp, domain lvtest, 01-15): checkpoints, push backups
(incremental, and full with a new checkpoint), deletes in the middle and across an
external snapshot. Every bitmap command the stand-in sends (transactions, reopens,
bitmap commands) must equal what stock libvirt sent, in order. Then, beyond the
recording: a redefine with validation and its refusal once a bitmap is gone, an
active block commit and a block copy, each followed by an incremental backup whose
data is checked with qemu-img, then a restart with the checkpoint redefined and a pull
backup read through its NBD export.

Usage: scripts/libvirt-virsh.py LIBVIRT_BUILD_DIR WORKDIR
Prints one line per check and ends with "N passed, N failed".
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REC = os.path.join(ROOT, "tests/data/libvirt-9.0-qmp")
BITMAP_COMMANDS = ("transaction", "blockdev-reopen", "block-dirty-bitmap-add",
                   "block-dirty-bitmap-remove", "block-dirty-bitmap-merge")
K, M = 65536, 1 << 20
END = "__vcp_end__"


class Virsh:
    """One interactive virsh process: a command in, its output (stderr included) out."""

    def __init__(self, build, work):
        # The connection is virsh's default (LIBVIRT_DEFAULT_URI), not -c: virsh then
        # opens it, and starts the QEMU driver inside it, at the first command, after
        # readline's first prompt has set LC_CTYPE from the environment. The libvirt
        # builds here have no NLS, so virsh sets no locale at start, and opened with
        # -c the driver's threads already ran at that first prompt: after a driver
        # restart, the reconnect's monitor thread parsed QEMU's greeting with json-c
        # (libvirt 11), whose duplocale of the global locale races with that
        # setlocale in glibc and wrote 8 bytes past its copy ("malloc(): corrupted top
        # size", about one restart in 900, stock 11.3 and the stand-in alike).
        # docs/NOTES.md.
        uri = "qemu:///embed?root=%s/root" % work
        env = dict(os.environ, LIBVIRT_DEFAULT_URI=uri, LIBVIRT_LOG_FILTERS="1:qemu.qemu_monitor",
                   LIBVIRT_LOG_OUTPUTS="1:file:%s/libvirt.log" % work)
        self.log = open(os.path.join(work, "virsh.log"), "a")
        # VCP_VIRSH_WRAP: a command to run virsh under (e.g. valgrind), for a defect hunt.
        self.proc = subprocess.Popen(
            ["stdbuf", "-oL", "-eL", os.path.join(build, "run")]
            + os.environ.get("VCP_VIRSH_WRAP", "").split()
            + [os.path.join(build, "tools/virsh"), "-q"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env)

    def run(self, command):
        # Without a terminal virsh echoes each command after its prompt ("virsh # "),
        # and an output without a final newline runs into the next prompt: read raw
        # until the marker's output.
        self.proc.stdin.write(command + "\necho " + END + "\n")
        self.proc.stdin.flush()
        buf = ""
        fd = self.proc.stdout.fileno()
        marker = re.compile(r"\n" + END + r"(\n|virsh # )")
        while not marker.search(buf):
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk.decode(errors="replace")
        text = buf[:marker.search(buf).start() + 1] if marker.search(buf) else buf
        text = re.sub(r"virsh # [^\n]*\n", "", text)
        # The previous marker's match took this command's prompt: its echo is left.
        if text.startswith(command + "\n"):
            text = text[len(command) + 1:]
        self.log.write("## virsh> %s\n%s" % (command, text))
        self.log.flush()
        return text

    def ok(self, command):
        return "error:" not in self.run(command)

    def write(self, pattern, offset, length):
        return self.ok(qemu_io("lvtest", 0, '"write -P %s %s %s"' % (pattern, offset, length)))

    def backup(self, *xml):
        if not self.ok("backup-begin lvtest " + " ".join(xml)):
            return False
        for _ in range(200):
            if re.search(r"Job type:\s+None", self.run("domjobinfo lvtest")):
                break
            time.sleep(0.05)
        return "Completed" in self.run("domjobinfo lvtest --completed")

    def top_node(self):
        """vda's active format node, as QEMU reports it."""
        out = self.run("qemu-monitor-command lvtest '{\"execute\":\"query-block\"}'")
        try:
            return json.loads(out)["return"][0]["inserted"]["node-name"]
        except (ValueError, KeyError, IndexError):
            return None

    def top_bitmaps(self):
        """The bitmaps of vda's active node: name -> (persistent, recording)."""
        top = self.top_node()
        out = self.run("qemu-monitor-command lvtest '{\"execute\":\"query-named-block-nodes\","
                       "\"arguments\":{\"flat\":true}}'")
        try:
            node = next(n for n in json.loads(out)["return"] if n["node-name"] == top)
        except (ValueError, KeyError, StopIteration):
            return {}
        return {b["name"]: (b.get("persistent"), b.get("recording"))
                for b in node.get("dirty-bitmaps", [])}

    def remove_bitmap(self, node, name):
        """Removes a bitmap behind libvirt's back."""
        self.run("qemu-monitor-command lvtest '{\"execute\":\"block-dirty-bitmap-remove\","
                 "\"arguments\":{\"node\":\"%s\",\"name\":\"%s\"}}'" % (node, name))

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def qemu_io(domain, disk, command):
    """The virsh command running qemu-io @command on @domain's virtio disk number
    @disk, as the guest's device sees it."""
    return ("qemu-monitor-command %s --hmp 'qemu-io -d /machine/peripheral/virtio-disk%d/"
            "virtio-backend %s'" % (domain, disk, command))


def make_root(work):
    """A fresh folder @work for an embedded driver (root/, with a qemu.conf that runs
    QEMU as root without a security driver) and its images (img/, returned)."""
    shutil.rmtree(work, ignore_errors=True)
    img = os.path.join(work, "img")
    os.makedirs(os.path.join(work, "root/etc"))
    os.makedirs(img)
    with open(os.path.join(work, "root/etc/qemu.conf"), "w") as f:
        f.write('user = "root"\ngroup = "root"\ndynamic_ownership = 0\n'
                'remember_owner = 0\nsecurity_driver = "none"\nstdio_handler = "file"\n')
    return img


def keep(text):
    """A bitmap command without its request id, or None."""
    try:
        cmd = json.loads(text)
    except ValueError:
        return None
    if cmd.get("execute") not in BITMAP_COMMANDS:
        return None
    cmd.pop("id", None)
    return json.dumps(cmd, separators=(",", ":"))


def stock_commands(last):
    want = []
    for name in sorted(os.listdir(REC)):
        if name.endswith(".txt") and name[:2].isdigit() and int(name[:2]) <= last:
            for line in open(os.path.join(REC, name)):
                if line.startswith("-> ") and keep(line[3:].strip()):
                    want.append(keep(line[3:].strip()))
    return want


def sent_commands(log):
    got = []
    for line in open(log):
        m = re.search(r"QEMU_MONITOR_SEND_MSG: mon=\S+ msg=(\{.*\})", line)
        if m and keep(m.group(1)):
            got.append(keep(m.group(1)))
    return got


def allocated(path):
    """The data ranges of the image itself (not its backing), as (start, length)."""
    out = subprocess.run(["qemu-img", "map", "--output=json", path],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return [(e["start"], e["length"]) for e in json.loads(out.stdout)
            if e["data"] and e["depth"] == 0]


def nbd_dirty(sock, disk="vda", export=None, bitmap=None):
    """The dirty extents of a pull backup's export of @disk (qemu-img map: with
    x-dirty-bitmap a dirty extent reads as "data": false), merged; the export and its
    bitmap named as libvirt names them by default (the disk, backup-<disk>)."""
    out = subprocess.run(["qemu-img", "map", "--output=json", "--image-opts",
                          "driver=nbd,export=%s,server.type=unix,server.path=%s,"
                          "x-dirty-bitmap=qemu:dirty-bitmap:%s"
                          % (export or disk, sock, bitmap or "backup-" + disk)],
                         capture_output=True, text=True)
    dirty = []
    try:
        extents = json.loads(out.stdout)
    except ValueError:
        return None
    for e in extents:
        if e.get("data") is False:
            if dirty and dirty[-1][0] + dirty[-1][1] == e["start"]:
                dirty[-1] = (dirty[-1][0], dirty[-1][1] + e["length"])
            else:
                dirty.append((e["start"], e["length"]))
    return dirty


def main():
    build, work = sys.argv[1], os.path.abspath(sys.argv[2])
    img = make_root(work)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2",
                    os.path.join(img, "vda.qcow2"), "64M"], check=True)
    files = {
        "dom.xml": """<domain type='qemu'><name>lvtest</name>
  <uuid>9518971d-d34e-4867-be66-9b9b1a45c080</uuid><memory unit='MiB'>64</memory>
  <vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <devices><emulator>%s</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='%s/vda.qcow2'/><target dev='vda' bus='virtio'/></disk>
  </devices></domain>""" % (shutil.which("qemu-system-x86_64"), img),
        "chk3.xml": "<domaincheckpoint><name>chk3</name></domaincheckpoint>",
    }
    for name, target, inc in [("inc1", "backup-inc1", "chk1"), ("full", "backup-full", None),
                              ("inc2", "backup-inc2", "chk1"), ("inc3", "backup-inc3", "chk4"),
                              ("inc4", "backup-inc4", "chk4")]:
        files[name + ".xml"] = (
            "<domainbackup mode='push'>%s<disks><disk name='vda' type='file'>"
            "<target file='%s/%s.qcow2'/><driver type='qcow2'/></disk></disks></domainbackup>"
            % ("<incremental>%s</incremental>" % inc if inc else "", img, target))
    files["pull.xml"] = (
        "<domainbackup mode='pull'><incremental>chk4</incremental>"
        "<server transport='unix' socket='%s/nbd.sock'/><disks><disk name='vda' backup='yes' "
        "type='file'><scratch file='%s/scratch.qcow2'/><driver type='qcow2'/></disk></disks>"
        "</domainbackup>" % (work, img))
    for name, text in files.items():
        with open(os.path.join(work, name), "w") as f:
            f.write(text)
    os.chdir(work)

    results = []

    def check(name, ok):
        results.append(ok)
        print("virsh scenario: %s: %s" % (name, "ok" if ok else "FAILED"))

    v = Virsh(build, work)
    steps = [
        lambda: v.ok("define dom.xml"), lambda: v.ok("start lvtest"),
        lambda: v.write("0x11", 0, "1M"), lambda: v.ok("checkpoint-create-as lvtest --name chk1"),
        lambda: v.write("0x22", "1M", "64k"), lambda: v.ok("checkpoint-create-as lvtest --name chk2"),
        lambda: v.write("0x33", "2M", "64k"), lambda: v.backup("inc1.xml"),
        lambda: v.backup("full.xml", "chk3.xml"), lambda: v.ok("checkpoint-delete lvtest chk2"),
        lambda: v.ok("snapshot-create-as lvtest snap1 --disk-only --atomic --diskspec "
                     "vda,snapshot=external,file=%s/vda.snap1.qcow2" % img),
        lambda: v.write("0x44", "3M", "64k"), lambda: v.ok("checkpoint-create-as lvtest --name chk4"),
        lambda: v.backup("inc2.xml"), lambda: v.ok("checkpoint-delete lvtest chk1"),
    ]
    check("the recorded operations (checkpoints, backups, deletes, snapshot) succeed",
          all(s() for s in steps))

    # The bitmap commands: what the stand-in sent equals what stock libvirt sent.
    want, got = stock_commands(15), sent_commands(os.path.join(work, "libvirt.log"))
    diffs = [(i, w, g) for i, (w, g) in enumerate(zip(want, got)) if w != g]
    for i, w, g in diffs[:5]:
        print("  command %d differs:\n    stock:    %s\n    stand-in: %s" % (i + 1, w, g))
    check("%d bitmap commands equal stock libvirt's, in order" % len(want),
          not diffs and len(got) == len(want) and len(want) > 0)

    # Beyond the recording. Redefine with validation: accepted while the bitmaps are
    # there, refused with libvirt's error once one is gone.
    with open("chk4-def.xml", "w") as f:
        f.write(v.run("checkpoint-dumpxml lvtest chk4"))
    check("redefine-validate of an intact checkpoint",
          v.ok("checkpoint-create lvtest chk4-def.xml --redefine --redefine-validate"))
    with open("chk3-def.xml", "w") as f:
        f.write(v.run("checkpoint-dumpxml lvtest chk3"))
    v.remove_bitmap(v.top_node(), "chk3")
    out = v.run("checkpoint-create lvtest chk3-def.xml --redefine --redefine-validate")
    check("redefine-validate refused as libvirt refuses it",
          out.strip() == "error: checkpoint inconsistent: missing or broken bitmap "
                         "'chk3' for disk 'vda'")
    v.run("checkpoint-delete lvtest chk3 --metadata")

    # An active block commit of the snapshot into the base, then a backup from chk4.
    v.write("0x55", "4M", "64k")
    check("active block commit with pivot",
          v.ok("blockcommit lvtest vda --active --pivot --wait"))
    v.write("0x66", "5M", "64k")
    check("incremental backup from chk4 after the commit", v.backup("inc3.xml"))
    # A deep block copy (of a persistent domain: a transient job), then another backup.
    check("block copy with pivot",
          v.ok("blockcopy lvtest vda %s/vda-copy.qcow2 --transient-job --wait --pivot "
               "--format qcow2" % img))
    v.write("0x77", "6M", "64k")
    check("incremental backup from chk4 after the copy", v.backup("inc4.xml"))
    check("the copy carries chk4 as a persistent, recording bitmap",
          v.top_bitmaps().get("chk4") == (True, True))

    # A restart with redefine: chk4's metadata dropped, the domain restarted (its QEMU
    # loads the persistent bitmap from the image), chk4 redefined with validation.
    with open("chk4-restart.xml", "w") as f:
        f.write(v.run("checkpoint-dumpxml lvtest chk4"))
    check("restart, then chk4 redefined and validated on the new QEMU",
          v.ok("checkpoint-delete lvtest chk4 --metadata") and v.ok("destroy lvtest") and
          v.ok("start lvtest") and
          v.ok("checkpoint-create lvtest chk4-restart.xml --redefine --redefine-validate"))
    v.write("0x88", "7M", "64k")
    # A pull backup from chk4, read through its NBD export, then ended.
    sock = os.path.join(work, "nbd.sock")
    started = v.ok("backup-begin lvtest pull.xml")
    check("pull backup from chk4: the export's bitmap marks exactly the writes since chk4",
          started and nbd_dirty(sock) == [(4 * M, K), (5 * M, K), (6 * M, K), (7 * M, K)])
    read = subprocess.run(["qemu-io", "-r", "--image-opts", "-c", "read -P 0x88 7M 64k",
                           "driver=nbd,export=vda,server.type=unix,server.path=" + sock],
                          capture_output=True, text=True)
    check("pull backup: the export reads the guest's data",
          started and read.returncode == 0 and "65536/65536" in read.stdout
          and "verification failed" not in read.stdout)
    ended = v.ok("domjobabort lvtest")
    for _ in range(200):
        if not ended or re.search(r"Job type:\s+None", v.run("domjobinfo lvtest")):
            break
        time.sleep(0.05)
    bitmaps = v.top_bitmaps()
    check("pull backup ended: its temporary bitmap removed, chk4 kept",
          ended and "backup-vda" not in bitmaps and bitmaps.get("chk4") == (True, True))

    # The size query (checkpoint-dumpxml --size): chk4 counts exactly the four 64 KiB
    # writes since it, written in stock libvirt's checkpoint XML layout; the query's
    # temporary bitmap is gone afterwards.
    out = v.run("checkpoint-dumpxml lvtest chk4 --size --no-domain").strip()
    check("checkpoint size of chk4: the 4 x 64 KiB written since it, in libvirt's layout",
          re.fullmatch(r"<domaincheckpoint>\n  <name>chk4</name>\n  <creationTime>\d+"
                       r"</creationTime>\n  <disks>\n    <disk name='vda' checkpoint='bitmap' "
                       r"bitmap='chk4' size='%d'/>\n  </disks>\n</domaincheckpoint>" % (4 * K),
                       out) is not None
          and "libvirt-tmp-size-xml" not in v.top_bitmaps())

    # Bad states reach virsh as libvirt's own errors (the texts stock libvirt printed,
    # recordings 68 and 69): chk4's bitmap removed behind libvirt's back.
    v.remove_bitmap(v.top_node(), "chk4")
    out = v.run("backup-begin lvtest inc4.xml")
    check("a backup from a lost bitmap is refused with libvirt's error",
          out.strip() == "error: checkpoint inconsistent: missing or broken bitmap "
                         "'chk4' for disk 'vda'")
    out = v.run("checkpoint-delete lvtest chk4")
    check("deleting a checkpoint whose bitmap is gone fails with libvirt's error",
          out.strip() == "error: Failed to delete checkpoint chk4\n"
                         "error: internal error: bitmap 'chk4' not found in backing chain "
                         "of 'vda'")
    check("virsh is still alive after the errors", v.ok("list"))
    v.run("destroy lvtest")
    v.close()

    since_chk4 = [(4 * M, K), (5 * M, K)]  # 0x44 @3M came before chk4
    check("backup after the commit holds exactly the writes since chk4",
          allocated(os.path.join(img, "backup-inc3.qcow2")) == since_chk4)
    check("backup after the copy holds exactly the writes since chk4",
          allocated(os.path.join(img, "backup-inc4.qcow2")) == since_chk4 + [(6 * M, K)])
    check("every image is consistent (qemu-img check)",
          all(subprocess.run(["qemu-img", "check", "-q", os.path.join(img, f)]).returncode == 0
              for f in os.listdir(img)))
    passed = sum(results)
    print("%d passed, %d failed" % (passed, len(results) - passed))
    return 0 if passed == len(results) else 1


def stop_qemu(work):
    """Kills the scenario's QEMU if it outlived virsh (a failure midway)."""
    try:
        pid = int(open(os.path.join(work, "root/run/qemu/lvtest.pid")).read())
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    signal.alarm(900)  # never hang CI: SIGALRM ends the run
    try:
        rc = main()
    finally:
        stop_qemu(os.path.abspath(sys.argv[2]))
    sys.exit(rc)
