/*
 * vcp_adapter.c: libvirt's QEMU bitmap functions delegated to virtcheckpoint.
 *
 * The project's own C over include/virtcheckpoint.h, compiled inside libvirt's
 * source tree by scripts/libvirt-standin.sh, which renames libvirt's own
 * definitions of these functions out of the way. Each function hands the library
 * its chain as node names (borrowed), the node data that came with libvirt's table
 * (vcp_adapter_monitor.c), and a sink that writes the actions with libvirt's own
 * transaction helpers.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include <config.h>

#define VIR_FROM_THIS VIR_FROM_QEMU

#include "qemu_block.h"
#include "virerror.h"
#include "qemu_backup.h"
#include "qemu_checkpoint.h"
#include "qemu_domain.h"

#include "vcp_adapter.h"

const vcp_node_data *
vcpAdapterNodes(GHashTable *data)
{
    GHashTableIter it;
    gpointer entry = NULL;

    g_hash_table_iter_init(&it, data);
    return g_hash_table_iter_next(&it, NULL, &entry) ? ((vcpAdapterNodeEntry *)entry)->shared->nodes : NULL;
}

static virJSONValue *
vcpAdapterArray(void *opaque)
{
    virJSONValue **actions = opaque;
    return *actions ? *actions : (*actions = virJSONValueNewArray());
}

static int
vcpAdapterAdd(void *o, const char *node, const char *name, int persistent, int disabled,
              unsigned long long granularity)
{
    return qemuMonitorTransactionBitmapAdd(vcpAdapterArray(o), node, name, persistent, disabled,
                                           granularity);
}

static int
vcpAdapterRemove(void *o, const char *node, const char *name)
{
    return qemuMonitorTransactionBitmapRemove(vcpAdapterArray(o), node, name);
}

static int
vcpAdapterMerge(void *o, const char *node, const char *target, size_t n,
                const char *const *nodes, const char *const *names)
{
    g_autoptr(virJSONValue) sources = virJSONValueNewArray();
    size_t i;

    for (i = 0; i < n; i++) {
        if (qemuMonitorTransactionBitmapMergeSourceAddBitmap(sources, nodes[i], names[i]) < 0)
            return -1;
    }
    return qemuMonitorTransactionBitmapMerge(vcpAdapterArray(o), node, target, &sources);
}

vcp_action_sink
vcpAdapterSink(virJSONValue **actions)
{
    return (vcp_action_sink) { actions, vcpAdapterAdd, vcpAdapterRemove, vcpAdapterMerge, NULL };
}

/* The chain from @top as node names, top first; its length, and in *@above (when
 * given) how many layers are above @base (all of them when @base is not in it). */
static size_t
vcpAdapterChain(virStorageSource *top, virStorageSource *base, const char ***chain, size_t *above)
{
    virStorageSource *n;
    size_t len = 0;

    for (n = top; virStorageSourceIsBacking(n); n = n->backingStore)
        len++;
    *chain = g_new0(const char *, len);
    if (above)
        *above = len;
    for (len = 0, n = top; virStorageSourceIsBacking(n); n = n->backingStore, len++) {
        if (above && n == base && *above > len)
            *above = len;
        (*chain)[len] = VCP_NODE(n);
    }
    return len;
}

/* Hands the library's actions in *@act to libvirt's @actions (NULL: nothing to do). */
static int
vcpAdapterFinish(int rc, virJSONValue **act, virJSONValue **actions)
{
    if (rc < 0) {
        g_clear_pointer(act, virJSONValueFree);
        return vcpReport();
    }
    *actions = *act;
    return 0;
}

bool
qemuBlockBitmapChainIsValid(virStorageSource *src,
                            const char *bitmapname,
                            GHashTable *blockNamedNodeData)
{
    g_autofree const char **chain = NULL;
    size_t n = vcpAdapterChain(src, NULL, &chain, NULL);
    int rc = vcp_chain_bitmap_is_valid(chain, n, vcpAdapterNodes(blockNamedNodeData), bitmapname);

    return rc < 0 ? vcpReport() == 0 : rc == 1;
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
    g_autofree const char **chain = NULL;
    size_t above;
    size_t n = vcpAdapterChain(topsrc, basesrc, &chain, &above);
    virJSONValue *act = NULL;
    vcp_action_sink sink = vcpAdapterSink(&act);

    return vcpAdapterFinish(vcp_chain_merge_actions(chain, n, above, vcpAdapterNodes(blockNamedNodeData),
                                                    VCP_NODE(target), bitmapname, dstbitmapname,
                                                    writebitmapsrc ? VCP_NODE(writebitmapsrc) : NULL,
                                                    &sink, 0), &act, actions);
}

