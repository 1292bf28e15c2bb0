/* wk_queue: a ring of received batches (see wk_queue.h). */
#include "wk_queue.h"

#include <stdlib.h>
#include <string.h>

void zp_wk_batch_init(zp_wk_batch_t *b)
{
    zmq_msg_init(&b->head);
    b->parts = NULL;
    b->n_parts = 0;
    b->n = 0;
    b->deadlines_known = false;
    b->some_without = false;
    b->min_deadline_ms = 0;
}

void zp_wk_batch_close(zp_wk_batch_t *b)
{
    zmq_msg_close(&b->head);
    for (size_t i = 0; i < b->n_parts; i++)
        zmq_msg_close(&b->parts[i]);
    free(b->parts);
    zp_wk_batch_init(b);
}

void zp_wk_batch_move(zp_wk_batch_t *dst, zp_wk_batch_t *src)
{
    zmq_msg_move(&dst->head, &src->head);
    dst->parts = src->parts;
    dst->n_parts = src->n_parts;
    dst->n = src->n;
    dst->deadlines_known = src->deadlines_known;
    dst->some_without = src->some_without;
    dst->min_deadline_ms = src->min_deadline_ms;
    src->parts = NULL;
    src->n_parts = 0;
    src->n = 0;
    src->deadlines_known = false;
}

size_t zp_wk_batch_bytes(const zp_wk_batch_t *b)
{
    size_t n = zmq_msg_size((zmq_msg_t *)&b->head);
    for (size_t i = 0; i < b->n_parts; i++)
        n += zmq_msg_size(&b->parts[i]);
    return n;
}

bool zp_wk_batch_attach(const zp_wk_batch_t *b, Zpipe__V1__TaskBatch *tb)
{
    size_t used = 0;
    for (size_t i = 0; i < tb->n_tasks; i++) {
        Zpipe__V1__Task *t = tb->tasks[i];
        uint32_t k = t->payload_frame;
        if (!k)
            continue;
        /* Frames are named in order, each once: the k-th named is k. */
        if (k != used + 1 || k > b->n_parts || t->payload.len)
            return false;
        used++;
        t->payload.data = zmq_msg_data(&b->parts[k - 1]);
        t->payload.len = zmq_msg_size(&b->parts[k - 1]);
        t->payload_frame = 0;
    }
    return used == b->n_parts;
}

struct zp_wk_queue {
    zp_wk_batch_t *ring;
    size_t head, len, cap;
};

zp_wk_queue_t *zp_wk_queue_new(void)
{
    return calloc(1, sizeof(zp_wk_queue_t));
}

void zp_wk_queue_destroy(zp_wk_queue_t **self_p)
{
    zp_wk_queue_t *self = *self_p;
    if (!self)
        return;
    while (self->len) {
        zp_wk_batch_close(&self->ring[self->head]);
        self->head = (self->head + 1) % self->cap;
        self->len--;
    }
    free(self->ring);
    free(self);
    *self_p = NULL;
}

static int s_grow(zp_wk_queue_t *self)
{
    if (self->len < self->cap)
        return 0;
    size_t cap = self->cap ? 2 * self->cap : 16;
    zp_wk_batch_t *q = malloc(cap * sizeof *q);
    if (!q)
        return -1;
    for (size_t i = 0; i < self->len; i++)
        memcpy(&q[i], &self->ring[(self->head + i) % self->cap], sizeof *q);
    free(self->ring);
    self->ring = q;
    self->cap = cap;
    self->head = 0;
    return 0;
}

int zp_wk_queue_push(zp_wk_queue_t *self, zp_wk_batch_t *b)
{
    if (s_grow(self) < 0)
        return -1;
    zp_wk_batch_t *slot = &self->ring[(self->head + self->len) % self->cap];
    zp_wk_batch_init(slot);
    zp_wk_batch_move(slot, b);
    self->len++;
    return 0;
}

int zp_wk_queue_push_front(zp_wk_queue_t *self, zp_wk_batch_t *b)
{
    if (s_grow(self) < 0)
        return -1;
    self->head = (self->head + self->cap - 1) % self->cap;
    zp_wk_batch_t *slot = &self->ring[self->head];
    zp_wk_batch_init(slot);
    zp_wk_batch_move(slot, b);
    self->len++;
    return 0;
}

bool zp_wk_queue_pop(zp_wk_queue_t *self, zp_wk_batch_t *b)
{
    if (self->len == 0)
        return false;
    zp_wk_batch_t *q = &self->ring[self->head];
    self->head = (self->head + 1) % self->cap;
    self->len--;
    zp_wk_batch_move(b, q);
    zmq_msg_close(&q->head);
    return true;
}

size_t zp_wk_queue_len(const zp_wk_queue_t *self)
{
    return self->len;
}
