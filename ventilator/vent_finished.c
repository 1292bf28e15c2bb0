/* vent_finished: a FIFO ring of finished jobs with a hash index by id. */
#define _GNU_SOURCE
#include "vent_finished.h"
#include "zp_idmap.h"
#include "zp_util.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct zp_vent_finished {
    zp_vent_finished_job_t **ring; /* oldest at head */
    size_t cap, head, len, max;
    uint64_t max_age_us;
    /* hash(id) -> entry. Of ids with one hash only one is indexed (the
     * first added while the slot was free); the others are counted in
     * unindexed, and while any is, a lookup the index does not answer
     * scans the ring, whatever was removed since. */
    zp_idmap_t *index;
    size_t unindexed;
    uint64_t (*hash)(const char *id);
};

zp_vent_finished_t *zp_vent_finished_new(size_t max, uint64_t max_age_us)
{
    zp_vent_finished_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->max = max ? max : ZP_VENT_FINISHED_MAX;
    self->max_age_us = max_age_us ? max_age_us : ZP_VENT_FINISHED_AGE_US;
    self->hash = zp_hash_str;
    self->index = zp_idmap_new();
    if (!self->index) {
        free(self);
        return NULL;
    }
    return self;
}

static void s_entry_free(zp_vent_finished_job_t *e)
{
    if (!e)
        return;
    free(e->id);
    free(e->token);
    free(e);
}

void zp_vent_finished_destroy(zp_vent_finished_t **self_p)
{
    zp_vent_finished_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->len; i++)
        s_entry_free(self->ring[(self->head + i) % self->cap]);
    free(self->ring);
    zp_idmap_destroy(&self->index);
    free(self);
    *self_p = NULL;
}

const zp_vent_finished_job_t *
zp_vent_finished_at(const zp_vent_finished_t *self, size_t i)
{
    return i < self->len ? self->ring[(self->head + i) % self->cap] : NULL;
}

size_t zp_vent_finished_count(const zp_vent_finished_t *self)
{
    return self->len;
}

const zp_vent_finished_job_t *
zp_vent_finished_find(const zp_vent_finished_t *self, const char *id)
{
    const zp_vent_finished_job_t *e = zp_idmap_get(self->index, self->hash(id));
    if (e && strcmp(e->id, id) == 0)
        return e;
    if (!self->unindexed)
        return NULL;
    /* Two ids with one hash (about 1 in 2^64 per pair): look at all. */
    for (size_t i = 0; i < self->len; i++) {
        e = zp_vent_finished_at(self, i);
        if (e && strcmp(e->id, id) == 0)
            return e;
    }
    return NULL;
}

/* Takes the oldest entry out (ring and index) and frees it. */
static void s_pop_oldest(zp_vent_finished_t *self)
{
    zp_vent_finished_job_t *e = self->ring[self->head];
    self->ring[self->head] = NULL;
    self->head = (self->head + 1) % self->cap;
    self->len--;
    if (e && zp_idmap_get(self->index, e->hash) == e)
        zp_idmap_remove(self->index, e->hash);
    else if (e)
        self->unindexed--;
    s_entry_free(e);
}

/* Leaves a hole (NULL) in the ring where the entry with id was, and
 * frees it; the index no longer points at it (the caller saw to that:
 * indexed, the entry the index held before, else one of the unindexed). */
static void s_hole(zp_vent_finished_t *self, const char *id,
                   const zp_vent_finished_job_t *keep,
                   const zp_vent_finished_job_t *indexed)
{
    for (size_t i = 0; i < self->len; i++) {
        size_t k = (self->head + i) % self->cap;
        zp_vent_finished_job_t *e = self->ring[k];
        if (e && e != keep && strcmp(e->id, id) == 0) {
            if (e != indexed)
                self->unindexed--;
            s_entry_free(e);
            self->ring[k] = NULL;
            return;
        }
    }
}

static int s_grow(zp_vent_finished_t *self)
{
    size_t cap = self->cap ? 2 * self->cap : 64;
    if (cap > self->max)
        cap = self->max;
    zp_vent_finished_job_t **ring = calloc(cap, sizeof *ring);
    if (!ring)
        return -1;
    for (size_t i = 0; i < self->len; i++)
        ring[i] = self->ring[(self->head + i) % self->cap];
    free(self->ring);
    self->ring = ring;
    self->cap = cap;
    self->head = 0;
    return 0;
}

int zp_vent_finished_add(zp_vent_finished_t *self, const char *id,
                         const char *token, uint64_t total, uint64_t when_us)
{
    zp_vent_finished_job_t *e = calloc(1, sizeof *e);
    if (!e)
        return -1;
    e->id = strdup(id);
    e->token = strdup(token ? token : "");
    e->total = total;
    e->when_us = when_us;
    e->hash = self->hash(id);
    if (!e->id || !e->token ||
        (self->len == self->cap && self->cap < self->max && s_grow(self) < 0)) {
        s_entry_free(e);
        return -1;
    }
    /* Index it, the only other step that can fail, unless the index
     * holds another id with its hash (that one stays indexed; this one
     * is counted and found by a scan). The id's old entry, if any,
     * becomes a hole: the indexed one, or one of the unindexed. */
    zp_vent_finished_job_t *idx = zp_idmap_get(self->index, e->hash);
    bool same = idx && strcmp(idx->id, id) == 0;
    bool old = idx || self->unindexed; /* an entry of id may be there */
    if ((!idx || same) && zp_idmap_put(self->index, e->hash, e) < 0) {
        s_entry_free(e);
        return -1;
    }
    if (old)
        s_hole(self, id, e, idx);
    if (idx && !same)
        self->unindexed++;
    if (self->len == self->cap)
        s_pop_oldest(self);
    self->ring[(self->head + self->len) % self->cap] = e;
    self->len++;
    return 0;
}

void zp_vent_finished_set_hash(zp_vent_finished_t *self,
                               uint64_t (*hash)(const char *id))
{
    assert(self->len == 0);
    self->hash = hash ? hash : zp_hash_str;
}

size_t zp_vent_finished_expire(zp_vent_finished_t *self, uint64_t now_us)
{
    size_t n = 0;
    while (self->len) {
        zp_vent_finished_job_t *e = self->ring[self->head];
        if (e && e->when_us + self->max_age_us > now_us)
            break;
        s_pop_oldest(self);
        n += e != NULL;
    }
    return n;
}
