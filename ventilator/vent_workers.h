/* vent_workers: the workers connected for credit dispatch: registry (find,
 * hello, drop), credit bookkeeping and liveness. No sockets: the shell
 * sends and logs. */
#ifndef ZP_VENT_WORKERS_H
#define ZP_VENT_WORKERS_H

#include "vent_quarantine.h"
#include "zpipe.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZP_VENT_MAX_PLUGINS 64

typedef struct {
    char rid[256]; /* routing id on the dispatch socket */
    size_t rid_len;
    uint64_t serial; /* unique for the ventilator's lifetime, from 1 */
    char *id;
    char *host;          /* from its hello, "" when it said none */
    uint32_t pid;        /* from its hello, 0 when it said none */
    bool in_process;     /* runs plugins in its process (Hello.in_process) */
    bool payload_frames; /* takes big payloads as frames of their own
                            (Hello.payload_frames) */
    char *plugins[ZP_VENT_MAX_PLUGINS];
    size_t n_plugins;
    uint64_t window, credit, sent;
    uint64_t last_seen_us;
    uint64_t last_progress_us;  /* it last finished something (credit) */
    uint64_t tasks_done;        /* from its heartbeats */
    uint64_t committed;         /* its tasks the sink committed */
    uint32_t group;             /* the suspect group it runs alone (bisect) */
    zp_vent_strikes_t strikes;  /* its leases that expired */
    uint64_t expired_newest_us; /* the lease scan's scratch: the newest
                                   dispatch of its tasks expired, 0 none */
} zp_vent_worker_t;

typedef struct zp_vent_workers zp_vent_workers_t;

/* Caller owns the result; NULL when out of memory. now: the time the
 * ventilator started (counts as "no worker since"). */
zp_vent_workers_t *zp_vent_workers_new(uint64_t now);
/* Frees every worker; nulls the caller's pointer. */
void zp_vent_workers_destroy(zp_vent_workers_t **self_p);

/* Workers connected now. */
size_t zp_vent_workers_count(const zp_vent_workers_t *self);
/* The i-th worker (borrowed, until a worker is added or removed). */
zp_vent_worker_t *zp_vent_workers_at(const zp_vent_workers_t *self, size_t i);
/* By routing id or by serial; NULL when not known. */
zp_vent_worker_t *zp_vent_workers_find(const zp_vent_workers_t *self,
                                       const char *rid, size_t rid_len);
zp_vent_worker_t *zp_vent_workers_by_serial(const zp_vent_workers_t *self,
                                            uint64_t serial);
/* Adds the worker that said h from rid (rid_len at most 255; the caller
 * has dropped an earlier worker of that rid). Its window is at least 1
 * and its credit at most its window. Returns it (borrowed, until a worker
 * is added or removed), or NULL when out of memory. */
zp_vent_worker_t *zp_vent_workers_add(zp_vent_workers_t *self, const char *rid,
                                      size_t rid_len, const Zpipe__V1__Hello *h,
                                      uint64_t now);
/* Forgets w and frees it; the workers after it move down one place. */
void zp_vent_workers_remove(zp_vent_workers_t *self, zp_vent_worker_t *w,
                            uint64_t now);
/* The sum of the workers' windows (for the hold limit). */
uint64_t zp_vent_workers_windows(const zp_vent_workers_t *self);
/* The loop starts at now: with no worker yet, "no worker since" counts
 * from here, not from before set-up (a long --resume-journal replay must
 * not eat into --no-worker-timeout-ms). */
void zp_vent_workers_start(zp_vent_workers_t *self, uint64_t now);
/* Since when no worker has been connected (meaningful when none is). */
uint64_t zp_vent_workers_none_since(const zp_vent_workers_t *self);

/* Whether w has plugin. */
bool zp_vent_worker_has(const zp_vent_worker_t *w, const char *plugin);
/* w granted grant more credit at now (it finished tasks). Credit beyond
 * the window is clamped; returns the excess (0 normally). */
uint64_t zp_vent_worker_credit(zp_vent_worker_t *w, uint64_t grant,
                               uint64_t now);
/* w's heartbeat reports tasks_done; a change is progress. */
void zp_vent_worker_heartbeat(zp_vent_worker_t *w, uint64_t tasks_done,
                              uint64_t now);
/* n tasks were sent to w against its credit (n <= its credit). */
void zp_vent_worker_sent(zp_vent_worker_t *w, uint64_t n);

/* Liveness: the first worker silent for longer than timeout_us at now,
 * or NULL. The shell drops it and asks again. */
zp_vent_worker_t *zp_vent_workers_silent(const zp_vent_workers_t *self,
                                         uint64_t now, uint64_t timeout_us);

#endif
