/* vent_job: jobs, their lifecycle, the finished ids, failure records. */
#define _GNU_SOURCE
#include "vent_job.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct zp_vent_jobs {
    zp_vent_job_t *head, *tail;
    size_t count;
    uint64_t next_slot;
    uint64_t deadline_ms;
    uint32_t max_attempts;
    /* hash(id) -> job. Of ids with one hash only one is indexed (the
     * first added while the slot was free); the others are counted in
     * unindexed, and while any is, a lookup the index does not answer
     * scans the list, whatever was removed since. */
    zp_idmap_t *index;
    size_t unindexed;
    uint64_t (*hash)(const char *id);
    /* hash(routing id) -> jobs of that producer connection, as a count
     * in the pointer (two connections with one hash share a count: a
     * quota a little tighter for both, never looser) */
    zp_idmap_t *producers;
    zp_vent_finished_t *finished;
};

/* The legal transitions: s_legal[from] has bit (1 << to). A refusal ends
 * a job from any state (the sink may refuse a close, or a resent open). */
#define S_BIT(s) (1u << (s))
static const unsigned s_legal[ZP_VENT_JOB_STATES] = {
    [ZP_VENT_JOB_OPENING] =
        S_BIT(ZP_VENT_JOB_OPEN) | S_BIT(ZP_VENT_JOB_REFUSED),
    [ZP_VENT_JOB_OPEN] =
        S_BIT(ZP_VENT_JOB_CLOSING) | S_BIT(ZP_VENT_JOB_REFUSED),
    [ZP_VENT_JOB_CLOSING] = S_BIT(ZP_VENT_JOB_CLOSED) |
                            S_BIT(ZP_VENT_JOB_OPEN) |
                            S_BIT(ZP_VENT_JOB_REFUSED),
    [ZP_VENT_JOB_CLOSED] = S_BIT(ZP_VENT_JOB_DONE) | S_BIT(ZP_VENT_JOB_OPEN) |
                           S_BIT(ZP_VENT_JOB_REFUSED),
    [ZP_VENT_JOB_DONE] = S_BIT(ZP_VENT_JOB_REFUSED),
    [ZP_VENT_JOB_REFUSED] = 0,
};

const char *zp_vent_job_state_name(zp_vent_job_state_t s)
{
    static const char *const names[ZP_VENT_JOB_STATES] = {
        "opening", "open", "closing", "closed", "done", "refused"};
    return (unsigned)s < ZP_VENT_JOB_STATES ? names[s] : "?";
}

bool zp_vent_job_can(zp_vent_job_state_t from, zp_vent_job_state_t to)
{
    if ((unsigned)from >= ZP_VENT_JOB_STATES ||
        (unsigned)to >= ZP_VENT_JOB_STATES)
        return false;
    return s_legal[from] & S_BIT(to);
}

int zp_vent_job_to(zp_vent_job_t *j, zp_vent_job_state_t to)
{
    zp_vent_job_check(j);
    if (!zp_vent_job_can(j->state, to))
        return -1;
    j->state = to;
    zp_vent_job_check(j);
    return 0;
}

bool zp_vent_job_live(const zp_vent_job_t *j)
{
    return j->state == ZP_VENT_JOB_OPEN || j->state == ZP_VENT_JOB_CLOSING ||
           j->state == ZP_VENT_JOB_CLOSED;
}

bool zp_vent_job_finished(const zp_vent_job_t *j)
{
    return j->state == ZP_VENT_JOB_DONE || j->state == ZP_VENT_JOB_REFUSED;
}

bool zp_vent_job_input_done(const zp_vent_job_t *j)
{
    return j->has_input ? zp_vent_reader_done(&j->in) : j->input_closed;
}

void zp_vent_job_check(const zp_vent_job_t *j)
{
    (void)j;
    assert((unsigned)j->state < ZP_VENT_JOB_STATES);
    /* Closing is only ever started once every task was read. */
    assert(j->state != ZP_VENT_JOB_CLOSING || zp_vent_job_input_done(j));
    /* A producer hears "open" only once the sink acknowledged it. */
    assert(!j->producer_acked || j->state != ZP_VENT_JOB_OPENING);
    assert(j->next_task_id <= ZP_VENT_MAX_TASK_ID);
    assert(j->fails.n <= j->fails.cap);
}

