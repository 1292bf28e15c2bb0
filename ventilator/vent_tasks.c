/* vent_tasks: the held-task table, hold limits and leases. */
#include "vent_tasks.h"
#include "zp_log.h"
#include "zp_util.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct zp_vent_tasks {
    zp_idmap_t *map; /* key -> zp_vent_task_t *, everything not committed */
    uint64_t max_inflight, max_bytes;
    bool push;
    uint64_t bytes;             /* payload bytes held */
    uint64_t lines, line_bytes; /* producers' lines taken, not tasks yet */
    size_t max_held;            /* most tasks held at once */
    uint64_t read;              /* tasks ever added */
    zp_vent_task_t **expired;   /* the last lease scan's answer */
    size_t cap_expired;
    void *pool; /* freed small blocks, each one's first word the next */
    size_t n_pool;
};

_Static_assert(sizeof(zp_vent_task_t) + 64 <= ZP_VENT_TASK_SMALL,
               "a small task's block holds a 64-byte payload");

/* A task's block for a payload of own bytes kept in it. */
static zp_vent_task_t *s_alloc(zp_vent_tasks_t *self, size_t own)
{
    zp_vent_task_t *t;
    if (own > ZP_VENT_TASK_SMALL - sizeof *t) {
        if ((t = malloc(sizeof *t + own)))
            t->pooled = false;
        return t;
    }
    if (self->pool) {
        t = self->pool;
        self->pool = *(void **)self->pool;
        self->n_pool--;
    } else if (!(t = malloc(ZP_VENT_TASK_SMALL)))
        return NULL;
    t->pooled = true;
    return t;
}

static void s_dealloc(zp_vent_tasks_t *self, zp_vent_task_t *t)
{
    if (!t->pooled || self->n_pool >= ZP_VENT_POOL_MAX) {
        free(t);
        return;
    }
    *(void **)t = self->pool;
    self->pool = t;
    self->n_pool++;
}

zp_vent_tasks_t *zp_vent_tasks_new(uint64_t max_inflight, uint64_t max_bytes,
                                   bool push)
{
    zp_vent_tasks_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->map = zp_idmap_new();
    if (!self->map) {
        free(self);
        return NULL;
    }
    self->max_inflight = max_inflight;
    self->max_bytes = max_bytes;
    self->push = push;
    return self;
}

/* Frees t, and its reference to its block. */
static void s_free(zp_vent_tasks_t *self, zp_vent_task_t *t)
{
    if (t->chunk) {
        if (--t->chunk->tasks == 0)
            self->bytes -= t->chunk->cap;
        zp_vent_chunk_unref(&t->chunk);
    } else
        self->bytes -= t->len;
    s_dealloc(self, t);
}

void zp_vent_tasks_destroy(zp_vent_tasks_t **self_p)
{
    zp_vent_tasks_t *self = *self_p;
    if (!self)
        return;
    size_t cursor = 0;
    uint64_t key;
    void *p;
    while (zp_idmap_next(self->map, &cursor, &key, &p))
        s_free(self, p);
    zp_idmap_destroy(&self->map);
    while (self->pool) {
        void *next = *(void **)self->pool;
        free(self->pool);
        self->pool = next;
    }
    free(self->expired);
    free(self);
    *self_p = NULL;
}

size_t zp_vent_tasks_limit(const zp_vent_tasks_t *self, uint64_t windows)
{
    if (self->max_inflight)
        return self->max_inflight;
    if (self->push)
        return 65536;
    return 8192 + windows;
}

uint64_t zp_vent_tasks_bytes_limit(const zp_vent_tasks_t *self, size_t workers)
{
    if (self->max_bytes)
        return self->max_bytes;
    uint64_t per = (uint64_t)16 << 20, lo = (uint64_t)32 << 20,
             hi = (uint64_t)256 << 20;
    uint64_t b = workers < hi / per ? (uint64_t)workers * per : hi;
    return b < lo ? lo : b;
}

bool zp_vent_tasks_can_hold(const zp_vent_tasks_t *self, uint64_t windows,
                            size_t workers)
{
    size_t n = zp_idmap_size(self->map) + self->lines;
    return n < zp_vent_tasks_limit(self, windows) &&
           (n == 0 || self->bytes + self->line_bytes <
                          zp_vent_tasks_bytes_limit(self, workers));
}

/* A new task of len bytes, its payload copied in unless chunk is
 * given; NULL when out of memory (nothing changed). */
