/* The header's calling conventions, as a libvirt developer relies on them:
 * NULL arguments, unknown flags, invalid UTF-8, error reset, per-thread errors,
 * frees that accept NULL, out-parameters untouched on failure. */
#include <pthread.h>

#include "virtcheckpoint.h"
#include "tap.h"

static const char *good_json =
    "[{\"node-name\":\"libvirt-1-format\",\"image\":{\"virtual-size\":1048576},"
    "\"dirty-bitmaps\":[{\"name\":\"c1\",\"recording\":true,\"persistent\":true,"
    "\"granularity\":65536,\"count\":131072}]}]";

struct thread_result {
    int fail;
    int code;
    char message[256];
};

static void *
thread_fail(void *opaque)
{
    struct thread_result *res = opaque;
    vcp_node_data *nd = vcp_node_data_parse_json("[", 0);
    const vcp_error *err = vcp_last_error();

    res->fail = nd == NULL;
    res->code = err ? err->code : 0;
    snprintf(res->message, sizeof(res->message), "%s", err ? err->message : "");
    return NULL;
}

static void *
thread_succeed(void *opaque)
{
    struct thread_result *res = opaque;
    vcp_node_data *nd = vcp_node_data_parse_json(good_json, 0);

    res->fail = nd == NULL;
    res->code = tap_err_code();
    vcp_node_data_free(nd);
    return NULL;
}

int
main(void)
{
    vcp_node_data *nd;
    static char *sentinel[1];
    char **names = sentinel;
    vcp_bitmap_info info = { 7, 7, 7 };
    char bad_utf8[] = { '[', (char)0xff, ']', 0 };
    pthread_t t1, t2;
    struct thread_result r1 = { 0, 0, "" };
    struct thread_result r2 = { 0, 0, "" };

    TAP_OK(vcp_version() == VCP_VERSION_NUMBER, "vcp_version() equals the header's version");
    TAP_OK(vcp_last_error() == NULL, "no error before any call");
    TAP_OK(strcmp(vcp_last_error_message(), "no error") == 0, "message without error");

    TAP_OK(vcp_node_data_parse_json(NULL, 0) == NULL, "NULL json is refused");
    TAP_OK(tap_err_is(VCP_ERR_INVALID_ARG,
                      "invalid argument: json in vcp_node_data_parse_json must not be NULL"),
           "NULL argument gives VIR_ERR_INVALID_ARG naming the argument");

    TAP_OK(vcp_node_data_parse_json(good_json, 0x10) == NULL, "unknown flag is refused");
    TAP_OK(tap_err_is(VCP_ERR_INVALID_ARG,
                      "invalid argument: unsupported flags (0x10) in function vcp_node_data_parse_json"),
           "flags error is virCheckFlags' text");

    TAP_OK(vcp_node_data_parse_json(bad_utf8, 0) == NULL, "invalid UTF-8 is refused");
    TAP_OK(tap_err_code() == VCP_ERR_INVALID_ARG, "invalid UTF-8 gives VIR_ERR_INVALID_ARG");
    TAP_OK(vcp_last_error()->domain == VCP_FROM_NONE, "argument errors come from VIR_FROM_NONE");

    nd = vcp_node_data_parse_json(good_json, 0);
    TAP_OK(nd != NULL, "valid node data parses");
    TAP_OK(vcp_last_error() == NULL, "a successful call resets the last error");

    TAP_OK(vcp_node_data_parse_json("[", 0) == NULL, "truncated JSON fails");
    TAP_OK(tap_err_code() == VCP_ERR_INTERNAL_ERROR, "parse failure is VIR_ERR_INTERNAL_ERROR");
    vcp_reset_last_error();
    TAP_OK(vcp_last_error() == NULL, "vcp_reset_last_error() clears it");

    /* Out-parameters are written only on success. */
    TAP_OK(vcp_node_data_get_bitmap_names(nd, "nosuchnode", &names) == -1,
           "bitmap names of a missing node fail");
    TAP_OK(names == sentinel, "out-parameters untouched on failure");
    TAP_OK(vcp_node_data_get_bitmap(nd, "libvirt-1-format", "nosuch", &info) == 0,
           "a missing bitmap is reported as 0");
    TAP_OK(info.flags == 7 && info.count == 7, "info untouched when not found");
    TAP_OK(vcp_node_data_get_bitmap(nd, "libvirt-1-format", "c1", NULL) == -1,
           "NULL out-parameter is refused");
    TAP_OK(vcp_node_data_get_bitmap(NULL, "libvirt-1-format", "c1", &info) == -1 &&
           tap_err_code() == VCP_ERR_INVALID_ARG, "NULL handle is refused");

    /* Errors are per thread. */
    pthread_create(&t1, NULL, thread_fail, &r1);
    pthread_join(t1, NULL);
    pthread_create(&t2, NULL, thread_succeed, &r2);
    pthread_join(t2, NULL);
    TAP_OK(r1.fail && r1.code == VCP_ERR_INTERNAL_ERROR &&
           strncmp(r1.message, "internal error: cannot parse json", 33) == 0,
           "the failing thread sees its own error");
    TAP_OK(!r2.fail && r2.code == 0, "the succeeding thread sees none");
    TAP_OK(tap_err_is(VCP_ERR_INVALID_ARG,
                      "invalid argument: nodes in vcp_node_data_get_bitmap must not be NULL"),
           "the main thread still holds its own error, untouched by both threads");

    /* A garbage array count is refused, not trusted (it used to abort or overrun). */
    {
        vcp_domain *dom = vcp_domain_new("d", NULL);
        vcp_snapshot_disk disk = { "vda", "overlay" };
        vcp_backup_disk bdisk = { "vda", NULL, "store", NULL };
        char *actions = NULL, *cleanup = NULL;
        TAP_OK(vcp_snapshot_bitmap_actions(dom, nd, &disk, (size_t)-1, &actions, 0) == -1 &&
               actions == NULL && tap_err_code() == VCP_ERR_INVALID_ARG &&
               strstr(vcp_last_error_message(), "more than the limit of 65536"),
               "SIZE_MAX disks are refused with VIR_ERR_INVALID_ARG");
        TAP_OK(vcp_backup_begin_actions(dom, nd, VCP_BACKUP_PUSH, &bdisk, (size_t)1 << 40, NULL, NULL,
                                        &actions, &cleanup, 0) == -1 && actions == NULL &&
               tap_err_code() == VCP_ERR_INVALID_ARG, "2^40 backup disks are refused");
        TAP_OK(strcmp(vcp_last_error_detail(), vcp_last_error_message() + strlen("invalid argument: ")) == 0,
               "the detail is the message without libvirt's prefix");
        TAP_OK(vcp_last_error_errno() == 0, "no errno for a non-system error");
        vcp_domain_free(dom);
    }
    {
        vcp_checkpoint_list *l = vcp_checkpoint_list_load("/proc/self/nonexistent-dir", "vm", NULL, 0);
        TAP_OK(l == NULL && tap_err_is(VCP_ERR_INVALID_ARG,
                                       "invalid argument: problems in vcp_checkpoint_list_load must not be NULL"),
               "every out-parameter is required");
    }

    vcp_node_data_free(nd);
    vcp_node_data_free(NULL);
    vcp_free(NULL);
    vcp_string_list_free(NULL);
    TAP_OK(1, "every free accepts NULL");
    return TAP_DONE();
}
