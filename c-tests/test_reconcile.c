/* Reconcile, fix, the per-disk backup resolver and offline plans through the C ABI,
 * on libvirt 9.0's recorded state (c2's bitmap removed behind libvirt's back) and on
 * real qemu-img output. argv[1] is the tests/data folder. */
#include "virtcheckpoint.h"
#include "tap.h"

/* The number of problems vcp_reconcile() reports (its JSON report freed). */
static int
problems(const vcp_domain *dom, const vcp_checkpoint_list *list, const vcp_node_data *nodes,
         unsigned int flags)
{
    char *report = NULL;
    int n = vcp_reconcile(dom, list, nodes, &report, flags);
    vcp_free(report);
    return n;
}

static const char *datadir;

static vcp_checkpoint_def *
stored(const char *name, const char *parent, int ctime)
{
    char xml[512];
    snprintf(xml, sizeof(xml),
             "<domaincheckpoint><name>%s</name>%s%s%s<creationTime>%d</creationTime>"
             "<disks><disk name='vda' checkpoint='bitmap'/></disks></domaincheckpoint>",
             name, parent ? "<parent><name>" : "", parent ? parent : "",
             parent ? "</name></parent>" : "", ctime);
    return vcp_checkpoint_def_parse_xml(xml, NULL, VCP_CHECKPOINT_PARSE_REDEFINE);
}

static vcp_checkpoint_list *
chain_list(int with_c2, int with_c3)
{
    vcp_checkpoint_list *list = vcp_checkpoint_list_new();
    vcp_checkpoint_def *d = stored("c1", NULL, 1);
    vcp_checkpoint_list_add(list, d, VCP_CHECKPOINT_LIST_ADD_REDEFINE);
    vcp_checkpoint_def_free(d);
    if (with_c2) {
        d = stored("c2", "c1", 2);
        vcp_checkpoint_list_add(list, d, VCP_CHECKPOINT_LIST_ADD_REDEFINE);
        vcp_checkpoint_def_free(d);
    }
    if (with_c3) {
        d = stored("c3", with_c2 ? "c2" : "c1", 3);
        vcp_checkpoint_list_add(list, d, VCP_CHECKPOINT_LIST_ADD_REDEFINE);
        vcp_checkpoint_def_free(d);
    }
    return list;
}

