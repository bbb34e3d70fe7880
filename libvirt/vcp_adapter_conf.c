/*
 * vcp_adapter_conf.c: libvirt's checkpoint XML parse and format, and the alignment of
 * a checkpoint's disks with its domain, over virtcheckpoint.
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

#include "vcp_adapter_report.h"

G_STATIC_ASSERT(VIR_DOMAIN_CHECKPOINT_TYPE_NONE == VCP_CHECKPOINT_TYPE_NO &&
                VIR_DOMAIN_CHECKPOINT_TYPE_BITMAP == VCP_CHECKPOINT_TYPE_BITMAP);
G_STATIC_ASSERT(VIR_DOMAIN_CHECKPOINT_FORMAT_SECURE == VCP_CHECKPOINT_XML_SECURE &&
                VIR_DOMAIN_CHECKPOINT_FORMAT_NO_DOMAIN == VCP_CHECKPOINT_XML_NO_DOMAIN &&
                VIR_DOMAIN_CHECKPOINT_FORMAT_SIZE == VCP_CHECKPOINT_XML_SIZE);

/* @def as the library's definition: name, creation time, parent, description, disks. */
static vcp_checkpoint_def *
vcpConfDef(virDomainCheckpointDef *def)
{
    g_autofree vcp_checkpoint_disk *disks = g_new0(vcp_checkpoint_disk, def->ndisks);
    vcp_checkpoint_def *out = vcp_checkpoint_def_new(def->parent.name, def->parent.creationTime, 0);
    size_t i;

    for (i = 0; i < def->ndisks; i++) {
        virDomainCheckpointDiskDef *d = &def->disks[i];
        disks[i] = (vcp_checkpoint_disk) { d->name, d->type, d->bitmap, d->size, d->sizeValid };
    }
    if (out && (vcp_checkpoint_def_set_parent(out, def->parent.parent_name, def->parent.description) < 0 ||
                vcp_checkpoint_def_set_disks(out, disks, def->ndisks) < 0))
        g_clear_pointer(&out, vcp_checkpoint_def_free);
    return out;
}

/* Replaces @def's disks by @chk's, whose strings @def takes over. */
static int
vcpConfTakeDisks(vcp_checkpoint_def *chk, virDomainCheckpointDef *def)
{
    g_autofree vcp_checkpoint_disk *disks = NULL;
    int n = vcp_checkpoint_def_get_disks(chk, &disks);
    int i;

    if (n < 0)
        return -1;
    for (i = 0; i < def->ndisks; i++)
        virDomainCheckpointDiskDefClear(&def->disks[i]);
    def->disks = g_renew(virDomainCheckpointDiskDef, def->disks, n);
    def->ndisks = n;
    for (i = 0; i < n; i++)
        def->disks[i] = (virDomainCheckpointDiskDef) { (char *)disks[i].name, disks[i].kind,
            (char *)disks[i].bitmap, disks[i].size, disks[i].has_size };
    return 0;
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
    g_autoptr(virDomainCheckpointDef) def = in ? virDomainCheckpointDefNew() : NULL;
    g_autofree char *domain = NULL;

    if (xml && (!def ||
                vcpConfTakeDisks(in, def) < 0 ||
                vcp_checkpoint_def_get_name(in, &def->parent.name) < 0 ||
                vcp_checkpoint_def_get_description(in, &def->parent.description) < 0 ||
                vcp_checkpoint_def_get_parent(in, &def->parent.parent_name) < 0 ||
                vcp_checkpoint_def_get_creation_time(in, &def->parent.creationTime) < 0 ||
                vcp_checkpoint_def_get_domain_xml(in, &domain) < 0)) {
        vcpReport();
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
    vcp_checkpoint_def *out = NULL;
    char *xml = NULL;

    virCheckFlags(VIR_DOMAIN_CHECKPOINT_FORMAT_SECURE |
                  VIR_DOMAIN_CHECKPOINT_FORMAT_NO_DOMAIN |
                  VIR_DOMAIN_CHECKPOINT_FORMAT_SIZE, NULL);
    virBufferAdjustIndent(&domain, 2);
    if (def->parent.dom && !(flags & VIR_DOMAIN_CHECKPOINT_FORMAT_NO_DOMAIN) &&
        virDomainDefFormatInternal(def->parent.dom, xmlopt, &domain, VIR_DOMAIN_DEF_FORMAT_INACTIVE |
                                   (flags & VIR_DOMAIN_CHECKPOINT_FORMAT_SECURE ?
                                    VIR_DOMAIN_DEF_FORMAT_SECURE : 0)) < 0)
        return NULL;
    if (!(out = vcpConfDef(def)) ||
        (virBufferUse(&domain) &&
         vcp_checkpoint_def_set_domain_xml(out, virBufferCurrentContent(&domain)) < 0) ||
        !(xml = vcp_checkpoint_def_format_xml(out, flags)))
        vcpReport();
    vcp_checkpoint_def_free(out);
    return xml;
}


int
virDomainCheckpointAlignDisks(virDomainCheckpointDef *chkdef)
{
    virDomainDef *domdef = chkdef->parent.dom;
    vcp_domain *dom = domdef ? vcp_domain_new(NULL, NULL) : NULL;
    vcp_checkpoint_def *chk = vcpConfDef(chkdef);
    int rc = chk && (dom || !domdef) ? 0 : -1;
    size_t i;

    /* The disks as alignment reads them: target, read-only, and a source path unless
     * empty (no node names: alignment needs none). */
    for (i = 0; dom && rc == 0 && i < domdef->ndisks; i++) {
        virDomainDiskDef *disk = domdef->disks[i];

        rc = vcp_domain_add_disk(dom, disk->dst, NULL, NULL, disk->src->readonly ? VCP_DISK_READONLY : 0);
        if (rc == 0 && !virStorageSourceIsEmpty(disk->src))
            rc = vcp_domain_disk_append_image(dom, disk->dst, NULLSTR_EMPTY(disk->src->path),
                                              NULLSTR_EMPTY(virStorageFileFormatTypeToString(disk->src->format)),
                                              NULL, NULL, 0);
    }
    if (rc < 0 || vcp_checkpoint_def_align(chk, dom, 0) < 0 || vcpConfTakeDisks(chk, chkdef) < 0)
        rc = vcpReport();
    vcp_checkpoint_def_free(chk);
    vcp_domain_free(dom);
    return rc;
}
