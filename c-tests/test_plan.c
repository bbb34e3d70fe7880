/* Every planner operation through the C ABI, at least one case each, checked against
 * what libvirt 9.0 sent to QEMU 10.0 (tests/data/libvirt-9.0-qmp) or against libvirt's
 * own test vectors (tests/data/conformance). argv[1] is the tests/data folder. */
#include "virtcheckpoint.h"
#include "tap.h"

/* The transaction adding (@add) or removing the pivot's transient bitmap on @node, as
 * libvirt sends it. */
static const char *
activewrite(const char *node, int add)
{
    static char text[256];
    snprintf(text, sizeof(text), "{\"execute\":\"transaction\",\"arguments\":{\"actions\":["
             "{\"type\":\"block-dirty-bitmap-%s\",\"data\":{\"node\":\"%s\","
             "\"name\":\"libvirt-tmp-activewrite\"%s}}]}}", add ? "add" : "remove", node,
             add ? ",\"persistent\":false,\"disabled\":false" : "");
    return text;
}

static const char *datadir;

/* The n-th command `cmd` libvirt sent in record file `rec`, without its "id". */
static char *
libvirt_sent(const char *rec, const char *cmd, int n)
{
    char *text = tap_read_file(datadir, rec);
    char head[128];
    char *line, *save = NULL, *found = NULL;

    if (!text)
        return NULL;
    snprintf(head, sizeof(head), "-> {\"execute\":\"%s\"", cmd);
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, head, strlen(head)) == 0 && n-- == 0) {
            char *id = strstr(line, ",\"id\":");
            if (id) {
                id[0] = '}';
                id[1] = '\0';
            }
            found = strdup(line + 3);
            break;
        }
    }
    free(text);
    return found;
}

/* Whether `actions`, wrapped in a transaction, is byte-identical to what libvirt sent. */
static int
same_transaction(const char *actions, const char *rec, int n)
{
    char *ours = actions ? vcp_transaction_command(actions) : NULL;
    char *theirs = libvirt_sent(rec, "transaction", n);
    int same = ours && theirs && strcmp(ours, theirs) == 0;
    if (!same)
        printf("# ours:   %s\n# theirs: %s\n", ours ? ours : "(null)", theirs ? theirs : "(null)");
    vcp_free(ours);
    free(theirs);
    return same;
}

/* Removes whitespace outside strings: libvirt's pretty vectors vs our compact text. */
static char *
squash(const char *s)
{
    char *out = malloc(strlen(s) + 1), *p = out;
    int in_str = 0;
    for (; *s; s++) {
        if (*s == '"' && (s == out || s[-1] != '\\'))
            in_str = !in_str;
        if (in_str || (*s != ' ' && *s != '\n' && *s != '\t'))
            *p++ = *s;
    }
    *p = '\0';
    return out;
}

