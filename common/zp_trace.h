/* zp_trace: task timelines. The sink's trace log (one JSON line per result
 * it receives, written once the record is committed) and its reader, the
 * one definition of that line format for the sink and zpipe run.
 *
 * A line, keys in this order (readers accept any order):
 *   {"job":"J","task":7,"attempt":1,"worker":"W","status":"ok",
 *    "outcome":"committed","bytes":12,"queued_us":..,"dispatch_us":..,
 *    "start_us":..,"elapsed_us":..,"received_us":..,"commit_us":..}
 * status is ok or failed; outcome is committed (this attempt is the task's
 * record), duplicate (the task already had one) or retry (a retryable
 * failure sent back for another attempt). Times are Unix µs: queued and
 * dispatch on the ventilator's clock, start on the worker's, received and
 * commit on the sink's; 0 when unknown (an untraced ventilator, a record
 * the ventilator wrote itself, a record not yet durable when the sink
 * stopped). commit_us is when the record became durable (output flushed;
 * with a journal, synced), the moment the sink may acknowledge it. */
#ifndef ZP_TRACE_H
#define ZP_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    ZP_TRACE_COMMITTED = 0,
    ZP_TRACE_DUPLICATE = 1,
    ZP_TRACE_RETRY = 2,
} zp_trace_outcome_t;

/* One line. Strings are borrowed: from the caller when writing, from the
 * reader's buffers when read. */
typedef struct {
    const char *job, *worker;
    uint64_t task;
    uint32_t attempt;
    bool ok;
    zp_trace_outcome_t outcome;
    uint64_t bytes;
    uint64_t queued_us, dispatch_us, start_us, elapsed_us;
    uint64_t received_us, commit_us;
} zp_trace_entry_t;

typedef struct zp_trace_log zp_trace_log_t;

/* Is the record of (job, task) written to the output yet? (An ordered
 * sink holds records back until every lower task id has one.) job is the
 * pointer given to zp_trace_log_add. */
typedef bool(zp_trace_written_fn)(void *ctx, const void *job, uint64_t task);

/* Opens path for appending. Caller owns the result; NULL with the reason
 * in err when it cannot be opened. */
zp_trace_log_t *zp_trace_log_new(const char *path, char *err, size_t errlen);

/* Takes one result as received. A committed one waits for the next
 * zp_trace_log_commit to learn its commit time; others are written now.
 * job_key identifies the record's job to the written callback (borrowed;
 * must stay valid while the entry waits). Returns 0, or -1 when out of
 * memory (the line is lost, counted). */
int zp_trace_log_add(zp_trace_log_t *self, const zp_trace_entry_t *e,
                     const void *job_key);

/* The output is durable as of now_us: writes every waiting committed
 * entry whose record is written (per written(), NULL = all of them) with
 * commit_us = now_us. Buffered; flushed when a call finds nothing new. */
void zp_trace_log_commit(zp_trace_log_t *self, uint64_t now_us,
                         zp_trace_written_fn *written, void *ctx);

/* Lines lost to allocation or write failures so far. */
uint64_t zp_trace_log_lost(const zp_trace_log_t *self);

/* Writes what still waits with commit_us 0 (never known durable), closes
 * the file; nulls the caller's pointer. Returns 0, or -1 when a write
 * failed at any time. */
int zp_trace_log_destroy(zp_trace_log_t **self_p);

/* Reads one line (without its newline) into e. job and worker are copied
 * into job_buf and worker_buf (truncated to fit, NUL-terminated). Returns
 * 0, or -1 when the line is not a trace entry (no task or worker). */
int zp_trace_parse(const char *line, size_t len, zp_trace_entry_t *e,
                   char *job_buf, size_t job_cap, char *worker_buf,
                   size_t worker_cap);

/* "committed", "duplicate", "retry". */
const char *zp_trace_outcome_name(zp_trace_outcome_t o);

#endif