static zp_vent_task_t *s_add(zp_vent_tasks_t *self, zp_vent_job_t *j,
                             uint64_t id, zp_vent_chunk_t *chunk,
                             const void *data, size_t len, uint64_t queued_us)
{
    zp_vent_task_t *t = s_alloc(self, chunk ? 0 : len);
    uint64_t key = ZP_VENT_KEY(j, id);
    if (!t || zp_idmap_put(self->map, key, t) < 0 ||
        zp_iddeque_push_back(&j->ready, key) < 0) {
        if (t) {
            zp_idmap_remove(self->map, key);
            s_dealloc(self, t);
        }
        zp_error("out of memory holding task %s/%llu", j->id,
                 (unsigned long long)id);
        return NULL;
    }
    t->id = id;
    t->job = j;
    t->attempt = 1;
    t->state = ZP_VENT_QUEUED;
    t->n_expired = 0;
    t->losses = 0;
    t->alone = 0;
    t->quiet = 0;
    t->group = 0;
    t->worker = 0;
    t->sent_us = 0;
    t->queued_us = queued_us;
    t->len = len;
    t->chunk = chunk ? zp_vent_chunk_ref(chunk) : NULL;
    if (chunk) {
        t->data = data;
        if (chunk->tasks++ == 0)
            self->bytes += chunk->cap;
    } else {
        t->data = t->own;
        if (len) /* an empty payload may come as NULL */
            memcpy(t->own, data, len);
        self->bytes += len;
    }
    j->held++;
    self->read++;
    if (zp_idmap_size(self->map) > self->max_held)
        self->max_held = zp_idmap_size(self->map);
    return t;
}

zp_vent_task_t *zp_vent_tasks_add(zp_vent_tasks_t *self, zp_vent_job_t *j,
                                  const void *data, size_t len,
                                  uint64_t queued_us)
{
    zp_vent_task_t *t =
        s_add(self, j, j->next_task_id, NULL, data, len, queued_us);
    if (t)
        j->next_task_id++;
    return t;
}

zp_vent_task_t *zp_vent_tasks_add_ref(zp_vent_tasks_t *self, zp_vent_job_t *j,
                                      zp_vent_chunk_t *chunk, const void *data,
                                      size_t len, uint64_t queued_us)
{
    zp_vent_task_t *t =
        s_add(self, j, j->next_task_id, chunk, data, len, queued_us);
    if (t)
        j->next_task_id++;
    return t;
}

int zp_vent_tasks_take_lines(zp_vent_tasks_t *self, zp_vent_job_t *j,
                             const uint8_t *text, size_t len, uint64_t n,
                             uint64_t queued_us)
{
    if (n == 0)
        return 0;
    if (zp_vent_lines_push(&j->lines, j->next_task_id, text, len, n,
                           queued_us) < 0)
        return -1;
    j->next_task_id += n;
    self->lines += n;
    self->line_bytes += len;
    return 0;
}

/* Forgets what is left of j's lines, and their room in the limits. */
static void s_drop_lines(zp_vent_tasks_t *self, zp_vent_job_t *j)
{
    self->lines -= j->lines.n;
    self->line_bytes -= j->lines.bytes;
    zp_vent_lines_free(&j->lines);
}

void zp_vent_tasks_untake_lines(zp_vent_tasks_t *self, zp_vent_job_t *j,
                                uint64_t n)
{
    if (n == 0)
        return;
    uint64_t bytes = j->lines.bytes;
    zp_vent_lines_drop_back(&j->lines);
    self->lines -= n;
    self->line_bytes -= bytes - j->lines.bytes;
    j->next_task_id -= n;
}

int zp_vent_tasks_from_lines(zp_vent_tasks_t *self, zp_vent_job_t *j,
                             size_t want)
{
    uint64_t id, stamp;
    const uint8_t *line;
    size_t len;
    while (j->ready.len < want &&
           zp_vent_lines_peek(&j->lines, &id, &line, &len, &stamp)) {
        if (!s_add(self, j, id, NULL, line, len, stamp))
            return -1;
        zp_vent_lines_pop(&j->lines, len);
        self->lines--;
        self->line_bytes -= len + 1;
    }
    return 0;
}

void zp_vent_tasks_give_back(zp_vent_tasks_t *self, zp_vent_job_t *j,
                             uint64_t first)
{
    uint64_t key;
    while (j->next_task_id > first) {
        zp_vent_task_t *t =
            zp_idmap_get(self->map, ZP_VENT_KEY(j, j->next_task_id - 1));
        bool popped = zp_iddeque_pop_back(&j->ready, &key);
        (void)popped;
        assert(t && t->state == ZP_VENT_QUEUED && popped &&
               key == ZP_VENT_KEY(j, t->id));
        zp_vent_tasks_done(self, t);
        self->read--;
        j->next_task_id--;
    }
}

zp_vent_task_t *zp_vent_tasks_get(const zp_vent_tasks_t *self, uint64_t key)
{
    return zp_idmap_get(self->map, key);
}

void zp_vent_tasks_done(zp_vent_tasks_t *self, zp_vent_task_t *t)
{
    zp_idmap_remove(self->map, ZP_VENT_KEY(t->job, t->id));
    t->job->held--;
    s_free(self, t);
}

