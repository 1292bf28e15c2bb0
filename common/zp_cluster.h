/* zp_cluster: a cluster's name (--cluster, ZPIPE_CLUSTER), carried in
 * every Hello and JobOpen so that a worker or producer pointed at another
 * cluster's ventilator, or a ventilator at another cluster's sink, is
 * refused with a reason on both sides instead of mixing two clusters'
 * work. A name is 1 to 64 of [A-Za-z0-9_.:-]; unset ("" or NULL) on
 * either side means "any" (what peers before cluster names send). */
#ifndef ZP_CLUSTER_H
#define ZP_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#define ZP_CLUSTER_MAX 64

/* Whether name is a valid cluster name, or unset (NULL or ""). */
bool zp_cluster_valid(const char *name);

/* NULL when a peer naming cluster theirs may talk to this daemon of
 * cluster mine (either unset, or the same); else why not, naming both
 * and what to check, in buf[0..len). */
const char *zp_cluster_check(const char *mine, const char *theirs,
                             const char *peer, char *buf, size_t len);

#endif
