/* zp_codec: encode and decode zpipe.v1.Message frames.
 *
 * Decoding goes through an arena so a whole batch (envelope, tasks and
 * payload copies) costs a few bump allocations and one reset, not one
 * malloc/free per field. */
#ifndef ZP_CODEC_H
#define ZP_CODEC_H

#include "zp_util.h"
#include "zpipe.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef Zpipe__V1__Message zp_message_t;

/* Largest frame any zpipe socket accepts unless configured otherwise. */
#define ZP_MAX_FRAME_DEFAULT (64u * 1024u * 1024u)

typedef struct zp_arena zp_arena_t;

/* Caller owns the result; NULL on allocation failure. */
zp_arena_t *zp_arena_new(void);
/* Frees everything; nulls the caller's pointer. */
void zp_arena_destroy(zp_arena_t **self_p);
/* Releases every decoded message at once; keeps one block for reuse. */
void zp_arena_reset(zp_arena_t *self);
/* Bytes currently held (for tests and memory accounting). */
size_t zp_arena_held(const zp_arena_t *self);

/* Decodes one frame. Returns NULL when the frame is longer than max_len,
 * malformed, or has no kind set. The result is borrowed from arena, valid
 * until the next zp_arena_reset. */
zp_message_t *zp_decode(zp_arena_t *arena, const void *data, size_t len,
                        size_t max_len);

/* Encodes msg into out (out->len is reset first). Returns 0 or -1. Task
 * and result batches go through zp_encode_task_batch and
 * zp_encode_result_batch (below). */
int zp_encode(const zp_message_t *msg, zp_buf_t *out);

/* Fast checks for the worker's hot path, which forwards batches without
 * decoding them. Each reads the wire format without allocating and returns
 * 0, filling its counts, only for a frame zp_decode would accept as a
 * Message holding just that kind; -1 means "not that, or not sure": decode
 * the frame properly, in one pass over it.
 *
 * zp_scan_task_batch also gives, when min_ms and some_without are not
 * NULL, what zp_task_batch_deadlines gives. zp_scan_result_batch also
 * sums the results' elapsed_us and calls each (when not NULL) with each
 * result's, in order, as it goes: on -1 each may have seen some, which
 * the caller then drops. */
int zp_scan_task_batch(const void *data, size_t len, size_t max_len,
                       size_t *n_tasks, uint64_t *min_ms, bool *some_without);
int zp_scan_result_batch(const void *data, size_t len, size_t max_len,
                         size_t *n_results, uint64_t *elapsed_us,
                         void (*each)(void *arg, uint64_t elapsed_us),
                         void *arg);
/* For a frame zp_scan_task_batch accepted: the smallest nonzero
 * Task.deadline_ms of its tasks into *min_ms (0: no task has one), and
 * whether some task has none into *some_without. */
void zp_task_batch_deadlines(const void *data, size_t len, uint64_t *min_ms,
                             bool *some_without);

/* Zero-copy decoding of the two batch kinds, for hot paths. On 0, batch
 * holds what zp_decode would give for a Message holding just that kind,
 * except that payloads and outputs point into data (valid while it is)
 * and strings into the view's own space; arrays are reused from call to
 * call. -1 as for the scans: decode the frame properly. */
typedef struct {
    Zpipe__V1__TaskBatch batch;
    Zpipe__V1__Task *tasks;
    Zpipe__V1__Task **ptrs;
    size_t cap;
    zp_buf_t strings;
} zp_task_view_t;

typedef struct {
    Zpipe__V1__ResultBatch batch;
    Zpipe__V1__Result *results;
    Zpipe__V1__Result **ptrs;
    size_t cap;
    zp_buf_t strings;
} zp_result_view_t;

int zp_view_task_batch(zp_task_view_t *v, const void *data, size_t len,
                       size_t max_len);
int zp_view_result_batch(zp_result_view_t *v, const void *data, size_t len,
                         size_t max_len);
void zp_task_view_free(zp_task_view_t *v);
void zp_result_view_free(zp_result_view_t *v);

/* Encode a Message holding the batch into out (out->len reset first), the
 * same bytes as zp_encode, at a fraction of the cost. 0 or -1. */
int zp_encode_task_batch(const Zpipe__V1__TaskBatch *b, zp_buf_t *out);
int zp_encode_result_batch(const Zpipe__V1__ResultBatch *b, zp_buf_t *out);
/* The same in two steps, for a caller that has the room already (a
 * ZeroMQ message of that size, a shared region): the bytes a Message
 * holding the batch takes, then writing exactly that many at dst (size:
 * what _size said, so that the batch is walked once more, not twice; the
 * count is returned). */
size_t zp_task_batch_size(const Zpipe__V1__TaskBatch *b);
size_t zp_task_batch_write(const Zpipe__V1__TaskBatch *b, void *dst,
                           size_t size);
size_t zp_result_batch_size(const Zpipe__V1__ResultBatch *b);
size_t zp_result_batch_write(const Zpipe__V1__ResultBatch *b, void *dst,
                             size_t size);
/* A ResultBatch's own fields, around its results, for an encoder that
 * writes the results from records of its own (the worker's executor):
 * the bytes of job, worker, window, max_held and tasks_done (a body is
 * those plus each result's field); the Message's head (its kind and the
 * body's length, then job and worker) before the results; the rest
 * after them. zp_result_batch_write writes its batch with these. */
size_t zp_result_batch_fields_size(const char *job, const char *worker,
                                   uint64_t window, uint64_t max_held,
                                   uint64_t tasks_done);
uint8_t *zp_result_batch_put_head(uint8_t *p, const char *job,
                                  const char *worker, size_t body);
uint8_t *zp_result_batch_put_tail(uint8_t *p, uint64_t window,
                                  uint64_t max_held, uint64_t tasks_done);
/* A batch of exactly one result whose output (at least a byte) lies
 * where its output.data points, in memory with room around it: the bytes
 * before the output (zp_result_batch_head_size), and the whole Message
 * written around it, the same bytes as zp_result_batch_write (the output
 * itself not copied): *start is where it begins, its length is
 * returned. The room after the output must hold the result's error,
 * cause and the fixed fields (under 128 bytes beside the two strings). */
size_t zp_result_batch_head_size(const Zpipe__V1__ResultBatch *b);
size_t zp_result_batch_write_around(const Zpipe__V1__ResultBatch *b,
                                    uint8_t **start);
/* Any message: its encoded size, and its bytes written at dst (size, as
 * zp_encoded_size said; the count is returned). The same bytes as
 * zp_encode. */
size_t zp_encoded_size(const zp_message_t *msg);
size_t zp_encode_to(const zp_message_t *msg, void *dst, size_t size);

/* Name of the message's kind, for logs ("task_batch", ...). */
const char *zp_kind_name(const zp_message_t *msg);

#endif
