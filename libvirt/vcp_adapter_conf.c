/*
 * vcp_adapter_conf.c: libvirt's checkpoint XML parse and format over virtcheckpoint.
 *
 * Included at the end of src/conf/checkpoint_conf.c by scripts/libvirt-standin.sh
 * (libvirt's conf library, linked into libvirt.so, has its own copy of the library).
 * libvirt's XML layer still parses and checks each document against its schema
 * first, for libvirt's errors for malformed or invalid XML are libxml2's own; the
 * library then reads and writes the checkpoint's own XML. The embedded <domain> stays
 * libvirt's, parsed and formatted by libvirt's domain code, and passes as text.
 * Strings the library returns are malloc()ed, so libvirt's struct keeps them as its
 * own (g_free() is free()).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include <virtcheckpoint.h>

G_STATIC_ASSERT(VIR_DOMAIN_CHECKPOINT_TYPE_NONE == VCP_CHECKPOINT_TYPE_NO &&
                VIR_DOMAIN_CHECKPOINT_TYPE_BITMAP == VCP_CHECKPOINT_TYPE_BITMAP);
G_STATIC_ASSERT(VIR_DOMAIN_CHECKPOINT_FORMAT_SECURE == VCP_CHECKPOINT_XML_SECURE &&
                VIR_DOMAIN_CHECKPOINT_FORMAT_NO_DOMAIN == VCP_CHECKPOINT_XML_NO_DOMAIN &&
                VIR_DOMAIN_CHECKPOINT_FORMAT_SIZE == VCP_CHECKPOINT_XML_SIZE);

static void
vcpConfReport(void)
{
    const vcp_error *err = vcp_last_error();
    virReportError(err ? err->code : VIR_ERR_INTERNAL_ERROR, "%s", vcp_last_error_detail());
}

virDomainCheckpointDef *
virDomainCheckpointDefParseString(const char *xmlStr,
                                  virDomainXMLOption *xmlopt,
                                  void *parseOpaque,
                                  unsigned int flags)
{
    bool redefine = flags & VIR_DOMAIN_CHECKPOINT_PARSE_REDEFINE;
    g_autoptr(xmlXPathContext) ctxt = NULL;
    /* libvirt's own parse and schema check come first: their errors are libxml2's. */
    g_autoptr(xmlDoc) xml = virXMLParse(NULL, xmlStr, _("(domain_checkpoint)"), "domaincheckpoint",
                                        &ctxt, "domaincheckpoint.rng", true);
    vcp_checkpoint_def *in = xml ? vcp_checkpoint_def_parse_xml(xmlStr, NULL, redefine ?
        VCP_CHECKPOINT_PARSE_REDEFINE : VCP_CHECKPOINT_PARSE_ONLY) : NULL;
    g_autoptr(virDomainCheckpointDef) def = NULL;
    g_autofree char *domain = NULL;
    int n = in ? vcp_checkpoint_def_get_disk_count(in) : -1;
    int i = 0;

    if (!xml)
        return NULL;
    if (n < 0 || !(def = virDomainCheckpointDefNew())) {
        if (n < 0)
            vcpConfReport();
        vcp_checkpoint_def_free(in);
        return NULL;
    }
    def->disks = g_new0(virDomainCheckpointDiskDef, n);
    def->ndisks = n;
    for (i = 0; i < n; i++) {
        int type;
        if (vcp_checkpoint_def_get_disk(in, i, &def->disks[i].name, &type, &def->disks[i].bitmap) < 0)
            break;
        def->disks[i].type = type;
    }
    if (i < n ||
        vcp_checkpoint_def_get_name(in, &def->parent.name) < 0 ||
        vcp_checkpoint_def_get_description(in, &def->parent.description) < 0 ||
        vcp_checkpoint_def_get_parent(in, &def->parent.parent_name) < 0 ||
        vcp_checkpoint_def_get_creation_time(in, &def->parent.creationTime) < 0 ||
        vcp_checkpoint_def_get_domain_xml(in, &domain) < 0) {
        vcpConfReport();
        g_clear_pointer(&def, virObjectUnref);
    }
    vcp_checkpoint_def_free(in);
    if (!def)
        return NULL;

    if (domain &&
        !(def->parent.dom = virDomainDefParseString(domain, xmlopt, parseOpaque,
                                                    VIR_DOMAIN_DEF_PARSE_INACTIVE |
                                                    VIR_DOMAIN_DEF_PARSE_SKIP_VALIDATE)))
        return NULL;
    if (!redefine && virDomainXMLOptionRunMomentPostParse(xmlopt, &def->parent) < 0)
        return NULL;
    return g_steal_pointer(&def);
}

char *
virDomainCheckpointDefFormat(virDomainCheckpointDef *def,
                             virDomainXMLOption *xmlopt,
                             unsigned int flags)
{
    g_auto(virBuffer) domain = VIR_BUFFER_INITIALIZER;
    g_autofree vcp_checkpoint_disk *disks = g_new0(vcp_checkpoint_disk, def->ndisks);
    vcp_checkpoint_def *out = NULL;
    char *xml = NULL;
    size_t i;

    virCheckFlags(VIR_DOMAIN_CHECKPOINT_FORMAT_SECURE |
                  VIR_DOMAIN_CHECKPOINT_FORMAT_NO_DOMAIN |
                  VIR_DOMAIN_CHECKPOINT_FORMAT_SIZE, NULL);
    virBufferAdjustIndent(&domain, 2);
    if (def->parent.dom && !(flags & VIR_DOMAIN_CHECKPOINT_FORMAT_NO_DOMAIN) &&
        virDomainDefFormatInternal(def->parent.dom, xmlopt, &domain, VIR_DOMAIN_DEF_FORMAT_INACTIVE |
                                   (flags & VIR_DOMAIN_CHECKPOINT_FORMAT_SECURE ?
                                    VIR_DOMAIN_DEF_FORMAT_SECURE : 0)) < 0)
        return NULL;
    for (i = 0; i < def->ndisks; i++) {
        virDomainCheckpointDiskDef *d = &def->disks[i];
        disks[i] = (vcp_checkpoint_disk) { d->name, d->type, d->bitmap, d->size, d->sizeValid };
    }

    if (!(out = vcp_checkpoint_def_new(def->parent.name, def->parent.creationTime, 0)) ||
        vcp_checkpoint_def_set_parent(out, def->parent.parent_name, def->parent.description) < 0 ||
        vcp_checkpoint_def_set_disks(out, disks, def->ndisks) < 0 ||
        (virBufferUse(&domain) &&
         vcp_checkpoint_def_set_domain_xml(out, virBufferCurrentContent(&domain)) < 0) ||
        !(xml = vcp_checkpoint_def_format_xml(out, flags)))
        vcpConfReport();
    vcp_checkpoint_def_free(out);
    return xml;
}
