/* Domain and checkpoint XML through the C ABI: real libvirt XML, the builder API,
 * alignment with every libvirt error, formatting, and a table of hostile input.
 * argv[1] is the project's tests/data folder. */
#include "virtcheckpoint.h"
#include "tap.h"

static const char *datadir;

static const char *two_disk_domain =
    "<domain type='kvm'><name>d</name><uuid>11111111-2222-3333-4444-555555555555</uuid>"
    "<devices>"
    "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
    "<source file='/img/a.qcow2' index='2'/><backingStore type='file' index='1'>"
    "<format type='qcow2'/><source file='/img/base.qcow2'/><backingStore/></backingStore>"
    "<target dev='vda' bus='virtio'/></disk>"
    "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
    "<source file='/img/b.qcow2' index='3'/><target dev='vdb' bus='virtio'/></disk>"
    "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
    "<target dev='sda' bus='sata'/><readonly/></disk>"
    "</devices></domain>";

static char *
format_def(const char *xml, vcp_domain *dom, unsigned int pflags, unsigned int fflags)
{
    vcp_checkpoint_def *def = vcp_checkpoint_def_parse_xml(xml, dom, pflags);
    char *out = def ? vcp_checkpoint_def_format_xml(def, fflags) : NULL;
    vcp_checkpoint_def_free(def);
    return out;
}

static void
check_status_xml(void)
{
    char *xml = tap_read_file(datadir, "libvirt-9.0-qmp/33_status_xml_three_layers.xml");
    vcp_domain *dom = xml ? vcp_domain_parse_xml(xml, 0) : NULL;
    char **nodes = NULL;

    TAP_OK(dom != NULL, "libvirt 9.0 status XML parses");
    TAP_OK(dom && vcp_domain_get_disk_chain(dom, "vda", &nodes) == 3 &&
           strcmp(nodes[0], "libvirt-3-format") == 0 && strcmp(nodes[1], "libvirt-2-format") == 0 &&
           strcmp(nodes[2], "libvirt-1-format") == 0,
           "vda's chain carries libvirt's node names, top first");
    vcp_string_list_free(nodes);
    TAP_OK(dom && vcp_domain_get_disk_chain(dom, "vdz", &nodes) == -1 &&
           tap_err_is(VCP_ERR_INVALID_ARG, "invalid argument: no disk named 'vdz'"),
           "unknown disk is refused");
    vcp_domain_free(dom);
    free(xml);
}

static void
check_builder(void)
{
    vcp_domain *dom = vcp_domain_new("built", NULL);
    char **targets = NULL;
    vcp_checkpoint_def *def;
    char *actions = NULL;

    TAP_OK(vcp_domain_add_disk(dom, "vda", "disk", "virtio", 0) == 0 &&
           vcp_domain_disk_append_image(dom, "vda", "/img/top.qcow2", "qcow2",
                                        "libvirt-2-format", "libvirt-2-storage", 0) == 0 &&
           vcp_domain_disk_append_image(dom, "vda", "/img/base.qcow2", "qcow2",
                                        "libvirt-1-format", "libvirt-1-storage", 0) == 0,
           "builder: a disk with a two-layer chain");
    TAP_OK(vcp_domain_add_disk(dom, "vda", NULL, NULL, 0) == -1 &&
           tap_err_is(VCP_ERR_XML_ERROR, "XML error: target 'vda' duplicated for disk sources"),
           "builder: duplicate target refused as libvirt's parser refuses it");
    TAP_OK(vcp_domain_add_disk(dom, "hdc", "cdrom", "ide", VCP_DISK_READONLY) == 0,
           "builder: a read-only cdrom without media");
    TAP_OK(vcp_domain_add_disk(dom, "x", NULL, NULL, 0x100) == -1 &&
           tap_err_code() == VCP_ERR_INVALID_ARG, "builder: unknown flag refused");
    TAP_OK(vcp_domain_disk_append_image(dom, "nope", "/x", "qcow2", "n", NULL, 0) == -1,
           "builder: image for an unknown disk refused");
    TAP_OK(vcp_domain_get_disks(dom, &targets) == 2 &&
           strcmp(targets[0], "vda") == 0 && strcmp(targets[1], "hdc") == 0,
           "builder: disks in order");
    vcp_string_list_free(targets);

    def = vcp_checkpoint_def_parse_xml("<domaincheckpoint><name>c1</name></domaincheckpoint>", dom, 0);
    TAP_OK(def && vcp_checkpoint_add_actions(dom, def, NULL, &actions, 0) == 0 &&
           strcmp(actions, "[{\"type\":\"block-dirty-bitmap-add\",\"data\":{\"node\":"
                           "\"libvirt-2-format\",\"name\":\"c1\",\"persistent\":true,"
                           "\"disabled\":false}}]") == 0,
           "builder domain: create adds one bitmap on the top node, cdrom skipped");
    vcp_free(actions);
    vcp_checkpoint_def_free(def);
    vcp_domain_free(dom);
}

