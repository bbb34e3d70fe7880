/*
 * vcp_adapter.c: libvirt's QEMU bitmap functions delegated to virtcheckpoint.
 *
 * The project's own C over include/virtcheckpoint.h, compiled inside libvirt's
 * source tree by scripts/libvirt-standin.sh, which renames libvirt's own
 * definitions of these functions out of the way. It converts libvirt's structures
 * (a virStorageSource chain, the qemuBlockNamedNodeData hash table) into the
 * library's handles, calls one library function, and converts the result back.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include <config.h>

#include "qemu_block.h"
#include "qemu_monitor.h"
#include "virerror.h"
#include "virjson.h"
#include "qemu_backup.h"
#include "qemu_checkpoint.h"

#include "vcp_adapter.h"

#define VIR_FROM_THIS VIR_FROM_QEMU

/* Reports the library's last error as libvirt does: its code, its text without the
 * prefix (virReportError adds it). */
void
vcpAdapterReport(void)
{
    const vcp_error *err = vcp_last_error();
    virReportError(err ? err->code : VIR_ERR_INTERNAL_ERROR, "%s", vcp_last_error_detail());
}

/* The node name of a chain member, or a stand-in that matches no node when libvirt
 * has none (its lookups then find nothing either). */
static const char *
vcpAdapterNode(virStorageSource *n, char *buf, size_t len, size_t i)
{
    if (VCP_NODE(n))
        return VCP_NODE(n);
    g_snprintf(buf, len, "vcp-no-node-%zu", i);
    return buf;
}

int
vcpAdapterAddNode(vcp_node_data *nodes, const char *node, GHashTable *data, const char *only)
{
    qemuBlockNamedNodeData *entry = virHashLookup(data, node);
    vcp_node_info info;
    size_t b;

    if (!entry || vcp_node_data_get_node(nodes, node, &info) != 0)
        return 0;
    if (vcp_node_data_add_node(nodes, node, entry->capacity,
                               entry->qcow2v2 ? VCP_NODE_QCOW2_V2 : 0) < 0)
        return -1;
    for (b = 0; b < entry->nbitmaps; b++) {
        qemuBlockNamedNodeDataBitmap *bm = entry->bitmaps[b];
        unsigned int flags;

        if (only && STRNEQ(only, bm->name))
            continue;
        flags = (bm->recording ? VCP_BITMAP_RECORDING : 0) |
                             (bm->busy ? VCP_BITMAP_BUSY : 0) |
                             (bm->persistent ? VCP_BITMAP_PERSISTENT : 0) |
                             (bm->inconsistent ? VCP_BITMAP_INCONSISTENT : 0);
        if (vcp_node_data_add_bitmap(nodes, node, bm->name, flags, bm->granularity,
                                     bm->dirtybytes) < 0)
            return -1;
        if (only)
            break; /* a node's bitmap names are unique */
    }
    return 0;
}

/* Adds disk @disk whose chain is @top's to @dom, and the node data of its layers and
 * of @extra (NULL, or a node outside the chain that the plan reads) to @nodes: only
 * bitmap @only when the call is about one bitmap (NULL: every bitmap). */
static int
vcpAdapterAddDisk(const char *disk,
                  virStorageSource *top,
                  virStorageSource *extra,
                  GHashTable *data,
                  const char *only,
                  vcp_domain *dom,
                  vcp_node_data *nodes)
{
    virStorageSource *n;
    size_t i = 0;
    char buf[64];

    if (vcp_domain_add_disk(dom, disk, NULL, NULL, 0) < 0)
        return -1;
    for (n = top; virStorageSourceIsBacking(n); n = n->backingStore, i++) {
        const char *node = vcpAdapterNode(n, buf, sizeof(buf), i);
        if (vcp_domain_disk_append_image(dom, disk, NULLSTR_EMPTY(n->path),
                                         virStorageFileFormatTypeToString(n->format), node,
                                         VCP_STORAGE(n), 0) < 0)
            return -1;
        if (data && VCP_NODE(n) && vcpAdapterAddNode(nodes, VCP_NODE(n), data, only) < 0)
            return -1;
    }
    if (data && extra && VCP_NODE(extra) && vcpAdapterAddNode(nodes, VCP_NODE(extra), data, only) < 0)
        return -1;
    return 0;
}