int
qemuBlockBitmapsHandleBlockcopy(virStorageSource *src,
                                virStorageSource *mirror,
                                GHashTable *blockNamedNodeData,
                                bool shallow,
                                virJSONValue **actions)
{
    g_autofree const char **chain = NULL;
    size_t n = vcpAdapterChain(src, NULL, &chain, NULL);
    virJSONValue *act = NULL;
    vcp_action_sink sink = vcpAdapterSink(&act);

#if LIBVIR_CHECK_VERSION(11, 0, 0)
    /* libvirt 11 merges nothing into a raw mirror. */
    if (mirror->format == VIR_STORAGE_FILE_RAW)
        return 0;
#endif
    return vcpAdapterFinish(vcp_chain_blockcopy_actions(chain, n, vcpAdapterNodes(blockNamedNodeData),
                                                        VCP_NODE(mirror), &sink,
                                                        shallow ? VCP_BLOCKCOPY_SHALLOW : 0), &act, actions);
}

int
qemuBlockBitmapsHandleCommitFinish(virStorageSource *topsrc,
                                   virStorageSource *basesrc,
                                   bool active,
                                   GHashTable *blockNamedNodeData,
                                   virJSONValue **actions)
{
    g_autofree const char **chain = NULL;
    size_t n = vcpAdapterChain(topsrc, NULL, &chain, NULL);
    virJSONValue *act = NULL;
    vcp_action_sink sink = vcpAdapterSink(&act);

#if LIBVIR_CHECK_VERSION(11, 0, 0)
    /* libvirt 11 merges nothing into a raw base. */
    if (basesrc->format == VIR_STORAGE_FILE_RAW)
        return 0;
#endif
    /* The chain as libvirt's links give it: once the commit has completed it stops
     * above the base, as libvirt's own walk from the top reads it. */
    return vcpAdapterFinish(vcp_chain_blockcommit_actions(chain, n, vcpAdapterNodes(blockNamedNodeData),
                                                          VCP_NODE(basesrc), &sink,
                                                          active ? VCP_BLOCKCOMMIT_ACTIVE : 0), &act, actions);
}

int
qemuBackupDiskPrepareOneBitmapsChain(virStorageSource *backingChain,
                                     virStorageSource *targetsrc,
                                     const char *targetbitmap,
                                     const char *incremental,
                                     virJSONValue *actions,
                                     GHashTable *blockNamedNodeData)
{
    g_autofree const char **chain = NULL;
    size_t n = vcpAdapterChain(backingChain, NULL, &chain, NULL);
    vcp_action_sink sink = vcpAdapterSink(&actions);

    if (vcp_chain_backup_actions(chain, n, vcpAdapterNodes(blockNamedNodeData), incremental,
                                 VCP_NODE(targetsrc), targetbitmap, &sink, 0) < 0)
        return vcpReport();
    return 0;
}

int
qemuCheckpointDiscardDiskBitmaps(virStorageSource *src,
                                 GHashTable *blockNamedNodeData,
                                 const char *delbitmap,
                                 virJSONValue *actions,
                                 const char *diskdst,
                                 GSList **reopenimages)
{
    g_autofree const char **chain = NULL;
    size_t n = vcpAdapterChain(src, NULL, &chain, NULL);
    g_autofree size_t *reopen = g_new0(size_t, n + 1);
    vcp_action_sink sink = vcpAdapterSink(&actions);
    size_t nreopen, i, j;

    if (vcp_chain_discard_actions(chain, n, vcpAdapterNodes(blockNamedNodeData), delbitmap, diskdst,
                                  &sink, reopen, &nreopen, 0) < 0)
        return vcpReport();
    /* Prepended from the shallowest, as libvirt's walk does: this disk's layers come
     * deepest first, before those of the disks already in the list. */
    for (i = nreopen; i-- > 0;) {
        virStorageSource *layer = src;
        for (j = 0; j < reopen[i]; j++)
            layer = layer->backingStore;
        *reopenimages = g_slist_prepend(*reopenimages, layer);
    }
    return 0;
}

