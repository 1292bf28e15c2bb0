/* vent_acks: the queue of Acks waiting for the journal's sync. */
#define _GNU_SOURCE
#include "vent_acks.h"

#include <stdlib.h>
#include <string.h>

int zp_vent_acks_push(zp_vent_acks_t *q, const char *rid, size_t rid_len,
                      const char *job, bool ok, const char *error,
                      uint64_t first, uint64_t accepted, uint64_t seq)
{
    if (rid_len > sizeof q->items[0].rid)
        return -1;
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 32;
        zp_vent_ack_item_t *items = realloc(q->items, cap * sizeof *items);
        if (!items)
            return -1;
        q->items = items;
        q->cap = cap;
    }
    zp_vent_ack_item_t *a = &q->items[q->n];
    a->job = strdup(job ? job : "");
    a->error = error ? strdup(error) : NULL;
    if (!a->job || (error && !a->error)) {
        free(a->job);
        free(a->error);
        return -1;
    }
    memcpy(a->rid, rid, rid_len);
    a->rid_len = rid_len;
    a->ok = ok;
    a->finished = false;
    a->first = first;
    a->accepted = accepted;
    a->seq = seq;
    q->n++;
    return 0;
}

void zp_vent_acks_clear(zp_vent_acks_t *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->items[i].job);
        free(q->items[i].error);
    }
    q->n = 0;
}

void zp_vent_acks_free(zp_vent_acks_t *q)
{
    zp_vent_acks_clear(q);
    free(q->items);
    q->items = NULL;
    q->cap = 0;
}