static void
check_online(void)
{
    char *xml = tap_read_file(datadir, "libvirt-9.0-qmp/74_status_xml_end.xml");
    char *json = tap_read_file(datadir, "replies/70_fail_checkpoint_redefine_validate_c2_bitmap_missing.json");
    vcp_domain *dom = xml ? vcp_domain_parse_xml(xml, 0) : NULL;
    vcp_node_data *nodes = json ? vcp_node_data_parse_json(json, 0) : NULL;
    vcp_checkpoint_list *list = chain_list(1, 1);
    char *report = NULL, *actions = NULL, *cleanup = NULL, *resolution = NULL, *parent = NULL;
    char **reopen = NULL;
    vcp_backup_disk disk = { "vda", NULL, "libvirt-9-format", NULL };

    TAP_OK(dom && nodes, "recorded state loads");
    TAP_OK(vcp_reconcile(dom, list, nodes, &report, 0) == 1 &&
           strstr(report, "{\"name\":\"c2\",\"disks\":[{\"disk\":\"vda\",\"state\":\"missing\",\"layer\":0,"
                          "\"layers\":[false]}]}") &&
           strstr(report, "{\"name\":\"c1\",\"disks\":[{\"disk\":\"vda\",\"state\":\"ok\""),
           "reconcile names c2's missing bitmap on vda, c1 ok");
    vcp_free(report);

    TAP_OK(vcp_backup_resolve_actions(dom, nodes, list, "c2", VCP_BACKUP_PUSH, &disk, 1, NULL,
                                      &actions, &cleanup, &resolution, 0) == 0 &&
           strcmp(resolution, "[{\"disk\":\"vda\",\"mode\":\"full\",\"reason\":\"missing\"}]") == 0 &&
           strstr(actions, "\"sync\":\"full\""),
           "resolver: a backup from c2 falls back to full on vda, with the reason");
    vcp_free(actions);
    vcp_free(cleanup);
    vcp_free(resolution);
    TAP_OK(vcp_backup_resolve_actions(dom, nodes, list, "c1", VCP_BACKUP_PUSH, &disk, 1, NULL,
                                      &actions, &cleanup, &resolution, 0) == 0 &&
           strcmp(resolution, "[{\"disk\":\"vda\",\"mode\":\"incremental\"}]") == 0 &&
           strstr(actions, "\"sync\":\"incremental\",\"bitmap\":\"backup-vda\""),
           "resolver: from c1 it stays incremental");
    vcp_free(actions);
    vcp_free(cleanup);
    vcp_free(resolution);

    {
        vcp_checkpoint_delete_plan *plan = vcp_checkpoint_list_plan_delete(list, "c2", VCP_CHECKPOINT_DELETE_CHILDREN);
        char **missing = NULL;
        TAP_OK(plan && vcp_checkpoint_delete_plan_check(plan, list, dom, nodes, 0) == -1 &&
               tap_err_is(VCP_ERR_INTERNAL_ERROR,
                          "internal error: bitmap 'c2' not found in backing chain of 'vda'"),
               "delete plan check: c2's bitmap is gone, so the whole delete fails before c3's "
               "discard is sent");
        TAP_OK(vcp_checkpoint_delete_plan_check(plan, list, dom, nodes,
                                                VCP_CHECKPOINT_DISCARD_IGNORE_MISSING) == 0 &&
               vcp_checkpoint_delete_plan_check(plan, list, dom, nodes, 1u << 7) == -1 &&
               tap_err_code() == VCP_ERR_INVALID_ARG &&
               vcp_checkpoint_delete_plan_check(NULL, list, dom, nodes, 0) == -1,
               "delete plan check: IGNORE_MISSING passes; unknown flags and NULL refused");
        TAP_OK(plan && vcp_checkpoint_delete_plan_discard_actions(plan, list, dom, nodes, 0, &actions,
                                                                   &reopen, &missing, 0) == 0 &&
               missing && !missing[0] &&
               strcmp(actions, "[{\"type\":\"block-dirty-bitmap-remove\",\"data\":"
                               "{\"node\":\"libvirt-6-format\",\"name\":\"c3\"}}]") == 0,
               "delete plan: c3 is discarded first, from the node data read before it");
        vcp_free(actions);
        vcp_string_list_free(reopen);
        vcp_string_list_free(missing);
        actions = NULL;
        missing = NULL;
        TAP_OK(vcp_checkpoint_delete_plan_discard_actions(plan, list, dom, nodes, 1, &actions,
                                                          &reopen, &missing, 0) == -1 && actions == NULL &&
               missing == NULL &&
               tap_err_is(VCP_ERR_INTERNAL_ERROR,
                          "internal error: bitmap 'c2' not found in backing chain of 'vda'"),
               "delete plan: then c2, whose bitmap is gone: libvirt's error");
        TAP_OK(vcp_checkpoint_delete_plan_discard_actions(plan, list, dom, nodes, 1, &actions, &reopen,
                                                          &missing, VCP_CHECKPOINT_DISCARD_IGNORE_MISSING) == 0 &&
               strcmp(actions, "[]") == 0 && missing && strcmp(missing[0], "vda") == 0,
               "delete plan: with IGNORE_MISSING the stuck delete goes through");
        vcp_free(actions);
        vcp_string_list_free(reopen);
        vcp_string_list_free(missing);
        TAP_OK(vcp_checkpoint_delete_plan_discard_actions(plan, list, dom, nodes, 2, &actions,
                                                          &reopen, &missing, 0) == -1 &&
               tap_err_code() == VCP_ERR_INVALID_ARG, "delete plan: index out of range");
        vcp_checkpoint_delete_plan_free(plan);
    }
    TAP_OK(vcp_reconcile_fix_actions(dom, list, nodes, &actions, &reopen, 0) == 0 &&
           strcmp(actions, "[]") == 0 && reopen && !reopen[0],
           "fix: c2 has no copy left to remove; nothing else is touched");
    vcp_free(actions);
    vcp_string_list_free(reopen);
    TAP_OK(vcp_reconcile_fix_metadata(list, dom, nodes, NULL, NULL, 0) == 2 &&
           vcp_checkpoint_list_lookup(list, "c2") == NULL &&
           vcp_checkpoint_list_get_parent(list, "c3", &parent) == 0 && parent &&
           strcmp(parent, "c1") == 0,
           "fix metadata: c2 dropped, c3 re-parented to c1 (2 checkpoints changed)");
    vcp_free(parent);
    TAP_OK(problems(dom, list, nodes, 0) == 0, "clean afterwards");
    vcp_checkpoint_list_free(list);

    /* c3's bitmap without metadata: an orphan, removed by the fix. */
    list = chain_list(0, 0);
    TAP_OK(problems(dom, list, nodes, 0) == 1, "c3 without metadata is one problem");
    TAP_OK(vcp_reconcile_fix_actions(dom, list, nodes, &actions, &reopen, 0) == 0 &&
           strcmp(actions, "[{\"type\":\"block-dirty-bitmap-remove\",\"data\":"
                           "{\"node\":\"libvirt-6-format\",\"name\":\"c3\"}}]") == 0,
           "fix: the orphan is removed, c1 kept");
    vcp_free(actions);
    vcp_string_list_free(reopen);
    TAP_OK(problems(dom, list, nodes, 1) == -1 && tap_err_code() == VCP_ERR_INVALID_ARG,
           "unknown flag refused");
    vcp_checkpoint_list_free(list);
    vcp_node_data_free(nodes);
    vcp_domain_free(dom);
    free(xml);
    free(json);
}

