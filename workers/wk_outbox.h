/* wk_outbox: an executor's result frames in its results region (wk_shm).
 * The plugins' output is appended straight into the region (the results'
 * output buffer borrows an open frame there), and a flush of a single
 * result is written around its output where it lies: the frame is made
 * without copying the output again. Other flushes (many small results,
 * an output that outgrew the open frame) are encoded into a frame of
 * their own in the region. Touches no socket: the executor writes the
 * reference it is given, or the encoded frame when there is no room. */
#ifndef ZP_WK_OUTBOX_H
#define ZP_WK_OUTBOX_H

#include "wk_results.h"
#include "wk_shm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An open frame is at most this big (less when the region has less room,
 * at least ZP_WK_OUTBOX_MIN_OPEN). */
#define ZP_WK_OUTBOX_OPEN     ((size_t)2 << 20)
#define ZP_WK_OUTBOX_MIN_OPEN ((size_t)64 << 10)

typedef struct zp_wk_outbox zp_wk_outbox_t;

/* An outbox over the region of size bytes at base (borrowed, valid until
 * destroyed). Caller owns the result; NULL on allocation failure. */
zp_wk_outbox_t *zp_wk_outbox_new(uint8_t *base, size_t size);
/* Frees it; nulls the caller's pointer. results must not borrow from it
 * any more (zp_wk_outbox_arm was not called since the last flush, or
 * results is gone). */
void zp_wk_outbox_destroy(zp_wk_outbox_t **self_p);

/* Lends results' output buffer an open frame (while none is pending and
 * it has none): frames up to released (the worker's watermark) are free
 * again. Without room the buffer stays the results' own. */
void zp_wk_outbox_arm(zp_wk_outbox_t *self, zp_wk_results_t *results,
                      uint64_t released);
/* Places the pending results, as a batch with info's fields, in the
 * region: 0 with *ref the frame to refer the worker to; -1 when there is
 * no room or memory (the caller encodes them and writes them on the
 * socket). Either way the caller then clears the results and arms
 * again. */
int zp_wk_outbox_place(zp_wk_outbox_t *self, zp_wk_results_t *results,
                       const zp_wk_batch_info_t *info, uint64_t released,
                       zp_wk_ref_t *ref);

/* Flushes so far: written around their output in place, encoded into the
 * region, refused for room. */
typedef struct {
    uint64_t in_place, encoded, no_room;
} zp_wk_outbox_stats_t;
zp_wk_outbox_stats_t zp_wk_outbox_stats(const zp_wk_outbox_t *self);

#endif
