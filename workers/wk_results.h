/* wk_results: finished tasks waiting to be sent, all of one job, and their
 * encoding as one ResultBatch. Sends nothing: the caller sends the bytes
 * (to the sink, or from an executor to its worker). */
#ifndef ZP_WK_RESULTS_H
#define ZP_WK_RESULTS_H

#include "zp_cause.h"
#include "zp_codec.h"
#include "zp_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Results are sent once this much output is pending, */
#define ZP_WK_FLUSH_BYTES (1u << 20)
/* or this long after the first pending one finished, not counting the
 * time the executor waited for a CPU meanwhile (wk_runq: 32 executors on 2
 * cores would otherwise send a batch for every 1 ms task), */
#define ZP_WK_FLUSH_US 20000u
/* and at the latest this long after it, however busy the machine. */
#define ZP_WK_FLUSH_MAX_US 320000u

/* One finished task; its output and error text live in the results'
 * buffers at these offsets. */
typedef struct {
    uint64_t task_id;
    uint32_t attempt;
    int status; /* ZPIPE_OK or the failure status */
    bool retryable;
    bool quarantined; /* a poison task, given up for good */
    zp_cause_t cause;
    size_t out_off, out_len;
    size_t err_off, err_len;
    uint64_t start_us, elapsed_us;
    uint64_t queued_us, dispatch_us; /* echoed for traced tasks, else 0 */
    uint64_t lease;                  /* Task.lease, echoed (0: none) */
} zp_wk_done_t;

/* The batch-level fields of an encoded ResultBatch. */
typedef struct {
    const char *worker_id; /* borrowed for the call */
    uint32_t window;       /* 0 under push dispatch */
    uint32_t max_held;
    uint64_t tasks_done; /* counting the results being encoded */
} zp_wk_batch_info_t;

typedef struct zp_wk_results zp_wk_results_t;

/* Caller owns the result; NULL on allocation failure. */
zp_wk_results_t *zp_wk_results_new(void);
/* Frees everything; nulls the caller's pointer. */
void zp_wk_results_destroy(zp_wk_results_t **self_p);

/* A new record for a task of job, its output and error to be appended to
 * zp_wk_results_out/_err and closed with zp_wk_results_finish. now
 * (monotonic µs) starts the flush clock when it is the first pending.
 * NULL when results of another job are pending (flush first) or on
 * allocation failure. Borrowed until the next push or clear. */
zp_wk_done_t *zp_wk_results_push(zp_wk_results_t *self, const char *job,
                                 uint64_t now);
/* Closes d, the last pushed: its lengths, the NUL after its error text. */
void zp_wk_results_finish(zp_wk_results_t *self, zp_wk_done_t *d);
/* Output and error buffers of the pending records; borrowed, valid until
 * the results are destroyed. Append only to the last record's. */
zp_buf_t *zp_wk_results_out(zp_wk_results_t *self);
zp_buf_t *zp_wk_results_err(zp_wk_results_t *self);

/* Pending records. */
size_t zp_wk_results_count(const zp_wk_results_t *self);
/* Their job; borrowed until the next push; NULL when none is pending. */
const char *zp_wk_results_job(const zp_wk_results_t *self);
/* Whether to send now (now in monotonic µs): enough output, or the first
 * pending one is old enough, less waited_us the process waited for a CPU
 * since (0 where unknown). */
bool zp_wk_results_due(const zp_wk_results_t *self, uint64_t now,
                       uint64_t waited_us);

/* The pending records as a ResultBatch in *rb, for zp_result_batch_size
 * and _write (whose caller has room of its own: a ZeroMQ message, a shared
 * region); borrowed, valid until the next push, clear or batch. Returns
 * 0, or -1 on allocation failure (records kept). */
int zp_wk_results_batch(zp_wk_results_t *self, const zp_wk_batch_info_t *info,
                        Zpipe__V1__ResultBatch *rb);
/* The pending records as a Message holding one ResultBatch, with info's
 * fields: its bytes (the same as zp_result_batch_size gives for
 * zp_wk_results_batch's), which zp_wk_results_write then writes into dst
 * (room for them, of the caller's: a ZeroMQ message, a shared region).
 * Without zp_wk_results_size since the last push or clear, or with
 * another info, the write returns 0 or a length other than the size. */
size_t zp_wk_results_size(zp_wk_results_t *self,
                          const zp_wk_batch_info_t *info);
size_t zp_wk_results_write(const zp_wk_results_t *self,
                           const zp_wk_batch_info_t *info, void *dst);
/* Encodes the pending records as a Message holding one ResultBatch into
 * out (out->len reset first). Returns 0, or -1 on allocation failure
 * (records kept). */
int zp_wk_results_encode(zp_wk_results_t *self, const zp_wk_batch_info_t *info,
                         zp_buf_t *out);
/* Drops the pending records (sent, or given up). */
void zp_wk_results_clear(zp_wk_results_t *self);

#endif
