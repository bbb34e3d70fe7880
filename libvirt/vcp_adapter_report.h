/*
 * vcp_adapter_report.h: the library's errors reported the libvirt way, shared by the
 * adapter's parts in the QEMU driver and in the conf library. The including file
 * defines VIR_FROM_THIS first, as every libvirt file does.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "virerror.h"

#include <virtcheckpoint.h>

/* Reports the library's last error through virReportError, with its code and its text
 * without libvirt's prefix (virReportError adds it); returns -1. */
static inline int
vcpReport(void)
{
    const vcp_error *err = vcp_last_error();
    virReportError(err ? err->code : VIR_ERR_INTERNAL_ERROR, "%s", vcp_last_error_detail());
    return -1;
}
