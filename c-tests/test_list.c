/* The checkpoint tree and its metadata files through the C ABI: create, redefine
 * (cycles, replacement, current), lookup, listing flags, delete plans with every flag,
 * a plan dropped after QEMU refused, and libvirt's on-disk layout. */
#include <stdlib.h>
#include <unistd.h>

#include "virtcheckpoint.h"
#include "tap.h"

static vcp_checkpoint_def *
mkdef(const char *name, const char *parent, long long ctime)
{
    char xml[512];
    snprintf(xml, sizeof(xml),
             "<domaincheckpoint><name>%s</name>%s%s%s<creationTime>%lld</creationTime>"
             "<disks><disk name='vda' checkpoint='bitmap'/></disks></domaincheckpoint>",
             name, parent ? "<parent><name>" : "", parent ? parent : "",
             parent ? "</name></parent>" : "", ctime);
    return vcp_checkpoint_def_parse_xml(xml, NULL, VCP_CHECKPOINT_PARSE_REDEFINE);
}

static int
add(vcp_checkpoint_list *list, const char *name, const char *parent, unsigned int flags)
{
    static long long ctime = 1000;
    vcp_checkpoint_def *def = mkdef(name, parent, ctime++);
    int rc = def ? vcp_checkpoint_list_add(list, def, flags) : -1;
    vcp_checkpoint_def_free(def);
    return rc;
}

/* The names listed, joined with ','. */
static char *
names(vcp_checkpoint_list *list, const char *from, unsigned int flags)
{
    static char buf[512];
    char **n = NULL;
    int count = vcp_checkpoint_list_names(list, from, flags, &n);
    int i;
    buf[0] = '\0';
    if (count < 0)
        return strcpy(buf, "ERROR");
    for (i = 0; i < count; i++) {
        if (i)
            strcat(buf, ",");
        strcat(buf, n[i]);
    }
    vcp_string_list_free(n);
    return buf;
}

static int
current_is(vcp_checkpoint_list *list, const char *want)
{
    char *cur = NULL;
    int ok = vcp_checkpoint_list_get_current(list, &cur) == 0 &&
             ((want == NULL && cur == NULL) || (want && cur && strcmp(cur, want) == 0));
    vcp_free(cur);
    return ok;
}

