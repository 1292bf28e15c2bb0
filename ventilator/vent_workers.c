/* vent_workers: the worker registry, credit and liveness. */
#define _GNU_SOURCE
#include "vent_workers.h"

#include <stdlib.h>
#include <string.h>

struct zp_vent_workers {
    zp_vent_worker_t *items;
    size_t n;
    uint64_t next_serial;
    uint64_t windows;
    uint64_t none_since_us;
};

zp_vent_workers_t *zp_vent_workers_new(uint64_t now)
{
    zp_vent_workers_t *self = calloc(1, sizeof *self);
    if (self)
        self->none_since_us = now;
    return self;
}

static void s_worker_free(zp_vent_worker_t *w)
{
    free(w->id);
    free(w->host);
    for (size_t i = 0; i < w->n_plugins; i++)
        free(w->plugins[i]);
}

void zp_vent_workers_destroy(zp_vent_workers_t **self_p)
{
    zp_vent_workers_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++)
        s_worker_free(&self->items[i]);
    free(self->items);
    free(self);
    *self_p = NULL;
}

size_t zp_vent_workers_count(const zp_vent_workers_t *self)
{
    return self->n;
}

zp_vent_worker_t *zp_vent_workers_at(const zp_vent_workers_t *self, size_t i)
{
    return &self->items[i];
}

zp_vent_worker_t *zp_vent_workers_find(const zp_vent_workers_t *self,
                                       const char *rid, size_t rid_len)
{
    for (size_t i = 0; i < self->n; i++)
        if (self->items[i].rid_len == rid_len &&
            !memcmp(self->items[i].rid, rid, rid_len))
            return &self->items[i];
    return NULL;
}

zp_vent_worker_t *zp_vent_workers_by_serial(const zp_vent_workers_t *self,
                                            uint64_t serial)
{
    for (size_t i = 0; i < self->n; i++)
        if (self->items[i].serial == serial)
            return &self->items[i];
    return NULL;
}

zp_vent_worker_t *zp_vent_workers_add(zp_vent_workers_t *self, const char *rid,
                                      size_t rid_len, const Zpipe__V1__Hello *h,
                                      uint64_t now)
{
    if (rid_len > sizeof self->items[0].rid)
        return NULL;
    zp_vent_worker_t *ws = realloc(self->items, (self->n + 1) * sizeof *ws);
    if (!ws)
        return NULL;
    self->items = ws;
    zp_vent_worker_t *w = &ws[self->n];
    memset(w, 0, sizeof *w);
    memcpy(w->rid, rid, rid_len);
    w->rid_len = rid_len;
    w->serial = ++self->next_serial;
    w->id = strdup(h->worker_id && *h->worker_id ? h->worker_id : "?");
    w->host = strdup(h->host ? h->host : "");
    w->pid = h->pid;
    w->in_process = h->in_process;
    w->payload_frames = h->payload_frames;
    if (!w->id || !w->host) {
        s_worker_free(w);
        return NULL;
    }
    for (size_t i = 0; i < h->n_plugins && i < ZP_VENT_MAX_PLUGINS; i++) {
        w->plugins[w->n_plugins] = strdup(h->plugins[i]);
        if (w->plugins[w->n_plugins])
            w->n_plugins++;
    }
    w->window = h->window ? h->window : 1;
    w->credit = h->credit < w->window ? h->credit : w->window;
    w->last_seen_us = now;
    w->last_progress_us = now;
    self->windows += w->window;
    self->n++;
    return w;
}

void zp_vent_workers_remove(zp_vent_workers_t *self, zp_vent_worker_t *w,
                            uint64_t now)
{
    self->windows -= w->window;
    s_worker_free(w);
    size_t idx = (size_t)(w - self->items);
    memmove(w, w + 1, (self->n - idx - 1) * sizeof *w);
    self->n--;
    if (self->n == 0)
        self->none_since_us = now;
}

uint64_t zp_vent_workers_windows(const zp_vent_workers_t *self)
{
    return self->windows;
}

void zp_vent_workers_start(zp_vent_workers_t *self, uint64_t now)
{
    if (self->n == 0)
        self->none_since_us = now;
}

uint64_t zp_vent_workers_none_since(const zp_vent_workers_t *self)
{
    return self->none_since_us;
}

bool zp_vent_worker_has(const zp_vent_worker_t *w, const char *plugin)
{
    for (size_t i = 0; i < w->n_plugins; i++)
        if (strcmp(w->plugins[i], plugin) == 0)
            return true;
    return false;
}

uint64_t zp_vent_worker_credit(zp_vent_worker_t *w, uint64_t grant,
                               uint64_t now)
{
    w->last_seen_us = now;
    w->last_progress_us = now; /* granted as tasks finish */
    w->credit += grant;
    if (w->credit <= w->window)
        return 0;
    uint64_t over = w->credit - w->window;
    w->credit = w->window;
    return over;
}

void zp_vent_worker_heartbeat(zp_vent_worker_t *w, uint64_t tasks_done,
                              uint64_t now)
{
    w->last_seen_us = now;
    if (tasks_done != w->tasks_done)
        w->last_progress_us = now;
    w->tasks_done = tasks_done;
}

void zp_vent_worker_sent(zp_vent_worker_t *w, uint64_t n)
{
    w->credit -= n;
    w->sent += n;
}

zp_vent_worker_t *zp_vent_workers_silent(const zp_vent_workers_t *self,
                                         uint64_t now, uint64_t timeout_us)
{
    for (size_t i = 0; i < self->n; i++)
        if (now - self->items[i].last_seen_us > timeout_us)
            return &self->items[i];
    return NULL;
}
