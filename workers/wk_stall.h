/* wk_stall: when a running task is "far beyond usual", as pure policy.
 * The worker records how long its plugin calls take; a call running longer
 * than ZP_WK_STALL_FACTOR times the 99th percentile of the last
 * ZP_WK_STALL_SAMPLES calls, and at least the floor, is stalled: the
 * worker then stops feeding that executor (wk_exec parks it). Only for
 * tasks with no deadline: a deadline kills instead. */
#ifndef ZP_WK_STALL_H
#define ZP_WK_STALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZP_WK_STALL_FACTOR  10u
#define ZP_WK_STALL_SAMPLES 256u

/* Owned by its user, embedded; change it only through the functions. */
typedef struct {
    uint64_t samples[ZP_WK_STALL_SAMPLES]; /* call times, µs (a ring) */
    size_t n, next;
    uint64_t floor_us; /* 0: never stalled */
} zp_wk_stall_t;

/* Starts with no samples and a floor of floor_ms (0 = off). */
void zp_wk_stall_init(zp_wk_stall_t *self, uint64_t floor_ms);
/* One plugin call took elapsed_us. */
void zp_wk_stall_observe(zp_wk_stall_t *self, uint64_t elapsed_us);
/* The limit now, µs: max(floor, FACTOR x p99 of the samples); 0 = off. */
uint64_t zp_wk_stall_limit_us(const zp_wk_stall_t *self);
/* Whether a call started at started_us (monotonic) is stalled at now. */
bool zp_wk_stall_overdue(const zp_wk_stall_t *self, uint64_t started_us,
                         uint64_t now);

#endif