int zp_vent_fails_push(zp_vent_fails_t *f, uint64_t task, const char *cause,
                       uint32_t attempt, uint64_t queued_us, bool quarantined,
                       char **error)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 64;
        Zpipe__V1__Result *r = realloc(f->items, cap * sizeof *r);
        if (!r)
            return -1;
        f->items = r;
        f->cap = cap;
    }
    Zpipe__V1__Result *r = &f->items[f->n++];
    zpipe__v1__result__init(r);
    r->task_id = task;
    r->status = ZPIPE__V1__STATUS__STATUS_FAILED;
    r->cause = (char *)cause;
    r->attempt = attempt;
    r->queued_us = queued_us; /* never dispatched for this attempt */
    r->quarantined = quarantined;
    r->error = *error;
    *error = NULL;
    return 0;
}

void zp_vent_fails_clear(zp_vent_fails_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->items[i].error);
    f->n = 0;
}

void zp_vent_fails_free(zp_vent_fails_t *f)
{
    zp_vent_fails_clear(f);
    free(f->items);
    f->items = NULL;
    f->cap = 0;
}

zp_vent_jobs_t *zp_vent_jobs_new(uint64_t deadline_ms, uint32_t max_attempts,
                                 size_t max_finished)
{
    zp_vent_jobs_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->deadline_ms = deadline_ms;
    self->max_attempts = max_attempts;
    self->hash = zp_hash_str;
    self->index = zp_idmap_new();
    self->producers = zp_idmap_new();
    self->finished = zp_vent_finished_new(max_finished, 0);
    if (!self->index || !self->producers || !self->finished) {
        zp_idmap_destroy(&self->index);
        zp_idmap_destroy(&self->producers);
        zp_vent_finished_destroy(&self->finished);
        free(self);
        return NULL;
    }
    return self;
}

int zp_vent_job_batch_add(zp_vent_job_t *j, uint64_t first, uint32_t n)
{
    if (j->n_batches == j->cap_batches) {
        size_t cap = j->cap_batches ? 2 * j->cap_batches : 16;
        zp_vent_batch_t *b = realloc(j->batches, cap * sizeof *b);
        if (!b)
            return -1;
        j->batches = b;
        j->cap_batches = cap;
    }
    j->batches[j->n_batches++] = (zp_vent_batch_t){first, n};
    return 0;
}

const zp_vent_batch_t *zp_vent_job_batch(const zp_vent_job_t *j, uint64_t seq)
{
    return seq >= 1 && seq <= j->n_batches ? &j->batches[seq - 1] : NULL;
}

int zp_vent_job_set_token(zp_vent_job_t *j, const char *token)
{
    char *t = strdup(token ? token : "");
    if (!t)
        return -1;
    free(j->token);
    j->token = t;
    return 0;
}

static void s_job_free(zp_vent_job_t *j)
{
    zp_vent_reader_close(&j->in);
    zp_iddeque_free(&j->ready);
    zp_vent_lines_free(&j->lines);
    zp_vent_fails_free(&j->fails);
    zp_bitset_free(&j->skip);
    free(j->id);
    free(j->plugin);
    free(j->config);
    free(j->token);
    free(j->batches);
    free(j);
}

void zp_vent_jobs_destroy(zp_vent_jobs_t **self_p)
{
    zp_vent_jobs_t *self = *self_p;
    if (!self)
        return;
    while (self->head) {
        zp_vent_job_t *j = self->head;
        self->head = j->next;
        s_job_free(j);
    }
    zp_idmap_destroy(&self->index);
    zp_idmap_destroy(&self->producers);
    zp_vent_finished_destroy(&self->finished);
    free(self);
    *self_p = NULL;
}

void zp_vent_jobs_set_hash(zp_vent_jobs_t *self,
                           uint64_t (*hash)(const char *id))
{
    assert(self->count == 0);
    self->hash = hash ? hash : zp_hash_str;
    zp_vent_finished_set_hash(self->finished, hash);
}

zp_vent_job_t *zp_vent_jobs_first(const zp_vent_jobs_t *self)
{
    return self->head;
}

size_t zp_vent_jobs_count(const zp_vent_jobs_t *self)
{
    return self->count;
}

