/* wk_queue: task batches received and not yet given to the executor, in
 * order, each as the ventilator sent it (zp_wk_batch_t): its frame, the
 * frames of its big payloads (Task.payload_frame), its task count. */
#ifndef ZP_WK_QUEUE_H
#define ZP_WK_QUEUE_H

#include "zp_codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

/* A batch as it came: the TaskBatch frame and the payload frames after it
 * (none for a batch with every payload inside). Zero-initialised by
 * zp_wk_batch_init; owned by whoever holds it. */
typedef struct {
    zmq_msg_t head;
    zmq_msg_t *parts; /* n_parts frames, or NULL */
    size_t n_parts;
    size_t n; /* its tasks */
    /* Its tasks' deadlines when known (scanned on arrival, in the same
     * pass): the smallest nonzero deadline_ms, whether some have none. */
    bool deadlines_known;
    bool some_without;
    uint64_t min_deadline_ms;
} zp_wk_batch_t;

/* An empty batch. */
void zp_wk_batch_init(zp_wk_batch_t *b);
/* Closes its frames; it is empty again. */
void zp_wk_batch_close(zp_wk_batch_t *b);
/* Moves src's content into dst (which must be empty); src is empty. */
void zp_wk_batch_move(zp_wk_batch_t *dst, zp_wk_batch_t *src);
/* Bytes of its frames. */
size_t zp_wk_batch_bytes(const zp_wk_batch_t *b);
/* Points the payload of each task of tb (decoded or viewed from b's head)
 * that names a payload frame at that frame, and clears the name: tb is
 * then the batch with every payload inside. False (tb unusable) when a
 * task names a frame b does not have, or has a payload of its own too,
 * or two tasks name one frame. */
bool zp_wk_batch_attach(const zp_wk_batch_t *b, Zpipe__V1__TaskBatch *tb);

typedef struct zp_wk_queue zp_wk_queue_t;

/* Caller owns the result; NULL on allocation failure. */
zp_wk_queue_t *zp_wk_queue_new(void);
/* Closes the batches still queued and frees; nulls the caller's pointer. */
void zp_wk_queue_destroy(zp_wk_queue_t **self_p);

/* Appends b; takes its content, leaving b empty. Returns 0, or -1 on
 * allocation failure (b untouched). */
int zp_wk_queue_push(zp_wk_queue_t *self, zp_wk_batch_t *b);
/* Puts b back at the head (an executor died before taking it); takes its
 * content as zp_wk_queue_push does. Returns 0 or -1. */
int zp_wk_queue_push_front(zp_wk_queue_t *self, zp_wk_batch_t *b);
/* Moves the head's content into b (which must be empty) and returns true;
 * false when the queue is empty. */
bool zp_wk_queue_pop(zp_wk_queue_t *self, zp_wk_batch_t *b);
/* Batches queued. */
size_t zp_wk_queue_len(const zp_wk_queue_t *self);

#endif
