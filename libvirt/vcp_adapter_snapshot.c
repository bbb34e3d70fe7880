/*
 * vcp_adapter_snapshot.c: the part of the libvirt adapter that needs
 * qemu_snapshot.c's private types. scripts/libvirt-standin.sh includes it at the end
 * of qemu_snapshot.c, whose own qemuSnapshotDiskBitmapsPropagate it renames.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "vcp_adapter.h"

static int
qemuSnapshotDiskBitmapsPropagate(qemuSnapshotDiskData *dd,
                                 virJSONValue *actions,
                                 GHashTable *blockNamedNodeData)
{
    vcp_action_sink sink = vcpAdapterSink(&actions);

    if (!VCP_NODE(dd->disk->src))
        return 0; /* libvirt's lookup finds nothing either */
    if (vcp_node_propagate_actions(vcpAdapterNodes(blockNamedNodeData), VCP_NODE(dd->disk->src),
                                   VCP_NODE(dd->src), &sink, 0) < 0)
        return vcpReport();
    return 0;
}
