/* vent_quarantine: workers whose leases keep expiring. The strike rule
 * that says when a worker is guilty, and the list of workers refused for a
 * while (backoff doubling per offence), matched by worker id or by host
 * and pid, so neither a restart under the same id nor the same process
 * under a new id gets back in early. Pure state: no sockets, no logs; the
 * shell drains, says bye, logs and publishes. */
#ifndef ZP_VENT_QUARANTINE_H
#define ZP_VENT_QUARANTINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Strikes that drain a worker: this many lease expiries in a row, none of
 * its results committed in between, each on tasks sent after the one
 * before was seen (so one stall that outlives several batches is one
 * strike, not several). */
#define ZP_VENT_STRIKES 2
/* A refused worker's connection is answered (Bye) at most this often;
 * between, its hellos and heartbeats are dropped: a worker says hello
 * again at every bye, and bye for bye would loop at wire speed. */
#define ZP_VENT_REFUSE_ANSWER_US 5000000u
/* The longest quarantine (doubling stops here). */
#define ZP_VENT_QUARANTINE_MAX_US 3600000000u
/* Entries kept at most (the oldest are forgotten first). */
#define ZP_VENT_QUARANTINE_MAX 1024

/* A connected worker's strikes (kept in its registry entry). */
typedef struct {
    uint32_t strikes;      /* in a row, 0 after a commit */
    uint64_t strike_us;    /* when the last strike was seen */
    uint64_t committed_at; /* its commits then */
} zp_vent_strikes_t;

/* A lease scan found tasks the worker held expired at now; newest_sent_us:
 * when the most recently sent of them was sent; committed: the worker's
 * tasks committed so far. Returns true when the worker has now earned
 * ZP_VENT_STRIKES strikes in a row (drain it). A commit since the last
 * strike starts the count again; tasks sent before the last strike was
 * seen belong to that strike. */
bool zp_vent_strike(zp_vent_strikes_t *s, uint64_t now, uint64_t newest_sent_us,
                    uint64_t committed);

typedef struct zp_vent_quarantine zp_vent_quarantine_t;

/* base_us: the first quarantine of a worker (0 = never drain anyone:
 * zp_vent_quarantine_enabled is false); each later one doubles, up to
 * max_us. Caller owns the result; NULL when out of memory. */
zp_vent_quarantine_t *zp_vent_quarantine_new(uint64_t base_us, uint64_t max_us);
/* Frees it; nulls the caller's pointer. NULL-safe. */
void zp_vent_quarantine_destroy(zp_vent_quarantine_t **self_p);
/* Whether workers are drained at all (base_us > 0). */
bool zp_vent_quarantine_enabled(const zp_vent_quarantine_t *self);

/* Puts the worker (id, host, pid, its routing id rid; each borrowed for
 * the call, id and host may be NULL or "") in quarantine at now. A worker
 * matching an earlier entry (zp_vent_quarantine_refused's rule) has it
 * renewed for twice as long as last time. Returns how long it is refused
 * (µs); 0 when out of memory (not refused, not counted). */
uint64_t zp_vent_quarantine_add(zp_vent_quarantine_t *self, const char *id,
                                const char *host, uint32_t pid, const char *rid,
                                size_t rid_len, uint64_t now);
/* Whether a worker saying hello as (id, host, pid) from rid is refused at
 * now: an entry in force with the same id (not "" or "?"), or the same
 * host and pid. If so, *left_us is how long it still is, and *answer
 * whether to tell it (a connection at most once per
 * ZP_VENT_REFUSE_ANSWER_US, a new connection at once; the entry then
 * remembers rid). Counted (refusals). */
bool zp_vent_quarantine_refused(zp_vent_quarantine_t *self, const char *id,
                                const char *host, uint32_t pid, const char *rid,
                                size_t rid_len, uint64_t now, uint64_t *left_us,
                                bool *answer);
/* Whether rid is the connection of a worker refused and still in
 * quarantine at now (its heartbeats and credit are dropped unanswered). */
bool zp_vent_quarantine_has_rid(const zp_vent_quarantine_t *self,
                                const char *rid, size_t rid_len, uint64_t now);

/* Workers refused at now (a gauge). */
size_t zp_vent_quarantine_active(const zp_vent_quarantine_t *self,
                                 uint64_t now);
/* Quarantines so far, and hellos refused so far. */
uint64_t zp_vent_quarantine_total(const zp_vent_quarantine_t *self);
uint64_t zp_vent_quarantine_refusals(const zp_vent_quarantine_t *self);

#endif
