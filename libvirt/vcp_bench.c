/*
 * vcp_bench.c: instruction counts of libvirt's own bitmap code against the same
 * calls through the adapter, in one binary, on one reply of 16 layers x 250 bitmaps.
 *
 * scripts/libvirt-standin.sh builds it as tests/vcpbench next to libvirt's own tests
 * (libvirt's definitions are kept as vcp_replaced_*) and runs it under callgrind;
 * each bench* function below runs one path ITERATIONS times, and its inclusive
 * instruction count is read from callgrind's output.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include <config.h>

#include "qemu/qemu_block.h"
#include "qemu/qemu_checkpoint.h"
#include "qemu/qemu_monitor_json.h"
#include "virjson.h"
#include "virbuffer.h"

#include <virtcheckpoint.h>

/* libvirt 11 names an image's nodes through accessors, 9.0 in its fields. */
#if LIBVIR_CHECK_VERSION(11, 0, 0)
# define BENCH_SET_NODES(n, format, storage) \
    do { \
        qemuBlockStorageSourceSetFormatNodename(n, format); \
        qemuBlockStorageSourceSetStorageNodename(n, storage); \
    } while (0)
# define BENCH_NODE(n) qemuBlockStorageSourceGetFormatNodename(n)
# define BENCH_STORAGE(n) qemuBlockStorageSourceGetStorageNodename(n)
#else
# define BENCH_SET_NODES(n, format, storage) \
    do { \
        (n)->nodeformat = format; \
        (n)->nodestorage = storage; \
    } while (0)
# define BENCH_NODE(n) ((n)->nodeformat)
# define BENCH_STORAGE(n) ((n)->nodestorage)
#endif

#define LAYERS 16
#define BITMAPS 250
#define ITERATIONS 20

/* libvirt's own definitions, kept by the stand-in. */
#include "qemu/vcp_replaced.h"

/* query-named-block-nodes' reply: LAYERS qcow2 nodes, each with BITMAPS recording,
 * persistent bitmaps, listed newest first as QEMU lists them: b249 (the newest
 * checkpoint's) .. b0 (the oldest's). */
static char *
benchReply(void)
{
    g_auto(virBuffer) buf = VIR_BUFFER_INITIALIZER;
    size_t l, b;

    virBufferAddLit(&buf, "[");
    for (l = 0; l < LAYERS; l++) {
        virBufferAsprintf(&buf, "%s{\"node-name\":\"libvirt-%zu-format\",\"drv\":\"qcow2\","
                          "\"image\":{\"virtual-size\":1073741824,\"format\":\"qcow2\","
                          "\"format-specific\":{\"type\":\"qcow2\",\"data\":{\"compat\":\"1.1\"}}},"
                          "\"dirty-bitmaps\":[", l ? "," : "", l + 1);
        for (b = BITMAPS; b-- > 0;)
            virBufferAsprintf(&buf, "%s{\"name\":\"b%zu\",\"recording\":true,\"persistent\":true,"
                              "\"busy\":false,\"granularity\":65536,\"count\":%zu}",
                              b + 1 < BITMAPS ? "," : "", b, 65536 * (b + l + 1));
        virBufferAddLit(&buf, "]}");
    }
    virBufferAddLit(&buf, "]");
    return virBufferContentAndReset(&buf);
}

/* The chain, top (libvirt-16-format) first. */
static virStorageSource *
benchChain(void)
{
    virStorageSource *top = NULL;
    size_t l;

    for (l = 0; l < LAYERS; l++) {
        virStorageSource *n = virStorageSourceNew();
        n->type = VIR_STORAGE_TYPE_FILE;
        n->format = VIR_STORAGE_FILE_QCOW2;
        n->path = g_strdup_printf("/img/layer%zu.qcow2", l + 1);
        BENCH_SET_NODES(n, g_strdup_printf("libvirt-%zu-format", l + 1),
                        g_strdup_printf("libvirt-%zu-storage", l + 1));
        n->backingStore = top;
        top = n;
    }
    return top;
}

/* The node-data parse: libvirt's, and the stand-in's (libvirt's plus the library's
 * node data, built once for every bitmap call on the reply). */
static void __attribute__((noinline))
benchLibvirtParse(virJSONValue *json)
{
    size_t i;
    for (i = 0; i < ITERATIONS; i++)
        g_hash_table_unref(vcp_replaced_qemuMonitorJSONBlockGetNamedNodeDataJSON(json));
}

static void __attribute__((noinline))
benchAdapterParse(virJSONValue *json)
{
    size_t i;
    for (i = 0; i < ITERATIONS; i++)
        g_hash_table_unref(qemuMonitorJSONBlockGetNamedNodeDataJSON(json));
}

static void __attribute__((noinline))
benchLibvirtMerge(virStorageSource *top, GHashTable *data)
{
    size_t i;
    for (i = 0; i < ITERATIONS; i++) {
        g_autoptr(virJSONValue) actions = NULL;
        vcp_replaced_qemuBlockGetBitmapMergeActions(top, NULL, top, "b125", "tmp", NULL,
                                                    &actions, data);
    }
}