int
main(void)
{
    vcp_checkpoint_list *list = vcp_checkpoint_list_new();
    vcp_checkpoint_list *loaded;
    vcp_checkpoint_delete_plan *plan;
    vcp_checkpoint_def *def;
    char tmpl[] = "/tmp/vcp-list-XXXXXX";
    char *base = mkdtemp(tmpl);
    char **arr = NULL, *s = NULL;
    char path[512];
    int n;

    /* a -> b -> c, b -> d: created checkpoints hang below the current one. */
    TAP_OK(add(list, "a", NULL, 0) == 1 && add(list, "b", NULL, 0) == 1 && add(list, "c", NULL, 0) == 1,
           "create a, b, c");
    TAP_OK(vcp_checkpoint_list_set_current(list, "b") == 0 && add(list, "d", NULL, 0) == 1,
           "make b current, create d");
    TAP_OK(current_is(list, "d"), "the new checkpoint is current");
    TAP_OK(vcp_checkpoint_list_get_parent(list, "d", &s) == 0 && s && strcmp(s, "b") == 0,
           "d's parent is b");
    vcp_free(s);
    TAP_OK(vcp_checkpoint_list_get_parent(list, "a", &s) == 0 && s == NULL, "a is a root");
    TAP_OK(add(list, "c", NULL, 0) == -1 &&
           tap_err_is(VCP_ERR_OPERATION_FAILED, "operation failed: domain moment c already exists"),
           "creating a name in use fails as libvirt does");
    TAP_OK(vcp_checkpoint_list_lookup(list, "zz") == NULL &&
           tap_err_is(VCP_ERR_NO_DOMAIN_CHECKPOINT,
                      "Domain checkpoint not found: no domain checkpoint with matching name 'zz'"),
           "lookup of an unknown checkpoint");
    def = vcp_checkpoint_list_lookup(list, "d");
    TAP_OK(def && vcp_checkpoint_def_get_parent(def, &s) == 0 && s && strcmp(s, "b") == 0,
           "lookup returns a copy with the parent filled in");
    vcp_free(s);
    vcp_checkpoint_def_free(def);

    /* Listing flags. */
    TAP_OK(strcmp(names(list, NULL, 0), "a,b,c,d") == 0, "list all");
    TAP_OK(strcmp(names(list, NULL, VCP_CHECKPOINT_LIST_ROOTS), "a") == 0, "ROOTS");
    TAP_OK(strcmp(names(list, NULL, VCP_CHECKPOINT_LIST_TOPOLOGICAL), "a,b,d,c") == 0,
           "TOPOLOGICAL: siblings newest first, as libvirt lists them");
    TAP_OK(strcmp(names(list, NULL, VCP_CHECKPOINT_LIST_LEAVES), "c,d") == 0, "LEAVES");
    TAP_OK(strcmp(names(list, NULL, VCP_CHECKPOINT_LIST_NO_LEAVES), "a,b") == 0, "NO_LEAVES");
    TAP_OK(strcmp(names(list, "a", 0), "b") == 0, "children of a");
    TAP_OK(strcmp(names(list, "a", VCP_CHECKPOINT_LIST_DESCENDANTS), "b,d,c") == 0, "DESCENDANTS of a");
    TAP_OK(strcmp(names(list, "a", VCP_CHECKPOINT_LIST_DESCENDANTS | VCP_CHECKPOINT_LIST_LEAVES), "d,c") == 0,
           "DESCENDANTS | LEAVES");
    TAP_OK(strcmp(names(list, NULL, 0x10), "ERROR") == 0 && tap_err_code() == VCP_ERR_INVALID_ARG,
           "unknown list flag refused");

    /* Redefine: cycles, replacement in place, becoming current. */
    TAP_OK(add(list, "x", "x", VCP_CHECKPOINT_LIST_ADD_REDEFINE) == -1 &&
           tap_err_is(VCP_ERR_INVALID_ARG, "invalid argument: cannot set moment x as its own parent"),
           "redefine: own parent");
    TAP_OK(add(list, "x", "nope", VCP_CHECKPOINT_LIST_ADD_REDEFINE) == -1 &&
           tap_err_is(VCP_ERR_INVALID_ARG, "invalid argument: parent nope for moment x not found"),
           "redefine: unknown parent");
    TAP_OK(add(list, "b", "c", VCP_CHECKPOINT_LIST_ADD_REDEFINE) == -1 &&
           tap_err_is(VCP_ERR_INVALID_ARG, "invalid argument: parent c would create cycle to b"),
           "redefine: cycle");
    TAP_OK(add(list, "b", "a", VCP_CHECKPOINT_LIST_ADD_REDEFINE) == 0 &&
           strcmp(names(list, "b", 0), "d,c") == 0, "redefine in place keeps children");
    TAP_OK(add(list, "e", "d", VCP_CHECKPOINT_LIST_ADD_REDEFINE) == 1 && current_is(list, "e"),
           "a redefined child of the current checkpoint becomes current");

    /* Delete plans: nothing changes until applied. */
    plan = vcp_checkpoint_list_plan_delete(list, "b", 0);
    n = plan ? vcp_checkpoint_delete_plan_get_discard(plan, &arr) : -1;
    TAP_OK(n == 1 && strcmp(arr[0], "b") == 0, "plain delete discards b's bitmaps only");
    vcp_string_list_free(arr);
    vcp_checkpoint_delete_plan_free(plan); /* QEMU refused: drop it */
    TAP_OK(strcmp(names(list, NULL, 0), "a,b,c,d,e") == 0 && current_is(list, "e"),
           "a dropped plan changed nothing");

    plan = vcp_checkpoint_list_plan_delete(list, "b", VCP_CHECKPOINT_DELETE_CHILDREN);
    n = plan ? vcp_checkpoint_delete_plan_get_discard(plan, &arr) : -1;
    TAP_OK(n == 4 && strcmp(arr[0], "d") == 0 && strcmp(arr[1], "e") == 0 &&
           strcmp(arr[2], "c") == 0 && strcmp(arr[3], "b") == 0,
           "CHILDREN: libvirt's order (a child before its own, the newest sibling first), then b");
    vcp_string_list_free(arr);
    TAP_OK(vcp_checkpoint_delete_plan_get_new_current(plan, &s) == 0 && s && strcmp(s, "a") == 0,
           "CHILDREN: the parent becomes current");
    vcp_free(s);
    /* d's discard failed (libvirt goes on with the others): d and b stay, e (the
     * current one) and c go, and no checkpoint is current. */
    TAP_OK(vcp_checkpoint_delete_plan_refuse(plan, list, "d", 0) == 0 &&
           vcp_checkpoint_delete_plan_get_removed(plan, &arr) == 2 && strcmp(arr[0], "e") == 0 &&
           strcmp(arr[1], "c") == 0 && vcp_checkpoint_delete_plan_get_new_current(plan, &s) == 0 &&
           s == NULL, "CHILDREN, a discard refused: that one and b stay, the rest goes");
    vcp_string_list_free(arr);
    TAP_OK(vcp_checkpoint_delete_plan_refuse(plan, list, "zz", 0) == -1 &&
           tap_err_code() == VCP_ERR_INVALID_ARG &&
           vcp_checkpoint_delete_plan_refuse(plan, list, "b", 0) == -1 &&
           vcp_checkpoint_delete_plan_get_removed(plan, &arr) == 2,
           "a checkpoint the plan does not discard (any more) cannot be refused; the plan is unchanged");
    vcp_string_list_free(arr);
    vcp_checkpoint_delete_plan_free(plan);
    {
        /* x -> y -> z: z refused, y goes, z gets x as parent. */
        vcp_checkpoint_list *l2 = vcp_checkpoint_list_new();
        vcp_checkpoint_delete_plan *p2 = NULL;
        TAP_OK(l2 && add(l2, "x", NULL, 0) == 1 && add(l2, "y", NULL, 0) == 1 && add(l2, "z", NULL, 0) == 1 &&
               (p2 = vcp_checkpoint_list_plan_delete(l2, "x", VCP_CHECKPOINT_DELETE_CHILDREN)) &&
               vcp_checkpoint_delete_plan_refuse(p2, l2, "z", 0) == 0 &&
               vcp_checkpoint_list_apply_delete(l2, p2, NULL, NULL, 0) == 0 &&
               strcmp(names(l2, NULL, VCP_CHECKPOINT_LIST_TOPOLOGICAL), "x,z") == 0 &&
               strcmp(names(l2, "x", 0), "z") == 0 && current_is(l2, "z"),
               "a refused checkpoint whose parent went gets its nearest ancestor that stays");
        vcp_checkpoint_delete_plan_free(p2);
        vcp_checkpoint_list_free(l2);
    }

    plan = vcp_checkpoint_list_plan_delete(list, "b", VCP_CHECKPOINT_DELETE_CHILDREN_ONLY);
    n = plan ? vcp_checkpoint_delete_plan_get_removed(plan, &arr) : -1;
    TAP_OK(n == 3 && vcp_checkpoint_list_apply_delete(list, plan, NULL, NULL, 0) == 0 &&
           strcmp(names(list, NULL, 0), "a,b") == 0 && current_is(list, "b"),
           "CHILDREN_ONLY: descendants gone, b kept and current");
    vcp_string_list_free(arr);
    vcp_checkpoint_delete_plan_free(plan);

    plan = vcp_checkpoint_list_plan_delete(list, "b", VCP_CHECKPOINT_DELETE_METADATA_ONLY);
    n = plan ? vcp_checkpoint_delete_plan_get_discard(plan, &arr) : -1;
    TAP_OK(n == 0 && arr && arr[0] == NULL, "METADATA_ONLY: no bitmap to discard");
    vcp_string_list_free(arr);
    TAP_OK(vcp_checkpoint_list_apply_delete(list, plan, NULL, NULL, 0) == 0 && current_is(list, "a"),
           "METADATA_ONLY on the current checkpoint: its parent becomes current");
    vcp_checkpoint_delete_plan_free(plan);
    TAP_OK(vcp_checkpoint_list_plan_delete(list, "zz", 0) == NULL &&
           tap_err_code() == VCP_ERR_NO_DOMAIN_CHECKPOINT, "delete of an unknown checkpoint");
    TAP_OK(vcp_checkpoint_list_plan_delete(list, "a", 8) == NULL && tap_err_code() == VCP_ERR_INVALID_ARG,
           "unknown delete flag refused");

    /* On disk: save, reload, delete with re-parenting rewrites the child's file. */
    TAP_OK(base != NULL, "temporary folder");
    TAP_OK(add(list, "f", NULL, 0) == 1 && add(list, "g", NULL, 0) == 1 &&
           vcp_checkpoint_list_save(list, base, "vm", "a", 0) == 0 &&
           vcp_checkpoint_list_save(list, base, "vm", "f", 0) == 0 &&
           vcp_checkpoint_list_save(list, base, "vm", "g", 0) == 0,
           "save a, f, g as <base>/vm/<name>.xml");
    TAP_OK(vcp_checkpoint_list_save(list, base, "vm", "nope", 0) == -1 &&
           tap_err_code() == VCP_ERR_NO_DOMAIN_CHECKPOINT, "save of an unknown checkpoint");
    snprintf(path, sizeof(path), "%s/vm/junk.xml", base);
    {
        FILE *fp = fopen(path, "w");
        if (fp) {
            fputs("<domaincheckpoint><name>ju", fp);
            fclose(fp);
        }
    }
    loaded = vcp_checkpoint_list_load(base, "vm", &arr, 0);
    TAP_OK(loaded && strcmp(names(loaded, NULL, VCP_CHECKPOINT_LIST_TOPOLOGICAL), "a,f,g") == 0 &&
           current_is(loaded, "g"), "load rebuilds a -> f -> g, the only leaf is current");
    TAP_OK(arr && arr[0] && strstr(arr[0], "junk.xml: ") && !arr[1],
           "the half-written file is reported with its path");
    vcp_string_list_free(arr);
    unlink(path);
    plan = loaded ? vcp_checkpoint_list_plan_delete(loaded, "f", 0) : NULL;
    TAP_OK(plan && vcp_checkpoint_list_apply_delete(loaded, plan, base, "vm", 0) == 0, "delete f on disk");
    vcp_checkpoint_delete_plan_free(plan);
    vcp_checkpoint_list_free(loaded);
    loaded = vcp_checkpoint_list_load(base, "vm", &arr, 0);
    TAP_OK(arr && !arr[0], "no problems: an empty list");
    vcp_string_list_free(arr);
    TAP_OK(loaded && strcmp(names(loaded, NULL, VCP_CHECKPOINT_LIST_TOPOLOGICAL), "a,g") == 0 &&
           vcp_checkpoint_list_get_parent(loaded, "g", &s) == 0 && s && strcmp(s, "a") == 0,
           "reloaded: g re-parented to a on disk, f's file gone");
    vcp_free(s);
    vcp_checkpoint_list_free(loaded);
    TAP_OK(vcp_checkpoint_list_load(base, "../etc", &arr, 0) == NULL && tap_err_code() == VCP_ERR_INVALID_ARG,
           "a domain name that escapes the folder is refused");

    snprintf(path, sizeof(path), "%s/vm/a.xml", base);
    unlink(path);
    snprintf(path, sizeof(path), "%s/vm/g.xml", base);
    unlink(path);
    snprintf(path, sizeof(path), "%s/vm", base);
    rmdir(path);
    rmdir(base);
    vcp_checkpoint_list_free(list);
    vcp_checkpoint_list_free(NULL);
    return TAP_DONE();
}
