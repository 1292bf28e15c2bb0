/* sink_order: --ordered output for one job. Records that arrive ahead of
 * the next task id to write are parked in a ring indexed by task id
 * relative to that next id, and come out in task id order. */
#ifndef ZP_SINK_ORDER_H
#define ZP_SINK_ORDER_H

#include "zp_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a parked record is: in chunk `chunk` - 1 (0: the slot is empty),
 * its record's rec_len bytes from byte at, then json_len of its JSON. */
typedef struct {
    uint32_t chunk;
    bool ok;
    size_t at, rec_len, json_len;
} zp_order_slot_t;

/* Parked records are rendered into, or copied to, the end of a chunk; a
 * chunk is reused (emptied) once every record in it is written, so a
 * steady run of out-of-order batches allocates nothing per record. */
typedef struct {
    zp_buf_t buf;
    size_t live; /* records in it not written yet */
} zp_order_chunk_t;

/* Zero-initialise for a job whose next record is task 0;
 * zp_order_fini releases what is parked. */
typedef struct {
    uint64_t next;         /* the next task id to write */
    zp_order_slot_t *ring; /* parked records, slot id % ring_cap */
    size_t ring_cap;       /* 0 until something is parked; a power of 2 */
    size_t parked;         /* records in the ring */
    zp_order_chunk_t *chunks;
    size_t n_chunks, cur; /* chunks made; the one parked into */
} zp_order_t;

/* A parked record, borrowed from the order until zp_order_advance. */
typedef struct {
    uint64_t task;
    bool ok;
    const char *rec; /* the record in the output's format */
    size_t rec_len;
    const char *json; /* its JSON for the spool when that differs, or NULL */
    size_t json_len;
} zp_order_rec_t;

/* The next task id to write. */
uint64_t zp_order_next(const zp_order_t *self);
/* Sets the next task id (after a journal replay: the lowest id without a
 * record). Only while nothing is parked. */
void zp_order_restart(zp_order_t *self, uint64_t next);
/* Whether task id has its record already written (or needs none). */
typedef bool(zp_order_written_fn)(void *ctx, uint64_t id);
/* Moves past the next ids that have nothing parked but whose record
 * written(ctx, id) says exists: records an unordered sink wrote before a
 * restart (a journal resumed with --ordered), results a reducer folded.
 * Without this the order would wait for them for ever. Returns how many
 * ids it moved past. */
size_t zp_order_skip_written(zp_order_t *self, zp_order_written_fn *written,
                             void *ctx);
/* Parks task id's record (copied; json may be NULL). id must be above the
 * next one and not parked yet. Returns 0, or -1 when out of memory (the
 * order is unchanged) or id is not above the next one. */
int zp_order_park(zp_order_t *self, uint64_t id, bool ok, const void *rec,
                  size_t rec_len, const void *json, size_t json_len);
/* The same without the copy, for a record rendered in place: the buffer
 * to append the record (then its JSON, if any) to, borrowed until the
 * next call on the order (NULL when out of memory); then
 * zp_order_park_rendered parks what was appended from byte `from` on,
 * its first rec_len bytes the record and the rest its JSON. On failure
 * (-1, as above) what was appended is dropped. */
zp_buf_t *zp_order_park_buf(zp_order_t *self);
int zp_order_park_rendered(zp_order_t *self, uint64_t id, bool ok, size_t from,
                           size_t rec_len);
/* True when the record for the next task id is parked; fills out. */
bool zp_order_peek(const zp_order_t *self, zp_order_rec_t *out);
/* The next task id's record was written (taken from the ring, or written
 * directly when it arrived in order): frees its slot, moves on by one. */
void zp_order_advance(zp_order_t *self);
/* Records parked. */
size_t zp_order_parked(const zp_order_t *self);
/* Whether task id's record is parked (received, not written yet). */
bool zp_order_is_parked(const zp_order_t *self, uint64_t id);
/* The parked records that are successes (*ok) and failures (*failed). */
void zp_order_parked_counts(const zp_order_t *self, uint64_t *ok,
                            uint64_t *failed);
/* Frees what is parked; the order is empty (next is kept). */
void zp_order_fini(zp_order_t *self);

#endif
