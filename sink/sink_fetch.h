/* sink_fetch: results by cursor (--spool) and the peers waiting on a job.
 * Decides what a ResultsRequest gets (refused, parked until there are
 * records, answered now), reads a reply's whole records out of the
 * durable part of a job's spool, and keeps the parked requests and the
 * StatusRequest waiters of one job. Sends nothing: the shell does. */
#ifndef ZP_SINK_FETCH_H
#define ZP_SINK_FETCH_H

#include "zp_codec.h"
#include "zp_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parked requests and status waiters kept per job. */
#define ZP_FETCH_MAX_WAITERS 64
/* A reply's size when the request names none. */
#define ZP_FETCH_DEFAULT_BYTES (1u << 20)

/* A peer on the control socket: its routing id. */
typedef struct {
    char rid[256];
    size_t rid_len;
} zp_peer_t;

/* A consumer's ResultsRequest waiting for records past its cursor. */
typedef struct {
    zp_peer_t peer;
    uint64_t cursor;
    uint32_t max_bytes;
} zp_fetch_req_t;

/* One job's parked requests; zero-initialise. */
typedef struct {
    zp_fetch_req_t req[ZP_FETCH_MAX_WAITERS];
    size_t n;
} zp_fetch_t;

/* One job's status waiters (told when it is done); zero-initialise. */
typedef struct {
    zp_peer_t peer[ZP_FETCH_MAX_WAITERS];
    size_t n;
} zp_waiters_t;

/* A job's spool as consumers see it. */
typedef struct {
    int fd;           /* -1: no records yet */
    uint64_t flushed; /* bytes they may read */
    bool done;        /* the job is complete */
} zp_fetch_source_t;

typedef enum {
    ZP_FETCH_ANSWER,  /* answer now with zp_fetch_chunk */
    ZP_FETCH_PARKED,  /* kept until zp_fetch_take_ready returns it */
    ZP_FETCH_REFUSED, /* answer with the error *why */
} zp_fetch_action_t;

/* Decides what request rq (from peer rid) gets. A cursor must be at a
 * record boundary of the visible part; a waiting request with nothing to
 * read is parked (while there is room). *why is static text. */
zp_fetch_action_t zp_fetch_request(zp_fetch_t *self,
                                   const zp_fetch_source_t *src,
                                   const Zpipe__V1__ResultsRequest *rq,
                                   const char *rid, size_t rid_len,
                                   const char **why);

/* Reads whole records from cursor (those that fit in max bytes, 0 = the
 * default; when the first record is longer, that record alone) into b and fills
 * c's cursor, next_cursor, records (borrowed from b) and done. */
void zp_fetch_chunk(zp_buf_t *b, const zp_fetch_source_t *src, uint64_t cursor,
                    uint32_t max, Zpipe__V1__ResultsChunk *c);

/* Moves the parked requests that can be answered now (records past their
 * cursor, or the job is done) to out, which has room for
 * ZP_FETCH_MAX_WAITERS; returns how many. */
size_t zp_fetch_take_ready(zp_fetch_t *self, const zp_fetch_source_t *src,
                           zp_fetch_req_t *out);

/* Adds a waiter unless it is there already; when full, the oldest is
 * dropped for it. Returns 1 when one was dropped, else 0. */
int zp_waiters_add(zp_waiters_t *self, const char *rid, size_t rid_len);

#endif
