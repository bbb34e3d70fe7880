/*
 * vcp_adapter.h: what the parts of the libvirt adapter share.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "qemu_monitor.h"
#include "virjson.h"

#include "vcp_adapter_report.h"

/* libvirt 9.0 names an image's nodes in its fields; libvirt 11 through accessors (the
 * format node, else the slice, else the storage node: QEMU's node for the image). */
#if LIBVIR_CHECK_VERSION(11, 0, 0)
# define VCP_NODE(src) qemuBlockStorageSourceGetEffectiveNodename(src)
# define VCP_STORAGE(src) qemuBlockStorageSourceGetStorageNodename(src)
#else
# define VCP_NODE(src) ((src)->nodeformat)
# define VCP_STORAGE(src) ((src)->nodestorage)
#endif

/* The library's node data of one reply, shared by every entry of libvirt's table. */
typedef struct {
    vcp_node_data *nodes;
    size_t refs;
} vcpAdapterNodeData;

/* An entry of libvirt's node table as the stand-in's parse makes it: libvirt's own
 * data first (all that libvirt's code sees), then the reply's node data. */
typedef struct {
    qemuBlockNamedNodeData data;
    vcpAdapterNodeData *shared;
} vcpAdapterNodeEntry;

/* The library's node data that came with libvirt's table (NULL: none). */
const vcp_node_data *vcpAdapterNodes(GHashTable *data);

/* A sink appending to *@actions with libvirt's own transaction helpers (the array is
 * created on the first action when *@actions is NULL). */
vcp_action_sink vcpAdapterSink(virJSONValue **actions);

/* libvirt's bitmap handling once block job @job (VCP_BLOCKJOB_END_*) has completed
 * (qemuBlockJobProcessEventCompleted*Bitmaps): the node data read, and the library's
 * step along the chain from @top (above @base, when in it) into @target run on libvirt's
 * monitor, a failed transaction ignored as libvirt ignores it. */
int vcpAdapterBlockjobEnd(virDomainObj *vm, virDomainAsyncJob asyncJob, int job, virStorageSource *top,
                          virStorageSource *base, virStorageSource *target, unsigned int flags);
