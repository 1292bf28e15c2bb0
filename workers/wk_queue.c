/* wk_queue: a ring of received batches (see wk_queue.h). */
#include "wk_queue.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    zmq_msg_t frame;
    size_t n;
} s_queued_t;

struct zp_wk_queue {
    s_queued_t *ring;
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
        zmq_msg_close(&self->ring[self->head].frame);
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
    s_queued_t *q = malloc(cap * sizeof *q);
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

int zp_wk_queue_push(zp_wk_queue_t *self, zmq_msg_t *frame, size_t n)
{
    if (s_grow(self) < 0)
        return -1;
    s_queued_t *slot = &self->ring[(self->head + self->len) % self->cap];
    zmq_msg_init(&slot->frame);
    zmq_msg_move(&slot->frame, frame);
    slot->n = n;
    self->len++;
    return 0;
}

int zp_wk_queue_push_front(zp_wk_queue_t *self, zmq_msg_t *frame, size_t n)
{
    if (s_grow(self) < 0)
        return -1;
    self->head = (self->head + self->cap - 1) % self->cap;
    s_queued_t *slot = &self->ring[self->head];
    zmq_msg_init(&slot->frame);
    zmq_msg_move(&slot->frame, frame);
    slot->n = n;
    self->len++;
    return 0;
}

bool zp_wk_queue_pop(zp_wk_queue_t *self, zmq_msg_t *frame, size_t *n)
{
    if (self->len == 0)
        return false;
    s_queued_t *q = &self->ring[self->head];
    self->head = (self->head + 1) % self->cap;
    self->len--;
    zmq_msg_move(frame, &q->frame);
    zmq_msg_close(&q->frame);
    *n = q->n;
    return true;
}

size_t zp_wk_queue_len(const zp_wk_queue_t *self)
{
    return self->len;
}