static void
check_align(void)
{
    vcp_domain *dom = vcp_domain_parse_xml(two_disk_domain, 0);
    vcp_domain *nodisk = vcp_domain_new("empty", NULL);
    char *out;
    vcp_checkpoint_def *def;
    char *name = NULL, *bitmap = NULL;
    int type = -1;

    TAP_OK(dom != NULL, "domain with two disks and a cdrom parses");

    out = format_def("<domaincheckpoint><name>c1</name></domaincheckpoint>", dom, 0,
                     VCP_CHECKPOINT_XML_NO_DOMAIN);
    TAP_OK(out && strstr(out, "<disk name='vda' checkpoint='bitmap' bitmap='c1'/>\n"
                              "    <disk name='vdb' checkpoint='bitmap' bitmap='c1'/>\n"
                              "    <disk name='sda' checkpoint='no'/>\n"),
           "no <disks>: every writable disk gets a bitmap, the read-only cdrom none");
    vcp_free(out);

    out = format_def("<domaincheckpoint><name>c1</name><disks>"
                     "<disk name='/img/b.qcow2'/></disks></domaincheckpoint>", dom, 0, 0);
    TAP_OK(out && strstr(out, "<disk name='vda' checkpoint='no'/>\n"
                              "    <disk name='vdb' checkpoint='bitmap' bitmap='c1'/>\n"),
           "a disk named by its source path; unlisted disks get 'no', domain order kept");
    vcp_free(out);

    def = vcp_checkpoint_def_parse_xml("<domaincheckpoint><name>c1</name><disks>"
                                       "<disk name='vdb' checkpoint='no'/></disks>"
                                       "</domaincheckpoint>", dom, 0);
    TAP_OK(def && vcp_checkpoint_def_get_disk_count(def) == 3 &&
           vcp_checkpoint_def_get_disk(def, 1, &name, &type, &bitmap) == 0 &&
           strcmp(name, "vdb") == 0 && type == VCP_CHECKPOINT_TYPE_NO && bitmap == NULL,
           "accessors: disk 1 is vdb, type no, no bitmap");
    vcp_free(name);
    TAP_OK(def && vcp_checkpoint_def_get_disk(def, 3, &name, &type, &bitmap) == -1 &&
           tap_err_code() == VCP_ERR_INVALID_ARG, "accessors: index out of range");
    TAP_OK(def && vcp_checkpoint_def_get_disk(def, 0, &name, NULL, &bitmap) == -1 &&
           tap_err_is(VCP_ERR_INVALID_ARG,
                      "invalid argument: kind in vcp_checkpoint_def_get_disk must not be NULL"),
           "accessors: every out-parameter is required (the header's one rule)");
    vcp_checkpoint_def_free(def);

#define ALIGN_FAILS(xml, d, msg, what) \
    do { \
        vcp_checkpoint_def *bad_ = vcp_checkpoint_def_parse_xml(xml, d, 0); \
        TAP_OK(bad_ == NULL && tap_err_is(VCP_ERR_CONFIG_UNSUPPORTED, msg), what); \
        vcp_checkpoint_def_free(bad_); \
    } while (0)

    ALIGN_FAILS("<domaincheckpoint><disks><disk name='vda'/><disk name='vdb'/>"
                "<disk name='sda' checkpoint='no'/><disk name='vdc'/></disks></domaincheckpoint>",
                dom, "unsupported configuration: too many disk checkpoint requests for domain",
                "alignment: too many disks");
    ALIGN_FAILS("<domaincheckpoint/>", nodisk,
                "unsupported configuration: domain must have at least one disk to perform checkpoints",
                "alignment: domain without disks");
    ALIGN_FAILS("<domaincheckpoint><disks><disk name='vdz'/></disks></domaincheckpoint>", dom,
                "unsupported configuration: no disk named 'vdz'", "alignment: unknown disk");
    ALIGN_FAILS("<domaincheckpoint><disks><disk name='vda'/><disk name='/img/a.qcow2'/>"
                "</disks></domaincheckpoint>", dom,
                "unsupported configuration: disk '/img/a.qcow2' specified twice",
                "alignment: the same disk by target and by path");
    ALIGN_FAILS("<domaincheckpoint><disks><disk name='sda' checkpoint='bitmap'/></disks>"
                "</domaincheckpoint>", dom,
                "unsupported configuration: disk 'sda' is empty or readonly",
                "alignment: bitmap on a read-only empty cdrom");
#undef ALIGN_FAILS

    def = vcp_checkpoint_def_parse_xml(
        "<domaincheckpoint><name>c9</name><creationTime>5</creationTime>"
        "<domain type='kvm'><uuid>99999999-2222-3333-4444-555555555555</uuid></domain>"
        "</domaincheckpoint>", dom, VCP_CHECKPOINT_PARSE_REDEFINE);
    TAP_OK(def == NULL &&
           tap_err_is(VCP_ERR_INVALID_ARG,
                      "invalid argument: definition for checkpoint c9 must use uuid "
                      "11111111-2222-3333-4444-555555555555"),
           "redefine: embedded domain of another VM refused");
    vcp_domain_free(nodisk);
    vcp_domain_free(dom);
}

