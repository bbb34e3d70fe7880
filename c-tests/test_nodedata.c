/* Node data from real QEMU replies and libvirt's vectors, and malformed input.
 * argv[1] is the project's tests/data folder. */
#include "virtcheckpoint.h"
#include "tap.h"

static const char *datadir;

static int
same_report(const char *actual, const char *expected)
{
    size_t la = strlen(actual), le = strlen(expected);
    /* libvirt's virTestCompareToFile also accepts output lacking the final newline. */
    if (strcmp(actual, expected) == 0)
        return 1;
    return la + 1 == le && expected[le - 1] == '\n' && strncmp(actual, expected, la) == 0;
}

static void
check_vector(const char *name)
{
    char path[256];
    char *json, *expected, *report = NULL;
    vcp_node_data *nd = NULL;

    snprintf(path, sizeof(path), "conformance/tests/qemublocktestdata/bitmap/%s.json", name);
    json = tap_read_file(datadir, path);
    snprintf(path, sizeof(path), "conformance/tests/qemublocktestdata/bitmap/%s.out", name);
    expected = tap_read_file(datadir, path);
    if (json)
        nd = vcp_node_data_parse_json(json, 0);
    if (nd)
        report = vcp_node_data_format_report(nd);
    TAP_OK(json && expected && report && same_report(report, expected),
           "detection report of '%s' equals libvirt's", name);
    vcp_free(report);
    vcp_node_data_free(nd);
    free(json);
    free(expected);
}

static void
check_real_reply(void)
{
    char *json = tap_read_file(datadir, "replies/13_checkpoint_delete_chk1_after_snapshot.json");
    vcp_node_data *nd = json ? vcp_node_data_parse_json(json, 0) : NULL;
    char **names = NULL;
    vcp_bitmap_info bi;
    vcp_node_info ni;

    TAP_OK(nd != NULL, "real reply after an external snapshot parses (whole reply object)");
    if (!nd) {
        free(json);
        return;
    }
    TAP_OK(vcp_node_data_get_node_names(nd, &names) == 4 && names[4] == NULL &&
           strcmp(names[0], "libvirt-4-format") == 0, "four nodes in QEMU's order");
    vcp_string_list_free(names);

    TAP_OK(vcp_node_data_get_bitmap_names(nd, "libvirt-4-format", &names) == 3 &&
           strcmp(names[0], "chk4") == 0 && strcmp(names[1], "chk1") == 0 &&
           strcmp(names[2], "chk3") == 0, "overlay holds chk4, chk1, chk3 in that order");
    vcp_string_list_free(names);

    TAP_OK(vcp_node_data_get_bitmap(nd, "libvirt-1-format", "chk1", &bi) == 1 &&
           bi.flags == (VCP_BITMAP_RECORDING | VCP_BITMAP_PERSISTENT) &&
           bi.granularity == 65536 && bi.count == 131072,
           "backing layer's chk1: recording, persistent, 64 KiB granularity, 128 KiB dirty");
    TAP_OK(vcp_node_data_get_node(nd, "libvirt-1-format", &ni) == 1 && ni.n_bitmaps == 2 &&
           ni.capacity > 0 && !(ni.flags & VCP_NODE_QCOW2_V2), "node info of the backing layer");
    TAP_OK(vcp_node_data_get_node(nd, "libvirt-9-format", &ni) == 0, "absent node gives 0");
    TAP_OK(vcp_node_data_get_bitmap_names(nd, "libvirt-1-storage", &names) == 0 &&
           names[0] == NULL, "a node without bitmaps gives an empty list");
    vcp_string_list_free(names);
    vcp_node_data_free(nd);
    free(json);
}

static void
check_bad(const char *what, const char *json, const char *message)
{
    vcp_node_data *nd = vcp_node_data_parse_json(json, 0);
    const vcp_error *err = vcp_last_error();
    int ok = nd == NULL && err && err->code == VCP_ERR_INTERNAL_ERROR &&
             (!message || strcmp(err->message, message) == 0);
    if (!ok && err)
        printf("# got '%s'\n", err->message);
    TAP_OK(ok, "malformed input refused: %s", what);
    vcp_node_data_free(nd);
}

#define NOT_EXPECTED "internal error: query-named-block-nodes entry was not in expected format"