/* The library's domain: @def's disks with their chains. */
static vcp_domain *
vcpAdapterDomain(virDomainDef *def)
{
    vcp_domain *dom = vcp_domain_new(def->name, NULL);
    size_t i;

    for (i = 0; dom && i < def->ndisks; i++) {
        virStorageSource *n;

        if (vcp_domain_add_disk(dom, def->disks[i]->dst, NULL, NULL, 0) < 0)
            g_clear_pointer(&dom, vcp_domain_free);
        for (n = def->disks[i]->src; dom && virStorageSourceIsBacking(n); n = n->backingStore) {
            if (vcp_domain_disk_append_image(dom, def->disks[i]->dst, NULLSTR_EMPTY(n->path),
                                             virStorageFileFormatTypeToString(n->format),
                                             VCP_NODE(n), VCP_STORAGE(n), 0) < 0)
                g_clear_pointer(&dom, vcp_domain_free);
        }
    }
    return dom;
}

/* libvirt's checkpoint definition as the library's (the types are the same numbers). */
static vcp_checkpoint_def *
vcpAdapterCheckpoint(virDomainCheckpointDef *def)
{
    vcp_checkpoint_def *chk = vcp_checkpoint_def_new(def->parent.name, def->parent.creationTime, 0);
    g_autofree vcp_checkpoint_disk *disks = g_new0(vcp_checkpoint_disk, def->ndisks);
    size_t i;

    for (i = 0; i < def->ndisks; i++)
        disks[i] = (vcp_checkpoint_disk) { def->disks[i].name, def->disks[i].type, def->disks[i].bitmap, 0, 0 };
    if (chk && vcp_checkpoint_def_set_disks(chk, disks, def->ndisks) < 0)
        g_clear_pointer(&chk, vcp_checkpoint_def_free);
    return chk;
}

/* A library step run in libvirt's domain: its transactions built with libvirt's own
 * helpers and sent on its monitor, its images reopened and relabelled libvirt's way. */
typedef struct {
    virDomainObj *vm;
    virJSONValue *actions;
    virDomainAsyncJob asyncJob;
    /* libvirt's block job handlers: no relabelling around a reopen, a failed
     * transaction ignored, a failed read-only reopen a failure of the handler. */
    bool blockjob;
    bool failed;
} vcpAdapterRun;

static int
vcpAdapterRunTransaction(void *opaque)
{
    vcpAdapterRun *run = opaque;
    g_autoptr(virJSONValue) actions = run->actions ? run->actions : virJSONValueNewArray();
    int rc;

    run->actions = NULL;
    if (qemuDomainObjEnterMonitorAsync(run->vm, run->asyncJob) < 0)
        return -1;
    rc = qemuMonitorTransaction(qemuDomainGetMonitor(run->vm), &actions);
    qemuDomainObjExitMonitor(run->vm);
    return run->blockjob ? 0 : rc;
}

static int
vcpAdapterRunReopen(void *opaque, const char *node, int readonly)
{
    vcpAdapterRun *run = opaque;
    qemuDomainObjPrivate *priv = run->vm->privateData;
    virStorageSource *src = NULL;
#if LIBVIR_CHECK_VERSION(11, 0, 0)
    bool reopen = true;
#else
    bool reopen = virQEMUCapsGet(priv->qemuCaps, QEMU_CAPS_BLOCKDEV_REOPEN);
#endif

    if (!qemuDomainDiskLookupByNodename(run->vm->def, NULL, node, &src)) {
        virReportError(VIR_ERR_INTERNAL_ERROR, _("no image with node '%s'"), node);
        return -1;
    }
    if (readonly) { /* putting it back: failures ignored around a delete */
        if (reopen && qemuBlockReopenReadOnly(run->vm, src, run->asyncJob) < 0)
            run->failed = run->blockjob;
        if (!run->blockjob)
            ignore_value(qemuDomainStorageSourceAccessAllow(priv->driver, run->vm, src, true, false, false));
        return 0;
    }
    if ((!run->blockjob &&
         qemuDomainStorageSourceAccessAllow(priv->driver, run->vm, src, false, false, false) < 0) ||
        (reopen && qemuBlockReopenReadWrite(run->vm, src, run->asyncJob) < 0))
        return -1;
    return 0;
}