/* Whether @def's disks are, in order, @n of "name:type:bitmap" ("-" for no bitmap). */
static int
disks_are(const vcp_checkpoint_def *def, size_t n, const char *const *want)
{
    vcp_checkpoint_disk *disks = NULL;
    int got = vcp_checkpoint_def_get_disks(def, &disks);
    int same = got == (int)n;
    size_t i;

    for (i = 0; same && i < n; i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s:%d:%s", disks[i].name, disks[i].kind,
                 disks[i].bitmap ? disks[i].bitmap : "-");
        if (strcmp(buf, want[i]) != 0) {
            printf("# disk %zu is %s, not %s\n", i, buf, want[i]);
            same = 0;
        }
    }
    vcp_checkpoint_disks_free(disks, got < 0 ? 0 : (size_t)got);
    return same;
}

/* A definition a driver holds, aligned with a domain it holds: an inactive domain's
 * disks (no node names), requested by target or by path (libvirt's
 * virDomainCheckpointAlignDisks), and the disks read back in one call. */
static void
check_align_held(void)
{
    vcp_domain *dom = vcp_domain_new(NULL, NULL);
    vcp_checkpoint_def *def = vcp_checkpoint_def_new("c1", 7, 0);
    vcp_checkpoint_disk by_path[] = { { "/img/b.qcow2", VCP_CHECKPOINT_TYPE_BITMAP, NULL, 0, 0 } };
    vcp_checkpoint_disk relative[] = { { "pool/vol", VCP_CHECKPOINT_TYPE_BITMAP, NULL, 0, 0 } };
    vcp_checkpoint_disk ro[] = { { "/img/ro.qcow2", VCP_CHECKPOINT_TYPE_BITMAP, NULL, 0, 0 } };
    vcp_checkpoint_disk named[] = { { "vdb", VCP_CHECKPOINT_TYPE_BITMAP, "own", 4096, 1 } };
    vcp_checkpoint_disk *none = (vcp_checkpoint_disk *)1;
    const char *given[] = { "vda:1:-", "vdb:2:c1", "vdc:1:-", "vdd:1:-", "sda:1:-" };
    const char *all[] = { "vda:2:c1", "vdb:2:c1", "vdc:2:c1", "vdd:1:-", "sda:1:-" };
    const char *before[] = { "vdb:2:own" };

    TAP_OK(vcp_domain_add_disk(dom, "vda", NULL, NULL, 0) == 0 &&
           vcp_domain_disk_append_image(dom, "vda", "/img/a.qcow2", "qcow2", NULL, NULL, 0) == 0 &&
           vcp_domain_add_disk(dom, "vdb", NULL, NULL, 0) == 0 &&
           vcp_domain_disk_append_image(dom, "vdb", "/img/b.qcow2", "qcow2", NULL, NULL, 0) == 0 &&
           vcp_domain_add_disk(dom, "vdc", NULL, NULL, 0) == 0 &&
           vcp_domain_disk_append_image(dom, "vdc", "pool/vol", "raw", NULL, NULL, 0) == 0 &&
           vcp_domain_add_disk(dom, "vdd", NULL, NULL, VCP_DISK_READONLY) == 0 &&
           vcp_domain_disk_append_image(dom, "vdd", "/img/ro.qcow2", "qcow2", NULL, NULL, 0) == 0 &&
           vcp_domain_add_disk(dom, "sda", "cdrom", NULL, 0) == 0,
           "an inactive domain's images without node names");
    TAP_OK(vcp_domain_disk_append_image(dom, "vda", "/img/x.qcow2", "qcow2", "", NULL, 0) == -1 &&
           tap_err_is(VCP_ERR_INVALID_ARG, "invalid argument: empty format node name"),
           "an empty node name is still refused");

    TAP_OK(vcp_checkpoint_def_get_disks(def, &none) == 0 && none == NULL,
           "no disk: 0 and NULL");
    TAP_OK(vcp_checkpoint_def_align(def, dom, 0) == 0 && disks_are(def, 5, all),
           "no disk requested: a bitmap on every writable disk with media");
    TAP_OK(vcp_checkpoint_def_set_disks(def, by_path, 1) == 0 &&
           vcp_checkpoint_def_align(def, dom, 0) == 0 && disks_are(def, 5, given),
           "a disk requested by path: renamed to its target, the others 'no'");

    TAP_OK(vcp_checkpoint_def_set_disks(def, relative, 1) == 0 &&
           vcp_checkpoint_def_align(def, dom, 0) == -1 &&
           tap_err_is(VCP_ERR_CONFIG_UNSUPPORTED, "unsupported configuration: no disk named 'pool/vol'"),
           "a name without a leading '/' is a target only, as in libvirt");
    TAP_OK(vcp_checkpoint_def_set_disks(def, ro, 1) == 0 &&
           vcp_checkpoint_def_align(def, dom, 0) == -1 &&
           tap_err_is(VCP_ERR_CONFIG_UNSUPPORTED,
                      "unsupported configuration: disk '/img/ro.qcow2' is empty or readonly"),
           "a read-only disk refused under the name it was requested by");
    TAP_OK(vcp_checkpoint_def_set_disks(def, named, 1) == 0 &&
           vcp_checkpoint_def_align(def, NULL, 0) == -1 &&
           tap_err_is(VCP_ERR_INTERNAL_ERROR, "internal error: missing domain in checkpoint") &&
           vcp_last_error()->domain == VCP_FROM_DOMAIN_CHECKPOINT && disks_are(def, 1, before),
           "no domain: libvirt's error, the definition unchanged");
    TAP_OK(vcp_checkpoint_def_align(def, dom, 1) == -1 && tap_err_code() == VCP_ERR_INVALID_ARG &&
           vcp_checkpoint_def_get_disks(def, NULL) == -1 && tap_err_code() == VCP_ERR_INVALID_ARG,
           "unknown flags and a NULL out-parameter refused");
    TAP_OK(vcp_checkpoint_def_align(def, dom, 0) == 0 && disks_are(def, 5, (const char *[]) {
               "vda:1:-", "vdb:2:own", "vdc:1:-", "vdd:1:-", "sda:1:-" }),
           "a requested bitmap name is kept");
    vcp_checkpoint_disks_free(NULL, 3);
    vcp_checkpoint_def_free(def);
    vcp_domain_free(dom);
}