zp_vent_job_t *zp_vent_jobs_find(const zp_vent_jobs_t *self, const char *id)
{
    zp_vent_job_t *j = zp_idmap_get(self->index, self->hash(id));
    if (j && strcmp(j->id, id) == 0)
        return j;
    if (!self->unindexed)
        return NULL;
    for (j = self->head; j; j = j->next) /* a hash collision */
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

size_t zp_vent_jobs_of(const zp_vent_jobs_t *self, const char *rid,
                       size_t rid_len)
{
    return (size_t)(uintptr_t)zp_idmap_get(self->producers,
                                           zp_hash_bytes(rid, rid_len));
}

/* Adds delta to the count of the connection's jobs. */
static int s_count(zp_vent_jobs_t *self, const char *rid, size_t len, int delta)
{
    if (!len)
        return 0;
    uint64_t h = zp_hash_bytes(rid, len);
    size_t n = (size_t)(uintptr_t)zp_idmap_get(self->producers, h);
    if (delta < 0 && n == 0)
        return 0;
    n += delta;
    if (n == 0) {
        zp_idmap_remove(self->producers, h);
        return 0;
    }
    return zp_idmap_put(self->producers, h, (void *)(uintptr_t)n);
}

/* FNV-1a of a routing id: an owner's name (a collision costs nothing
 * but a foreign message taken, as before owners). */
static uint64_t s_rid_hash(const char *rid, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)rid[i]) * 0x100000001b3ULL;
    return h;
}

bool zp_vent_job_owned_by(const zp_vent_job_t *j, const char *rid,
                          size_t rid_len)
{
    uint64_t h = s_rid_hash(rid, rid_len);
    for (size_t i = 0; i < j->n_owners; i++)
        if (j->owners[i] == h)
            return true;
    return false;
}

void zp_vent_job_add_owner(zp_vent_job_t *j, const char *rid, size_t rid_len)
{
    if (zp_vent_job_owned_by(j, rid, rid_len))
        return;
    if (j->n_owners == ZP_VENT_JOB_OWNERS) {
        memmove(j->owners, j->owners + 1,
                (ZP_VENT_JOB_OWNERS - 1) * sizeof j->owners[0]);
        j->n_owners--;
    }
    j->owners[j->n_owners++] = s_rid_hash(rid, rid_len);
}

int zp_vent_jobs_set_producer(zp_vent_jobs_t *self, zp_vent_job_t *j,
                              const char *rid, size_t rid_len)
{
    if (rid_len > sizeof j->prid || s_count(self, rid, rid_len, +1) < 0)
        return -1;
    s_count(self, j->prid, j->prid_len, -1); /* a removal: no allocation */
    memcpy(j->prid, rid, rid_len);
    j->prid_len = rid_len;
    zp_vent_job_add_owner(j, rid, rid_len);
    return 0;
}

zp_vent_finished_t *zp_vent_jobs_finished(const zp_vent_jobs_t *self)
{
    return self->finished;
}

zp_vent_job_t *zp_vent_jobs_add(zp_vent_jobs_t *self, const char *id,
                                const char *plugin)
{
    zp_vent_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->id = strdup(id);
    j->plugin = strdup(plugin);
    j->token = strdup("");
    uint64_t h = self->hash(id);
    bool taken = zp_idmap_get(self->index, h) != NULL;
    if (!j->id || !j->plugin || !j->token ||
        (!taken && zp_idmap_put(self->index, h, j) < 0)) {
        free(j->id);
        free(j->plugin);
        free(j->token);
        free(j);
        return NULL;
    }
    self->unindexed += taken;
    j->slot = self->next_slot++;
    j->deadline_ms = self->deadline_ms;
    j->max_attempts = self->max_attempts;
    j->state = ZP_VENT_JOB_OPENING;
    zp_lease_key_new(&j->key);
    zp_vent_reader_init(&j->in, -1);
    if (self->tail)
        self->tail->next = j;
    else
        self->head = j;
    self->tail = j;
    self->count++;
    return j;
}

void zp_vent_jobs_remove(zp_vent_jobs_t *self, zp_vent_job_t *j,
                         uint64_t when_us)
{
    /* Out of memory, it is forgotten: the sink still refuses the id with
     * another token. */
    if (j->state == ZP_VENT_JOB_DONE)
        zp_vent_finished_add(self->finished, j->id, j->token, j->next_task_id,
                             when_us);
    zp_vent_job_t *prev = NULL;
    for (zp_vent_job_t *k = self->head; k; prev = k, k = k->next)
        if (k == j) {
            if (prev)
                prev->next = j->next;
            else
                self->head = j->next;
            if (self->tail == j)
                self->tail = prev;
            self->count--;
            break;
        }
    uint64_t h = self->hash(j->id);
    if (zp_idmap_get(self->index, h) == j)
        zp_idmap_remove(self->index, h);
    else
        self->unindexed--;
    s_count(self, j->prid, j->prid_len, -1);
    s_job_free(j);
}