/* Runs phase @phase of @step (0, or -1 with the error reported). */
static int
vcpAdapterRunStep(virDomainObj *vm, vcp_step *step, int phase, virDomainAsyncJob asyncJob,
                  bool blockjob)
{
    vcpAdapterRun run = { vm, NULL, asyncJob, blockjob, false };
    vcp_step_ops ops = { &run, vcpAdapterSink(&run.actions), vcpAdapterRunTransaction,
                         vcpAdapterRunReopen, NULL };
    int rc = step ? vcp_step_run(step, phase, &ops, 0) : -1;

    virJSONValueFree(run.actions);
    if (rc == -1)
        vcpReport();
    return rc < 0 || run.failed ? -1 : 0;
}

int
vcpAdapterBlockjobEnd(virDomainObj *vm, virDomainAsyncJob asyncJob, int job, virStorageSource *top,
                      virStorageSource *base, virStorageSource *target, unsigned int flags)
{
    g_autoptr(GHashTable) data = qemuBlockGetNamedNodeData(vm, asyncJob);
    g_autofree const char **chain = NULL;
    size_t above, n = vcpAdapterChain(top, base, &chain, &above);
    vcp_step *step = NULL;
    int rc = 0;

    if (!data)
        return -1;
#if LIBVIR_CHECK_VERSION(11, 0, 0)
    /* libvirt 11 merges nothing into a raw mirror or base. */
    if (job != VCP_BLOCKJOB_END_PULL && target->format == VIR_STORAGE_FILE_RAW)
        return 0;
#endif
    if (!(step = vcp_chain_blockjob_end_step(job, chain, n, above, vcpAdapterNodes(data),
                                             VCP_NODE(target), flags)))
        vcpReport(); /* libvirt goes on without the merges */
    else
        rc = vcpAdapterRunStep(vm, step, VCP_STEP_NOW, asyncJob, true);
    vcp_step_free(step);
    return rc;
}

/* Declared here: static in qemu_checkpoint.c, whose definition the stand-in renames. */
int qemuCheckpointAddActions(virDomainObj *vm, virJSONValue *actions,
                             virDomainCheckpointDef *def);
int qemuCheckpointDiscardBitmaps(virDomainObj *vm, virDomainCheckpointDef *chkdef);
int qemuCheckpointRedefineValidateBitmaps(virDomainObj *vm, virDomainCheckpointDef *chkdef);
int qemuCheckpointGetXMLDescUpdateSize(virDomainObj *vm, virDomainCheckpointDef *chkdef);

int
qemuCheckpointAddActions(virDomainObj *vm,
                         virJSONValue *actions,
                         virDomainCheckpointDef *def)
{
    vcp_domain *dom = vcpAdapterDomain(vm->def);
    vcp_checkpoint_def *chk = vcpAdapterCheckpoint(def);
    vcp_action_sink sink = vcpAdapterSink(&actions);
    int rc = dom && chk ? vcp_checkpoint_add_actions_sink(dom, chk, NULL, &sink, 0) : -1;

    vcp_checkpoint_def_free(chk);
    vcp_domain_free(dom);
    return rc < 0 ? vcpReport() : 0;
}

int
qemuCheckpointDiscardBitmaps(virDomainObj *vm,
                             virDomainCheckpointDef *chkdef)
{
    g_autoptr(GHashTable) data = qemuBlockGetNamedNodeData(vm, VIR_ASYNC_JOB_NONE);
    vcp_domain *dom = data ? vcpAdapterDomain(vm->def) : NULL;
    vcp_checkpoint_def *chk = dom ? vcpAdapterCheckpoint(chkdef) : NULL;
    vcp_step *step = chk ? vcp_discard_step(dom, chk, vcpAdapterNodes(data), 0) : NULL;
    int rc = -1;

    if (data && !step)
        vcpReport();
    else if (step)
        rc = vcpAdapterRunStep(vm, step, VCP_STEP_NOW, VIR_ASYNC_JOB_NONE, false);
    vcp_step_free(step);
    vcp_checkpoint_def_free(chk);
    vcp_domain_free(dom);
    return rc;
}