static void
check_vectors(void)
{
    char *in = tap_read_file(datadir, "conformance/tests/qemudomaincheckpointxml2xmlout/redefine.xml");
    char *out = in ? format_def(in, NULL, VCP_CHECKPOINT_PARSE_REDEFINE, VCP_CHECKPOINT_XML_SECURE) : NULL;
    vcp_checkpoint_def *def;
    char *s = NULL;
    long long ctime = 0;

    TAP_OK(in && out && strcmp(in, out) == 0, "libvirt's redefine.xml round-trips byte for byte");
    vcp_free(out);

    def = in ? vcp_checkpoint_def_parse_xml(in, NULL, VCP_CHECKPOINT_PARSE_REDEFINE) : NULL;
    TAP_OK(def && vcp_checkpoint_def_get_name(def, &s) == 0 && strcmp(s, "c1") == 0,
           "name accessor");
    vcp_free(s);
    TAP_OK(def && vcp_checkpoint_def_get_creation_time(def, &ctime) == 0 && ctime == 1553647812,
           "creation time accessor");
    s = (char *)datadir;
    TAP_OK(def && vcp_checkpoint_def_get_parent(def, &s) == 0 && s == NULL,
           "no parent: NULL");
    out = def ? vcp_checkpoint_def_format_xml(def, VCP_CHECKPOINT_XML_NO_DOMAIN) : NULL;
    TAP_OK(out && !strstr(out, "<domain type"), "NO_DOMAIN leaves the domain out");
    vcp_free(out);
    TAP_OK(def && vcp_checkpoint_def_format_xml(def, 8) == NULL &&
           tap_err_code() == VCP_ERR_INVALID_ARG, "format: unknown flag refused");
    vcp_checkpoint_def_free(def);
    free(in);

    def = vcp_checkpoint_def_parse_xml("<domaincheckpoint><description>x</description></domaincheckpoint>", NULL, 0);
    s = NULL;
    TAP_OK(def && vcp_checkpoint_def_get_name(def, &s) == 0 && strlen(s) >= 10 &&
           strspn(s, "0123456789") == strlen(s), "a new checkpoint is named after its creation time");
    vcp_free(s);
    vcp_checkpoint_def_free(def);
}