static void
check_malformed(void)
{
    size_t depth = 100000, i;
    char *deep = malloc(2 * depth + 1);
    size_t hugelen = 1 << 20;
    char *huge = malloc(hugelen + 100);
    vcp_node_data *nd;
    char **names = NULL;

    check_bad("truncated JSON", "[{\"node-name\":\"a\",\"image\":{\"virt", NULL);
    check_bad("NUL in a bitmap name",
              "[{\"node-name\":\"a\",\"image\":{\"virtual-size\":1},\"dirty-bitmaps\":[{\"name\":\"b\\u0000\"}]}]",
              "internal error: query-named-block-nodes: bitmap name 'b\\0' contains a NUL character");
    check_bad("a reply without return data", "{\"id\":1}",
              "internal error: query-named-block-nodes reply was missing return data");
    {
        size_t big = ((size_t)64 << 20) + 2;
        char *text = malloc(big + 1);
        if (text) {
            memset(text, ' ', big);
            text[0] = '[';
            text[big - 1] = ']';
            text[big] = 0;
            check_bad("a reply over the 64 MiB limit", text,
                      "internal error: query-named-block-nodes reply of 67108866 bytes exceeds the 67108864 byte limit");
            free(text);
        }
    }
    check_bad("empty text", "", NULL);
    check_bad("not JSON", "hello", NULL);
    check_bad("trailing garbage", "[] []", NULL);
    check_bad("missing node-name", "[{\"image\":{\"virtual-size\":1}}]", NOT_EXPECTED);
    check_bad("node-name of the wrong type", "[{\"node-name\":1,\"image\":{\"virtual-size\":1}}]",
              NOT_EXPECTED);
    check_bad("image missing", "[{\"node-name\":\"a\"}]", NOT_EXPECTED);
    check_bad("image of the wrong type", "[{\"node-name\":\"a\",\"image\":\"x\"}]", NOT_EXPECTED);
    check_bad("virtual-size of the wrong type",
              "[{\"node-name\":\"a\",\"image\":{\"virtual-size\":true}}]", NOT_EXPECTED);
    check_bad("an entry that is not an object", "[1]", NOT_EXPECTED);
    check_bad("a top level that is neither array nor reply", "42", NULL);
    check_bad("a QMP error reply", "{\"error\":{\"class\":\"GenericError\",\"desc\":\"no\"}}",
              "internal error: unable to execute QEMU command 'query-named-block-nodes': no");
    check_bad("duplicate node names",
              "[{\"node-name\":\"a\",\"image\":{\"virtual-size\":1}},"
              "{\"node-name\":\"a\",\"image\":{\"virtual-size\":1}}]",
              "internal error: Duplicate hash table key 'a'");

    for (i = 0; i < depth; i++) {
        deep[i] = '[';
        deep[depth + i] = ']';
    }
    deep[2 * depth] = '\0';
    check_bad("100000 levels of nesting", deep, NULL);
    free(deep);

    /* A 1 MiB node name is not QEMU's, but it must neither crash nor be truncated. */
    strcpy(huge, "[{\"node-name\":\"");
    memset(huge + strlen(huge), 'n', hugelen);
    strcpy(huge + 15 + hugelen, "\",\"image\":{\"virtual-size\":1}}]");
    nd = vcp_node_data_parse_json(huge, 0);
    TAP_OK(nd && vcp_node_data_get_node_names(nd, &names) == 1 &&
           strlen(names[0]) == hugelen, "a 1 MiB node name round-trips");
    vcp_string_list_free(names);
    vcp_node_data_free(nd);
    free(huge);

    /* Members of the wrong type are ignored, as libvirt's getters ignore them. */
    nd = vcp_node_data_parse_json("[{\"node-name\":\"a\",\"image\":{\"virtual-size\":1},"
                                  "\"dirty-bitmaps\":[{\"name\":\"b\",\"recording\":\"yes\","
                                  "\"count\":-3},{\"granularity\":1},7]}]", 0);
    {
        vcp_bitmap_info bi;
        TAP_OK(nd && vcp_node_data_get_bitmap(nd, "a", "b", &bi) == 1 && bi.flags == 0 &&
               bi.count == 0, "wrongly typed bitmap members count as absent");
    }
    vcp_node_data_free(nd);

    /* A node name with an embedded NUL is refused when the reply is read. */
    nd = vcp_node_data_parse_json("[{\"node-name\":\"a\\u0000b\",\"image\":{\"virtual-size\":1}}]", 0);
    TAP_OK(nd == NULL && tap_err_code() == VCP_ERR_INTERNAL_ERROR &&
           strstr(vcp_last_error_message(), "contains a NUL character"),
           "embedded NUL in a node name is refused at parse");
}

/* Node data built in place gives what the same reply parsed gives. */
static void
check_built(void)
{
    const char *json = "[{\"node-name\":\"n1\",\"image\":{\"virtual-size\":1048576},"
                       "\"dirty-bitmaps\":[{\"name\":\"a\",\"recording\":true,\"persistent\":true,"
                       "\"busy\":false,\"granularity\":65536,\"count\":131072}]}]";
    vcp_node_data *parsed = vcp_node_data_parse_json(json, 0);
    vcp_node_data *built = vcp_node_data_new();
    char *r1 = NULL, *r2 = NULL;
    vcp_bitmap_info bi;

    TAP_OK(vcp_node_data_add_node(built, "n1", 1048576, 0) == 0 &&
           vcp_node_data_add_bitmap(built, "n1", "a", VCP_BITMAP_RECORDING | VCP_BITMAP_PERSISTENT,
                                    65536, 131072) == 0,
           "built in place: one node, one bitmap");
    r1 = vcp_node_data_format_report(parsed);
    r2 = vcp_node_data_format_report(built);
    TAP_OK(r1 && r2 && strcmp(r1, r2) == 0, "built in place equals the parsed reply");
    TAP_OK(vcp_node_data_get_bitmap(built, "n1", "a", &bi) == 1 && bi.count == 131072,
           "its bitmap reads back");
    TAP_OK(vcp_node_data_add_node(built, "n1", 1, 0) == -1 && tap_err_code() == VCP_ERR_INTERNAL_ERROR,
           "a node given twice is refused");
    TAP_OK(vcp_node_data_add_bitmap(built, "nope", "b", 0, 0, 0) == -1 &&
           tap_err_code() == VCP_ERR_INVALID_ARG, "a bitmap of an unknown node is refused");
    vcp_free(r1);
    vcp_free(r2);
    vcp_node_data_free(parsed);
    vcp_node_data_free(built);
}

int
main(int argc, char **argv)
{
    datadir = tap_datadir(argc, argv);
    check_vector("empty");
    check_vector("basic");
    check_vector("snapshots");
    check_real_reply();
    check_malformed();
    check_built();
    return TAP_DONE();
}