static void __attribute__((noinline))
benchAdapterMerge(virStorageSource *top, GHashTable *data)
{
    size_t i;
    for (i = 0; i < ITERATIONS; i++) {
        g_autoptr(virJSONValue) actions = NULL;
        qemuBlockGetBitmapMergeActions(top, NULL, top, "b125", "tmp", NULL, &actions, data);
    }
}

/* ITERATIONS deletes of @bitmap along the chain from @top with @discard (libvirt's
 * qemuCheckpointDiscardDiskBitmaps or the adapter's). */
typedef int (*benchDiscardFunc)(virStorageSource *src, GHashTable *data, const char *bitmap,
                                virJSONValue *actions, const char *diskdst, GSList **reopen);

static void
benchDiscard(benchDiscardFunc discard, virStorageSource *top, GHashTable *data,
             const char *bitmap)
{
    size_t i;
    for (i = 0; i < ITERATIONS; i++) {
        g_autoptr(virJSONValue) actions = virJSONValueNewArray();
        GSList *reopen = NULL;
        discard(top, data, bitmap, actions, "vda", &reopen);
        g_slist_free(reopen);
    }
}

static void __attribute__((noinline))
benchLibvirtDelete(virStorageSource *top, GHashTable *data)
{
    benchDiscard(vcp_replaced_qemuCheckpointDiscardDiskBitmaps, top, data, "b125");
}

static void __attribute__((noinline))
benchAdapterDelete(virStorageSource *top, GHashTable *data)
{
    benchDiscard(qemuCheckpointDiscardDiskBitmaps, top, data, "b125");
}

/* The delete a retention policy makes: the oldest checkpoint's bitmap, which QEMU
 * lists last on each layer (libvirt's lookup walks every name before it). */
static void __attribute__((noinline))
benchLibvirtDeleteOldest(virStorageSource *top, GHashTable *data)
{
    benchDiscard(vcp_replaced_qemuCheckpointDiscardDiskBitmaps, top, data, "b0");
}

static void __attribute__((noinline))
benchAdapterDeleteOldest(virStorageSource *top, GHashTable *data)
{
    benchDiscard(qemuCheckpointDiscardDiskBitmaps, top, data, "b0");
}

/* What any delete that hands libvirt its own JSON values costs at least: the same
 * removals as the delete above, built with libvirt's own helper and freed, with no
 * lookup at all. Both deletes pay it; the rest of each is its own. */
static void __attribute__((noinline))
benchJsonFloorDelete(virStorageSource *top)
{
    size_t i;
    for (i = 0; i < ITERATIONS; i++) {
        g_autoptr(virJSONValue) actions = virJSONValueNewArray();
        virStorageSource *n;
        for (n = top; n; n = n->backingStore)
            qemuMonitorTransactionBitmapRemove(actions, BENCH_NODE(n), "b125");
    }
}

/* The same removals built with libvirt's JSON value API directly, skipping the
 * helper's argument parsing: the cheapest way to give libvirt its own values. */
static void __attribute__((noinline))
benchJsonDirectDelete(virStorageSource *top)
{
    size_t i;
    for (i = 0; i < ITERATIONS; i++) {
        g_autoptr(virJSONValue) actions = virJSONValueNewArray();
        virStorageSource *n;
        for (n = top; n; n = n->backingStore) {
            g_autoptr(virJSONValue) data = virJSONValueNewObject();
            g_autoptr(virJSONValue) entry = virJSONValueNewObject();
            virJSONValueObjectAppendString(entry, "type", "block-dirty-bitmap-remove");
            virJSONValueObjectAppendString(data, "node", BENCH_NODE(n));
            virJSONValueObjectAppendString(data, "name", "b125");
            virJSONValueObjectAppend(entry, "data", &data);
            virJSONValueArrayAppend(actions, &entry);
        }
    }
}

/* A whole query and merge from the reply's text, as a backup does: libvirt's parser
 * and merge; the stand-in's; and the library alone. */
static void __attribute__((noinline))
benchLibvirtParseMerge(virStorageSource *top, const char *reply)
{
    size_t i;
    for (i = 0; i < ITERATIONS; i++) {
        g_autoptr(virJSONValue) json = virJSONValueFromString(reply);
        g_autoptr(GHashTable) data = vcp_replaced_qemuMonitorJSONBlockGetNamedNodeDataJSON(json);
        g_autoptr(virJSONValue) actions = NULL;
        vcp_replaced_qemuBlockGetBitmapMergeActions(top, NULL, top, "b125", "tmp", NULL,
                                                    &actions, data);
    }
}

static void __attribute__((noinline))
benchAdapterParseMerge(virStorageSource *top, const char *reply)
{
    size_t i;
    for (i = 0; i < ITERATIONS; i++) {
        g_autoptr(virJSONValue) json = virJSONValueFromString(reply);
        g_autoptr(GHashTable) data = qemuMonitorJSONBlockGetNamedNodeDataJSON(json);
        g_autoptr(virJSONValue) actions = NULL;
        qemuBlockGetBitmapMergeActions(top, NULL, top, "b125", "tmp", NULL, &actions, data);
    }
}

