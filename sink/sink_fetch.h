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

/* Parked requests and status waiters kept per job, at most. Both lists
 * grow on demand: an idle job holds one waiter (its opener), not 64. */
#define ZP_FETCH_MAX_WAITERS 64
/* A reply's size when the request names none, and the most a request
 * may ask for (a bigger max_bytes gets this: the client reads on from
 * next_cursor; a record longer still comes whole, alone). Without the cap
 * a request for 4 GiB made the sink allocate that much. */
#define ZP_FETCH_DEFAULT_BYTES (1u << 20)
#define ZP_FETCH_MAX_BYTES     (16u << 20)

/* Why a gone source's records are refused. */
#define ZP_FETCH_GONE                                                          \
    "the job's records are no longer held: they were taken (zpipe results "    \
    "--take) or their spool file deleted"

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
    bool by_reference; /* where the records are, not the bytes */
} zp_fetch_req_t;

/* One job's parked requests; zero-initialise, zp_fetch_fini frees. */
typedef struct {
    zp_fetch_req_t *req;
    size_t n, cap;
} zp_fetch_t;

/* A status waiter: a peer's routing id, as long as it is (most are a few
 * bytes; a zp_peer_t holds 256). */
typedef struct {
    char *rid;
    size_t rid_len;
} zp_waiter_t;

/* One job's status waiters (told when it is done); zero-initialise,
 * zp_waiters_fini frees. */
typedef struct {
    zp_waiter_t *peer;
    size_t n, cap;
} zp_waiters_t;

/* A job's spool as consumers see it. */
typedef struct {
    int fd;           /* -1: no records yet */
    uint64_t flushed; /* bytes they may read */
    bool done;        /* the job is complete */
    bool gone;        /* its records are not served: taken by a consumer
                         (ResultsRequest.take) or their file deleted */
    const char *path; /* the file's absolute path, NULL: not known */
} zp_fetch_source_t;

typedef enum {
    ZP_FETCH_ANSWER,  /* answer now with zp_fetch_chunk */
    ZP_FETCH_PARKED,  /* kept until zp_fetch_take_ready returns it */
    ZP_FETCH_REFUSED, /* answer with the error *why */
} zp_fetch_action_t;

/* Decides what request rq (from peer rid) gets. A cursor must be at a
 * record boundary of the visible part, and the spool readable when it
 * has records; a waiting request with nothing to read is parked (while
 * there is room and memory; else answered now). *why is static text. */
zp_fetch_action_t zp_fetch_request(zp_fetch_t *self,
                                   const zp_fetch_source_t *src,
                                   const Zpipe__V1__ResultsRequest *rq,
                                   const char *rid, size_t rid_len,
                                   const char **why);

/* Reads whole records from cursor (those that fit in max bytes, 0 = the
 * default; when the first record is longer, that record alone) into b and fills
 * c's cursor, next_cursor, records (borrowed from b) and done. With
 * by_reference, and a source with a path whose visible part ends a record,
 * reads nothing: c says where every visible record past cursor is
 * (spool_path, borrowed from src, spool_dev, spool_ino), max aside. */
void zp_fetch_chunk(zp_buf_t *b, const zp_fetch_source_t *src, uint64_t cursor,
                    uint32_t max, bool by_reference,
                    Zpipe__V1__ResultsChunk *c);

/* Moves the parked requests that can be answered now (records past their
 * cursor, or the job is done) to out, which has room for
 * ZP_FETCH_MAX_WAITERS; returns how many. */
size_t zp_fetch_take_ready(zp_fetch_t *self, const zp_fetch_source_t *src,
                           zp_fetch_req_t *out);

/* Frees the parked requests (once none is parked: a finished job). */
void zp_fetch_fini(zp_fetch_t *self);

/* Adds a waiter unless it is there already; when full, the oldest is
 * dropped for it. Returns 1 when one was dropped, 0 when none was, -1
 * when out of memory (not added). */
int zp_waiters_add(zp_waiters_t *self, const char *rid, size_t rid_len);
/* Forgets every waiter (they were told), keeping the list's room. */
void zp_waiters_clear(zp_waiters_t *self);
/* Forgets every waiter and frees the list. */
void zp_waiters_fini(zp_waiters_t *self);

#endif
