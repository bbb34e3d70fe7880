/*
 * vcp_adapter.h: what the two parts of the libvirt adapter share.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <virtcheckpoint.h>

/* libvirt 9.0 names an image's nodes in its fields; libvirt 11 through accessors (the
 * format node, else the slice, else the storage node: QEMU's node for the image). */
#if LIBVIR_CHECK_VERSION(11, 0, 0)
# define VCP_NODE(src) qemuBlockStorageSourceGetEffectiveNodename(src)
# define VCP_STORAGE(src) qemuBlockStorageSourceGetStorageNodename(src)
#else
# define VCP_NODE(src) ((src)->nodeformat)
# define VCP_STORAGE(src) ((src)->nodestorage)
#endif

/* Reports the library's last error through virReportError. */
void vcpAdapterReport(void);

/* Adds libvirt's entry of node @node (if it has one, and once) to @nodes, with its
 * bitmap @only (NULL: all of them). */
int vcpAdapterAddNode(vcp_node_data *nodes, const char *node, GHashTable *data,
                      const char *only);

/* Appends the library's JSON array @text to libvirt's @actions. Frees @text. */
int vcpAdapterAppend(char *text, virJSONValue *actions);
