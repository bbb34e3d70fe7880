/* The chain face (vcp_chain_*, vcp_action_sink, vcp_node_data_add_bitmaps) against
 * libvirt's own test vectors: the caller's chain of node names, node data parsed or
 * built in place, and the actions written by this test's own sink, which prints them
 * as compact JSON in libvirt's member order. argv[1] is the tests/data folder. */
#include <stdarg.h>

#include "virtcheckpoint.h"
#include "tap.h"

static const char *datadir;

/* The test's sink: the actions as one JSON array. */
typedef struct {
    char buf[16384];
    size_t len;
    int n;
    int fail_at; /* refuse the action of this index (-1: never) */
} out;

static void out_printf(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
out_printf(out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    o->len += (size_t)vsnprintf(o->buf + o->len, sizeof(o->buf) - o->len, fmt, ap);
    va_end(ap);
}

/* Starts the next action; -1 when this one is to be refused. */
static int
next(out *o)
{
    if (o->n == o->fail_at)
        return -1;
    out_printf(o, "%s", o->n++ ? "," : "");
    return 0;
}

static int
on_add(void *opaque, const char *node, const char *name, int persistent, int disabled,
       unsigned long long granularity)
{
    out *o = opaque;
    if (next(o) < 0)
        return -1;
    out_printf(o, "{\"type\":\"block-dirty-bitmap-add\",\"data\":{\"node\":\"%s\",\"name\":\"%s\","
               "\"persistent\":%s,\"disabled\":%s", node, name, persistent ? "true" : "false",
               disabled ? "true" : "false");
    if (granularity)
        out_printf(o, ",\"granularity\":%llu", granularity);
    out_printf(o, "}}");
    return 0;
}

static int
on_remove(void *opaque, const char *node, const char *name)
{
    out *o = opaque;
    if (next(o) < 0)
        return -1;
    out_printf(o, "{\"type\":\"block-dirty-bitmap-remove\",\"data\":{\"node\":\"%s\",\"name\":\"%s\"}}",
               node, name);
    return 0;
}

static int
on_merge(void *opaque, const char *node, const char *target, size_t n,
         const char *const *nodes, const char *const *names)
{
    out *o = opaque;
    size_t i;
    if (next(o) < 0)
        return -1;
    out_printf(o, "{\"type\":\"block-dirty-bitmap-merge\",\"data\":{\"node\":\"%s\",\"target\":\"%s\","
               "\"bitmaps\":[", node, target);
    for (i = 0; i < n; i++)
        out_printf(o, "%s{\"node\":\"%s\",\"name\":\"%s\"}", i ? "," : "", nodes[i], names[i]);
    out_printf(o, "]}}");
    return 0;
}

static int
on_json(void *opaque, const char *json)
{
    out *o = opaque;
    if (next(o) < 0)
        return -1;
    out_printf(o, "%s", json);
    return 0;
}

static out result;

static vcp_action_sink
typed_sink(void)
{
    vcp_action_sink s = { &result, on_add, on_remove, on_merge, NULL };
    memset(&result, 0, sizeof(result));
    result.fail_at = -1;
    return s;
}

/* The actions delivered, as a JSON array. */
static const char *
delivered(void)
{
    static char text[sizeof(result.buf) + 2];
    snprintf(text, sizeof(text), "[%s]", result.buf);
    return text;
}

/* Removes whitespace outside strings: libvirt's pretty vectors vs compact text. */
static char *
squash(const char *s)
{
    char *o = malloc(strlen(s) + 1), *p = o;
    int in_str = 0;
    const char *start = s;
    for (; *s; s++) {
        if (*s == '"' && (s == start || s[-1] != '\\'))
            in_str = !in_str;
        if (in_str || (*s != ' ' && *s != '\n' && *s != '\t'))
            *p++ = *s;
    }
    *p = '\0';
    return o;
}

/* Whether @actions (and, for a delete, the reopened nodes) equal libvirt's vector
 * @name, after the vector's first line when it is @skip. */
static int
same_as_vector(const char *actions, const char *reopen, const char *name, const char *skip)
{
    char path[256];
    char *text, *body, *a, *b;
    char mine[sizeof(result.buf) + 512];
    int same;

    snprintf(path, sizeof(path), "conformance/tests/qemublocktestdata/%s", name);
    if (!(text = tap_read_file(datadir, path)))
        return 0;
    body = text;
    if (skip && strncmp(body, skip, strlen(skip)) == 0)
        body += strlen(skip);
    snprintf(mine, sizeof(mine), "%s%s", actions, reopen ? reopen : "");
    a = squash(mine);
    b = squash(body);
    same = strcmp(a, b) == 0;
    if (!same)
        printf("# ours:   %s\n# vector: %s\n", a, b);
    free(a);
    free(b);
    free(text);
    return same;
}

static vcp_node_data *
vector_nodes(const char *which)
{
    char path[256];
    char *json;
    vcp_node_data *nd;
    snprintf(path, sizeof(path), "conformance/tests/qemublocktestdata/bitmap/%s.json", which);
    json = tap_read_file(datadir, path);
    nd = json ? vcp_node_data_parse_json(json, 0) : NULL;
    free(json);
    return nd;
}

/* libvirt's test chain (qemublocktest's bitmapSourceChain): libvirt-1-format (top)
 * down to libvirt-5-format. */
static const char *const chain[] = {
    "libvirt-1-format", "libvirt-2-format", "libvirt-3-format", "libvirt-4-format",
    "libvirt-5-format",
};

/* libvirt's block commit vectors (bitmapblockcommit/): the commit's top and base, by
 * position in the chain from 1. */
static const struct { const char *name, *nodes; int top, base; } commits[] = {
    { "basic-1-2", "basic", 1, 2 }, { "basic-1-3", "basic", 1, 3 },
    { "basic-2-3", "basic", 2, 3 }, { "snapshots-1-2", "snapshots", 1, 2 },
    { "snapshots-1-3", "snapshots", 1, 3 }, { "snapshots-1-4", "snapshots", 1, 4 },
    { "snapshots-1-5", "snapshots", 1, 5 }, { "snapshots-2-3", "snapshots", 2, 3 },
    { "snapshots-2-4", "snapshots", 2, 4 }, { "snapshots-3-4", "snapshots", 3, 4 },
    { "snapshots-4-5", "snapshots", 4, 5 }, { "empty", "empty", 1, 2 },
};

/* libvirt's block copy vectors (bitmapblockcopy/). */
static const struct { const char *name, *nodes; int shallow; } copies[] = {
    { "basic-deep-out.json", "basic", 0 }, { "basic-shallow-out.json", "basic", 1 },
    { "snapshots-shallow-out.json", "snapshots", 1 }, { "empty-deep-out.json", "empty", 0 },
    { "empty-shallow-out.json", "empty", 1 },
};

static void
check_vectors(void)
{
    static const struct { const char *name, *nodes, *bitmap; } backups[] = {
        { "backupmerge/basic-deep-out.json", "basic", "a" },
        { "backupmerge/basic-flat-out.json", "basic", "current" },
        { "backupmerge/basic-intermediate-out.json", "basic", "d" },
        { "backupmerge/snapshots-deep-out.json", "snapshots", "a" },
        { "backupmerge/snapshots-flat-out.json", "snapshots", "current" },
        { "backupmerge/empty-out.json", "empty", "a" },
    };
    static const struct { const char *name, *nodes, *bitmap; } deletes[] = {
        { "basic-noparent", "basic", "a" }, { "basic-intermediate1", "basic", "b" },
        { "basic-intermediate2", "basic", "c" }, { "basic-intermediate3", "basic", "d" },
        { "basic-current", "basic", "current" }, { "snapshots-noparent", "snapshots", "a" },
        { "snapshots-intermediate1", "snapshots", "b" },
        { "snapshots-intermediate3", "snapshots", "d" },
        { "snapshots-current", "snapshots", "current" },
    };
    vcp_action_sink sink;
    size_t i;

    for (i = 0; i < sizeof(backups) / sizeof(backups[0]); i++) {
        vcp_node_data *nd = vector_nodes(backups[i].nodes);
        sink = typed_sink();
        TAP_OK(nd && vcp_chain_backup_actions(chain, 5, nd, backups[i].bitmap, "target_node",
                                              "target-bitmap-name", &sink, 0) == 0 &&
               same_as_vector(delivered(), NULL, backups[i].name, NULL),
               "backup merge through the sink: libvirt's %s", backups[i].name);
        vcp_node_data_free(nd);
    }
    for (i = 0; i < sizeof(deletes) / sizeof(deletes[0]); i++) {
        vcp_node_data *nd = vector_nodes(deletes[i].nodes);
        size_t reopen[5], nreopen = 0, j;
        char lines[256] = "", file[96];
        int rc;
        sink = typed_sink();
        rc = nd ? vcp_chain_discard_actions(chain, 5, nd, deletes[i].bitmap, "vda", &sink,
                                            reopen, &nreopen, 0) : -1;
        if (rc == 0 && nreopen > 0)
            strcat(lines, "reopen nodes:\n");
        for (j = 0; rc == 0 && j < nreopen; j++) {
            strcat(lines, chain[reopen[j]]);
            strcat(lines, "\n");
        }
        snprintf(file, sizeof(file), "checkpointdelete/%s-out.json", deletes[i].name);
        TAP_OK(rc == 0 && same_as_vector(delivered(), lines, file, NULL),
               "checkpoint delete through the sink, reopen positions: libvirt's %s", deletes[i].name);
        vcp_node_data_free(nd);
    }
    for (i = 0; i < sizeof(commits) / sizeof(commits[0]); i++) {
        vcp_node_data *nd = vector_nodes(commits[i].nodes);
        char file[96];
        int top = commits[i].top - 1;
        sink = typed_sink();
        snprintf(file, sizeof(file), "bitmapblockcommit/%s", commits[i].name);
        TAP_OK(nd && vcp_chain_blockcommit_actions(chain + top, 5 - (size_t)top, nd,
                                                   chain[commits[i].base - 1], &sink,
                                                   top == 0 ? VCP_BLOCKCOMMIT_ACTIVE : 0) == 0 &&
               same_as_vector(result.n ? delivered() : "", NULL, file, "merge bitmpas:\n"),
               "block commit through the sink: libvirt's %s", commits[i].name);
        vcp_node_data_free(nd);
    }
    for (i = 0; i < sizeof(copies) / sizeof(copies[0]); i++) {
        vcp_node_data *nd = vector_nodes(copies[i].nodes);
        char file[96];
        sink = typed_sink();
        snprintf(file, sizeof(file), "bitmapblockcopy/%s", copies[i].name);
        TAP_OK(nd && vcp_chain_blockcopy_actions(chain, 5, nd, "mirror-format-node", &sink,
                                                 copies[i].shallow ? VCP_BLOCKCOPY_SHALLOW : 0) == 0 &&
               same_as_vector(delivered(), NULL, file, NULL),
               "block copy through the sink: libvirt's %s", copies[i].name);
        vcp_node_data_free(nd);
    }
}

/* The chain face and the domain face plan the same, and the JSON fallback gives the
 * text API's actions. */
static void
check_faces_agree(void)
{
    vcp_node_data *nd = vector_nodes("snapshots");
    vcp_domain *dom = vcp_domain_new("fake", NULL);
    vcp_action_sink json_only = { &result, NULL, NULL, NULL, on_json };
    const char *bitmaps[] = { "a", "b", "c", "d", "current", "missing" };
    char *text = NULL;
    size_t i;
    int agree = 1;

    vcp_domain_add_disk(dom, "vda", NULL, NULL, 0);
    for (i = 0; i < 5; i++)
        vcp_domain_disk_append_image(dom, "vda", chain[i], "qcow2", chain[i], "storage", 0);
    for (i = 0; i < sizeof(bitmaps) / sizeof(bitmaps[0]); i++)
        agree &= vcp_chain_bitmap_is_valid(chain, 5, nd, bitmaps[i]) ==
                 vcp_bitmap_chain_is_valid(dom, "vda", bitmaps[i], nd);
    TAP_OK(agree, "chain validity: the chain face and the domain face agree for every bitmap");

    memset(&result, 0, sizeof(result));
    result.fail_at = -1;
    TAP_OK(vcp_bitmap_merge_actions(dom, "vda", nd, "libvirt-1-format", "libvirt-4-format",
                                    "libvirt-1-format", NULL, NULL, NULL, &text, 0) == 0 &&
           vcp_chain_merge_actions(chain, 5, 3, nd, "libvirt-1-format", NULL, NULL, NULL,
                                   &json_only, 0) == 0 &&
           strcmp(delivered(), text) == 0,
           "generic merge: the JSON fallback delivers the text API's actions, in order");
    vcp_free(text);
    {
        /* A merge of one bitmap through the typed callbacks (which take the caller's
         * own strings) and through the JSON fallback delivers the same actions, for
         * every bitmap, destination, write node and base. */
        const char *dsts[] = { NULL, "backup-vda" }, *writes[] = { NULL, "libvirt-1-format" };
        size_t b, d, w, src;
        int same = 1, merges = 0;
        for (b = 0; b < sizeof(bitmaps) / sizeof(bitmaps[0]); b++)
            for (d = 0; d < 2; d++)
                for (w = 0; w < 2; w++)
                    for (src = 1; src <= 5; src += 2) {
                        vcp_action_sink typed = typed_sink();
                        char first[sizeof(result.buf) + 2];
                        int rc = vcp_chain_merge_actions(chain, 5, src, nd, "target-node", bitmaps[b],
                                                         dsts[d], writes[w], &typed, 0);
                        snprintf(first, sizeof(first), "%s", delivered());
                        memset(&result, 0, sizeof(result));
                        result.fail_at = -1;
                        same &= rc == 0 &&
                                vcp_chain_merge_actions(chain, 5, src, nd, "target-node", bitmaps[b],
                                                        dsts[d], writes[w], &json_only, 0) == 0 &&
                                strcmp(delivered(), first) == 0;
                        merges += strstr(first, "block-dirty-bitmap-merge") != NULL;
                    }
        TAP_OK(same && merges > 0,
               "generic merge of one bitmap: the typed callbacks and the JSON fallback deliver the same actions");
        typed_sink();
        result.fail_at = 1;
        {
            vcp_action_sink typed = { &result, on_add, on_remove, on_merge, NULL };
            TAP_OK(vcp_chain_merge_actions(chain, 5, 5, nd, "t", "a", "dst", NULL, &typed, 0) == -1 &&
                   tap_err_code() == VCP_ERR_OPERATION_FAILED && result.n == 1,
                   "generic merge: a callback's refusal stops the call (OPERATION_FAILED)");
        }
    }
    {
        /* A delete through the typed callback (which takes the caller's own strings)
         * and through the JSON fallback delivers the same removals. */
        vcp_action_sink typed = typed_sink();
        size_t reopen[5], nreopen = 0, nreopen_json = 0;
        char first[sizeof(result.buf) + 2];
        int rc = vcp_chain_discard_actions(chain, 5, nd, "b", "vda", &typed, reopen, &nreopen, 0);
        snprintf(first, sizeof(first), "%s", delivered());
        memset(&result, 0, sizeof(result));
        result.fail_at = -1;
        TAP_OK(rc == 0 && nreopen > 0 &&
               vcp_chain_discard_actions(chain, 5, nd, "b", "vda", &json_only, reopen,
                                         &nreopen_json, 0) == 0 &&
               nreopen_json == nreopen && strcmp(delivered(), first) == 0 &&
               strstr(first, "block-dirty-bitmap-remove") != NULL,
               "delete: the typed callback and the JSON fallback deliver the same removals");
    }
    vcp_domain_free(dom);
    vcp_node_data_free(nd);
}

static void
check_errors(void)
{
    vcp_node_data *nd = vector_nodes("snapshots");
    vcp_action_sink sink = typed_sink();
    vcp_action_sink partial = { &result, on_add, NULL, NULL, NULL };
    const char *holey[] = { "libvirt-1-format", NULL, "libvirt-3-format" };
    size_t reopen[5], nreopen = 99;

    TAP_OK(vcp_chain_merge_actions(chain, 5, 5, nd, "t", NULL, NULL, NULL, NULL, 0) == -1 &&
           tap_err_code() == VCP_ERR_INVALID_ARG, "a NULL sink is refused");
    TAP_OK(vcp_chain_merge_actions(chain, 5, 5, nd, "t", NULL, NULL, NULL, &partial, 0) == -1 &&
           tap_err_code() == VCP_ERR_INVALID_ARG && result.n == 0,
           "a sink without a callback for some kind and no JSON fallback is refused, nothing delivered");
    sink = typed_sink();
    result.fail_at = 1;
    TAP_OK(vcp_chain_discard_actions(chain, 5, nd, "a", "vda", &sink, reopen, &nreopen, 0) == -1 &&
           tap_err_code() == VCP_ERR_OPERATION_FAILED && result.n == 1 && nreopen == 99,
           "a callback's refusal stops the call (OPERATION_FAILED), the outputs untouched");
    sink = typed_sink();
    TAP_OK(vcp_chain_discard_actions(chain, 5, nd, "nope", "vdb", &sink, reopen, &nreopen, 0) == -1 &&
           tap_err_is(VCP_ERR_INTERNAL_ERROR, "internal error: bitmap 'nope' not found in backing chain of 'vdb'") &&
           result.n == 0, "delete of a bitmap found nowhere: libvirt's error, nothing delivered");
    TAP_OK(vcp_chain_discard_actions(chain, 5, nd, "a", "vda", &sink, NULL, &nreopen, 0) == -1 &&
           tap_err_code() == VCP_ERR_INVALID_ARG && result.n == 0, "delete: a NULL reopen array is refused");
    TAP_OK(vcp_chain_blockcopy_actions(chain, 5, nd, "m", &sink, 1u << 7) == -1 &&
           tap_err_code() == VCP_ERR_INVALID_ARG, "unknown flags are refused");
    TAP_OK(vcp_chain_bitmap_is_valid(NULL, 3, nd, "a") == -1 && tap_err_code() == VCP_ERR_INVALID_ARG,
           "a NULL chain with a count is refused");
    TAP_OK(vcp_chain_bitmap_is_valid(chain, 70000, nd, "a") == -1 && tap_err_code() == VCP_ERR_INVALID_ARG,
           "a chain over the array limit is refused");
    TAP_OK(vcp_chain_bitmap_is_valid(holey, 3, nd, "a") == 0,
           "a layer without a node (NULL) holds no bitmap: the chain has a gap");
    TAP_OK(vcp_chain_bitmap_is_valid(chain, 0, nd, "a") == 0 && vcp_chain_bitmap_is_valid(chain, 5, NULL, "a") == 0,
           "an empty chain, or no node data, holds no valid bitmap");
    sink = typed_sink();
    TAP_OK(vcp_node_propagate_actions(NULL, "libvirt-1-format", "overlay", &sink, 0) == 0 && result.n == 0,
           "snapshot propagation without node data delivers nothing");
    vcp_node_data_free(nd);
}

/* Node data built in place, one node's bitmaps in one call. */
static void
check_bulk_bitmaps(void)
{
    vcp_node_data *nd = vcp_node_data_new();
    const unsigned int ok = VCP_BITMAP_RECORDING | VCP_BITMAP_PERSISTENT;
    vcp_bitmap_entry two[] = { { "a", ok, 65536, 0 }, { "b", ok, 65536, 4096 } };
    vcp_bitmap_entry bad[] = { { "c", ok, 65536, 0 }, { "d", 1u << 9, 65536, 0 } };
    vcp_bitmap_entry unnamed[] = { { NULL, ok, 65536, 0 } };
    const char *top[] = { "top" };
    char **names = NULL;
    vcp_bitmap_info bi;

    TAP_OK(vcp_node_data_add_node(nd, "top", 1 << 30, 0) == 0 &&
           vcp_node_data_add_bitmaps(nd, "top", two, 2) == 0 &&
           vcp_node_data_get_bitmap_names(nd, "top", &names) == 2 && strcmp(names[1], "b") == 0 &&
           vcp_node_data_get_bitmap(nd, "top", "b", &bi) == 1 && bi.count == 4096,
           "two bitmaps added in one call, in order, with their state");
    vcp_string_list_free(names);
    TAP_OK(vcp_node_data_add_bitmaps(nd, "top", bad, 2) == -1 && tap_err_code() == VCP_ERR_INVALID_ARG &&
           vcp_node_data_get_bitmap_names(nd, "top", &names) == 2,
           "an unknown flag in one entry adds none of them");
    vcp_string_list_free(names);
    TAP_OK(vcp_node_data_add_bitmaps(nd, "top", unnamed, 1) == -1 && tap_err_code() == VCP_ERR_INVALID_ARG,
           "an entry without a name is refused");
    TAP_OK(vcp_node_data_add_bitmaps(nd, "elsewhere", two, 2) == -1 && tap_err_code() == VCP_ERR_INVALID_ARG,
           "bitmaps for an unknown node are refused");
    TAP_OK(vcp_node_data_add_bitmaps(nd, "top", NULL, 0) == 0, "no bitmaps is nothing to add");
    TAP_OK(vcp_chain_bitmap_is_valid(top, 1, nd, "b") == 1, "the bulk-added bitmap is a valid chain");
    vcp_node_data_free(nd);
}

/* The size query, one disk at a time: the three transactions go to three sinks, as
 * the text face's three arrays; a disk whose chain does not carry the bitmap is
 * skipped; the size is read back from the node data after the merge. */
static void
check_size(void)
{
    static out parts[3];
    vcp_action_sink sinks[3];
    vcp_node_data *nd = vector_nodes("snapshots");
    vcp_domain *dom = vcp_domain_new("fake", NULL);
    vcp_checkpoint_def *def = vcp_checkpoint_def_new("a", 1, 0);
    vcp_node_data *after = vcp_node_data_new();
    char *text[3] = { NULL, NULL, NULL };
    char mine[3][sizeof(parts[0].buf) + 2];
    unsigned long long size = 0;
    size_t i;
    int rc;

    for (i = 0; i < 3; i++) {
        vcp_action_sink s = { &parts[i], on_add, on_remove, on_merge, NULL };
        sinks[i] = s;
        memset(&parts[i], 0, sizeof(parts[i]));
        parts[i].fail_at = -1;
    }
    vcp_domain_add_disk(dom, "vda", NULL, NULL, 0);
    for (i = 0; i < 5; i++)
        vcp_domain_disk_append_image(dom, "vda", chain[i], "qcow2", chain[i], "storage", 0);
    vcp_checkpoint_def_add_disk(def, "vda", VCP_CHECKPOINT_TYPE_BITMAP, "a");
    rc = vcp_chain_size_actions(chain, 5, nd, "a", &sinks[0], &sinks[1], &sinks[2], 0);
    for (i = 0; i < 3; i++)
        snprintf(mine[i], sizeof(mine[i]), "[%s]", parts[i].buf);
    TAP_OK(rc == 1 &&
           vcp_checkpoint_size_actions(dom, def, nd, &text[0], &text[1], &text[2], 0) == 0 &&
           strcmp(mine[0], text[0]) == 0 && strcmp(mine[1], text[1]) == 0 &&
           strcmp(mine[2], text[2]) == 0 && strcmp(mine[0], "[]") == 0 &&
           strstr(mine[1], "\"block-dirty-bitmap-merge\"") &&
           strcmp(mine[2], "[{\"type\":\"block-dirty-bitmap-remove\",\"data\":{\"node\":"
                           "\"libvirt-1-format\",\"name\":\"libvirt-tmp-size-xml\"}}]") == 0,
           "size: the chain face's three transactions are the text face's (no leftover)");
    for (i = 0; i < 3; i++) {
        vcp_free(text[i]);
        memset(&parts[i], 0, sizeof(parts[i]));
        parts[i].fail_at = -1;
    }
    TAP_OK(vcp_chain_size_actions(chain, 5, nd, "missing", &sinks[0], &sinks[1], &sinks[2], 0) == 0 &&
           parts[0].n + parts[1].n + parts[2].n == 0,
           "size: a disk whose chain lacks the bitmap is skipped, nothing delivered");
    vcp_node_data_add_node(after, "libvirt-1-format", 1 << 30, 0);
    vcp_node_data_add_bitmap(after, "libvirt-1-format", "libvirt-tmp-size-xml",
                             VCP_BITMAP_RECORDING, 65536, 262144);
    vcp_node_data_add_bitmap(after, "libvirt-1-format", "c1",
                             VCP_BITMAP_RECORDING | VCP_BITMAP_PERSISTENT, 65536, 0);
    TAP_OK(vcp_chain_size_actions(chain, 1, after, "c1", &sinks[0], &sinks[1],
                                  &sinks[2], 0) == 1 &&
           parts[0].n == 1 && strstr(parts[0].buf, "\"block-dirty-bitmap-remove\""),
           "size: a temporary bitmap left by an earlier query is removed first");
    TAP_OK(vcp_chain_size_read(after, "libvirt-1-format", &size) == 1 && size == 262144 &&
           vcp_chain_size_read(nd, "libvirt-1-format", &size) == 0 && size == 262144 &&
           vcp_chain_size_read(after, NULL, &size) == -1 && tap_err_code() == VCP_ERR_INVALID_ARG,
           "size read back: the temporary bitmap's count, none without it, NULL node refused");
    vcp_node_data_free(after);
    vcp_checkpoint_def_free(def);
    vcp_domain_free(dom);
    vcp_node_data_free(nd);
}

/* The driver of check_step_run: its log of calls, and which reopen to refuse. */
typedef struct {
    char log[4096];
    const char *fail_node;  /* refuse this node's read-write reopen (NULL: none) */
} driver;

static int
drv_reopen(void *opaque, const char *node, int read_only)
{
    driver *d = opaque;
    if (!read_only && d->fail_node && strcmp(node, d->fail_node) == 0)
        return -1;
    snprintf(d->log + strlen(d->log), sizeof(d->log) - strlen(d->log), "%s %s;",
             read_only ? "ro" : "rw", node);
    return 0;
}

static int
drv_transaction(void *opaque)
{
    driver *d = opaque;
    snprintf(d->log + strlen(d->log), sizeof(d->log) - strlen(d->log), "tx[%s];", result.buf);
    memset(&result, 0, sizeof(result));
    result.fail_at = -1;
    return 0;
}

/* A whole step run through a driver's own builders (vcp_step_run): a delete whose
 * bitmap is on every layer of two disks of three layers (n<disk><layer>, top first),
 * reopened in libvirt's order (the last disk's layers first, each disk's deepest
 * first; back the other way); a refused reopen puts back only what was reopened and
 * sends nothing. */
static void
check_step_run(void)
{
    static const char *const disks[] = { "vda", "vdb" };
    vcp_domain *dom = vcp_domain_new("fake", NULL);
    vcp_checkpoint_def *def = vcp_checkpoint_def_new("c1", 1, 0);
    vcp_node_data *nd = vcp_node_data_new();
    driver d = { "", NULL };
    vcp_step_ops ops = { &d, typed_sink(), drv_transaction, drv_reopen, NULL };
    vcp_step *step;
    size_t i, j;
    char node[32];
    int rc;

    for (i = 0; i < 2; i++) {
        vcp_domain_add_disk(dom, disks[i], NULL, NULL, 0);
        for (j = 0; j < 3; j++) {
            char storage[32];
            snprintf(node, sizeof(node), "n%zu%zu", i, j);
            snprintf(storage, sizeof(storage), "s%zu%zu", i, j);
            vcp_domain_disk_append_image(dom, disks[i], node, "qcow2", node, storage, 0);
            vcp_node_data_add_node(nd, node, 1 << 30, 0);
            vcp_node_data_add_bitmap(nd, node, "c1", VCP_BITMAP_RECORDING | VCP_BITMAP_PERSISTENT,
                                     65536, 0);
        }
        vcp_checkpoint_def_add_disk(def, disks[i], VCP_CHECKPOINT_TYPE_BITMAP, "c1");
    }
    step = vcp_discard_step(dom, def, nd, 0);
    rc = step ? vcp_step_run(step, VCP_STEP_NOW, &ops, 0) : -1;
    TAP_OK(rc == 0 && vcp_last_error() == NULL &&
           strcmp(d.log, "rw n12;rw n11;rw n02;rw n01;tx["
                  "{\"type\":\"block-dirty-bitmap-remove\",\"data\":{\"node\":\"n00\",\"name\":\"c1\"}},"
                  "{\"type\":\"block-dirty-bitmap-remove\",\"data\":{\"node\":\"n01\",\"name\":\"c1\"}},"
                  "{\"type\":\"block-dirty-bitmap-remove\",\"data\":{\"node\":\"n02\",\"name\":\"c1\"}},"
                  "{\"type\":\"block-dirty-bitmap-remove\",\"data\":{\"node\":\"n10\",\"name\":\"c1\"}},"
                  "{\"type\":\"block-dirty-bitmap-remove\",\"data\":{\"node\":\"n11\",\"name\":\"c1\"}},"
                  "{\"type\":\"block-dirty-bitmap-remove\",\"data\":{\"node\":\"n12\",\"name\":\"c1\"}}];"
                  "ro n01;ro n02;ro n11;ro n12;") == 0,
           "step run: libvirt's reopen order around the delete's one transaction (%s)", d.log);

    d.log[0] = '\0';
    d.fail_node = "n01";
    ops.actions = typed_sink();
    TAP_OK(vcp_step_run(step, VCP_STEP_NOW, &ops, 0) == VCP_STEP_RUN_DRIVER_FAILED &&
           vcp_last_error() == NULL && result.n == 0 &&
           strcmp(d.log, "rw n12;rw n11;rw n02;ro n02;ro n11;ro n12;") == 0,
           "step run: a refused reopen sends nothing more and puts back what was reopened (%s)",
           d.log);

    d.log[0] = '\0';
    ops.reopen = NULL;
    TAP_OK(vcp_step_run(step, VCP_STEP_NOW, &ops, 0) == -1 &&
           tap_err_code() == VCP_ERR_INVALID_ARG && d.log[0] == '\0',
           "step run: a phase that reopens needs the reopen callback, checked before any call");
    TAP_OK(vcp_step_run(step, 7, &ops, 0) == -1 && tap_err_code() == VCP_ERR_INVALID_ARG &&
           vcp_step_run(step, VCP_STEP_NOW, NULL, 0) == -1 &&
           vcp_step_run(step, VCP_STEP_ON_END, &ops, 1) == -1,
           "step run: an unknown phase, no ops, unknown flags are refused");
    vcp_step_free(step);
    vcp_node_data_free(nd);
    vcp_checkpoint_def_free(def);
    vcp_domain_free(dom);
}

/* Runs block job end step @job along @ch through the test's driver (its log reset). */
static int
run_end_step(driver *d, int job, const char *const *ch, size_t n, size_t nsrc, vcp_node_data *nd,
             const char *target, unsigned int flags)
{
    vcp_step_ops ops = { d, typed_sink(), drv_transaction, drv_reopen, NULL };
    vcp_step *step = vcp_chain_blockjob_end_step(job, ch, n, nsrc, nd, target, flags);
    int rc = step ? vcp_step_run(step, VCP_STEP_NOW, &ops, 0) : -1;

    vcp_step_free(step);
    return rc;
}

/* The transaction in @log as an array ("" when the log is empty), when the log is one
 * transaction, between "rw @around;" and "ro @around;" when @around is given; else
 * NULL. */
static const char *
logged_tx(const char *log, const char *around)
{
    static char tx[sizeof(result.buf) + 2];
    char pre[96] = "", post[96] = "";
    size_t lp, lq, ll = strlen(log);

    if (!ll)
        return "";
    if (around) {
        snprintf(pre, sizeof(pre), "rw %s;", around);
        snprintf(post, sizeof(post), "ro %s;", around);
    }
    lp = strlen(pre);
    lq = strlen(post);
    if (ll < lp + lq + 5 || strncmp(log, pre, lp) != 0 || strcmp(log + ll - lq, post) != 0 ||
        strncmp(log + lp, "tx[", 3) != 0 || strncmp(log + ll - lq - 2, "];", 2) != 0)
        return NULL;
    snprintf(tx, sizeof(tx), "[%.*s]", (int)(ll - lq - 2 - lp - 3), log + lp + 3);
    return tx;
}

/* The bitmaps' part of a completed block job as one step (vcp_chain_blockjob_end_step)
 * run through a driver: libvirt's commit and copy vectors as its transaction, the base
 * reopened around a non-active commit only, nothing at all when there is nothing to
 * merge; a pull's transaction is the generic merge's; the step's text is refused where
 * its reopens name the node alone. */
static void
check_blockjob_end(void)
{
    driver d = { "", NULL };
    vcp_node_data *nd;
    vcp_step *step;
    vcp_action_sink sink;
    char **text = NULL;
    char merged[sizeof(result.buf) + 2];
    size_t i;

    for (i = 0; i < sizeof(commits) / sizeof(commits[0]); i++) {
        char file[96];
        int top = commits[i].top - 1;
        const char *base = chain[commits[i].base - 1], *tx;
        nd = vector_nodes(commits[i].nodes);
        d.log[0] = '\0';
        snprintf(file, sizeof(file), "bitmapblockcommit/%s", commits[i].name);
        TAP_OK(nd && run_end_step(&d, top == 0 ? VCP_BLOCKJOB_END_ACTIVE_COMMIT : VCP_BLOCKJOB_END_COMMIT,
                                  chain + top, 5 - (size_t)top, 0, nd, base, 0) == 0 &&
               (tx = logged_tx(d.log, top == 0 ? NULL : base)) &&
               same_as_vector(tx, NULL, file, "merge bitmpas:\n"),
               "block job end step, %s commit: libvirt's %s (%s)", top == 0 ? "active" : "non-active",
               commits[i].name, d.log);
        vcp_node_data_free(nd);
    }
    for (i = 0; i < sizeof(copies) / sizeof(copies[0]); i++) {
        char file[96];
        const char *tx;
        nd = vector_nodes(copies[i].nodes);
        d.log[0] = '\0';
        snprintf(file, sizeof(file), "bitmapblockcopy/%s", copies[i].name);
        TAP_OK(nd && run_end_step(&d, VCP_BLOCKJOB_END_COPY, chain, 5, 0, nd, "mirror-format-node",
                                  copies[i].shallow ? VCP_BLOCKCOPY_SHALLOW : 0) == 0 &&
               (tx = logged_tx(d.log, NULL)) && same_as_vector(*tx ? tx : "[]", NULL, file, NULL),
               "block job end step, copy: libvirt's %s (%s)", copies[i].name, d.log);
        vcp_node_data_free(nd);
    }

    /* A pull of the top three layers: the generic merge into the top. */
    nd = vector_nodes("snapshots");
    sink = typed_sink();
    vcp_chain_merge_actions(chain, 5, 3, nd, chain[0], NULL, NULL, NULL, &sink, 0);
    snprintf(merged, sizeof(merged), "%s", result.n ? delivered() : "");
    d.log[0] = '\0';
    TAP_OK(nd && result.n > 0 && run_end_step(&d, VCP_BLOCKJOB_END_PULL, chain, 5, 3, nd, chain[0], 0) == 0 &&
           logged_tx(d.log, NULL) && strcmp(logged_tx(d.log, NULL), merged) == 0,
           "block job end step, pull: the generic merge of the pulled layers (%s)", d.log);

    /* Text: refused for a step whose reopens name the node alone, given otherwise. */
    step = vcp_chain_blockjob_end_step(VCP_BLOCKJOB_END_COMMIT, chain + 1, 4, 0, nd, chain[2], 0);
    TAP_OK(step && vcp_step_commands(step, VCP_STEP_NOW, &text) == -1 &&
           tap_err_code() == VCP_ERR_INVALID_ARG && text == NULL && vcp_step_format_json(step) == NULL,
           "block job end step: a node-only reopen's text is refused");
    vcp_step_free(step);
    step = vcp_chain_blockjob_end_step(VCP_BLOCKJOB_END_ACTIVE_COMMIT, chain, 5, 0, nd, chain[2], 0);
    TAP_OK(step && vcp_step_commands(step, VCP_STEP_NOW, &text) == 1 &&
           strncmp(text[0], "{\"execute\":\"transaction\"", strlen("{\"execute\":\"transaction\"")) == 0,
           "block job end step: a step without a reopen has its text");
    vcp_string_list_free(text);
    vcp_step_free(step);

    TAP_OK(!vcp_chain_blockjob_end_step(7, chain, 5, 0, nd, chain[0], 0) &&
           tap_err_code() == VCP_ERR_INVALID_ARG &&
           !vcp_chain_blockjob_end_step(VCP_BLOCKJOB_END_COMMIT, chain, 5, 0, nd, chain[2],
                                        VCP_BLOCKCOPY_SHALLOW) &&
           !vcp_chain_blockjob_end_step(VCP_BLOCKJOB_END_COPY, chain, 5, 0, nd, NULL, 0) &&
           tap_err_code() == VCP_ERR_INVALID_ARG,
           "block job end step: an unknown job, a flag of another job, no target are refused");
    vcp_node_data_free(nd);
}

int
main(int argc, char **argv)
{
    datadir = tap_datadir(argc, argv);
    check_vectors();
    check_faces_agree();
    check_errors();
    check_bulk_bitmaps();
    check_size();
    check_step_run();
    check_blockjob_end();
    return TAP_DONE();
}
