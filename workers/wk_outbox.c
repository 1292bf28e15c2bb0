/* wk_outbox: result frames in the results region (see wk_outbox.h). */
#include "wk_outbox.h"
#include "zp_codec.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Room kept before an open frame's output for the frame's head (the
 * message, job and worker ids, the result's head: under 60 bytes beside
 * the two ids), and after its end for the tail (the fixed fields of a
 * result that succeeded and of the batch: under 100 bytes). */
#define S_HEAD ((size_t)1024)
#define S_TAIL ((size_t)256)

struct zp_wk_outbox {
    uint8_t *base;
    size_t size;
    zp_wk_slots_t slots;
    uint64_t open; /* the open frame's slot, 0 = none */
    /* Frames referred to the worker, in order (their number in that
     * order, which the worker's watermark counts), and their slots. */
    uint64_t sent;
    uint64_t fifo_sent[ZP_WK_SLOTS_MAX], fifo_slot[ZP_WK_SLOTS_MAX];
    size_t fifo_head, fifo_n;
    zp_wk_outbox_stats_t stats;
};

zp_wk_outbox_t *zp_wk_outbox_new(uint8_t *base, size_t size)
{
    zp_wk_outbox_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base = base;
    self->size = size;
    zp_wk_slots_init(&self->slots, size);
    return self;
}

void zp_wk_outbox_destroy(zp_wk_outbox_t **self_p)
{
    free(*self_p);
    *self_p = NULL;
}

zp_wk_outbox_stats_t zp_wk_outbox_stats(const zp_wk_outbox_t *self)
{
    return self->stats;
}

/* Frees the frames the worker is done with (up to released). */
static void s_reclaim(zp_wk_outbox_t *self, uint64_t released)
{
    while (self->fifo_n && self->fifo_sent[self->fifo_head] <= released) {
        zp_wk_slots_release(&self->slots, self->fifo_slot[self->fifo_head]);
        self->fifo_head = (self->fifo_head + 1) % ZP_WK_SLOTS_MAX;
        self->fifo_n--;
    }
}

/* The reference to slot's frame [off, off + len), the next sent. */
static void s_sent(zp_wk_outbox_t *self, uint64_t slot, size_t off, size_t len,
                   zp_wk_ref_t *ref)
{
    size_t tail = (self->fifo_head + self->fifo_n) % ZP_WK_SLOTS_MAX;
    self->fifo_sent[tail] = ++self->sent;
    self->fifo_slot[tail] = slot;
    self->fifo_n++; /* a slot per frame: never more than ZP_WK_SLOTS_MAX */
    *ref = (zp_wk_ref_t){ZP_WK_REF_RESULTS, self->sent, off, len};
}

void zp_wk_outbox_arm(zp_wk_outbox_t *self, zp_wk_results_t *results,
                      uint64_t released)
{
    zp_buf_t *out = zp_wk_results_out(results);
    assert(zp_wk_results_count(results) == 0);
    s_reclaim(self, released);
    if (self->open && out->borrowed)
        return;     /* lent already */
    if (self->open) /* the output outgrew it: the frame was not used */
        zp_wk_slots_release(&self->slots, self->open);
    self->open = 0;
    for (size_t want = ZP_WK_OUTBOX_OPEN; want >= ZP_WK_OUTBOX_MIN_OPEN;
         want /= 2) {
        size_t off;
        if (zp_wk_slots_alloc(&self->slots, want, &off, &self->open) == 0) {
            zp_buf_borrow(out, self->base + off + S_HEAD,
                          want - S_HEAD - S_TAIL);
            return;
        }
    }
}

/* Whether the pending results are one result whose output lies at the
 * start of the open frame's output room, with head and tail that fit
 * around it: then *rb is their batch. */
static bool s_fits_in_place(const zp_wk_outbox_t *self,
                            zp_wk_results_t *results,
                            const zp_wk_batch_info_t *info,
                            Zpipe__V1__ResultBatch *rb)
{
    const zp_buf_t *out = zp_wk_results_out(results);
    if (!self->open || !out->borrowed || zp_wk_results_count(results) != 1 ||
        zp_wk_results_batch(results, info, rb) < 0)
        return false;
    const Zpipe__V1__Result *r = rb->results[0];
    if (!r->output.len || r->output.data != (uint8_t *)out->data)
        return false;
    size_t head = zp_result_batch_head_size(rb);
    return head <= S_HEAD &&
           zp_result_batch_size(rb) - head - r->output.len <= S_TAIL;
}

int zp_wk_outbox_place(zp_wk_outbox_t *self, zp_wk_results_t *results,
                       const zp_wk_batch_info_t *info, uint64_t released,
                       zp_wk_ref_t *ref)
{
    zp_buf_t *out = zp_wk_results_out(results);
    Zpipe__V1__ResultBatch rb;
    s_reclaim(self, released);
    if (s_fits_in_place(self, results, info, &rb)) {
        uint8_t *start;
        size_t len = zp_result_batch_write_around(&rb, &start);
        size_t off = (size_t)(start - self->base);
        zp_wk_slots_trim(&self->slots, self->open, off, len);
        s_sent(self, self->open, off, len, ref);
        self->open = 0;
        /* The output buffer lets go of the frame now sent. */
        zp_buf_free(out);
        self->stats.in_place++;
        return 0;
    }
    if (self->open && !out->borrowed) { /* outgrown: its room is free */
        zp_wk_slots_release(&self->slots, self->open);
        self->open = 0;
    }
    size_t len = zp_wk_results_size(results, info), off;
    uint64_t slot;
    if (zp_wk_slots_alloc(&self->slots, len, &off, &slot) < 0) {
        self->stats.no_room++;
        return -1;
    }
    zp_wk_results_write(results, info, self->base + off);
    s_sent(self, slot, off, len, ref);
    self->stats.encoded++;
    return 0;
}