void zp_vent_tasks_drop_job(zp_vent_tasks_t *self, zp_vent_job_t *j)
{
    s_drop_lines(self, j);
    /* Keys first: removing while iterating would skip entries. */
    uint64_t *keys = j->held ? malloc(j->held * sizeof *keys) : NULL;
    size_t n = 0, cursor = 0;
    uint64_t key;
    void *p;
    while (keys && n < j->held && zp_idmap_next(self->map, &cursor, &key, &p))
        if (((zp_vent_task_t *)p)->job == j)
            keys[n++] = key;
    for (size_t i = 0; i < n; i++)
        zp_vent_tasks_done(self, zp_idmap_get(self->map, keys[i]));
    free(keys);
}

bool zp_vent_tasks_next(const zp_vent_tasks_t *self, size_t *cursor,
                        zp_vent_task_t **t)
{
    uint64_t key;
    void *p;
    if (!zp_idmap_next(self->map, cursor, &key, &p))
        return false;
    *t = p;
    return true;
}

size_t zp_vent_tasks_collect(zp_vent_tasks_t *self, zp_vent_job_t *j,
                             size_t max, uint64_t max_bytes,
                             zp_vent_task_t **out)
{
    size_t n = 0, bytes = 0;
    uint64_t key;
    while (n < max && bytes < max_bytes &&
           zp_iddeque_pop_front(&j->ready, &key)) {
        zp_vent_task_t *t = zp_idmap_get(self->map, key);
        if (!t || t->state != ZP_VENT_QUEUED)
            continue; /* committed or given up meanwhile */
        out[n++] = t;
        bytes += t->len;
    }
    return n;
}

int zp_vent_tasks_requeue_front(zp_vent_task_t *t)
{
    t->state = ZP_VENT_QUEUED;
    t->worker = 0;
    if (t->queued_us) /* traced: this attempt's wait starts now */
        t->queued_us = zp_now_us();
    if (zp_iddeque_push_front(&t->job->ready, ZP_VENT_KEY(t->job, t->id)) < 0) {
        /* Not in the queue, so not QUEUED: left in flight, the lease scan
         * finds it again (a QUEUED task outside the queue would never be
         * sent and its job never complete). */
        t->state = ZP_VENT_INFLIGHT;
        zp_error("out of memory requeueing task %s/%llu", t->job->id,
                 (unsigned long long)t->id);
        return -1;
    }
    return 0;
}

size_t zp_vent_tasks_size(const zp_vent_tasks_t *self)
{
    return zp_idmap_size(self->map) + (size_t)self->lines;
}

uint64_t zp_vent_tasks_bytes(const zp_vent_tasks_t *self)
{
    return self->bytes;
}

size_t zp_vent_tasks_pooled(const zp_vent_tasks_t *self)
{
    return self->n_pool;
}

size_t zp_vent_tasks_max_held(const zp_vent_tasks_t *self)
{
    return self->max_held;
}

uint64_t zp_vent_tasks_read(const zp_vent_tasks_t *self)
{
    return self->read;
}

bool zp_vent_lease_expired(uint64_t now, uint64_t sent_us, uint64_t lease_us,
                           uint64_t deadline_ms, uint64_t progress_us)
{
    uint64_t short_lease = deadline_ms ? deadline_ms * 1000 + 5000000 : 0;
    uint64_t out = now - sent_us;
    if (lease_us && out > lease_us)
        return true;
    if (!short_lease || out <= short_lease)
        return false;
    return !progress_us || now - progress_us > short_lease;
}

size_t zp_vent_tasks_expired(zp_vent_tasks_t *self, uint64_t now,
                             uint64_t lease_us, zp_vent_progress_fn *progress,
                             void *ctx, zp_vent_task_t ***out)
{
    size_t n = 0, cursor = 0;
    uint64_t key, worker = 0, progress_us = 0;
    bool known = false;
    void *p;
    while (zp_idmap_next(self->map, &cursor, &key, &p)) {
        zp_vent_task_t *t = p;
        if (t->state != ZP_VENT_INFLIGHT)
            continue;
        uint64_t dl = t->job->deadline_ms;
        /* The long lease first; the worker is looked up only for a task
         * past the short one (tasks of one batch lie together). */
        if (!zp_vent_lease_expired(now, t->sent_us, lease_us, dl, now)) {
            if (!dl || now - t->sent_us <= dl * 1000 + 5000000)
                continue;
            if (!known || worker != t->worker) {
                worker = t->worker;
                progress_us = progress(ctx, worker);
                known = true;
            }
            if (!zp_vent_lease_expired(now, t->sent_us, lease_us, dl,
                                       progress_us))
                continue;
        }
        if (n == self->cap_expired) {
            size_t cap = n ? 2 * n : 64;
            zp_vent_task_t **a = realloc(self->expired, cap * sizeof *a);
            if (!a)
                break;
            self->expired = a;
            self->cap_expired = cap;
        }
        self->expired[n++] = t;
    }
    *out = self->expired;
    return n;
}

uint64_t zp_vent_tasks_lines(const zp_vent_tasks_t *self)
{
    return self->lines;
}
