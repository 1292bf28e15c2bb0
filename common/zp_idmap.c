/* zp_idmap: open addressing with linear probing and backward-shift
 * deletion (no tombstones), so lookups stay short under churn. */
#include "zp_idmap.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t id;
    void *value; /* NULL = empty slot */
} s_slot_t;

struct zp_idmap {
    s_slot_t *slots;
    size_t cap, size; /* cap is a power of two */
};

static size_t s_hash(uint64_t id, size_t mask)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdull;
    id ^= id >> 33;
    return (size_t)id & mask;
}

zp_idmap_t *zp_idmap_new(void)
{
    zp_idmap_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cap = 64;
    self->slots = calloc(self->cap, sizeof *self->slots);
    if (!self->slots) {
        free(self);
        return NULL;
    }
    return self;
}

void zp_idmap_destroy(zp_idmap_t **self_p)
{
    if (!*self_p)
        return;
    free((*self_p)->slots);
    free(*self_p);
    *self_p = NULL;
}

static int s_grow(zp_idmap_t *self)
{
    size_t cap = self->cap * 2;
    s_slot_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < self->cap; i++) {
        if (!self->slots[i].value)
            continue;
        size_t j = s_hash(self->slots[i].id, cap - 1);
        while (slots[j].value)
            j = (j + 1) & (cap - 1);
        slots[j] = self->slots[i];
    }
    free(self->slots);
    self->slots = slots;
    self->cap = cap;
    return 0;
}

int zp_idmap_put(zp_idmap_t *self, uint64_t id, void *value)
{
    if (!value)
        return -1;
    if ((self->size + 1) * 4 > self->cap * 3 && s_grow(self) < 0)
        return -1;
    size_t mask = self->cap - 1, i = s_hash(id, mask);
    while (self->slots[i].value) {
        if (self->slots[i].id == id) {
            self->slots[i].value = value;
            return 0;
        }
        i = (i + 1) & mask;
    }
    self->slots[i].id = id;
    self->slots[i].value = value;
    self->size++;
    return 0;
}

static size_t s_find(const zp_idmap_t *self, uint64_t id)
{
    size_t mask = self->cap - 1, i = s_hash(id, mask);
    while (self->slots[i].value) {
        if (self->slots[i].id == id)
            return i;
        i = (i + 1) & mask;
    }
    return SIZE_MAX;
}

void *zp_idmap_get(const zp_idmap_t *self, uint64_t id)
{
    size_t i = s_find(self, id);
    return i == SIZE_MAX ? NULL : self->slots[i].value;
}

void *zp_idmap_remove(zp_idmap_t *self, uint64_t id)
{
    size_t i = s_find(self, id);
    if (i == SIZE_MAX)
        return NULL;
    void *value = self->slots[i].value;
    size_t mask = self->cap - 1, j = i;
    /* Shift later members of the probe run back into the hole. */
    for (;;) {
        j = (j + 1) & mask;
        if (!self->slots[j].value)
            break;
        size_t home = s_hash(self->slots[j].id, mask);
        bool movable =
            i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            self->slots[i] = self->slots[j];
            i = j;
        }
    }
    self->slots[i].value = NULL;
    self->size--;
    return value;
}

size_t zp_idmap_size(const zp_idmap_t *self)
{
    return self->size;
}

bool zp_idmap_next(const zp_idmap_t *self, size_t *cursor, uint64_t *id,
                   void **value)
{
    while (*cursor < self->cap) {
        s_slot_t *s = &self->slots[(*cursor)++];
        if (s->value) {
            *id = s->id;
            *value = s->value;
            return true;
        }
    }
    return false;
}

static int s_deque_grow(zp_iddeque_t *q)
{
    size_t cap = q->cap ? q->cap * 2 : 256;
    uint64_t *items = malloc(cap * sizeof *items);
    if (!items)
        return -1;
    for (size_t i = 0; i < q->len; i++)
        items[i] = q->items[(q->head + i) % q->cap];
    free(q->items);
    q->items = items;
    q->cap = cap;
    q->head = 0;
    return 0;
}

int zp_iddeque_push_back(zp_iddeque_t *q, uint64_t id)
{
    if (q->len == q->cap && s_deque_grow(q) < 0)
        return -1;
    q->items[(q->head + q->len) % q->cap] = id;
    q->len++;
    return 0;
}

int zp_iddeque_push_front(zp_iddeque_t *q, uint64_t id)
{
    if (q->len == q->cap && s_deque_grow(q) < 0)
        return -1;
    q->head = (q->head + q->cap - 1) % q->cap;
    q->items[q->head] = id;
    q->len++;
    return 0;
}

bool zp_iddeque_pop_front(zp_iddeque_t *q, uint64_t *id)
{
    if (q->len == 0)
        return false;
    *id = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return true;
}

void zp_iddeque_free(zp_iddeque_t *q)
{
    free(q->items);
    memset(q, 0, sizeof *q);
}