/* A domain of one disk, @disk, whose chain is @top's, and its node data. */
static int
vcpAdapterDisk(const char *disk,
               virStorageSource *top,
               virStorageSource *extra,
               GHashTable *data,
               const char *only,
               vcp_domain **dom,
               vcp_node_data **nodes)
{
    *dom = vcp_domain_new(NULL, NULL);
    *nodes = vcp_node_data_new();
    if (!*dom || !*nodes)
        return -1;
    return vcpAdapterAddDisk(disk, top, extra, data, only, *dom, *nodes);
}

/* Every disk of @def with its chain, and (when @data is given) their node data. */
static int
vcpAdapterDomain(virDomainDef *def, GHashTable *data, const char *only, vcp_domain **dom,
                 vcp_node_data **nodes)
{
    size_t i;

    *dom = vcp_domain_new(def->name, NULL);
    *nodes = vcp_node_data_new();
    if (!*dom || !*nodes)
        return -1;
    for (i = 0; i < def->ndisks; i++) {
        if (vcpAdapterAddDisk(def->disks[i]->dst, def->disks[i]->src, NULL, data, only,
                              *dom, *nodes) < 0)
            return -1;
    }
    return 0;
}

/* libvirt's checkpoint definition as the library's. */
static vcp_checkpoint_def *
vcpAdapterCheckpoint(virDomainCheckpointDef *def)
{
    vcp_checkpoint_def *chk = vcp_checkpoint_def_new(def->parent.name,
                                                     def->parent.creationTime, 0);
    size_t i;

    for (i = 0; chk && i < def->ndisks; i++) {
        virDomainCheckpointDiskDef *d = def->disks + i;
        int type = d->type == VIR_DOMAIN_CHECKPOINT_TYPE_BITMAP ? VCP_CHECKPOINT_TYPE_BITMAP :
                   d->type == VIR_DOMAIN_CHECKPOINT_TYPE_NONE ? VCP_CHECKPOINT_TYPE_NO :
                   VCP_CHECKPOINT_TYPE_DEFAULT;
        if (vcp_checkpoint_def_add_disk(chk, d->name, type, d->bitmap) < 0) {
            vcp_checkpoint_def_free(chk);
            return NULL;
        }
    }
    return chk;
}

/* The chain as the library's disk "vda". */
static int
vcpAdapterChain(virStorageSource *top,
                virStorageSource *extra,
                GHashTable *data,
                const char *only,
                vcp_domain **dom,
                vcp_node_data **nodes)
{
    return vcpAdapterDisk("vda", top, extra, data, only, dom, nodes);
}

/* The library's JSON array as libvirt's value: NULL when it is empty (libvirt's
 * "nothing to do"). Frees @text. */
static int
vcpAdapterActions(char *text, virJSONValue **actions)
{
    g_autoptr(virJSONValue) act = virJSONValueFromString(text);

    vcp_free(text);
    if (!act)
        return -1;
    *actions = NULL;
    if (virJSONValueArraySize(act) > 0)
        *actions = g_steal_pointer(&act);
    return 0;
}

bool
qemuBlockBitmapChainIsValid(virStorageSource *src,
                            const char *bitmapname,
                            GHashTable *blockNamedNodeData)
{
    vcp_domain *dom = NULL;
    vcp_node_data *nodes = NULL;
    int valid = 0;

    if (vcpAdapterChain(src, NULL, blockNamedNodeData, bitmapname, &dom, &nodes) == 0)
        valid = vcp_bitmap_chain_is_valid(dom, "vda", bitmapname, nodes);
    vcp_node_data_free(nodes);
    vcp_domain_free(dom);
    return valid == 1;
}

int
qemuBlockGetBitmapMergeActions(virStorageSource *topsrc,
                               virStorageSource *basesrc,
                               virStorageSource *target,
                               const char *bitmapname,
                               const char *dstbitmapname,
                               virStorageSource *writebitmapsrc,
                               virJSONValue **actions,
                               GHashTable *blockNamedNodeData)
{
    vcp_domain *dom = NULL;
    vcp_node_data *nodes = NULL;
    char *text = NULL;
    g_autoptr(virJSONValue) act = NULL;
    int ret = -1;

    if (vcpAdapterChain(topsrc, writebitmapsrc, blockNamedNodeData, bitmapname, &dom,
                        &nodes) < 0) {
        vcpAdapterReport();
        goto cleanup;
    }
    if (vcp_bitmap_merge_actions(dom, "vda", nodes, VCP_NODE(topsrc),
                                 basesrc ? VCP_NODE(basesrc) : NULL, VCP_NODE(target),
                                 bitmapname, dstbitmapname,
                                 writebitmapsrc ? VCP_NODE(writebitmapsrc) : NULL,
                                 &text, 0) < 0) {
        vcpAdapterReport();
        goto cleanup;
    }
    if (!(act = virJSONValueFromString(text)))
        goto cleanup;
    /* libvirt's "nothing to do" is NULL, not an empty array. */
    if (virJSONValueArraySize(act) > 0)
        *actions = g_steal_pointer(&act);
    ret = 0;

 cleanup:
    vcp_free(text);
    vcp_node_data_free(nodes);
    vcp_domain_free(dom);
    return ret;
}


