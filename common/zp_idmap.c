/* zp_idmap: open addressing with Robin Hood linear probing and
 * backward-shift deletion (no tombstones). Ids are dense (task numbers
 * read in order), so the low bits are the hash: neighbours share cache
 * lines, a window of consecutive ids never collides, and put, get and
 * remove each touch one or two slots.
 *
 * Unless the ids held span more than the table: tasks held long (a slow
 * worker's window) while newer ones went round the table, past them,
 * piled the newer ones up in one cluster behind the old, and every put
 * walked it (seen in a ventilator taking a producer's batches ahead:
 * 4,400 slots a put at 22,528 members of 32,768, 20 ms with the workers
 * idle). A put that walks far doubles the table, while it is less than
 * S_SPARSE times the members: the held span fits again, and the window
 * is clear. A hash of the other bits would not pile up either, but cost
 * every run 5 to 8 % more of the ventilator's time (measured: its slots
 * no longer follow the ids). */
#include "zp_idmap.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t id;
    void *value; /* NULL = empty slot */
} s_slot_t;

/* A put that walks more slots than this grows the table, while it has
 * fewer than S_SPARSE slots a member. */
#define S_FAR    64
#define S_SPARSE 8

struct zp_idmap {
    s_slot_t *slots;
    size_t cap, size; /* cap is a power of two */
};

static size_t s_home(uint64_t id, size_t mask)
{
    return (size_t)(id ^ (id >> 32)) & mask;
}

/* How far slot i is from its member's home. */
static size_t s_dist(const zp_idmap_t *self, size_t i)
{
    size_t mask = self->cap - 1;
    return (i - s_home(self->slots[i].id, mask)) & mask;
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

/* Places a member known to be absent; returns how many slots it walked. */
static size_t s_insert(zp_idmap_t *self, s_slot_t cur)
{
    size_t walked = 0;
    size_t mask = self->cap - 1, i = s_home(cur.id, mask), d = 0;
    while (self->slots[i].value) {
        size_t sd = s_dist(self, i);
        if (sd < d) { /* take from the rich: swap and carry on */
            s_slot_t t = self->slots[i];
            self->slots[i] = cur;
            cur = t;
            d = sd;
        }
        i = (i + 1) & mask;
        d++;
        walked++;
    }
    self->slots[i] = cur;
    self->size++;
    return walked;
}

static int s_grow(zp_idmap_t *self)
{
    size_t old_cap = self->cap;
    s_slot_t *old = self->slots;
    s_slot_t *slots = calloc(old_cap * 2, sizeof *slots);
    if (!slots)
        return -1;
    self->slots = slots;
    self->cap = old_cap * 2;
    self->size = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].value)
            s_insert(self, old[i]);
    free(old);
    return 0;
}

static size_t s_find(const zp_idmap_t *self, uint64_t id)
{
    size_t mask = self->cap - 1, i = s_home(id, mask), d = 0;
    while (self->slots[i].value) {
        if (self->slots[i].id == id)
            return i;
        if (s_dist(self, i) < d)
            break; /* it would have been placed here */
        i = (i + 1) & mask;
        d++;
    }
    return SIZE_MAX;
}

int zp_idmap_put(zp_idmap_t *self, uint64_t id, void *value)
{
    if (!value)
        return -1;
    size_t i = s_find(self, id);
    if (i != SIZE_MAX) {
        self->slots[i].value = value;
        return 0;
    }
    if ((self->size + 1) * 4 > self->cap * 3 && s_grow(self) < 0)
        return -1;
    if (s_insert(self, (s_slot_t){id, value}) > S_FAR &&
        self->cap < S_SPARSE * self->size)
        (void)s_grow(self); /* out of memory: only slower, as before */
    return 0;
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
    size_t mask = self->cap - 1;
    /* Shift the members after it back by one until one is at home. */
    for (;;) {
        size_t j = (i + 1) & mask;
        if (!self->slots[j].value || s_dist(self, j) == 0)
            break;
        self->slots[i] = self->slots[j];
        i = j;
    }
    self->slots[i].value = NULL;
    self->size--;
    return value;
}

size_t zp_idmap_size(const zp_idmap_t *self)
{
    return self->size;
}

size_t zp_idmap_longest_probe(const zp_idmap_t *self)
{
    size_t longest = 0;
    for (size_t i = 0; i < self->cap; i++)
        if (self->slots[i].value && s_dist(self, i) > longest)
            longest = s_dist(self, i);
    return longest;
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

bool zp_iddeque_pop_back(zp_iddeque_t *q, uint64_t *id)
{
    if (q->len == 0)
        return false;
    q->len--;
    *id = q->items[(q->head + q->len) % q->cap];
    return true;
}

void zp_iddeque_free(zp_iddeque_t *q)
{
    free(q->items);
    memset(q, 0, sizeof *q);
}
