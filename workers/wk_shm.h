/* wk_shm: the shared memory between a worker and its executor, which
 * carries batches and results instead of their socket pair: a batch is
 * copied once into the inputs region (which the executor maps read-only,
 * so its plugins cannot change it), and the executor encodes a result
 * batch into the results region, from which the worker sends it on to the
 * sink without copying it. Their socket pair then carries only a 32-byte
 * reference to each frame, in place of the frame.
 *
 * Three parts: where a frame goes in a region (zp_wk_slots_t, pure); the
 * reference frame; and the regions themselves (memfds, mapped by both). A
 * frame that has no room, or a process without a region, takes the
 * socket pair as before. */
#ifndef ZP_WK_SHM_H
#define ZP_WK_SHM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The executor's fds for the regions (after the socket pair, 3, and the
 * progress page, 4). */
#define ZP_WK_IN_FD  5
#define ZP_WK_OUT_FD 6

/* Region sizes. A region's pages are touched only as frames use them
 * (the lowest free offset is taken first), so a small job's batches keep
 * to its first pages. The inputs region holds the batch running and the
 * one written behind it; results wait in theirs until libzmq has sent
 * them. */
#define ZP_WK_IN_BYTES  ((size_t)8 << 20)
#define ZP_WK_OUT_BYTES ((size_t)16 << 20)

/* ---- where frames go --------------------------------------------------- */

/* Frames live in a region at once, at most. */
#define ZP_WK_SLOTS_MAX 32u

typedef struct {
    uint64_t seq;
    size_t off, len;
} zp_wk_slot_t;

/* The frames in a region, by offset. Owned by the process that writes the
 * region; embedded, zeroed by zp_wk_slots_init. */
typedef struct {
    size_t cap;
    uint64_t last_seq; /* of the last frame placed; 0 = none yet */
    size_t n;
    zp_wk_slot_t live[ZP_WK_SLOTS_MAX];
} zp_wk_slots_t;

void zp_wk_slots_init(zp_wk_slots_t *self, size_t cap);
/* Places a frame of len bytes at the lowest free offset (a multiple of
 * 64): 0 with *off and *seq (the next in order, from 1), or -1 when no
 * gap is long enough or ZP_WK_SLOTS_MAX frames are there. */
int zp_wk_slots_alloc(zp_wk_slots_t *self, size_t len, size_t *off,
                      uint64_t *seq);
/* Shrinks frame seq to [off, off + len), which lies in it (an open
 * frame, written, takes only what it needs). */
void zp_wk_slots_trim(zp_wk_slots_t *self, uint64_t seq, size_t off,
                      size_t len);
/* Frees the frame seq (nothing if it is not there). */
void zp_wk_slots_release(zp_wk_slots_t *self, uint64_t seq);
/* Frees every frame up to seq. */
void zp_wk_slots_release_to(zp_wk_slots_t *self, uint64_t seq);
/* Frames in the region. */
size_t zp_wk_slots_live(const zp_wk_slots_t *self);

/* ---- the reference frame ------------------------------------------------ */

/* Its length, and its first byte, 0, which no Message's frame has (a
 * field number is never 0). */
#define ZP_WK_REF_LEN 32u

typedef enum {
    ZP_WK_REF_TASKS = 'T',   /* a TaskBatch in the inputs region */
    ZP_WK_REF_RESULTS = 'R', /* a ResultBatch in the results region */
} zp_wk_ref_kind_t;

typedef struct {
    uint8_t kind; /* zp_wk_ref_kind_t */
    uint64_t seq, off, len;
} zp_wk_ref_t;

void zp_wk_ref_write(const zp_wk_ref_t *ref, uint8_t out[ZP_WK_REF_LEN]);
/* Whether frame is a reference frame (its first byte is 0). */
bool zp_wk_ref_is(const void *frame, size_t len);
/* Reads a reference of kind into *ref: true when frame is one, whose
 * frame lies within a region of size bytes. */
bool zp_wk_ref_parse(const void *frame, size_t len, uint8_t kind, size_t size,
                     zp_wk_ref_t *ref);

/* ---- the worker's side of a region ------------------------------------- */

/* A region as the worker holds it: a memfd mapped read-write, shared
 * between the worker's loop and libzmq's I/O thread, which frees the
 * results sent from it. Released frames are published in order. */
typedef struct zp_wk_region zp_wk_region_t;

/* A fresh region of size bytes (name shows in /proc), its size sealed;
 * with readonly, sealed against writes but through this mapping (where
 * the kernel has F_SEAL_FUTURE_WRITE), so that the executor can only read
 * it. Caller owns the result (one reference); NULL when it cannot be made
 * (no memfd: the socket pair carries everything). */
zp_wk_region_t *zp_wk_region_new(const char *name, size_t size, bool readonly);
/* Drops the caller's reference; nulls the pointer. The region is unmapped
 * when the last frame sent from it is freed too. */
void zp_wk_region_unref(zp_wk_region_t **self_p);
/* The memfd (for the executor), the mapping, its size. */
int zp_wk_region_fd(const zp_wk_region_t *self);
uint8_t *zp_wk_region_base(const zp_wk_region_t *self);
size_t zp_wk_region_size(const zp_wk_region_t *self);

/* Results: frame seq came (seqs come in order, from 1). */
void zp_wk_region_received(zp_wk_region_t *self, uint64_t seq);
/* The hint for a ZeroMQ message sent from frame seq, to be given with
 * zp_wk_region_free (a zmq_free_fn) to zmq_msg_init_data: it holds a
 * reference to the region until libzmq frees the message. NULL when out
 * of memory. */
void *zp_wk_region_hold(zp_wk_region_t *self, uint64_t seq);
void zp_wk_region_free(void *data, void *hint);
/* Frame seq is done with here (decoded, not sent). */
void zp_wk_region_release(zp_wk_region_t *self, uint64_t seq);
/* The frames freed so far, in order: every seq up to the result is free
 * (for the executor, which places frames). */
uint64_t zp_wk_region_released(zp_wk_region_t *self);

/* ---- the executor's side ----------------------------------------------- */

/* Maps the region on fd (size from fstat) shared, read-only or
 * read-write, followed by an inaccessible guard page: NULL (and *size 0)
 * when fd is not a region (a worker without one: fd is closed, or any
 * other file; a region is known by its seals). */
uint8_t *zp_wk_region_map(int fd, bool writable, size_t *size);
/* Whether addr lies in such a mapping [base, base + size], the guard page
 * included. Async-signal-safe. */
bool zp_wk_region_holds(const uint8_t *base, size_t size, const void *addr);

#endif
