/*
 * vcp_adapter.h: what the two parts of the libvirt adapter share.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <virtcheckpoint.h>

/* Reports the library's last error through virReportError. */
void vcpAdapterReport(void);

/* Adds libvirt's entry of node @node (if it has one, and once) to @nodes, with its
 * bitmap @only (NULL: all of them). */
int vcpAdapterAddNode(vcp_node_data *nodes, const char *node, GHashTable *data,
                      const char *only);

/* Appends the library's JSON array @text to libvirt's @actions. Frees @text. */
int vcpAdapterAppend(char *text, virJSONValue *actions);
