/* vent_finished: the jobs that finished here, remembered by id and token
 * so that an id is never taken for a second job (its records would be
 * mistaken for the first one's), and so that a producer's JobOpen or
 * JobClose sent again after the end is answered as before. Kept in the
 * journal (--journal) across restarts; the oldest are forgotten past a
 * count or an age (the sink, which keeps the results, still refuses a
 * reused id with another token). */
#ifndef ZP_VENT_FINISHED_H
#define ZP_VENT_FINISHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults: the last 100,000 finished jobs, for at most 7 days. */
#define ZP_VENT_FINISHED_MAX    100000u
#define ZP_VENT_FINISHED_AGE_US (7ull * 24 * 3600 * 1000000)

/* One finished job (borrowed from the set, until it is forgotten). */
typedef struct {
    char *id, *token; /* token "" when the job had none */
    uint64_t total;   /* its tasks */
    uint64_t when_us; /* wall clock when it finished */
    uint64_t hash;    /* of id */
} zp_vent_finished_job_t;

typedef struct zp_vent_finished zp_vent_finished_t;

/* max: most jobs remembered (0: the default); max_age_us: forgotten after
 * (0: the default). Caller owns the result; NULL when out of memory. */
zp_vent_finished_t *zp_vent_finished_new(size_t max, uint64_t max_age_us);
/* Frees the set; nulls the caller's pointer. */
void zp_vent_finished_destroy(zp_vent_finished_t **self_p);
/* Remembers a finished job (the id again: replaces the old entry). The
 * oldest is forgotten when the set is full. Returns 0, or -1 when out of
 * memory (the set unchanged). */
int zp_vent_finished_add(zp_vent_finished_t *self, const char *id,
                         const char *token, uint64_t total, uint64_t when_us);
/* The finished job with this id, or NULL. */
const zp_vent_finished_job_t *
zp_vent_finished_find(const zp_vent_finished_t *self, const char *id);
/* For tests: the hash of ids the index uses (NULL: zp_hash_str), so
 * that a test can make ids collide. Only while empty. */
void zp_vent_finished_set_hash(zp_vent_finished_t *self,
                               uint64_t (*hash)(const char *id));
/* Forgets jobs finished before now_us - max age; returns how many. */
size_t zp_vent_finished_expire(zp_vent_finished_t *self, uint64_t now_us);
/* Jobs remembered. */
size_t zp_vent_finished_count(const zp_vent_finished_t *self);
/* The i-th entry, oldest first (i < count), for the journal's
 * compaction; NULL for an entry replaced by a later job with its id. */
const zp_vent_finished_job_t *
zp_vent_finished_at(const zp_vent_finished_t *self, size_t i);

#endif