static void __attribute__((noinline))
benchLibraryParseMerge(vcp_domain *dom, const char *reply)
{
    size_t i;
    for (i = 0; i < ITERATIONS; i++) {
        vcp_node_data *nodes = vcp_node_data_parse_json(reply, 0);
        char *actions = NULL;
        vcp_bitmap_merge_actions(dom, "vda", nodes, "libvirt-16-format", NULL,
                                 "libvirt-16-format", "b125", "tmp", NULL, &actions, 0);
        vcp_free(actions);
        vcp_node_data_free(nodes);
    }
}

/* The same plan from both paths, as text. */
static bool
benchSame(virJSONValue *a, virJSONValue *b)
{
    g_autofree char *as = a ? virJSONValueToString(a, false) : NULL;
    g_autofree char *bs = b ? virJSONValueToString(b, false) : NULL;
    return as && bs && STREQ(as, bs);
}

/* The same removals and the same reopen list from both paths for a delete across two
 * disks (the second disk's chain is the first one's backing chain), the list
 * accumulated as libvirt's caller accumulates it. */
static bool
benchSameDiscard(virStorageSource *top, GHashTable *libvirtData, GHashTable *adapterData,
                 const char *bitmap)
{
    g_autoptr(virJSONValue) da = virJSONValueNewArray();
    g_autoptr(virJSONValue) db = virJSONValueNewArray();
    GSList *ra = NULL;
    GSList *rb = NULL;
    GSList *a, *b;
    bool same;

    vcp_replaced_qemuCheckpointDiscardDiskBitmaps(top, libvirtData, bitmap, da, "vda", &ra);
    vcp_replaced_qemuCheckpointDiscardDiskBitmaps(top->backingStore, libvirtData, bitmap, da,
                                                  "vdb", &ra);
    qemuCheckpointDiscardDiskBitmaps(top, adapterData, bitmap, db, "vda", &rb);
    qemuCheckpointDiscardDiskBitmaps(top->backingStore, adapterData, bitmap, db, "vdb", &rb);
    same = benchSame(da, db) && g_slist_length(ra) == g_slist_length(rb);
    for (a = ra, b = rb; same && a; a = a->next, b = b->next)
        same = a->data == b->data;
    g_slist_free(ra);
    g_slist_free(rb);
    return same;
}

int
main(void)
{
    g_autofree char *reply = benchReply();
    g_autoptr(virJSONValue) json = virJSONValueFromString(reply);
    g_autoptr(GHashTable) libvirtData = vcp_replaced_qemuMonitorJSONBlockGetNamedNodeDataJSON(json);
    g_autoptr(GHashTable) adapterData = qemuMonitorJSONBlockGetNamedNodeDataJSON(json);
    virStorageSource *top = benchChain();
    vcp_domain *dom = vcp_domain_new("bench", NULL);
    g_autoptr(virJSONValue) a = NULL;
    g_autoptr(virJSONValue) b = NULL;
    virStorageSource *n;

    if (!libvirtData || !adapterData || vcp_domain_add_disk(dom, "vda", NULL, NULL, 0) < 0)
        return EXIT_FAILURE;
    for (n = top; n; n = n->backingStore)
        vcp_domain_disk_append_image(dom, "vda", n->path, "qcow2", BENCH_NODE(n),
                                     BENCH_STORAGE(n), 0);

    /* Both paths must plan the same before their cost means anything. */
    vcp_replaced_qemuBlockGetBitmapMergeActions(top, NULL, top, "b125", "tmp", NULL, &a,
                                                libvirtData);
    qemuBlockGetBitmapMergeActions(top, NULL, top, "b125", "tmp", NULL, &b, adapterData);
    if (!benchSame(a, b) || !benchSameDiscard(top, libvirtData, adapterData, "b125") ||
        !benchSameDiscard(top, libvirtData, adapterData, "b0")) {
        fprintf(stderr, "vcpbench: the plans differ\n");
        return EXIT_FAILURE;
    }

    benchLibvirtParse(json);
    benchAdapterParse(json);
    benchLibvirtMerge(top, libvirtData);
    benchAdapterMerge(top, adapterData);
    benchLibvirtDelete(top, libvirtData);
    benchAdapterDelete(top, adapterData);
    benchLibvirtDeleteOldest(top, libvirtData);
    benchAdapterDeleteOldest(top, adapterData);
    benchJsonFloorDelete(top);
    benchJsonDirectDelete(top);
    benchLibvirtParseMerge(top, reply);
    benchAdapterParseMerge(top, reply);
    benchLibraryParseMerge(dom, reply);

    printf("vcpbench: %d layers x %d bitmaps, %d iterations per path, %zu merge actions\n",
           LAYERS, BITMAPS, ITERATIONS, virJSONValueArraySize(a));
    vcp_domain_free(dom);
    virObjectUnref(top);
    return EXIT_SUCCESS;
}