static int
same_as_vector(const char *actions, const char *vector, const char *skip_line)
{
    char *text = tap_read_file(datadir, vector);
    char *body = text, *a, *b;
    int same;
    if (!text || !actions) {
        free(text);
        return 0;
    }
    if (skip_line && strncmp(body, skip_line, strlen(skip_line)) == 0)
        body += strlen(skip_line);
    a = squash(actions);
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
nodes_from(const char *rel)
{
    char *json = tap_read_file(datadir, rel);
    vcp_node_data *nd = json ? vcp_node_data_parse_json(json, 0) : NULL;
    free(json);
    return nd;
}

static vcp_domain *
domain_from(const char *rel)
{
    char *xml = tap_read_file(datadir, rel);
    vcp_domain *dom = xml ? vcp_domain_parse_xml(xml, 0) : NULL;
    free(xml);
    return dom;
}

/* libvirt's test chain: image 1 (top) .. image 5, libvirt-<i>-format. */
static vcp_domain *
fake_chain(void)
{
    vcp_domain *dom = vcp_domain_new("fake", NULL);
    char src[32], fmt[32], sto[32];
    int i;
    vcp_domain_add_disk(dom, "vda", NULL, NULL, 0);
    for (i = 1; i <= 5; i++) {
        snprintf(src, sizeof(src), "/image%d", i);
        snprintf(fmt, sizeof(fmt), "libvirt-%d-format", i);
        snprintf(sto, sizeof(sto), "libvirt-%d-storage", i);
        vcp_domain_disk_append_image(dom, "vda", src, "qcow2", fmt, sto, 0);
    }
    return dom;
}

/* lvtest, for which no XML was recorded: vda over the given node indices. */
static vcp_domain *
lvtest(int top, int base)
{
    vcp_domain *dom = vcp_domain_new("lvtest", "9518971d-d34e-4867-be66-9b9b1a45c080");
    char fmt[32], sto[32];
    vcp_domain_add_disk(dom, "vda", "disk", "virtio", 0);
    snprintf(fmt, sizeof(fmt), "libvirt-%d-format", top);
    snprintf(sto, sizeof(sto), "libvirt-%d-storage", top);
    vcp_domain_disk_append_image(dom, "vda", "/srv/lab/img/top.qcow2", "qcow2", fmt, sto, 0);
    if (base > 0) {
        snprintf(fmt, sizeof(fmt), "libvirt-%d-format", base);
        snprintf(sto, sizeof(sto), "libvirt-%d-storage", base);
        vcp_domain_disk_append_image(dom, "vda", "/srv/lab/img/vda.qcow2", "qcow2", fmt, sto, 0);
    }
    return dom;
}

static vcp_checkpoint_def *
chk(const char *name, vcp_domain *dom)
{
    char xml[256];
    snprintf(xml, sizeof(xml), "<domaincheckpoint><name>%s</name></domaincheckpoint>", name);
    return vcp_checkpoint_def_parse_xml(xml, dom, 0);
}

static void
check_create(void)
{
    vcp_domain *dom = domain_from("libvirt-9.0-qmp/21_status_xml_before_snapshot.xml");
    vcp_checkpoint_def *def = chk("c1", dom);
    vcp_node_data *nd = nodes_from("replies/08_checkpoint_delete_chk2_middle.json");
    vcp_domain *lv = lvtest(1, 0);
    vcp_checkpoint_def *dup = chk("chk1", lv);
    char *actions = NULL;

    TAP_OK(vcp_checkpoint_add_actions(dom, def, NULL, &actions, 0) == 0 &&
           same_transaction(actions, "libvirt-9.0-qmp/18_checkpoint_create_c1.txt", 0),
           "create c1: the transaction libvirt sent");
    vcp_free(actions);
    actions = NULL;
    TAP_OK(vcp_checkpoint_add_actions(lv, dup, nd, &actions, 0) == -1 && actions == NULL &&
           tap_err_is(VCP_ERR_OPERATION_FAILED,
                      "operation failed: bitmap 'chk1' already exists on node 'libvirt-1-format' of disk 'vda'"),
           "create: an existing bitmap is refused before QEMU sees it");
    TAP_OK(vcp_checkpoint_add_actions(dom, def, NULL, NULL, 0) == -1 &&
           tap_err_code() == VCP_ERR_INVALID_ARG, "create: NULL out-parameter refused");
    {
        /* The same create from a definition built in place, as a driver holds it. */
        vcp_checkpoint_def *built = vcp_checkpoint_def_new("chk1", 1700000000, 0);
        char *tx = NULL;
        TAP_OK(built && vcp_checkpoint_def_set_parent(built, NULL, "built") == 0 &&
               vcp_checkpoint_def_add_disk(built, "vda", VCP_CHECKPOINT_TYPE_BITMAP, "chk1") == 0 &&
               vcp_checkpoint_add_actions(lv, built, NULL, &tx, 0) == 0 &&
               same_transaction(tx, "libvirt-9.0-qmp/02_checkpoint_create_chk1.txt", 0),
               "create from a built definition: the transaction libvirt sent");
        vcp_free(tx);
        TAP_OK(vcp_checkpoint_def_add_disk(built, "vda", VCP_CHECKPOINT_TYPE_NO, NULL) == -1 &&
               tap_err_is(VCP_ERR_CONFIG_UNSUPPORTED,
                          "unsupported configuration: disk 'vda' specified twice") &&
               vcp_checkpoint_def_get_disk_count(built) == 1,
               "a disk named twice is refused and changes nothing");
        TAP_OK(vcp_checkpoint_def_add_disk(built, "vdb", 9, NULL) == -1 &&
               tap_err_code() == VCP_ERR_INVALID_ARG, "an unknown disk type is refused");
        vcp_checkpoint_def_free(built);
        TAP_OK(vcp_checkpoint_def_new("../x", 0, 0) == NULL && tap_err_code() == VCP_ERR_INVALID_ARG &&
               vcp_checkpoint_def_new("", 0, 0) == NULL,
               "a name that is not a safe file name is refused");
    }
    vcp_checkpoint_def_free(dup);
    vcp_domain_free(lv);
    vcp_node_data_free(nd);
    vcp_checkpoint_def_free(def);
    vcp_domain_free(dom);
}

static void
check_discard(void)
{
    vcp_domain *dom = lvtest(4, 1);
    vcp_checkpoint_def *def = chk("chk1", dom);
    vcp_node_data *nd = nodes_from("replies/13_checkpoint_delete_chk1_after_snapshot.json");
    char *actions = NULL, *rw = NULL, *ro = NULL, *want_rw, *want_ro;
    char **reopen = NULL, **missing = NULL;
    vcp_checkpoint_def *gone = chk("zzz", dom);

    TAP_OK(vcp_checkpoint_discard_actions(dom, def, nd, &actions, &reopen, &missing, 0) == 0 &&
           missing && !missing[0] &&
           same_transaction(actions, "libvirt-9.0-qmp/13_checkpoint_delete_chk1_after_snapshot.txt", 0),
           "delete chk1 across a snapshot: removal on both layers, as libvirt sent");
    TAP_OK(reopen && reopen[0] && strcmp(reopen[0], "libvirt-1-format") == 0 && !reopen[1],
           "delete: the backing layer is to be reopened");
    rw = reopen ? vcp_blockdev_reopen_command(dom, reopen[0], 0) : NULL;
    ro = reopen ? vcp_blockdev_reopen_command(dom, reopen[0], 1) : NULL;
    want_rw = libvirt_sent("libvirt-9.0-qmp/13_checkpoint_delete_chk1_after_snapshot.txt", "blockdev-reopen", 0);
    want_ro = libvirt_sent("libvirt-9.0-qmp/13_checkpoint_delete_chk1_after_snapshot.txt", "blockdev-reopen", 1);
    TAP_OK(rw && want_rw && strcmp(rw, want_rw) == 0 && ro && want_ro && strcmp(ro, want_ro) == 0,
           "delete: the blockdev-reopen commands libvirt sent, read-write then read-only");
    vcp_free(rw);
    vcp_free(ro);
    free(want_rw);
    free(want_ro);
    vcp_free(actions);
    vcp_string_list_free(reopen);
    vcp_string_list_free(missing);

    actions = NULL;
    reopen = NULL;
    missing = NULL;
    TAP_OK(vcp_checkpoint_discard_actions(dom, gone, nd, &actions, &reopen, NULL, 0) == -1 &&
           actions == NULL && reopen == NULL &&
           tap_err_is(VCP_ERR_INVALID_ARG,
                      "invalid argument: missing in vcp_checkpoint_discard_actions must not be NULL"),
           "delete: a NULL out-parameter is refused before anything is planned");
    TAP_OK(vcp_checkpoint_discard_actions(dom, gone, nd, &actions, &reopen, &missing, 0) == -1 &&
           actions == NULL && reopen == NULL && missing == NULL &&
           tap_err_is(VCP_ERR_INTERNAL_ERROR,
                      "internal error: bitmap 'zzz' not found in backing chain of 'vda'"),
           "delete: libvirt's error when the bitmap is nowhere");
    TAP_OK(vcp_checkpoint_discard_actions(dom, gone, nd, &actions, &reopen, &missing,
                                          VCP_CHECKPOINT_DISCARD_IGNORE_MISSING) == 0 &&
           strcmp(actions, "[]") == 0 && missing && strcmp(missing[0], "vda") == 0 && !missing[1],
           "delete with IGNORE_MISSING: nothing to remove, vda reported missing");
    vcp_free(actions);
    vcp_string_list_free(reopen);
    vcp_string_list_free(missing);
    vcp_checkpoint_def_free(gone);
    vcp_node_data_free(nd);
    vcp_checkpoint_def_free(def);
    vcp_domain_free(dom);
}

static void
check_validate(void)
{
    vcp_domain *dom = domain_from("libvirt-9.0-qmp/74_status_xml_end.xml");
    vcp_node_data *nd = nodes_from("replies/70_fail_checkpoint_redefine_validate_c2_bitmap_missing.json");
    vcp_checkpoint_def *c1 = chk("c1", dom), *c2 = chk("c2", dom);
    vcp_domain *fake = fake_chain();
    vcp_node_data *snaps = nodes_from("conformance/tests/qemublocktestdata/bitmap/snapshots.json");

    TAP_OK(vcp_checkpoint_redefine_validate(dom, c1, nd, 0) == 0, "validate: c1 is intact");
    TAP_OK(vcp_checkpoint_redefine_validate(dom, c2, nd, 0) == -1 &&
           tap_err_is(VCP_ERR_CHECKPOINT_INCONSISTENT,
                      "checkpoint inconsistent: missing or broken bitmap 'c2' for disk 'vda'"),
           "validate: c2's bitmap was removed behind libvirt's back");
    {
        vcp_step *st = vcp_redefine_validate_step(dom, c1, nd, 0);
        char **now = NULL;
        TAP_OK(st && vcp_step_commands(st, VCP_STEP_NOW, &now) == 0 && now && !now[0],
               "validate step: c1 intact, nothing to send (libvirt sends no QMP)");
        vcp_string_list_free(now);
        vcp_step_free(st);
    }
    TAP_OK(vcp_redefine_validate_step(dom, c2, nd, 0) == NULL &&
           tap_err_code() == VCP_ERR_CHECKPOINT_INCONSISTENT,
           "validate step: c2 inconsistent");
    TAP_OK(vcp_redefine_validate_step(dom, c1, NULL, VCP_REDEFINE_DOMAIN_INACTIVE) == NULL &&
           tap_err_is(VCP_ERR_OPERATION_INVALID,
                      "Requested operation is not valid: domain is not running"),
           "validate step: an inactive domain is refused as libvirt does");
    TAP_OK(vcp_redefine_validate_step(dom, c1, NULL, 0) == NULL &&
           tap_err_code() == VCP_ERR_INVALID_ARG, "validate step: node data required");
    TAP_OK(vcp_bitmap_chain_is_valid(fake, "vda", "a", snaps) == 1 &&
           vcp_bitmap_chain_is_valid(fake, "vda", "nosuch", snaps) == 0,
           "chain validity on libvirt's 'snapshots' vector");
    TAP_OK(vcp_bitmap_chain_is_valid(fake, "vdz", "a", snaps) == -1, "chain validity: unknown disk");
    vcp_node_data_free(snaps);
    vcp_domain_free(fake);
    vcp_checkpoint_def_free(c1);
    vcp_checkpoint_def_free(c2);
    vcp_node_data_free(nd);
    vcp_domain_free(dom);
}

static void
check_backup(void)
{
    vcp_domain *dom = lvtest(1, 0);
    vcp_node_data *nd = nodes_from("replies/06_backup_begin_push_incremental_from_chk1.json");
    vcp_domain *fake = fake_chain();
    vcp_node_data *snaps = nodes_from("conformance/tests/qemublocktestdata/bitmap/snapshots.json");
    const char *known[] = { "chk1", "chk2", NULL };
    vcp_backup_disk disk = { "vda", "chk1", "libvirt-2-format", NULL };
    vcp_backup_disk bad = { "vda", "chk9", "libvirt-2-format", NULL };
    char *actions = NULL, *cleanup = NULL, *want;
    char buf[512];

    TAP_OK(vcp_backup_begin_actions(dom, nd, VCP_BACKUP_PUSH, &disk, 1, known, NULL,
                                    &actions, &cleanup, 0) == 0 &&
           same_transaction(actions, "libvirt-9.0-qmp/06_backup_begin_push_incremental_from_chk1.txt", 0),
           "push incremental backup from chk1: the transaction libvirt sent");
    want = libvirt_sent("libvirt-9.0-qmp/06_backup_begin_push_incremental_from_chk1.txt",
                        "block-dirty-bitmap-remove", 0);
    snprintf(buf, sizeof(buf), "[%s]", want ? want : "");
    TAP_OK(cleanup && want && strcmp(cleanup, buf) == 0,
           "push backup end: the stand-alone removal libvirt sent");
    free(want);
    vcp_free(actions);
    vcp_free(cleanup);
    actions = NULL;
    cleanup = NULL;
    TAP_OK(vcp_backup_begin_actions(dom, nd, VCP_BACKUP_PUSH, &bad, 1, known, NULL,
                                    &actions, &cleanup, 0) == -1 && actions == NULL && cleanup == NULL &&
           tap_err_is(VCP_ERR_NO_DOMAIN_CHECKPOINT,
                      "Domain checkpoint not found: Checkpoint 'chk9' for incremental backup of disk 'vda' not found"),
           "backup from an unknown checkpoint");
    TAP_OK(vcp_backup_begin_actions(dom, nd, 7, &disk, 1, NULL, NULL, &actions, &cleanup, 0) == -1 &&
           tap_err_code() == VCP_ERR_INVALID_ARG, "backup: unknown mode refused");
    TAP_OK(vcp_backup_begin_actions(dom, nd, VCP_BACKUP_PULL, &disk, 1, NULL, NULL, &actions, &cleanup, 0) == 0 &&
           strstr(actions, "\"node\":\"libvirt-2-format\",\"name\":\"backup-vda\",\"persistent\":false") &&
           strstr(actions, "\"sync\":\"none\",\"auto-finalize\""),
           "pull backup: temporary bitmap on the scratch node, sync none");
    vcp_free(actions);
    vcp_free(cleanup);

    TAP_OK(vcp_backup_bitmap_actions(fake, "vda", snaps, "a", "target_node", "target-bitmap-name",
                                     &actions, 0) == 0 &&
           same_as_vector(actions, "conformance/tests/qemublocktestdata/backupmerge/snapshots-deep-out.json", NULL),
           "backup bitmap merge: libvirt's snapshots-deep vector");
    vcp_free(actions);
    TAP_OK(vcp_bitmap_merge_actions(fake, "vda", snaps, "libvirt-1-format", NULL, "target_node", "current",
                                    "target-bitmap-name", NULL, &actions, 0) == 0 &&
           same_as_vector(actions, "conformance/tests/qemublocktestdata/backupmerge/snapshots-flat-out.json", NULL),
           "generic merge: libvirt's snapshots-flat vector");
    vcp_free(actions);
    vcp_node_data_free(snaps);
    vcp_domain_free(fake);
    vcp_node_data_free(nd);
    vcp_domain_free(dom);
}

static void
check_snapshot(void)
{
    vcp_domain *dom = domain_from("libvirt-9.0-qmp/21_status_xml_before_snapshot.xml");
    vcp_node_data *nd = nodes_from("replies/23_snapshot_create_external_s1.json");
    vcp_snapshot_disk disk = { "vda", "libvirt-2-format" };
    char *actions = NULL;

    TAP_OK(vcp_snapshot_bitmap_actions(dom, nd, &disk, 1, &actions, 0) == 0 &&
           same_transaction(actions, "libvirt-9.0-qmp/23_snapshot_create_external_s1.txt", 0),
           "external snapshot s1: bitmap propagation libvirt sent");
    vcp_free(actions);
    vcp_node_data_free(nd);
    vcp_domain_free(dom);
}

static void
check_block_jobs(void)
{
    vcp_domain *fake = fake_chain();
    vcp_node_data *snaps = nodes_from("conformance/tests/qemublocktestdata/bitmap/snapshots.json");
    char *actions = NULL;

    TAP_OK(vcp_activewrite_add_actions("libvirt-3-format", &actions, 0) == 0 &&
           strcmp(actions, "[{\"type\":\"block-dirty-bitmap-add\",\"data\":{\"node\":\"libvirt-3-format\","
                           "\"name\":\"libvirt-tmp-activewrite\",\"persistent\":false,\"disabled\":false}}]") == 0,
           "pivot: transient enabled activewrite bitmap");
    vcp_free(actions);
    TAP_OK(vcp_blockcommit_bitmap_actions(fake, "vda", snaps, "libvirt-2-format", "libvirt-4-format",
                                          &actions, 0) == 0 &&
           same_as_vector(actions, "conformance/tests/qemublocktestdata/bitmapblockcommit/snapshots-2-4",
                          "merge bitmpas:\n"),
           "block commit 2->4: libvirt's vector");
    vcp_free(actions);
    TAP_OK(vcp_blockcommit_bitmap_actions(fake, "vda", snaps, "libvirt-1-format", "libvirt-3-format",
                                          &actions, VCP_BLOCKCOMMIT_ACTIVE) == 0 &&
           same_as_vector(actions, "conformance/tests/qemublocktestdata/bitmapblockcommit/snapshots-1-3",
                          "merge bitmpas:\n"),
           "active block commit 1->3: libvirt's vector");
    vcp_free(actions);
    actions = NULL;
    TAP_OK(vcp_blockcommit_bitmap_actions(fake, "vda", snaps, "libvirt-4-format", "libvirt-2-format",
                                          &actions, 0) == -1 && actions == NULL &&
           tap_err_code() == VCP_ERR_INVALID_ARG, "block commit: base above top refused");
    TAP_OK(vcp_blockcopy_bitmap_actions(fake, "vda", snaps, "mirror-format-node", &actions,
                                        VCP_BLOCKCOPY_SHALLOW) == 0 &&
           same_as_vector(actions, "conformance/tests/qemublocktestdata/bitmapblockcopy/snapshots-shallow-out.json", NULL),
           "shallow block copy: libvirt's vector");
    vcp_free(actions);
    {
        vcp_node_data *basic = nodes_from("conformance/tests/qemublocktestdata/bitmap/basic.json");
        TAP_OK(vcp_blockcopy_bitmap_actions(fake, "vda", basic, "mirror-format-node", &actions, 0) == 0 &&
               same_as_vector(actions, "conformance/tests/qemublocktestdata/bitmapblockcopy/basic-deep-out.json", NULL),
               "deep block copy: libvirt's vector");
        vcp_free(actions);
        vcp_node_data_free(basic);
    }
    TAP_OK(vcp_blockpull_bitmap_actions(fake, "vda", snaps, NULL, &actions, 0) == 0 &&
           !strstr(actions, "block-dirty-bitmap-add") &&
           strstr(actions, "{\"type\":\"block-dirty-bitmap-merge\",\"data\":{\"node\":\"libvirt-1-format\","
                           "\"target\":\"a\",\"bitmaps\":[{\"node\":\"libvirt-1-format\",\"name\":\"a\"},"
                           "{\"node\":\"libvirt-2-format\",\"name\":\"a\"},{\"node\":\"libvirt-3-format\",\"name\":\"a\"},"
                           "{\"node\":\"libvirt-4-format\",\"name\":\"a\"},{\"node\":\"libvirt-5-format\",\"name\":\"a\"}]}}"),
           "block pull: every layer's 'a' merged into the top's, nothing added");
    vcp_free(actions);
    vcp_node_data_free(snaps);
    vcp_domain_free(fake);
}

static void
check_size(void)
{
    vcp_domain *dom = lvtest(1, 0);
    vcp_checkpoint_def *def = chk("chk1", dom);
    vcp_node_data *before = nodes_from("replies/08_checkpoint_delete_chk2_middle.json");
    vcp_node_data *after = vcp_node_data_parse_json(
        "[{\"node-name\":\"libvirt-1-format\",\"image\":{\"virtual-size\":67108864},"
        "\"dirty-bitmaps\":[{\"name\":\"libvirt-tmp-size-xml\",\"recording\":false,\"persistent\":false,"
        "\"granularity\":65536,\"count\":196608},{\"name\":\"chk1\",\"recording\":true,"
        "\"persistent\":true,\"granularity\":65536,\"count\":196608}]}]", 0);
    char *recovery = NULL, *merge = NULL, *cleanup = NULL, *xml;

    TAP_OK(vcp_checkpoint_size_actions(dom, def, before, &recovery, &merge, &cleanup, 0) == 0 &&
           strcmp(recovery, "[]") == 0 &&
           strcmp(merge, "[{\"type\":\"block-dirty-bitmap-add\",\"data\":{\"node\":\"libvirt-1-format\","
                         "\"name\":\"libvirt-tmp-size-xml\",\"persistent\":false,\"disabled\":true,"
                         "\"granularity\":65536}},{\"type\":\"block-dirty-bitmap-merge\",\"data\":"
                         "{\"node\":\"libvirt-1-format\",\"target\":\"libvirt-tmp-size-xml\",\"bitmaps\":"
                         "[{\"node\":\"libvirt-1-format\",\"name\":\"chk1\"}]}}]") == 0 &&
           strcmp(cleanup, "[{\"type\":\"block-dirty-bitmap-remove\",\"data\":{\"node\":\"libvirt-1-format\","
                           "\"name\":\"libvirt-tmp-size-xml\"}}]") == 0,
           "size: merge into libvirt-tmp-size-xml, then its removal");
    {
        /* The same as a step: the merge transaction now, the removal at the end. */
        vcp_step *st = vcp_size_step(dom, def, before, 0);
        char **now = NULL, **end = NULL;
        TAP_OK(st && vcp_step_commands(st, VCP_STEP_NOW, &now) == 1 &&
               vcp_step_commands(st, VCP_STEP_ON_END, &end) == 1 &&
               strstr(now[0], "\"execute\":\"transaction\"") &&
               strstr(now[0], "\"target\":\"libvirt-tmp-size-xml\"") &&
               strstr(end[0], "block-dirty-bitmap-remove"),
               "size step: merge now, removal at the end");
        vcp_string_list_free(now);
        vcp_string_list_free(end);
        vcp_step_free(st);
    }
    TAP_OK(vcp_checkpoint_size_read(dom, def, before, after, 0) == 1, "size: one disk measured");
    xml = vcp_checkpoint_def_format_xml(def, VCP_CHECKPOINT_XML_SIZE);
    TAP_OK(xml && strstr(xml, "<disk name='vda' checkpoint='bitmap' bitmap='chk1' size='196608'/>"),
           "size: printed with VCP_CHECKPOINT_XML_SIZE");
    vcp_free(xml);
    xml = vcp_checkpoint_def_format_xml(def, 0);
    TAP_OK(xml && !strstr(xml, "size="), "size: not printed without the flag");
    vcp_free(xml);
    TAP_OK(vcp_transaction_command("{\"a\":1}") == NULL && tap_err_code() == VCP_ERR_INVALID_ARG,
           "transaction wrapper refuses a non-array");
    vcp_free(recovery);
    vcp_free(merge);
    vcp_free(cleanup);
    vcp_node_data_free(after);
    vcp_node_data_free(before);
    vcp_checkpoint_def_free(def);
    vcp_domain_free(dom);
}

/* Whole driver steps through the C ABI, against what libvirt 9.0 sent. */
static void
check_steps(void)
{
    const char *rec13 = "libvirt-9.0-qmp/13_checkpoint_delete_chk1_after_snapshot.txt";
    const char *rec06 = "libvirt-9.0-qmp/06_backup_begin_push_incremental_from_chk1.txt";
    vcp_domain *dom = lvtest(4, 1), *after = NULL;
    vcp_checkpoint_def *def = chk("chk1", dom);
    vcp_node_data *nd = nodes_from("replies/13_checkpoint_delete_chk1_after_snapshot.json");
    vcp_step *step = vcp_discard_step(dom, def, nd, 0);
    char **cmds = NULL, **jobs = NULL, *want[3];
    int i, ok;

    {
        char *acts = NULL;
        char **layers = NULL;
        TAP_OK(vcp_disk_discard_bitmap_actions(dom, "vda", nd, "chk1", &acts, &layers, 0) == 0 &&
               same_transaction(acts, rec13, 0) && layers && strcmp(layers[0], "libvirt-1-format") == 0 &&
               !layers[1], "per-disk discard: libvirt's removals and the layer to reopen");
        vcp_free(acts);
        vcp_string_list_free(layers);
        TAP_OK(vcp_disk_discard_bitmap_actions(dom, "vda", nd, "zzz", &acts, &layers, 0) == -1 &&
               tap_err_is(VCP_ERR_INTERNAL_ERROR,
                          "internal error: bitmap 'zzz' not found in backing chain of 'vda'"),
               "per-disk discard: libvirt's error naming the disk");
    }
    want[0] = libvirt_sent(rec13, "blockdev-reopen", 0);
    want[1] = libvirt_sent(rec13, "transaction", 0);
    want[2] = libvirt_sent(rec13, "blockdev-reopen", 1);
    ok = step && vcp_step_commands(step, VCP_STEP_NOW, &cmds) == 3;
    for (i = 0; ok && i < 3; i++)
        ok = want[i] && strcmp(cmds[i], want[i]) == 0;
    TAP_OK(ok, "delete step: reopen read-write, transaction, reopen read-only, as libvirt sent");
    for (i = 0; i < 3; i++)
        free(want[i]);
    vcp_string_list_free(cmds);
    TAP_OK(step && vcp_step_get_domain_after(step, &after) == 0 && after == NULL,
           "delete step: no chain changes");
    TAP_OK(step && vcp_step_commands(step, 9, &cmds) == -1 && tap_err_code() == VCP_ERR_INVALID_ARG,
           "unknown phase refused");
    vcp_step_free(step);
    vcp_node_data_free(nd);
    vcp_checkpoint_def_free(def);
    vcp_domain_free(dom);

    {
        vcp_domain *d1 = lvtest(1, 0);
        vcp_node_data *n6 = nodes_from("replies/06_backup_begin_push_incremental_from_chk1.json");
        vcp_backup_disk disk = { "vda", "chk1", "libvirt-2-format", NULL };
        const char *storage[] = { "libvirt-2-storage" };
        char *dismiss = libvirt_sent(rec06, "job-dismiss", 1);
        char *del0 = libvirt_sent(rec06, "blockdev-del", 0);
        char *del1 = libvirt_sent(rec06, "blockdev-del", 1);
        char *rm = libvirt_sent(rec06, "block-dirty-bitmap-remove", 0);
        vcp_checkpoint_def *c9 = chk("chk9", d1);
        TAP_OK(vcp_create_step_granularity(d1, c9, n6, 3000, 0) == NULL &&
               tap_err_code() == VCP_ERR_CONFIG_UNSUPPORTED &&
               strstr(vcp_last_error_message(), "must be a power of two"),
               "create step: a granularity that is not a power of two is refused");
        step = vcp_create_step_granularity(d1, c9, n6, 4194304, 0);
        TAP_OK(step && vcp_step_commands(step, VCP_STEP_NOW, &cmds) == 1 &&
               strstr(cmds[0], "\"name\":\"chk9\",\"persistent\":true,\"disabled\":false,\"granularity\":4194304"),
               "create step: the chosen granularity on the new bitmap");
        vcp_string_list_free(cmds);
        vcp_step_free(step);
        vcp_checkpoint_def_free(c9);
        step = vcp_backup_step(d1, n6, VCP_BACKUP_PUSH, &disk, 1, storage, NULL, NULL, 0);
        TAP_OK(step && vcp_step_jobs(step, &jobs) == 1 &&
               strcmp(jobs[0], "backup-vda-libvirt-1-format") == 0, "backup step: its job");
        vcp_string_list_free(jobs);
        {
            char *tx = libvirt_sent(rec06, "transaction", 0);
            TAP_OK(step && vcp_step_commands(step, VCP_STEP_NOW, &cmds) == 1 && tx &&
                   strcmp(cmds[0], tx) == 0, "backup step: the transaction libvirt sent, now");
            free(tx);
        }
        vcp_string_list_free(cmds);
        TAP_OK(step && vcp_step_commands(step, VCP_STEP_ON_END, &cmds) == 4 &&
               dismiss && strcmp(cmds[0], dismiss) == 0 && del0 && strcmp(cmds[1], del0) == 0 &&
               del1 && strcmp(cmds[2], del1) == 0 && rm && strcmp(cmds[3], rm) == 0,
               "backup step end: job-dismiss, store detached, bitmap removed, as libvirt sent");
        vcp_string_list_free(cmds);
        free(dismiss);
        free(del0);
        free(del1);
        free(rm);
        vcp_step_free(step);
        vcp_node_data_free(n6);
        vcp_domain_free(d1);
    }

    dom = lvtest(4, 1);
    nd = nodes_from("replies/13_checkpoint_delete_chk1_after_snapshot.json");
    TAP_OK(vcp_copy_step(dom, "vda", nd, "/m.qcow2", "libvirt-9-format", NULL, "copy-vda",
                         VCP_BLOCKCOPY_SHALLOW | VCP_COPY_PERSISTENT_DOMAIN) == NULL &&
           tap_err_is(VCP_ERR_OPERATION_INVALID, "Requested operation is not valid: domain is not transient"),
           "copy step: libvirt's precondition for a shallow copy of a persistent domain");
    step = vcp_copy_step(dom, "vda", nd, "/m.raw", "libvirt-9-format", NULL, "copy-vda",
                         VCP_COPY_MIRROR_RAW);
    TAP_OK(step && vcp_step_commands(step, VCP_STEP_ON_READY, &cmds) == 2 &&
           strcmp(cmds[0], activewrite("libvirt-9-format", 1)) == 0 &&
           strcmp(cmds[1], "{\"execute\":\"job-complete\",\"arguments\":{\"id\":\"copy-vda\"}}") == 0,
           "copy step into a raw mirror: only the pivot's transient bitmap, as libvirt 9.0 adds it");
    vcp_string_list_free(cmds);
    TAP_OK(step && vcp_step_commands(step, VCP_STEP_ON_END, &cmds) == 2 &&
           strcmp(cmds[0], activewrite("libvirt-9-format", 0)) == 0 && strstr(cmds[1], "job-dismiss"),
           "copy step into a raw mirror: nothing merged that QEMU would refuse, the transient bitmap removed");
    vcp_string_list_free(cmds);
    vcp_step_free(step);
    TAP_OK(vcp_copy_step(dom, "vda", nd, "/m.raw", "libvirt-9-format", NULL, "copy-vda",
                         VCP_BLOCKCOPY_SHALLOW | VCP_COPY_MIRROR_RAW) == NULL &&
           tap_err_is(VCP_ERR_CONFIG_UNSUPPORTED, "unsupported configuration: shallow copy of disk 'vda' "
                      "into a raw file is not possible"),
           "copy step: libvirt refuses a shallow copy into a raw file");
    step = vcp_commit_step(dom, "vda", nd, "libvirt-4-format", "libvirt-1-format", "commit-vda", 0);
    after = NULL;
    TAP_OK(step && vcp_step_get_domain_after(step, &after) == 1 &&
           vcp_domain_get_disk_chain(after, "vda", &cmds) == 1 &&
           strcmp(cmds[0], "libvirt-1-format") == 0,
           "active commit step: the base is the chain afterwards");
    vcp_string_list_free(cmds);
    vcp_domain_free(after);
    TAP_OK(step && vcp_step_commands(step, VCP_STEP_ON_READY, &cmds) == 2 &&
           strstr(cmds[0], "libvirt-tmp-activewrite") &&
           strcmp(cmds[1], "{\"execute\":\"job-complete\",\"arguments\":{\"id\":\"commit-vda\"}}") == 0,
           "active commit step: activewrite bitmap, then job-complete");
    vcp_string_list_free(cmds);
    {
        char *json = step ? vcp_step_format_json(step) : NULL;
        const char *head = "{\"now\":[{\"execute\":\"block-commit\",\"arguments\":{"
                           "\"device\":\"libvirt-4-format\",\"job-id\":\"commit-vda\","
                           "\"top-node\":\"libvirt-4-format\",\"base-node\":\"libvirt-1-format\","
                           "\"auto-finalize\":true,\"auto-dismiss\":false}}],"
                           "\"jobs\":[\"commit-vda\"],\"on-ready\":[";
        TAP_OK(json && strncmp(json, head, strlen(head)) == 0,
               "the whole step as JSON: the job started as libvirt starts it (active: no backing-file)");
        vcp_free(json);
    }
    vcp_step_free(step);
    {
        vcp_domain *rawbase = vcp_domain_new("lvtest", NULL);

        vcp_domain_add_disk(rawbase, "vda", "disk", "virtio", 0);
        vcp_domain_disk_append_image(rawbase, "vda", "/t.qcow2", "qcow2", "libvirt-4-format", NULL, 0);
        vcp_domain_disk_append_image(rawbase, "vda", "/b.raw", "raw", "libvirt-1-format", NULL, 0);
        step = vcp_commit_step(rawbase, "vda", nd, "libvirt-4-format", "libvirt-1-format", "commit-vda", 0);
        TAP_OK(step && vcp_step_commands(step, VCP_STEP_ON_READY, &cmds) == 2 &&
               strcmp(cmds[0], activewrite("libvirt-1-format", 1)) == 0 && strstr(cmds[1], "job-complete"),
               "active commit into a raw base: only the pivot's transient bitmap");
        vcp_string_list_free(cmds);
        TAP_OK(step && vcp_step_commands(step, VCP_STEP_ON_END, &cmds) == 2 &&
               strcmp(cmds[0], activewrite("libvirt-1-format", 0)) == 0 && strstr(cmds[1], "job-dismiss"),
               "active commit into a raw base: nothing merged, the transient bitmap removed");
        vcp_string_list_free(cmds);
        vcp_domain_free(rawbase);
    }
    vcp_step_free(step);
    vcp_node_data_free(nd);
    vcp_domain_free(dom);
}

/* The disk's <driver> options reach the reopen of its images, in libvirt's order;
 * detect_zeroes only where the image was opened with it (the top). */
static void
check_reopen_options(void)
{
    vcp_domain *dom = lvtest(4, 1);
    char *top = NULL, *base = NULL;

    TAP_OK(vcp_domain_disk_set_driver(dom, "vda", "none", "unmap", "unmap", 0) == 0,
           "driver options set");
    TAP_OK((base = vcp_blockdev_reopen_command(dom, "libvirt-1-format", 1)) &&
           strcmp(base, "{\"execute\":\"blockdev-reopen\",\"arguments\":{\"options\":[{"
                  "\"node-name\":\"libvirt-1-format\",\"read-only\":true,\"discard\":\"unmap\","
                  "\"cache\":{\"direct\":true,\"no-flush\":false},\"driver\":\"qcow2\","
                  "\"file\":\"libvirt-1-storage\",\"backing\":null}]}}") == 0,
           "backing layer: discard and cache");
    TAP_OK((top = vcp_blockdev_reopen_command(dom, "libvirt-4-format", 0)) &&
           strstr(top, "\"discard\":\"unmap\",\"detect-zeroes\":\"unmap\",\"cache\"") &&
           strstr(top, "\"backing\":\"libvirt-1-format\""),
           "top: detect-zeroes too");
    vcp_free(top);
    vcp_free(base);
    base = NULL;
    TAP_OK(vcp_domain_disk_set_driver(dom, "vda", NULL, NULL, "unmap", 0) == 0 &&
           (base = vcp_blockdev_reopen_command(dom, "libvirt-4-format", 0)) &&
           strstr(base, "\"detect-zeroes\":\"on\"") && !strstr(base, "cache"),
           "detect_zeroes=unmap without discard=unmap is sent as on");
    vcp_free(base);
    TAP_OK(vcp_domain_disk_set_driver(dom, "vda", "fast", NULL, NULL, 0) == -1 &&
           tap_err_is(VCP_ERR_XML_ERROR,
                      "XML error: Invalid value for attribute 'cache' in element 'driver': 'fast'."),
           "an unknown cache mode is refused as libvirt's parser does");
    TAP_OK(vcp_domain_disk_set_driver(dom, "vdz", NULL, NULL, NULL, 0) == -1 &&
           tap_err_code() == VCP_ERR_INVALID_ARG, "no such disk");

    /* Where QEMU reports the backing layer opened with detect_zeroes (libvirt 11 opens
     * every image so), its reopen around a delete carries it. */
    {
        vcp_node_data *nd = vcp_node_data_new();
        vcp_checkpoint_def *def = vcp_checkpoint_def_new("c1", 1, 0);
        vcp_node_info ni;
        vcp_step *step = NULL;
        char **cmds = NULL;
        int i, ok = vcp_domain_disk_set_driver(dom, "vda", "none", "unmap", "unmap", 0) == 0 &&
                    vcp_checkpoint_def_add_disk(def, "vda", VCP_CHECKPOINT_TYPE_BITMAP, "c1") == 0;

        for (i = 4; ok && i >= 1; i--) {
            char node[32];
            snprintf(node, sizeof(node), "libvirt-%d-format", i);
            ok = vcp_node_data_add_node(nd, node, 1 << 30, i == 1 ? VCP_NODE_DETECT_ZEROES_UNMAP : 0) == 0 &&
                 ((i != 1 && i != 4) ||
                  vcp_node_data_add_bitmap(nd, node, "c1", VCP_BITMAP_RECORDING | VCP_BITMAP_PERSISTENT,
                                           65536, 0) == 0);
        }
        TAP_OK(ok && vcp_node_data_get_node(nd, "libvirt-1-format", &ni) == 1 &&
               (ni.flags & VCP_NODE_DETECT_ZEROES_UNMAP), "the node's detect_zeroes is kept");
        TAP_OK(vcp_node_data_add_node(nd, "two", 1, VCP_NODE_DETECT_ZEROES_ON | VCP_NODE_DETECT_ZEROES_OFF) == -1 &&
               tap_err_code() == VCP_ERR_INVALID_ARG, "a node has one detect_zeroes");
        TAP_OK((step = vcp_discard_step(dom, def, nd, 0)) && vcp_step_commands(step, VCP_STEP_NOW, &cmds) == 3 &&
               strstr(cmds[0], "\"node-name\":\"libvirt-1-format\",\"read-only\":false,\"discard\":\"unmap\","
                      "\"detect-zeroes\":\"unmap\""),
               "the backing layer's reopen carries the detect_zeroes QEMU reports (%s)", cmds ? cmds[0] : "");
        vcp_string_list_free(cmds);
        vcp_step_free(step);
        vcp_checkpoint_def_free(def);
        vcp_node_data_free(nd);
    }
    vcp_domain_free(dom);
}

int
main(int argc, char **argv)
{
    datadir = tap_datadir(argc, argv);
    check_create();
    check_discard();
    check_validate();
    check_backup();
    check_snapshot();
    check_block_jobs();
    check_size();
    check_steps();
    check_reopen_options();
    return TAP_DONE();
}
