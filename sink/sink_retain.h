/* sink_retain: the finished jobs the sink has forgotten (--retain-jobs),
 * kept as far as the uniqueness rule and a late consumer need: a 64-bit
 * hash of each id and of its token, its task count, successes and the
 * length of its spool file and whether its reduction failed (so its status is
 * still told and its records still served from the file), 56 bytes a job (48 in
 * an insertion-order ring, 8 in the index). The set itself is capped; past the
 * cap the oldest is dropped, and its id may then be opened again as a new job.
 * Two ids with the same 64-bit hash are taken for one (odds about n^2 /
 * 2^65). */
#ifndef ZP_SINK_RETAIN_H
#define ZP_SINK_RETAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the set knows of an id. */
typedef enum {
    ZP_RETAIN_UNKNOWN, /* not in the set */
    ZP_RETAIN_SAME,    /* a forgotten job, and the token matches (or
                          the open has none: legacy) */
    ZP_RETAIN_OTHER,   /* a forgotten job with another token */
} zp_retain_match_t;

/* zp_retain_entry_t.spooled of a job whose records are not served: taken
 * by a consumer (ResultsRequest.take), or its spool file found missing. */
#define ZP_RETAIN_SPOOL_GONE UINT64_MAX

/* One forgotten job. */
typedef struct {
    uint64_t id_hash;
    uint64_t token_hash; /* 0: the job had no token */
    uint64_t total;      /* its tasks (each has its record) */
    uint64_t succeeded;  /* of them; the rest failed */
    uint64_t spooled;    /* bytes of its spool file (--spool), or
                            ZP_RETAIN_SPOOL_GONE */
    bool reduce_failed;  /* a reduced job whose reduction failed */
} zp_retain_entry_t;

/* Zero-initialise, then set cap (0: nothing is remembered);
 * zp_retain_fini frees. */
typedef struct {
    size_t cap;               /* the most entries kept */
    zp_retain_entry_t *ring;  /* oldest at head */
    size_t ring_cap, head, n; /* ring slots, the oldest's slot, entries */
    uint32_t *index;          /* open addressing: ring slot + 1, 0 = empty */
    size_t index_cap;         /* a power of 2, at least twice ring_cap */
} zp_retain_t;

/* The hash the set keeps of an id or a token ("" and NULL: 0). */
uint64_t zp_retain_hash(const char *s);
/* Remembers a forgotten job (its token NULL or "": none) with e's counts
 * (e's hashes are set here). At the cap, or when the set cannot grow
 * (out of memory), the oldest entry is dropped to make room; returns -1
 * only when there is no room at all (nothing kept). An id already kept
 * is left as it is. */
int zp_retain_add(zp_retain_t *self, const char *id, const char *token,
                  zp_retain_entry_t e);
/* Adds by hashes (journal replay of a compacted journal). */
int zp_retain_add_hashed(zp_retain_t *self, zp_retain_entry_t e);
/* What the set says of an open of id with token (NULL or "": none). */
zp_retain_match_t zp_retain_match(const zp_retain_t *self, const char *id,
                                  const char *token);
/* Whether id is a forgotten job. */
bool zp_retain_has(const zp_retain_t *self, const char *id);
/* The forgotten job id, or NULL; borrowed until the set changes. */
const zp_retain_entry_t *zp_retain_find(const zp_retain_t *self,
                                        const char *id);
/* The forgotten job id's records were taken (spooled becomes
 * ZP_RETAIN_SPOOL_GONE); false when id is not in the set. */
bool zp_retain_spool_gone(zp_retain_t *self, const char *id);
/* The i-th entry, oldest first (i < n). */
zp_retain_entry_t zp_retain_at(const zp_retain_t *self, size_t i);
void zp_retain_fini(zp_retain_t *self);

#endif