static void
check_offline(void)
{
    const char *xml =
        "<domain type='kvm'><name>off</name><devices><disk type='file' device='disk'>"
        "<driver name='qemu' type='qcow2'/><source file='top.qcow2'/>"
        "<backingStore type='file'><format type='qcow2'/><source file='base.qcow2'/>"
        "<backingStore/></backingStore><target dev='vda' bus='virtio'/></disk></devices></domain>";
    char *info = tap_read_file(datadir, "qemu-img/info-backing-chain.json");
    vcp_domain *dom = vcp_domain_parse_xml(xml, 0);
    vcp_node_data *nodes = vcp_node_data_new();
    vcp_checkpoint_list *list = chain_list(1, 0);
    vcp_checkpoint_def *c3 = vcp_checkpoint_def_parse_xml("<domaincheckpoint><name>c3</name></domaincheckpoint>", dom, 0);
    vcp_checkpoint_def *c2 = vcp_checkpoint_list_lookup(list, "c2");
    vcp_checkpoint_def *c9 = stored("c9", NULL, 9);
    char *report = NULL, *cmds = NULL;
    char **missing = NULL;

    TAP_OK(info && vcp_node_data_add_image_info(nodes, dom, "vda", info, 0) == 0,
           "qemu-img info --backing-chain output read into node data");
    TAP_OK(vcp_node_data_add_image_info(nodes, dom, "vda", "[{", 0) == -1 &&
           tap_err_code() == VCP_ERR_INTERNAL_ERROR, "malformed qemu-img output refused");
    TAP_OK(vcp_reconcile(dom, list, nodes, &report, 0) == 3 &&
           strstr(report, "{\"name\":\"c1\",\"disks\":[{\"disk\":\"vda\",\"state\":\"missing\"") &&
           strstr(report, "\"name\":\"orphan\"") && strstr(report, "\"name\":\"old\""),
           "offline reconcile: c1 missing on top, orphans 'orphan' and 'old'");
    vcp_free(report);
    TAP_OK(vcp_reconcile_fix_commands(dom, list, nodes, &cmds, 0) == 0 &&
           strstr(cmds, "[\"qemu-img\",\"bitmap\",\"--remove\",\"top.qcow2\",\"orphan\"]") &&
           strstr(cmds, "[\"qemu-img\",\"bitmap\",\"--remove\",\"base.qcow2\",\"c1\"]") &&
           strstr(cmds, "[\"qemu-img\",\"bitmap\",\"--remove\",\"base.qcow2\",\"old\"]") &&
           !strstr(cmds, "\"c2\""),
           "offline fix: qemu-img commands remove the broken and orphan bitmaps, never c2");
    vcp_free(cmds);
    TAP_OK(c3 && vcp_offline_create_commands(dom, c3, nodes, &cmds, 0) == 0 &&
           strcmp(cmds, "[[\"qemu-img\",\"bitmap\",\"--add\",\"top.qcow2\",\"c3\"]]") == 0,
           "offline create");
    vcp_free(cmds);
    TAP_OK(c2 && vcp_offline_delete_commands(dom, c2, nodes, &cmds, &missing, 0) == 0 &&
           missing && !missing[0] &&
           strcmp(cmds, "[[\"qemu-img\",\"bitmap\",\"--remove\",\"top.qcow2\",\"c2\"],"
                        "[\"qemu-img\",\"bitmap\",\"--remove\",\"base.qcow2\",\"c2\"]]") == 0,
           "offline delete removes c2 from both layers");
    vcp_free(cmds);
    vcp_string_list_free(missing);
    cmds = NULL;
    missing = NULL;
    TAP_OK(vcp_offline_delete_commands(dom, c9, nodes, &cmds, &missing, 0) == -1 && cmds == NULL &&
           tap_err_is(VCP_ERR_INTERNAL_ERROR, "internal error: bitmap 'c9' not found in backing chain of 'vda'"),
           "offline delete of a bitmap that is nowhere: libvirt's error");
    TAP_OK(vcp_offline_delete_commands(dom, c9, nodes, &cmds, &missing,
                                       VCP_CHECKPOINT_DISCARD_IGNORE_MISSING) == 0 &&
           strcmp(cmds, "[]") == 0 && missing && strcmp(missing[0], "vda") == 0,
           "offline delete with IGNORE_MISSING reports vda and succeeds");
    vcp_free(cmds);
    vcp_string_list_free(missing);
    vcp_checkpoint_def_free(c9);
    vcp_checkpoint_def_free(c2);
    vcp_checkpoint_def_free(c3);
    vcp_checkpoint_list_free(list);
    vcp_node_data_free(nodes);
    vcp_domain_free(dom);
    free(info);
}

