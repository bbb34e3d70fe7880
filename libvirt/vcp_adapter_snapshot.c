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
    const char *top = VCP_NODE(dd->disk->src);
    vcp_node_data *nodes = NULL;
    char *text = NULL;
    int ret = -1;

    if (!top)
        return 0; /* libvirt's lookup finds nothing either */
    if (!(nodes = vcp_node_data_new()) || vcpAdapterAddNode(nodes, top, blockNamedNodeData, NULL) < 0 ||
        vcp_node_propagate_bitmap_actions(nodes, top, VCP_NODE(dd->src), &text, 0) < 0)
        vcpAdapterReport();
    else
        ret = vcpAdapterAppend(text, actions);
    vcp_node_data_free(nodes);
    return ret;
}