int
qemuBlockBitmapsHandleBlockcopy(virStorageSource *src,
                                virStorageSource *mirror,
                                GHashTable *blockNamedNodeData,
                                bool shallow,
                                virJSONValue **actions)
{
    vcp_domain *dom = NULL;
    vcp_node_data *nodes = NULL;
    char *text = NULL;
    int ret = -1;

#if LIBVIR_CHECK_VERSION(11, 0, 0)
    /* libvirt 11 merges nothing into a raw mirror. */
    if (mirror->format == VIR_STORAGE_FILE_RAW)
        return 0;
#endif
    if (vcpAdapterChain(src, mirror, blockNamedNodeData, NULL, &dom, &nodes) < 0 ||
        vcp_blockcopy_bitmap_actions(dom, "vda", nodes, VCP_NODE(mirror), &text,
                                     shallow ? VCP_BLOCKCOPY_SHALLOW : 0) < 0)
        vcpAdapterReport();
    else
        ret = vcpAdapterActions(text, actions);
    vcp_node_data_free(nodes);
    vcp_domain_free(dom);
    return ret;
}


int
qemuBlockBitmapsHandleCommitFinish(virStorageSource *topsrc,
                                   virStorageSource *basesrc,
                                   bool active,
                                   GHashTable *blockNamedNodeData,
                                   virJSONValue **actions)
{
    vcp_domain *dom = NULL;
    vcp_node_data *nodes = NULL;
    virStorageSource *n;
    char *text = NULL;
    int ret = -1;

#if LIBVIR_CHECK_VERSION(11, 0, 0)
    /* libvirt 11 merges nothing into a raw base. */
    if (basesrc->format == VIR_STORAGE_FILE_RAW)
        return 0;
#endif
    /* When the commit has completed libvirt has already cut the chain above the base
     * (the layer above it no longer has it as backing store), so the base is added
     * below the committed layers here, as libvirt's own walk from the top to the base
     * reads them. */
    for (n = topsrc; virStorageSourceIsBacking(n) && n != basesrc; n = n->backingStore)
        ;
    if (vcpAdapterChain(topsrc, n == basesrc ? NULL : basesrc, blockNamedNodeData, NULL, &dom,
                        &nodes) < 0 ||
        (n != basesrc && vcp_domain_disk_append_image(dom, "vda", NULLSTR_EMPTY(basesrc->path),
                                                      virStorageFileFormatTypeToString(basesrc->format),
                                                      VCP_NODE(basesrc),
                                                      VCP_STORAGE(basesrc), 0) < 0) ||
        vcp_blockcommit_bitmap_actions(dom, "vda", nodes, VCP_NODE(topsrc),
                                       VCP_NODE(basesrc), &text,
                                       active ? VCP_BLOCKCOMMIT_ACTIVE : 0) < 0)
        vcpAdapterReport();
    else
        ret = vcpAdapterActions(text, actions);
    vcp_node_data_free(nodes);
    vcp_domain_free(dom);
    return ret;
}


int
vcpAdapterAppend(char *text, virJSONValue *actions)
{
    g_autoptr(virJSONValue) act = NULL;

    if (vcpAdapterActions(text, &act) < 0)
        return -1;
    if (act && virJSONValueArrayConcat(actions, act) < 0)
        return -1;
    return 0;
}


