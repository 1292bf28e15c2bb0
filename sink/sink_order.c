/* sink_order: the ring of records held back for task id order. */
#include "sink_order.h"

#include <stdlib.h>
#include <string.h>

uint64_t zp_order_next(const zp_order_t *self)
{
    return self->next;
}

void zp_order_restart(zp_order_t *self, uint64_t next)
{
    self->next = next;
}

/* Makes the ring hold offset off from next: the parked records move to
 * their slots in the larger ring. */
static int s_grow(zp_order_t *self, uint64_t off)
{
    size_t cap = self->ring_cap ? self->ring_cap : 1024;
    while (cap <= off) {
        if (cap > SIZE_MAX / 2 / sizeof(zp_buf_t *))
            return -1;
        cap *= 2;
    }
    zp_buf_t **ring = calloc(cap, sizeof *ring);
    if (!ring)
        return -1;
    for (size_t i = 0; i < self->ring_cap; i++) {
        uint64_t tid = self->next + i;
        ring[tid % cap] = self->ring[tid % self->ring_cap];
    }
    free(self->ring);
    self->ring = ring;
    self->ring_cap = cap;
    return 0;
}

static void s_slot_free(zp_buf_t **slot)
{
    if (*slot) {
        zp_buf_free(*slot);
        free(*slot);
        *slot = NULL;
    }
}

int zp_order_park(zp_order_t *self, uint64_t id, bool ok, const void *rec,
                  size_t rec_len, const void *json, size_t json_len)
{
    if (id <= self->next)
        return -1;
    uint64_t off = id - self->next;
    if (off >= self->ring_cap && s_grow(self, off) < 0)
        return -1;
    zp_buf_t *copy = calloc(1, sizeof *copy);
    /* The status (for the journal when it is written), the record's
     * length, the record, then its JSON when that differs. */
    uint64_t n = rec_len;
    if (!copy || zp_buf_append(copy, ok ? "o" : "f", 1) < 0 ||
        zp_buf_append(copy, &n, sizeof n) < 0 ||
        zp_buf_append(copy, rec, rec_len) < 0 ||
        (json && zp_buf_append(copy, json, json_len) < 0)) {
        s_slot_free(&copy);
        return -1;
    }
    zp_buf_t **slot = &self->ring[id % self->ring_cap];
    s_slot_free(slot); /* never set: the caller parks an id once */
    *slot = copy;
    return 0;
}

bool zp_order_peek(const zp_order_t *self, zp_order_rec_t *out)
{
    if (!self->ring_cap)
        return false;
    const zp_buf_t *p = self->ring[self->next % self->ring_cap];
    if (!p)
        return false;
    uint64_t n;
    memcpy(&n, p->data + 1, sizeof n);
    out->task = self->next;
    out->ok = p->data[0] == 'o';
    out->rec = p->data + 1 + sizeof n;
    out->rec_len = (size_t)n;
    out->json_len = p->len - 1 - sizeof n - (size_t)n;
    out->json = out->json_len ? out->rec + n : NULL;
    return true;
}

void zp_order_advance(zp_order_t *self)
{
    if (self->ring_cap)
        s_slot_free(&self->ring[self->next % self->ring_cap]);
    self->next++;
}

size_t zp_order_skip_written(zp_order_t *self, zp_order_written_fn *written,
                             void *ctx)
{
    size_t n = 0;
    while ((!self->ring_cap || !self->ring[self->next % self->ring_cap]) &&
           written(ctx, self->next)) {
        self->next++;
        n++;
    }
    return n;
}

size_t zp_order_parked(const zp_order_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->ring_cap; i++)
        n += self->ring[i] != NULL;
    return n;
}

bool zp_order_is_parked(const zp_order_t *self, uint64_t id)
{
    return self->ring_cap && id > self->next &&
           id - self->next < self->ring_cap &&
           self->ring[id % self->ring_cap] != NULL;
}

void zp_order_parked_counts(const zp_order_t *self, uint64_t *ok,
                            uint64_t *failed)
{
    *ok = *failed = 0;
    for (size_t i = 0; i < self->ring_cap; i++)
        if (self->ring[i]) {
            if (self->ring[i]->data[0] == 'o')
                (*ok)++;
            else
                (*failed)++;
        }
}

void zp_order_fini(zp_order_t *self)
{
    for (size_t i = 0; i < self->ring_cap; i++)
        s_slot_free(&self->ring[i]);
    free(self->ring);
    self->ring = NULL;
    self->ring_cap = 0;
}