int
qemuCheckpointRedefineValidateBitmaps(virDomainObj *vm,
                                      virDomainCheckpointDef *chkdef)
{
    g_autoptr(GHashTable) data = NULL;
    bool active = virDomainObjIsActive(vm);
    vcp_domain *dom = NULL;
    vcp_checkpoint_def *chk = NULL;
    vcp_step *step = NULL;
    int rc;

    /* The library's precondition gives libvirt's error for an inactive domain, whose
     * images have no node names: it is handed over without its disks. */
    if (active && !(data = qemuBlockGetNamedNodeData(vm, VIR_ASYNC_JOB_NONE)))
        return -1;
    dom = active ? vcpAdapterDomain(vm->def) : vcp_domain_new(vm->def->name, NULL);
    if (dom && (chk = vcpAdapterCheckpoint(chkdef)))
        step = vcp_redefine_validate_step(dom, chk, active ? vcpAdapterNodes(data) : NULL,
                                          active ? 0 : VCP_REDEFINE_DOMAIN_INACTIVE);
    rc = step ? 0 : vcpReport();
    vcp_step_free(step);
    vcp_checkpoint_def_free(chk);
    vcp_domain_free(dom);
    return rc;
}

int
qemuCheckpointGetXMLDescUpdateSize(virDomainObj *vm,
                                   virDomainCheckpointDef *chkdef)
{
    g_autoptr(GHashTable) before = NULL;
    g_autoptr(GHashTable) after = NULL;
    vcp_checkpoint_disk *sizes = NULL;
    vcp_domain *dom = NULL;
    vcp_checkpoint_def *chk = NULL;
    vcp_step *step = NULL;
    char **now = NULL;
    int i, n = 0, ret = -1;

    if (virDomainObjBeginJob(vm, VIR_JOB_MODIFY) < 0)
        return -1;
    if (virDomainObjCheckActive(vm) < 0 || !(before = qemuBlockGetNamedNodeData(vm, VIR_ASYNC_JOB_NONE)))
        goto endjob;
    for (i = 0; i < chkdef->ndisks; i++) {
        chkdef->disks[i].size = 0;
        chkdef->disks[i].sizeValid = false;
    }
    /* The library's size step: the merges now, the node data read again, the cleanup. */
    if (!(dom = vcpAdapterDomain(vm->def)) || !(chk = vcpAdapterCheckpoint(chkdef)) ||
        !(step = vcp_size_step(dom, chk, vcpAdapterNodes(before), 0)) ||
        vcp_step_commands(step, VCP_STEP_NOW, &now) < 0) {
        vcpReport();
        goto endjob;
    }
    if (!now[0]) { /* no disk to measure */
        ret = 0;
        goto endjob;
    }
    if (vcpAdapterRunStep(vm, step, VCP_STEP_NOW, VIR_ASYNC_JOB_NONE, false) < 0 ||
        !(after = qemuBlockGetNamedNodeData(vm, VIR_ASYNC_JOB_NONE)) ||
        vcpAdapterRunStep(vm, step, VCP_STEP_ON_END, VIR_ASYNC_JOB_NONE, false) < 0)
        goto endjob;
    if (vcp_checkpoint_size_read(dom, chk, vcpAdapterNodes(before), vcpAdapterNodes(after), 0) < 0 ||
        (n = vcp_checkpoint_def_get_disks(chk, &sizes)) != chkdef->ndisks) {
        vcpReport();
        goto endjob;
    }
    for (i = 0; i < chkdef->ndisks; i++) {
        chkdef->disks[i].size = sizes[i].size;
        chkdef->disks[i].sizeValid = sizes[i].has_size;
    }
    ret = 0;

 endjob:
    vcp_checkpoint_disks_free(sizes, n < 0 ? 0 : n);
    vcp_string_list_free(now);
    vcp_step_free(step);
    vcp_checkpoint_def_free(chk);
    vcp_domain_free(dom);
    virDomainObjEndJob(vm);
    return ret;
}
