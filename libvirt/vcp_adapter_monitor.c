/*
 * vcp_adapter_monitor.c: the node-data parse of the libvirt adapter.
 * scripts/libvirt-standin.sh includes it at the end of qemu_monitor_json.c (it frees
 * entries with that file's own function) and renames libvirt's definition, which it
 * calls: libvirt's table keeps every non-bitmap user as it is, and the library's node
 * data for the same reply is built here, once, for every bitmap function to read.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "vcp_adapter.h"

static void
vcpAdapterNodeEntryFree(void *p)
{
    vcpAdapterNodeEntry *e = p;

    if (--e->shared->refs == 0) {
        vcp_node_data_free(e->shared->nodes);
        g_free(e->shared);
    }
    qemuMonitorJSONBlockNamedNodeDataFree(&e->data); /* frees @e: its first member */
}

/* Adds node @name with libvirt's @d to the library's @nodes. */
static int
vcpAdapterAddNode(vcp_node_data *nodes, const char *name, qemuBlockNamedNodeData *d)
{
    g_autofree vcp_bitmap_entry *bitmaps = g_new(vcp_bitmap_entry, d->nbitmaps); /* every entry set below */
    size_t i;

    for (i = 0; i < d->nbitmaps; i++) {
        qemuBlockNamedNodeDataBitmap *b = d->bitmaps[i];
        bitmaps[i] = (vcp_bitmap_entry) { b->name,
            (b->recording ? VCP_BITMAP_RECORDING : 0) | (b->busy ? VCP_BITMAP_BUSY : 0) |
            (b->persistent ? VCP_BITMAP_PERSISTENT : 0) |
            (b->inconsistent ? VCP_BITMAP_INCONSISTENT : 0), b->granularity, b->dirtybytes };
    }
    if (vcp_node_data_add_node(nodes, name, d->capacity, (d->qcow2v2 ? VCP_NODE_QCOW2_V2 : 0) |
                               (d->qcow2extendedL2 ? VCP_NODE_QCOW2_EXTENDED_L2 : 0)) < 0 ||
        vcp_node_data_add_bitmaps(nodes, name, bitmaps, d->nbitmaps) < 0)
        return vcpReport();
    return 0;
}

GHashTable *
qemuMonitorJSONBlockGetNamedNodeDataJSON(virJSONValue *nodes)
{
    g_autoptr(GHashTable) parsed = vcp_replaced_qemuMonitorJSONBlockGetNamedNodeDataJSON(nodes);
    g_autoptr(GHashTable) ret = virHashNew(vcpAdapterNodeEntryFree);
    vcpAdapterNodeData *shared;
    GHashTableIter it;
    gpointer name, val;
    int rc = 0;

    if (!parsed)
        return NULL;
    shared = g_new0(vcpAdapterNodeData, 1);
    shared->nodes = vcp_node_data_new();
    shared->refs = 1; /* this function's own, dropped below */
    g_hash_table_iter_init(&it, parsed);
    while (rc == 0 && g_hash_table_iter_next(&it, &name, &val)) {
        vcpAdapterNodeEntry *e = g_new0(vcpAdapterNodeEntry, 1);

        g_hash_table_iter_steal(&it);
        e->data = *(qemuBlockNamedNodeData *)val;
        g_free(val);
        e->shared = shared;
        shared->refs++;
        g_hash_table_insert(ret, name, e);
        rc = vcpAdapterAddNode(shared->nodes, name, &e->data);
    }
    if (--shared->refs == 0) {
        vcp_node_data_free(shared->nodes);
        g_free(shared);
    }
    return rc == 0 ? g_steal_pointer(&ret) : NULL;
}
