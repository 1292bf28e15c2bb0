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

/* A chunk past this takes no more records (unless it is the only one
 * with room: a record never waits for memory to be freed). */
#define S_CHUNK (256u << 10)

/* Makes the ring hold offset off from next: the parked records move to
 * their slots in the larger ring. */
static int s_grow(zp_order_t *self, uint64_t off)
{
    size_t cap = self->ring_cap ? self->ring_cap : 1024;
    while (cap <= off) {
        if (cap > SIZE_MAX / 2 / sizeof(zp_order_slot_t))
            return -1;
        cap *= 2;
    }
    zp_order_slot_t *ring = calloc(cap, sizeof *ring);
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

/* The index of an empty chunk other than the current one, or n_chunks. */
static size_t s_empty_chunk(const zp_order_t *self)
{
    size_t i = 0;
    while (i < self->n_chunks && (i == self->cur || self->chunks[i].live))
        i++;
    return i;
}

zp_buf_t *zp_order_park_buf(zp_order_t *self)
{
    zp_order_chunk_t *c = self->n_chunks ? &self->chunks[self->cur] : NULL;
    if (c && !c->live)
        c->buf.len = 0; /* all written: reused from its start */
    if (c && c->buf.len < S_CHUNK)
        return &c->buf;
    size_t i = s_empty_chunk(self);
    if (i == self->n_chunks) {
        if (self->n_chunks >= UINT32_MAX - 1)
            return NULL;
        zp_order_chunk_t *more =
            realloc(self->chunks, (self->n_chunks + 1) * sizeof *more);
        if (!more)
            return NULL;
        self->chunks = more;
        self->chunks[self->n_chunks++] = (zp_order_chunk_t){{0}, 0};
    }
    self->cur = i;
    self->chunks[i].buf.len = 0;
    return &self->chunks[i].buf;
}

/* A parked record of chunk i is written: an emptied chunk other than
 * the current one is kept as the one spare, or freed. */
static void s_chunk_release(zp_order_t *self, size_t i)
{
    zp_order_chunk_t *c = &self->chunks[i];
    if (--c->live || i == self->cur)
        return;
    c->buf.len = 0;
    for (size_t k = 0; k < self->n_chunks; k++)
        if (k != i && k != self->cur && !self->chunks[k].live &&
            self->chunks[k].buf.data) {
            zp_buf_free(&c->buf);
            return;
        }
}

int zp_order_park_rendered(zp_order_t *self, uint64_t id, bool ok, size_t from,
                           size_t rec_len)
{
    zp_buf_t *b = &self->chunks[self->cur].buf;
    uint64_t off = id - self->next;
    if (id <= self->next || (off >= self->ring_cap && s_grow(self, off) < 0)) {
        b->len = from;
        return -1;
    }
    zp_order_slot_t *slot = &self->ring[id % self->ring_cap];
    if (slot->chunk) { /* never: the caller parks an id once */
        s_chunk_release(self, slot->chunk - 1);
        self->parked--;
    }
    *slot = (zp_order_slot_t){
        .chunk = (uint32_t)self->cur + 1,
        .ok = ok,
        .at = from,
        .rec_len = rec_len,
        .json_len = b->len - from - rec_len,
    };
    self->chunks[self->cur].live++;
    self->parked++;
    return 0;
}

int zp_order_park(zp_order_t *self, uint64_t id, bool ok, const void *rec,
                  size_t rec_len, const void *json, size_t json_len)
{
    if (id <= self->next)
        return -1;
    zp_buf_t *b = zp_order_park_buf(self);
    if (!b)
        return -1;
    size_t from = b->len;
    if (zp_buf_append(b, rec, rec_len) < 0 ||
        (json && zp_buf_append(b, json, json_len) < 0)) {
        b->len = from;
        return -1;
    }
    return zp_order_park_rendered(self, id, ok, from, rec_len);
}

bool zp_order_peek(const zp_order_t *self, zp_order_rec_t *out)
{
    if (!self->ring_cap)
        return false;
    const zp_order_slot_t *slot = &self->ring[self->next % self->ring_cap];
    if (!slot->chunk)
        return false;
    const char *at = self->chunks[slot->chunk - 1].buf.data + slot->at;
    out->task = self->next;
    out->ok = slot->ok;
    out->rec = at;
    out->rec_len = slot->rec_len;
    out->json_len = slot->json_len;
    out->json = slot->json_len ? at + slot->rec_len : NULL;
    return true;
}

void zp_order_advance(zp_order_t *self)
{
    zp_order_slot_t *slot =
        self->ring_cap ? &self->ring[self->next % self->ring_cap] : NULL;
    if (slot && slot->chunk) {
        s_chunk_release(self, slot->chunk - 1);
        slot->chunk = 0;
        self->parked--;
    }
    self->next++;
}

size_t zp_order_skip_written(zp_order_t *self, zp_order_written_fn *written,
                             void *ctx)
{
    size_t n = 0;
    while (
        (!self->ring_cap || !self->ring[self->next % self->ring_cap].chunk) &&
        written(ctx, self->next)) {
        self->next++;
        n++;
    }
    return n;
}

size_t zp_order_parked(const zp_order_t *self)
{
    return self->parked;
}

bool zp_order_is_parked(const zp_order_t *self, uint64_t id)
{
    return self->ring_cap && id > self->next &&
           id - self->next < self->ring_cap &&
           self->ring[id % self->ring_cap].chunk != 0;
}

void zp_order_parked_counts(const zp_order_t *self, uint64_t *ok,
                            uint64_t *failed)
{
    *ok = *failed = 0;
    for (size_t i = 0; self->parked && i < self->ring_cap; i++)
        if (self->ring[i].chunk) {
            if (self->ring[i].ok)
                (*ok)++;
            else
                (*failed)++;
        }
}

void zp_order_fini(zp_order_t *self)
{
    for (size_t i = 0; i < self->n_chunks; i++)
        zp_buf_free(&self->chunks[i].buf);
    free(self->chunks);
    free(self->ring);
    self->chunks = NULL;
    self->n_chunks = self->cur = 0;
    self->ring = NULL;
    self->ring_cap = 0;
    self->parked = 0;
}