struct bad_case {
    const char *what;
    const char *xml;
    unsigned int flags;
    int code;
};

static void
check_hostile(void)
{
    static const char invalid_utf8[] = "<domaincheckpoint><name>\xc3\x28</name></domaincheckpoint>";
    static const struct bad_case cases[] = {
        { "unclosed element", "<domaincheckpoint><name>a</name>", 0, VCP_ERR_XML_ERROR },
        { "mismatched end tag", "<domaincheckpoint><name>a</nam></domaincheckpoint>", 0, VCP_ERR_XML_ERROR },
        { "billion laughs", "<!DOCTYPE d [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;&a;'>]>"
          "<domaincheckpoint><name>&b;</name></domaincheckpoint>", 0, VCP_ERR_XML_ERROR },
        { "external entity", "<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
          "<domaincheckpoint><name>&x;</name></domaincheckpoint>", 0, VCP_ERR_XML_ERROR },
        { "undefined entity", "<domaincheckpoint><name>&nope;</name></domaincheckpoint>", 0, VCP_ERR_XML_ERROR },
        { "invalid UTF-8", invalid_utf8, 0, VCP_ERR_XML_ERROR },
        { "NUL character reference", "<domaincheckpoint><name>a&#0;</name></domaincheckpoint>", 0, VCP_ERR_XML_ERROR },
        { "text after the root", "<domaincheckpoint/>junk", 0, VCP_ERR_XML_ERROR },
        { "empty document", "", 0, VCP_ERR_XML_ERROR },
        { "duplicate attribute", "<domaincheckpoint><disks><disk name='a' name='b'/></disks></domaincheckpoint>", 0, VCP_ERR_XML_ERROR },
        { "wrong root element", "<domainsnapshot/>", 0, VCP_ERR_XML_INVALID_SCHEMA },
        { "unknown element", "<domaincheckpoint><bogus/></domaincheckpoint>", 0, VCP_ERR_XML_INVALID_SCHEMA },
        { "disk without name", "<domaincheckpoint><disks><disk/></disks></domaincheckpoint>", 0, VCP_ERR_XML_INVALID_SCHEMA },
        { "name escaping the folder", "<domaincheckpoint><name>../escape</name></domaincheckpoint>", 0, VCP_ERR_XML_INVALID_SCHEMA },
        { "hidden-file name", "<domaincheckpoint><name>.x</name></domaincheckpoint>", 0, VCP_ERR_XML_INVALID_SCHEMA },
        { "checkpoint='maybe'", "<domaincheckpoint><disks><disk name='vda' checkpoint='maybe'/></disks></domaincheckpoint>", 0, VCP_ERR_XML_INVALID_SCHEMA },
        { "non-numeric size", "<domaincheckpoint><disks><disk name='vda' size='big'/></disks></domaincheckpoint>", 0, VCP_ERR_XML_INVALID_SCHEMA },
        { "name given twice", "<domaincheckpoint><name>a</name><name>b</name></domaincheckpoint>", 0, VCP_ERR_XML_INVALID_SCHEMA },
        { "non-numeric creationTime", "<domaincheckpoint><name>a</name><creationTime>x</creationTime></domaincheckpoint>", VCP_CHECKPOINT_PARSE_REDEFINE, VCP_ERR_XML_INVALID_SCHEMA },
        { "redefine without name", "<domaincheckpoint><creationTime>1</creationTime></domaincheckpoint>", VCP_CHECKPOINT_PARSE_REDEFINE, VCP_ERR_XML_ERROR },
        { "redefine without creationTime", "<domaincheckpoint><name>a</name></domaincheckpoint>", VCP_CHECKPOINT_PARSE_REDEFINE, VCP_ERR_INTERNAL_ERROR },
        { "control character reference", "<domaincheckpoint><name>a&#1;</name></domaincheckpoint>", 0, VCP_ERR_XML_ERROR },
        { "raw control character", "<domaincheckpoint><name>a\x02</name></domaincheckpoint>", 0, VCP_ERR_XML_ERROR },
        { "non-character U+FFFE", "<domaincheckpoint><name>&#xFFFE;</name></domaincheckpoint>", 0, VCP_ERR_XML_ERROR },
        { "control character in an attribute", "<domaincheckpoint><disks><disk name='v&#x1b;'/></disks></domaincheckpoint>", 0, VCP_ERR_XML_ERROR },
        { "negative creationTime", "<domaincheckpoint><name>a</name><creationTime>-5</creationTime></domaincheckpoint>", VCP_CHECKPOINT_PARSE_REDEFINE, VCP_ERR_XML_INVALID_SCHEMA },
        { "name longer than a file name", "<domaincheckpoint><name>"
          "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
          "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
          "nnn</name></domaincheckpoint>", 0, VCP_ERR_INVALID_ARG },
        { "empty bitmap name", "<domaincheckpoint><disks><disk name='vda' bitmap=''/></disks></domaincheckpoint>", 0, VCP_ERR_XML_INVALID_SCHEMA },
        { "unknown disk attribute", "<domaincheckpoint><disks><disk name='vda' foo='1'/></disks></domaincheckpoint>", 0, VCP_ERR_XML_INVALID_SCHEMA },
        { "parent without a name", "<domaincheckpoint><parent/></domaincheckpoint>", 0, VCP_ERR_XML_INVALID_SCHEMA },
        { "a document type declaration", "<!DOCTYPE domaincheckpoint><domaincheckpoint/>", 0, VCP_ERR_XML_ERROR },
    };
    size_t i, depth = 20000;
    char *deep = malloc(depth * 7 + 64);
    char *p = deep;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        vcp_checkpoint_def *def = vcp_checkpoint_def_parse_xml(cases[i].xml, NULL, cases[i].flags);
        int code = tap_err_code();
        if (def || code != cases[i].code)
            printf("# code %d: %s\n", code, vcp_last_error_message());
        TAP_OK(def == NULL && code == cases[i].code, "hostile checkpoint XML refused: %s", cases[i].what);
        vcp_checkpoint_def_free(def);
    }
    TAP_OK(vcp_checkpoint_def_parse_xml("<domaincheckpoint/>", NULL, 1 << 5) == NULL &&
           tap_err_code() == VCP_ERR_INVALID_ARG, "parse: unknown flag refused");

    p += sprintf(p, "<domain>");
    for (i = 0; i < depth; i++)
        p += sprintf(p, "<a>");
    for (i = 0; i < depth; i++)
        p += sprintf(p, "</a>");
    sprintf(p, "</domain>");
    TAP_OK(vcp_domain_parse_xml(deep, 0) == NULL && tap_err_code() == VCP_ERR_XML_ERROR,
           "hostile domain XML refused: 20000 levels of nesting");
    free(deep);
    TAP_OK(vcp_domain_parse_xml("<domain><devices><disk><source file='/a'/></disk></devices></domain>", 0) == NULL &&
           tap_err_code() == VCP_ERR_XML_ERROR, "hostile domain XML refused: disk without target");
    TAP_OK(vcp_domain_parse_xml("<network/>", 0) == NULL && tap_err_code() == VCP_ERR_XML_ERROR,
           "hostile domain XML refused: not a domain");
    TAP_OK(vcp_domain_parse_xml("<domain><devices><disk><target dev='vda'/></disk>"
                                "<disk><target dev='vda'/></disk></devices></domain>", 0) == NULL &&
           tap_err_is(VCP_ERR_XML_ERROR, "XML error: target 'vda' duplicated for disk sources"),
           "hostile domain XML refused: duplicate target");
    {
        /* 2^20 + 1 elements, under the byte limit: the element limit refuses it. */
        size_t n = ((size_t)1 << 20) + 1, k;
        char *many = malloc(n * 4 + 32), *q = many;
        if (many) {
            q += sprintf(q, "<domain>");
            for (k = 0; k < n; k++)
                q += sprintf(q, "<a/>");
            sprintf(q, "</domain>");
            TAP_OK(vcp_domain_parse_xml(many, 0) == NULL && tap_err_code() == VCP_ERR_XML_ERROR &&
                   strstr(vcp_last_error_message(), "more than 1048576 elements"),
                   "hostile domain XML refused: more than 2^20 elements");
            free(many);
        }
    }
    {
        /* A byte-order mark and a multi-byte character before the embedded <domain>. */
        vcp_checkpoint_def *def = vcp_checkpoint_def_parse_xml(
            "\xef\xbb\xbf<domaincheckpoint><name>1</name><creationTime>1</creationTime>"
            "\xc3\xa9\xc3\xa9<domain><devices><disk><source file='/a'/><target dev='vda'/></disk>"
            "</devices></domain></domaincheckpoint>", NULL, VCP_CHECKPOINT_PARSE_REDEFINE);
        char *out = def ? vcp_checkpoint_def_format_xml(def, 0) : NULL;
        TAP_OK(out && strstr(out, "\n  <domain><devices><disk><source file='/a'/><target dev='vda'/>"
                                  "</disk></devices></domain>\n"),
               "a byte-order mark before the checkpoint keeps the embedded domain intact");
        vcp_free(out);
        vcp_checkpoint_def_free(def);
    }
}