/* Adopting bitmaps whose metadata was lost, and the chain reset. */
static void
check_adopt_and_reset(void)
{
    const char *two = "[{\"node-name\":\"libvirt-1-format\",\"image\":{\"virtual-size\":1},"
                      "\"dirty-bitmaps\":[{\"name\":\"b\",\"recording\":true,\"persistent\":true,"
                      "\"count\":65536,\"granularity\":65536},{\"name\":\"a\",\"recording\":true,"
                      "\"persistent\":true,\"count\":131072,\"granularity\":65536}]}]";
    const char *tied = "[{\"node-name\":\"libvirt-1-format\",\"image\":{\"virtual-size\":1},"
                       "\"dirty-bitmaps\":[{\"name\":\"x\",\"recording\":true,\"persistent\":true,"
                       "\"count\":0},{\"name\":\"y\",\"recording\":true,\"persistent\":true,"
                       "\"count\":0}]}]";
    vcp_domain *dom = vcp_domain_new("vm", NULL);
    vcp_node_data *nodes = vcp_node_data_parse_json(two, 0);
    vcp_node_data *tie = vcp_node_data_parse_json(tied, 0);
    vcp_checkpoint_list *list = vcp_checkpoint_list_new();
    char **names = NULL, *parent = NULL;
    vcp_step *step;

    vcp_domain_add_disk(dom, "vda", NULL, NULL, 0);
    vcp_domain_disk_append_image(dom, "vda", "/i/vda.qcow2", "qcow2", "libvirt-1-format", NULL, 0);
    TAP_OK(vcp_checkpoint_list_adopt(list, dom, nodes, NULL, NULL, &names, 0) == 2 &&
           strcmp(names[0], "a") == 0 && strcmp(names[1], "b") == 0,
           "adopt: a (more dirty data) is older than b");
    vcp_string_list_free(names);
    TAP_OK(vcp_checkpoint_list_get_parent(list, "b", &parent) == 0 && parent && strcmp(parent, "a") == 0,
           "adopt: b's parent is a");
    vcp_free(parent);
    names = NULL;
    TAP_OK(vcp_checkpoint_list_adopt(list, dom, tie, NULL, NULL, &names, 0) == -1 && names == NULL &&
           tap_err_code() == VCP_ERR_OPERATION_INVALID &&
           strstr(vcp_last_error_message(), "cannot tell whether bitmap 'x' or 'y' is the older"),
           "adopt: an order the data cannot decide is refused, not guessed");
    TAP_OK(problems(dom, list, nodes, 0) == 0, "adopted: clean");

    step = vcp_reset_step(dom, nodes, 0);
    TAP_OK(step && vcp_step_commands(step, VCP_STEP_NOW, &names) == 1 &&
           strstr(names[0], "\"name\":\"b\"") && strstr(names[0], "\"name\":\"a\""),
           "reset: one transaction removing both bitmaps");
    vcp_string_list_free(names);
    vcp_step_free(step);
    TAP_OK(vcp_checkpoint_list_retire_all(list, NULL, NULL, 0) == 2 &&
           vcp_checkpoint_list_names(list, NULL, 0, &names) == 0, "reset: both checkpoints retired");
    vcp_string_list_free(names);
    step = vcp_fix_step(dom, list, nodes, 0);
    TAP_OK(step && vcp_step_commands(step, VCP_STEP_NOW, &names) == 1, "fix step: the orphans' removal");
    vcp_string_list_free(names);
    vcp_step_free(step);
    vcp_checkpoint_list_free(list);
    vcp_node_data_free(tie);
    vcp_node_data_free(nodes);
    vcp_domain_free(dom);
}

