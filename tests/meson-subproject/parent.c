/* Parent-project program: links virtcheckpoint statically through the subproject. */
#include <stdio.h>
#include <string.h>

#include <virtcheckpoint.h>

int
main(void)
{
    vcp_node_data *nd = vcp_node_data_parse_json(
        "{\"return\":[{\"node-name\":\"libvirt-1-format\",\"image\":{\"virtual-size\":1},"
        "\"dirty-bitmaps\":[{\"name\":\"c1\",\"recording\":true,\"persistent\":true}]}]}", 0);
    vcp_bitmap_info info;
    int found = nd ? vcp_node_data_get_bitmap(nd, "libvirt-1-format", "c1", &info) : -1;

    printf("virtcheckpoint %lu: found=%d\n", vcp_version(), found);
    vcp_node_data_free(nd);
    return found == 1 && (info.flags & VCP_BITMAP_RECORDING) ? 0 : 1;
}
