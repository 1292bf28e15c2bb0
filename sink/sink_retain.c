/* sink_retain: the forgotten jobs' ids (see sink_retain.h). */
#include "sink_retain.h"
#include "zp_util.h"

#include <stdlib.h>
#include <string.h>

/* Slots of a new ring; it doubles up to the cap. */
#define S_FIRST_SLOTS 64

uint64_t zp_retain_hash(const char *s)
{
    if (!s || !*s)
        return 0;
    /* FNV-1a, then a 64-bit finaliser (splitmix64) so that ids differing
     * in their last character land far apart in the index. */
    uint64_t h = zp_hash_str(s);
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h ? h : 1; /* 0 is "no token" */
}

static size_t s_home(const zp_retain_t *self, uint64_t id_hash)
{
    return (size_t)id_hash & (self->index_cap - 1);
}

/* The index position holding id_hash, or the empty one where it would go. */
static size_t s_probe(const zp_retain_t *self, uint64_t id_hash)
{
    size_t i = s_home(self, id_hash);
    while (self->index[i] && self->ring[self->index[i] - 1].id_hash != id_hash)
        i = (i + 1) & (self->index_cap - 1);
    return i;
}

/* Removes index position i, shifting back the entries probed past it
 * (linear probing without tombstones). */
static void s_unindex(zp_retain_t *self, size_t i)
{
    size_t mask = self->index_cap - 1;
    size_t j = i;
    for (;;) {
        self->index[i] = 0;
        for (;;) {
            j = (j + 1) & mask;
            if (!self->index[j])
                return;
            size_t k = s_home(self, self->ring[self->index[j] - 1].id_hash);
            /* Stays when its home lies cyclically in (i, j]. */
            if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                continue;
            break;
        }
        self->index[i] = self->index[j];
        i = j;
    }
}

static void s_drop_oldest(zp_retain_t *self)
{
    size_t i = s_probe(self, self->ring[self->head].id_hash);
    if (self->index[i])
        s_unindex(self, i);
    self->head = (self->head + 1) % self->ring_cap;
    self->n--;
}

/* Twice the slots (up to the cap), entries moved oldest first to slot 0.
 * Returns -1 when out of memory (nothing changes). */
static int s_grow(zp_retain_t *self)
{
    size_t slots = self->ring_cap ? 2 * self->ring_cap : S_FIRST_SLOTS;
    if (slots > self->cap)
        slots = self->cap;
    size_t icap = 1;
    while (icap < 2 * slots)
        icap *= 2;
    zp_retain_entry_t *ring = malloc(slots * sizeof *ring);
    uint32_t *index = calloc(icap, sizeof *index);
    if (!ring || !index || slots > UINT32_MAX - 1) {
        free(ring);
        free(index);
        return -1;
    }
    for (size_t k = 0; k < self->n; k++)
        ring[k] = self->ring[(self->head + k) % self->ring_cap];
    free(self->ring);
    free(self->index);
    self->ring = ring;
    self->index = index;
    self->ring_cap = slots;
    self->index_cap = icap;
    self->head = 0;
    for (size_t k = 0; k < self->n; k++)
        self->index[s_probe(self, ring[k].id_hash)] = (uint32_t)k + 1;
    return 0;
}

int zp_retain_add_hashed(zp_retain_t *self, zp_retain_entry_t e)
{
    if (!self->cap)
        return 0; /* nothing is remembered */
    if (self->n && self->index[s_probe(self, e.id_hash)])
        return 0;
    if (self->n == self->ring_cap &&
        (self->ring_cap == self->cap || s_grow(self) < 0)) {
        if (!self->n)
            return -1;
        s_drop_oldest(self);
    }
    size_t slot = (self->head + self->n) % self->ring_cap;
    self->ring[slot] = e;
    self->index[s_probe(self, e.id_hash)] = (uint32_t)slot + 1;
    self->n++;
    return 0;
}

int zp_retain_add(zp_retain_t *self, const char *id, const char *token,
                  zp_retain_entry_t e)
{
    e.id_hash = zp_retain_hash(id);
    e.token_hash = zp_retain_hash(token);
    return zp_retain_add_hashed(self, e);
}

const zp_retain_entry_t *zp_retain_find(const zp_retain_t *self, const char *id)
{
    if (!self->n)
        return NULL;
    size_t i = s_probe(self, zp_retain_hash(id));
    return self->index[i] ? &self->ring[self->index[i] - 1] : NULL;
}

zp_retain_match_t zp_retain_match(const zp_retain_t *self, const char *id,
                                  const char *token)
{
    const zp_retain_entry_t *e = zp_retain_find(self, id);
    if (!e)
        return ZP_RETAIN_UNKNOWN;
    /* As for a finished job still held: an open without a token is
     * legacy (whatever job holds the id); a job without one cannot
     * become a tokened one. */
    if (!token || !*token)
        return ZP_RETAIN_SAME;
    return e->token_hash == zp_retain_hash(token) ? ZP_RETAIN_SAME
                                                  : ZP_RETAIN_OTHER;
}

bool zp_retain_has(const zp_retain_t *self, const char *id)
{
    return zp_retain_find(self, id) != NULL;
}

bool zp_retain_spool_gone(zp_retain_t *self, const char *id)
{
    if (!self->n)
        return false;
    size_t i = s_probe(self, zp_retain_hash(id));
    if (!self->index[i])
        return false;
    self->ring[self->index[i] - 1].spooled = ZP_RETAIN_SPOOL_GONE;
    return true;
}

zp_retain_entry_t zp_retain_at(const zp_retain_t *self, size_t i)
{
    return self->ring[(self->head + i) % self->ring_cap];
}

void zp_retain_fini(zp_retain_t *self)
{
    free(self->ring);
    free(self->index);
    size_t cap = self->cap;
    *self = (zp_retain_t){0};
    self->cap = cap;
}
