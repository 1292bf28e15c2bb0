/* vent_quarantine: the strike rule and the list of refused workers. */
#define _GNU_SOURCE
#include "vent_quarantine.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *id, *host;
    uint32_t pid;
    char rid[256]; /* the connection last refused or drained */
    size_t rid_len;
    uint64_t until_us;    /* refused before this */
    uint64_t length_us;   /* the last quarantine's length */
    uint64_t answered_us; /* last told so (0 = not since added) */
} s_entry_t;

struct zp_vent_quarantine {
    uint64_t base_us, max_us;
    s_entry_t *items; /* oldest first */
    size_t n, cap;
    uint64_t total, refusals;
};

bool zp_vent_strike(zp_vent_strikes_t *s, uint64_t now, uint64_t newest_sent_us,
                    uint64_t committed)
{
    if (s->strikes && committed != s->committed_at)
        s->strikes = 0; /* it delivered since: a new count */
    else if (s->strikes && newest_sent_us <= s->strike_us)
        return false; /* leases from before the last strike: the same one */
    s->strikes++;
    s->strike_us = now;
    s->committed_at = committed;
    return s->strikes >= ZP_VENT_STRIKES;
}

zp_vent_quarantine_t *zp_vent_quarantine_new(uint64_t base_us, uint64_t max_us)
{
    zp_vent_quarantine_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base_us = base_us;
    self->max_us = max_us < base_us ? base_us : max_us;
    return self;
}

static void s_entry_free(s_entry_t *e)
{
    free(e->id);
    free(e->host);
}

void zp_vent_quarantine_destroy(zp_vent_quarantine_t **self_p)
{
    zp_vent_quarantine_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++)
        s_entry_free(&self->items[i]);
    free(self->items);
    free(self);
    *self_p = NULL;
}

bool zp_vent_quarantine_enabled(const zp_vent_quarantine_t *self)
{
    return self->base_us > 0;
}

/* Whether id names one worker (zpipe-worker's "?" is no name). */
static bool s_named(const char *id)
{
    return id && *id && strcmp(id, "?") != 0;
}

static bool s_matches(const s_entry_t *e, const char *id, const char *host,
                      uint32_t pid)
{
    if (s_named(id) && e->id && strcmp(e->id, id) == 0)
        return true;
    return host && *host && pid > 1 && e->host && e->pid == pid &&
           strcmp(e->host, host) == 0;
}

static s_entry_t *s_find(const zp_vent_quarantine_t *self, const char *id,
                         const char *host, uint32_t pid)
{
    for (size_t i = self->n; i-- > 0;)
        if (s_matches(&self->items[i], id, host, pid))
            return &self->items[i];
    return NULL;
}

static void s_set_rid(s_entry_t *e, const char *rid, size_t rid_len)
{
    if (rid_len > sizeof e->rid)
        rid_len = 0;
    if (rid_len)
        memcpy(e->rid, rid, rid_len);
    e->rid_len = rid_len;
}

/* A new entry at the end (the oldest forgotten when full); NULL when out
 * of memory. */
static s_entry_t *s_append(zp_vent_quarantine_t *self, const char *id,
                           const char *host, uint32_t pid)
{
    char *id_copy = strdup(id ? id : "");
    char *host_copy = strdup(host ? host : "");
    if (!id_copy || !host_copy)
        goto fail_copies;
    if (self->n == ZP_VENT_QUARANTINE_MAX) {
        s_entry_free(&self->items[0]);
        memmove(self->items, self->items + 1,
                (self->n - 1) * sizeof *self->items);
        self->n--;
    }
    if (self->n == self->cap) {
        size_t cap = self->cap ? 2 * self->cap : 8;
        s_entry_t *items = realloc(self->items, cap * sizeof *items);
        if (!items)
            goto fail_copies;
        self->items = items;
        self->cap = cap;
    }
    s_entry_t *e = &self->items[self->n++];
    memset(e, 0, sizeof *e);
    e->id = id_copy;
    e->host = host_copy;
    e->pid = pid;
    return e;
fail_copies:
    free(id_copy);
    free(host_copy);
    return NULL;
}

uint64_t zp_vent_quarantine_add(zp_vent_quarantine_t *self, const char *id,
                                const char *host, uint32_t pid, const char *rid,
                                size_t rid_len, uint64_t now)
{
    if (!self->base_us)
        return 0;
    s_entry_t *e = s_find(self, id, host, pid);
    uint64_t length = self->base_us;
    if (e) {
        length = e->length_us * 2;
        if (length > self->max_us || length < e->length_us)
            length = self->max_us;
        /* The newest process's host and pid: a restart changes them. */
        if (host && *host && pid && strcmp(e->host, host) != 0) {
            char *copy = strdup(host);
            if (copy) {
                free(e->host);
                e->host = copy;
            }
        }
        if (pid)
            e->pid = pid;
    } else if (!(e = s_append(self, id, host, pid)))
        return 0;
    e->length_us = length;
    e->until_us = now + length;
    e->answered_us = 0;
    s_set_rid(e, rid, rid_len);
    self->total++;
    return length;
}

bool zp_vent_quarantine_refused(zp_vent_quarantine_t *self, const char *id,
                                const char *host, uint32_t pid, const char *rid,
                                size_t rid_len, uint64_t now, uint64_t *left_us,
                                bool *answer)
{
    s_entry_t *e = s_find(self, id, host, pid);
    if (!e || now >= e->until_us)
        return false;
    self->refusals++;
    *left_us = e->until_us - now;
    bool same_rid = e->rid_len == rid_len && !memcmp(e->rid, rid, rid_len);
    *answer = !e->answered_us || !same_rid ||
              now - e->answered_us >= ZP_VENT_REFUSE_ANSWER_US;
    if (*answer)
        e->answered_us = now;
    s_set_rid(e, rid, rid_len);
    return true;
}

bool zp_vent_quarantine_has_rid(const zp_vent_quarantine_t *self,
                                const char *rid, size_t rid_len, uint64_t now)
{
    for (size_t i = 0; i < self->n; i++) {
        const s_entry_t *e = &self->items[i];
        if (now < e->until_us && e->rid_len == rid_len && rid_len &&
            memcmp(e->rid, rid, rid_len) == 0)
            return true;
    }
    return false;
}

size_t zp_vent_quarantine_active(const zp_vent_quarantine_t *self, uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n; i++)
        n += now < self->items[i].until_us;
    return n;
}

uint64_t zp_vent_quarantine_total(const zp_vent_quarantine_t *self)
{
    return self->total;
}

uint64_t zp_vent_quarantine_refusals(const zp_vent_quarantine_t *self)
{
    return self->refusals;
}