static vcp_checkpoint_def *
named(const char *name)
{
    static int created = 100;
    char xml[256];
    snprintf(xml, sizeof(xml), "<domaincheckpoint><name>%s</name><creationTime>%d</creationTime>"
             "<disks><disk name='vda' checkpoint='bitmap' bitmap='%s'/></disks></domaincheckpoint>",
             name, created++, name);
    return vcp_checkpoint_def_parse_xml(xml, NULL, VCP_CHECKPOINT_PARSE_REDEFINE);
}

/* Two-phase backup checkpoints and owners through the C ABI. */
static void
check_pending_and_owners(void)
{
    char base[] = "/tmp/vcp-c-pending-XXXXXX";
    const char *orphans = "[{\"node-name\":\"libvirt-1-format\",\"image\":{\"virtual-size\":1},"
                          "\"dirty-bitmaps\":[{\"name\":\"a:x\",\"recording\":true,\"persistent\":true},"
                          "{\"name\":\"b:y\",\"recording\":true,\"persistent\":true}]}]";
    vcp_domain *dom = vcp_domain_new("vm", NULL);
    vcp_node_data *nodes = vcp_node_data_parse_json(orphans, 0);
    vcp_checkpoint_list *list = vcp_checkpoint_list_new();
    vcp_checkpoint_delete_plan *plan;
    vcp_step *step;
    char **names = NULL;
    const char *owned[] = { "a:1", "b:1", "a:2" };
    size_t i;

    vcp_domain_add_disk(dom, "vda", NULL, NULL, 0);
    vcp_domain_disk_append_image(dom, "vda", "/i/vda.qcow2", "qcow2", "libvirt-1-format", NULL, 0);
    TAP_OK(mkdtemp(base) != NULL, "a metadata folder");
    TAP_OK(vcp_checkpoint_pending_begin(base, "vm", "p1", 0) == 0 &&
           vcp_checkpoint_pending_names(base, "vm", &names) == 1 && strcmp(names[0], "p1") == 0,
           "pending: p1 is in the journal");
    vcp_string_list_free(names);
    TAP_OK(vcp_checkpoint_pending_commit(base, "vm", "p1", 0) == 0 &&
           vcp_checkpoint_pending_names(base, "vm", &names) == 0, "pending: committed, journal empty");
    vcp_string_list_free(names);
    {
        vcp_checkpoint_def *p2 = named("p2");
        TAP_OK(vcp_checkpoint_pending_begin(base, "vm", "p2", 0) == 0 && p2 &&
               vcp_checkpoint_list_add(list, p2, 0) == 1 &&
               vcp_checkpoint_list_save(list, base, "vm", "p2", 0) == 0 &&
               vcp_checkpoint_list_drop_pending(list, base, "vm", "p2", 0) == 0 &&
               vcp_checkpoint_list_lookup(list, "p2") == NULL &&
               vcp_checkpoint_pending_names(base, "vm", &names) == 0,
               "pending: dropped from the tree, the files and the journal");
        vcp_string_list_free(names);
        vcp_checkpoint_def_free(p2);
    }
    TAP_OK(vcp_checkpoint_pending_begin(base, "vm", "../x", 0) == -1 &&
           tap_err_code() == VCP_ERR_INVALID_ARG, "pending: a name that is no file name is refused");
    step = vcp_pending_abort_step(dom, nodes, "a:x", 0);
    TAP_OK(step && vcp_step_commands(step, VCP_STEP_NOW, &names) == 1 &&
           strstr(names[0], "\"name\":\"a:x\"") && !strstr(names[0], "b:y"),
           "pending abort: only that checkpoint's bitmap is removed");
    vcp_string_list_free(names);
    vcp_step_free(step);

    for (i = 0; i < 3; i++) {
        vcp_checkpoint_def *d = named(owned[i]);
        vcp_checkpoint_list_add(list, d, 0);
        vcp_checkpoint_def_free(d);
    }
    TAP_OK(vcp_checkpoint_list_owned_names(list, "a", &names) == 2 && strcmp(names[0], "a:1") == 0,
           "owners: a's checkpoints");
    vcp_string_list_free(names);
    TAP_OK(vcp_checkpoint_list_plan_retention(list, "a", 1, &names) == 1 && strcmp(names[0], "a:1") == 0,
           "owners: retention keeps a's newest only");
    vcp_string_list_free(names);
    plan = vcp_checkpoint_list_plan_delete_owned(list, "b:1", "a", 0);
    TAP_OK(plan == NULL && tap_err_code() == VCP_ERR_OPERATION_INVALID &&
           strstr(vcp_last_error_message(), "'b:1' does not belong to owner 'a'"),
           "owners: a cannot delete b's checkpoint");
    step = vcp_fix_step_owner(dom, list, nodes, "b", 0);
    TAP_OK(step && vcp_step_commands(step, VCP_STEP_NOW, &names) == 1 &&
           strstr(names[0], "b:y") && !strstr(names[0], "a:x"),
           "owners: b's fix never removes a's bitmap");
    vcp_string_list_free(names);
    vcp_step_free(step);
    vcp_checkpoint_list_free(list);
    vcp_node_data_free(nodes);
    vcp_domain_free(dom);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
        TAP_OK(system(cmd) == 0, "cleanup");
    }
}

int
main(int argc, char **argv)
{
    datadir = tap_datadir(argc, argv);
    check_online();
    check_offline();
    check_adopt_and_reset();
    check_pending_and_owners();
    return TAP_DONE();
}