/* A definition as a driver holds it (libvirt's virDomainCheckpointDef): handed over
 * field by field, disks in one call, the embedded domain as the driver's own
 * formatter wrote it; and read back out of the library's parse without defaults. */
static void
check_driver_held(void)
{
    const vcp_checkpoint_disk disks[] = {
        { "vda", VCP_CHECKPOINT_TYPE_BITMAP, "c1", 1048576, 1 },
        { "vdb", VCP_CHECKPOINT_TYPE_NO, NULL, 0, 0 },
        { NULL, VCP_CHECKPOINT_TYPE_DEFAULT, NULL, 0, 0 },
        { "vda", VCP_CHECKPOINT_TYPE_DEFAULT, "c1b", 0, 0 },
    };
    const vcp_checkpoint_disk bad[] = {
        { "vdc", VCP_CHECKPOINT_TYPE_NO, NULL, 0, 0 },
        { "vdd", 7, NULL, 0, 0 },
    };
    const char *domain = "  <domain type='kvm'>\n    <name>d</name>\n"
                         "    <description>one\ntwo</description>\n  </domain>\n";
    vcp_checkpoint_def *def = vcp_checkpoint_def_new("c1", 1525889631, 0);
    vcp_checkpoint_def *unnamed = vcp_checkpoint_def_new(NULL, 0, 0);
    char *out = NULL, *name = NULL, *desc = NULL, *dom = NULL;
    long long ctime = -1;

    TAP_OK(def && vcp_checkpoint_def_set_parent(def, "c0", "a <note>") == 0 &&
           vcp_checkpoint_def_set_disks(def, disks, 4) == 0 &&
           vcp_checkpoint_def_get_disk_count(def) == 4,
           "a driver's disks are set in one call, a repeated name kept as libvirt's parse keeps it");
    TAP_OK(vcp_checkpoint_def_set_disks(def, bad, 2) == -1 &&
           tap_err_is(VCP_ERR_INVALID_ARG, "invalid argument: unknown checkpoint disk type 7") &&
           vcp_checkpoint_def_get_disk_count(def) == 4,
           "a bad disk type is refused and the disks are unchanged");
    TAP_OK(vcp_checkpoint_def_set_domain_xml(def, "<domain>") == -1 &&
           tap_err_code() == VCP_ERR_XML_ERROR,
           "a malformed embedded domain is refused");
    TAP_OK(vcp_checkpoint_def_set_domain_xml(def, domain) == 0, "the driver's domain is taken");
    out = vcp_checkpoint_def_format_xml(def, VCP_CHECKPOINT_XML_SIZE);
    TAP_OK(out && strcmp(out,
           "<domaincheckpoint>\n  <name>c1</name>\n  <description>a &lt;note&gt;</description>\n"
           "  <parent>\n    <name>c0</name>\n  </parent>\n  <creationTime>1525889631</creationTime>\n"
           "  <disks>\n    <disk name='vda' checkpoint='bitmap' bitmap='c1' size='1048576'/>\n"
           "    <disk name='vdb' checkpoint='no'/>\n    <disk name='vda' bitmap='c1b'/>\n"
           "  </disks>\n  <domain type='kvm'>\n    <name>d</name>\n"
           "    <description>one\ntwo</description>\n  </domain>\n</domaincheckpoint>\n") == 0,
           "formatted as libvirt formats it: size, no unnamed disk, the domain verbatim");
    vcp_free(out);
    out = vcp_checkpoint_def_format_xml(def, VCP_CHECKPOINT_XML_NO_DOMAIN);
    TAP_OK(out && !strstr(out, "size=") && !strstr(out, "<domain type"),
           "without XML_SIZE and with NO_DOMAIN: no size, no domain");
    vcp_free(out);
    out = unnamed ? vcp_checkpoint_def_format_xml(unnamed, 0) : NULL;
    TAP_OK(out && vcp_checkpoint_def_get_name(unnamed, &name) == 0 && !name &&
           strcmp(out, "<domaincheckpoint>\n  <creationTime>0</creationTime>\n</domaincheckpoint>\n") == 0,
           "an unnamed definition has no name and no <name>");
    vcp_free(out);
    vcp_checkpoint_def_free(unnamed);
    vcp_checkpoint_def_free(def);

    def = vcp_checkpoint_def_parse_xml("<domaincheckpoint><description/><disks><disk name='vda'/>"
                                       "</disks><domain/></domaincheckpoint>",
                                       NULL, VCP_CHECKPOINT_PARSE_ONLY);
    TAP_OK(def && vcp_checkpoint_def_get_name(def, &name) == 0 && !name &&
           vcp_checkpoint_def_get_creation_time(def, &ctime) == 0 && ctime == 0 &&
           vcp_checkpoint_def_get_description(def, &desc) == 0 && !desc &&
           vcp_checkpoint_def_get_domain_xml(def, &dom) == 0 && !dom,
           "without defaults: no name, no time, an empty description is none, no domain on create");
    vcp_checkpoint_def_free(def);
    def = vcp_checkpoint_def_parse_xml("<domaincheckpoint><name>r</name><creationTime>3</creationTime>"
                                       "<description>x</description>\n  <domain type='qemu'>\n"
                                       "    <name>v</name>\n  </domain>\n</domaincheckpoint>",
                                       NULL, VCP_CHECKPOINT_PARSE_REDEFINE | VCP_CHECKPOINT_PARSE_ONLY);
    TAP_OK(def && vcp_checkpoint_def_get_description(def, &desc) == 0 && desc && strcmp(desc, "x") == 0 &&
           vcp_checkpoint_def_get_domain_xml(def, &dom) == 0 && dom &&
           strcmp(dom, "<domain type='qemu'>\n    <name>v</name>\n  </domain>") == 0,
           "on redefine the description and the embedded domain's text are read back (domain without disks: not aligned)");
    free(desc); /* malloc()ed: plain free() releases what the library returns */
    vcp_free(dom);
    vcp_checkpoint_def_free(def);
}

int
main(int argc, char **argv)
{
    datadir = tap_datadir(argc, argv);
    check_status_xml();
    check_builder();
    check_driver_held();
    check_align();
    check_align_held();
    check_vectors();
    check_hostile();
    return TAP_DONE();
}