int
qemuBackupDiskPrepareOneBitmapsChain(virStorageSource *backingChain,
                                     virStorageSource *targetsrc,
                                     const char *targetbitmap,
                                     const char *incremental,
                                     virJSONValue *actions,
                                     GHashTable *blockNamedNodeData)
{
    vcp_domain *dom = NULL;
    vcp_node_data *nodes = NULL;
    char *text = NULL;
    int ret = -1;

    if (vcpAdapterChain(backingChain, NULL, blockNamedNodeData, incremental, &dom, &nodes) < 0 ||
        vcp_backup_bitmap_actions(dom, "vda", nodes, incremental, VCP_NODE(targetsrc),
                                  targetbitmap, &text, 0) < 0)
        vcpAdapterReport();
    else
        ret = vcpAdapterAppend(text, actions);
    vcp_node_data_free(nodes);
    vcp_domain_free(dom);
    return ret;
}


int
qemuCheckpointDiscardDiskBitmaps(virStorageSource *src,
                                 GHashTable *blockNamedNodeData,
                                 const char *delbitmap,
                                 virJSONValue *actions,
                                 const char *diskdst,
                                 GSList **reopenimages)
{
    vcp_domain *dom = NULL;
    vcp_node_data *nodes = NULL;
    char *text = NULL;
    char **reopen = NULL;
    size_t i;
    int ret = -1;

    if (vcpAdapterDisk(diskdst, src, NULL, blockNamedNodeData, delbitmap, &dom, &nodes) < 0 ||
        vcp_disk_discard_bitmap_actions(dom, diskdst, nodes, delbitmap, &text, &reopen, 0) < 0) {
        vcpAdapterReport();
        goto cleanup;
    }
    if (vcpAdapterAppend(text, actions) < 0)
        goto cleanup;
    /* The library's list is deepest first, as libvirt's prepending leaves it. */
    for (i = 0; reopen[i]; i++) {
        virStorageSource *n;
        for (n = src; virStorageSourceIsBacking(n); n = n->backingStore) {
            if (STREQ_NULLABLE(VCP_NODE(n), reopen[i])) {
                *reopenimages = g_slist_append(*reopenimages, n);
                break;
            }
        }
    }
    ret = 0;

 cleanup:
    vcp_string_list_free(reopen);
    vcp_node_data_free(nodes);
    vcp_domain_free(dom);
    return ret;
}



/* Declared here: static in qemu_checkpoint.c, whose definition the stand-in renames. */
int qemuCheckpointAddActions(virDomainObj *vm, virJSONValue *actions,
                             virDomainCheckpointDef *def);
int qemuCheckpointRedefineValidateBitmaps(virDomainObj *vm, virDomainCheckpointDef *chkdef);

int
qemuCheckpointAddActions(virDomainObj *vm,
                         virJSONValue *actions,
                         virDomainCheckpointDef *def)
{
    vcp_domain *dom = NULL;
    vcp_node_data *nodes = NULL;
    vcp_checkpoint_def *chk = vcpAdapterCheckpoint(def);
    char *text = NULL;
    int ret = -1;

    if (!chk || vcpAdapterDomain(vm->def, NULL, NULL, &dom, &nodes) < 0 ||
        vcp_checkpoint_add_actions(dom, chk, NULL, &text, 0) < 0)
        vcpAdapterReport();
    else
        ret = vcpAdapterAppend(text, actions);
    vcp_checkpoint_def_free(chk);
    vcp_node_data_free(nodes);
    vcp_domain_free(dom);
    return ret;
}


int
qemuCheckpointRedefineValidateBitmaps(virDomainObj *vm,
                                      virDomainCheckpointDef *chkdef)
{
    g_autoptr(GHashTable) data = NULL;
    vcp_domain *dom = NULL;
    vcp_node_data *nodes = NULL;
    vcp_checkpoint_def *chk = NULL;
    vcp_step *step = NULL;
    bool active = virDomainObjIsActive(vm);

    /* The library's precondition gives libvirt's error for an inactive domain. */
    if (active && !(data = qemuBlockGetNamedNodeData(vm, VIR_ASYNC_JOB_NONE)))
        return -1;
    if (!(chk = vcpAdapterCheckpoint(chkdef)) ||
        vcpAdapterDomain(vm->def, data, chkdef->parent.name, &dom, &nodes) < 0 ||
        !(step = vcp_redefine_validate_step(dom, chk, active ? nodes : NULL,
                                            active ? 0 : VCP_REDEFINE_DOMAIN_INACTIVE)))
        vcpAdapterReport();
    vcp_step_free(step);
    vcp_checkpoint_def_free(chk);
    vcp_node_data_free(nodes);
    vcp_domain_free(dom);
    return step ? 0 : -1;
}
