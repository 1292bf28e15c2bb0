/* wk_queue: task batches received and not yet given to the executor, in
 * order, each the ventilator's frame as it came with its task count. */
#ifndef ZP_WK_QUEUE_H
#define ZP_WK_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

typedef struct zp_wk_queue zp_wk_queue_t;

/* Caller owns the result; NULL on allocation failure. */
zp_wk_queue_t *zp_wk_queue_new(void);
/* Closes the frames still queued and frees; nulls the caller's pointer. */
void zp_wk_queue_destroy(zp_wk_queue_t **self_p);

/* Appends frame (n tasks); takes its content, leaving frame empty.
 * Returns 0, or -1 on allocation failure (frame untouched). */
int zp_wk_queue_push(zp_wk_queue_t *self, zmq_msg_t *frame, size_t n);
/* Puts frame back at the head (an executor died before taking it); takes
 * its content as zp_wk_queue_push does. Returns 0 or -1. */
int zp_wk_queue_push_front(zp_wk_queue_t *self, zmq_msg_t *frame, size_t n);
/* Moves the head's content into frame (initialised by the caller, and
 * empty) and returns true with its task count in *n; false when empty. */
bool zp_wk_queue_pop(zp_wk_queue_t *self, zmq_msg_t *frame, size_t *n);
/* Batches queued. */
size_t zp_wk_queue_len(const zp_wk_queue_t *self);

#endif
