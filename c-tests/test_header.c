/* The header alone, compiled under strict C (and, as test_header_cxx.cc, as C++). */
#include "virtcheckpoint.h"
#include "virtcheckpoint.h" /* the include guard makes a second inclusion harmless */

int
main(void)
{
    return vcp_version() == VCP_VERSION_NUMBER ? 0 : 1;
}
