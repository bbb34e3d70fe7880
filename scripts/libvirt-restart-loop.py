#!/usr/bin/env python3
"""A loop of driver restarts over a running domain (a defect hunt, not run by CI).

Starts a domain under one libvirt build (qemu:///embed, as the side-by-side check
does), gives it checkpoints, external snapshots, a push backup and a block commit,
then N times ends virsh, and the QEMU driver inside it, and starts it again with QEMU
left running (the side-by-side check's restart), and lists the checkpoints. Prints
every death of virsh and ends with the count; fails on a death or a stopped domain. While the harness opened the
connection with -c it reproduced libvirt 11.3's "malloc(): corrupted top size" about
once in 900 restarts (docs/NOTES.md). VCP_VIRSH_WRAP runs virsh under valgrind.

Usage: scripts/libvirt-restart-loop.py LIBVIRT_BUILD_DIR WORKDIR N
"""

import importlib.util
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("diff", os.path.join(HERE, "libvirt-virsh-diff.py"))
diff = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(diff)
DOM = diff.DOM


def main():
    build, work, n = sys.argv[1], os.path.abspath(sys.argv[2]), int(sys.argv[3])
    run = diff.Run(build, work)
    v = run.virsh
    for command in ["define " + run.path("dom.xml", top=True), "start " + DOM,
                    "checkpoint-create-as %s c1" % DOM, "checkpoint-create-as %s c2" % DOM]:
        v.run(command)
    img = run.path("")
    for i in range(3):
        v.run("snapshot-create-as %s s%d --disk-only --no-metadata --diskspec "
              "vda,snapshot=external,file=%s/vda-s%d.qcow2 --diskspec vdb,snapshot=no"
              % (DOM, i, img, i))
        v.run("checkpoint-create-as %s k%d" % (DOM, i))
    backup = run.path("backup.xml", top=True)
    with open(backup, "w") as f:
        f.write("<domainbackup><incremental>c1</incremental><disks><disk name='vda' type='file'>"
                "<target file='%s/backup.qcow2'/><driver type='qcow2'/></disk>"
                "<disk name='vdb' backup='no'/></disks></domainbackup>" % img)
    v.run("backup-begin %s %s" % (DOM, backup))
    run.wait_job()
    v.run("blockcommit %s vda --wait --top %s/vda-s0.qcow2" % (DOM, img))
    deaths = 0
    for i in range(n):
        try:
            run.restart_driver()  # the side-by-side check's restart, with its wait
            run.virsh.run("checkpoint-list %s --tree" % DOM)
        except BrokenPipeError:
            pass
        if run.virsh.proc.poll() is not None:
            deaths += 1
            print("restart %d: virsh died (%d)" % (i + 1, run.virsh.proc.wait()), flush=True)
            run.virsh = diff.scenario.Virsh(build, work)
    running = "running" in run.virsh.run("domstate " + DOM)
    print("%d restarts, %d deaths, the domain %s" % (n, deaths, "still running" if running else "STOPPED"))
    run.close()
    diff.stop_qemu(run)
    return 1 if deaths or not running else 0


if __name__ == "__main__":
    sys.exit(main())
