/*
 * vcp_adapter_blockjob.c: libvirt's bitmap handling once a block pull, commit or copy
 * has completed, over the library's step for it (vcpAdapterBlockjobEnd). The handlers
 * are static in qemu_blockjob.c: scripts/libvirt-standin.sh includes this file at its
 * end and renames libvirt's own definitions.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "vcp_adapter.h"

/* libvirt 9.0 handles a copy's and a non-active commit's bitmaps only when QEMU can
 * reopen an image (libvirt 11 requires it). */
#if LIBVIR_CHECK_VERSION(11, 0, 0)
# define VCP_CAN_REOPEN(vm) true
#else
# define VCP_CAN_REOPEN(vm) \
    virQEMUCapsGet(((qemuDomainObjPrivate *)(vm)->privateData)->qemuCaps, QEMU_CAPS_BLOCKDEV_REOPEN)
#endif

static int
qemuBlockJobProcessEventCompletedPullBitmaps(virDomainObj *vm,
                                             qemuBlockJobData *job,
                                             virDomainAsyncJob asyncJob)
{
    return vcpAdapterBlockjobEnd(vm, asyncJob, VCP_BLOCKJOB_END_PULL, job->disk->src,
                                 job->data.pull.base, job->disk->src, 0);
}

static int
qemuBlockJobProcessEventCompletedCommitBitmaps(virDomainObj *vm,
                                               qemuBlockJobData *job,
                                               virDomainAsyncJob asyncJob)
{
    bool active = job->type == QEMU_BLOCKJOB_TYPE_ACTIVE_COMMIT;

    if (!active && !VCP_CAN_REOPEN(vm))
        return 0;
    return vcpAdapterBlockjobEnd(vm, asyncJob, active ? VCP_BLOCKJOB_END_ACTIVE_COMMIT : VCP_BLOCKJOB_END_COMMIT,
                                 job->data.commit.top, job->data.commit.base, job->data.commit.base, 0);
}

static int
qemuBlockJobProcessEventCompletedCopyBitmaps(virDomainObj *vm,
                                             qemuBlockJobData *job,
                                             virDomainAsyncJob asyncJob)
{
    if (!VCP_CAN_REOPEN(vm))
        return 0;
    return vcpAdapterBlockjobEnd(vm, asyncJob, VCP_BLOCKJOB_END_COPY, job->disk->src, NULL, job->disk->mirror,
                                 job->jobflags & VIR_DOMAIN_BLOCK_COPY_SHALLOW ? VCP_BLOCKCOPY_SHALLOW : 0);
}
