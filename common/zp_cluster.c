/* zp_cluster: cluster names (see zp_cluster.h). */
#include "zp_cluster.h"
#include "zp_name.h"

#include <stdio.h>
#include <string.h>

bool zp_cluster_valid(const char *name)
{
    return !name || !*name ||
           zp_name_valid(name, strlen(name), ZP_CLUSTER_MAX, "_.:-");
}

const char *zp_cluster_check(const char *mine, const char *theirs,
                             const char *peer, char *buf, size_t len)
{
    if (!mine || !*mine || !theirs || !*theirs || strcmp(mine, theirs) == 0)
        return NULL;
    snprintf(buf, len,
             "wrong cluster: this is cluster %s, the %s belongs to cluster "
             "%s (check its endpoints and --cluster)",
             mine, peer, theirs);
    return buf;
}
