/* sink_foldlog: what each reduced job folded, kept on disk so that a
 * restarted sink can fold it again. A reducer's accumulator cannot be
 * saved (the plugin ABI has no way to serialise one), so its inputs are:
 * one file per reduced job, DIR/JOB.fold, beside the journal.
 *
 *   "zpfold1\n"                           magic
 *   then records, each:
 *     task u64, len u32, crc u32          little-endian; crc is the
 *                                         CRC-32C of the 12 bytes before
 *                                         it, then of the bytes
 *     bytes[len]
 *   the first record's task is UINT64_MAX and its bytes the reducer
 *   plugin's name; each other is one task's output, as folded.
 *
 * Appends are buffered and written at the sink's barrier, before the
 * journal (zp_foldlogs_write): a task the journal has is in its job's fold
 * log. Replay (zp_foldlogs_resume) stops at the first record that is
 * incomplete or fails its check, and cuts the file there. A task may be
 * in a log twice (folded, never acknowledged, sent again after a crash);
 * the journal says which tasks count. */
#ifndef ZP_SINK_FOLDLOG_H
#define ZP_SINK_FOLDLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The name of the fold logs' directory: the journal's path with this
 * appended. */
#define ZP_FOLDLOG_DIR_SUFFIX ".fold"
/* A reducer plugin's name is at most this long in a fold log. */
#define ZP_FOLDLOG_MAX_PLUGIN 255

typedef struct zp_foldlogs zp_foldlogs_t;
/* One job's fold log; owned by its zp_foldlogs_t. */
typedef struct zp_foldlog zp_foldlog_t;

/* The fold logs in dir (created when missing; with sync, its parent is
 * synced then). dir is copied. sync: fdatasync what is written (and the
 * directory when a file is made). Logs why and returns NULL on failure.
 * Caller owns the result. */
zp_foldlogs_t *zp_foldlogs_new(const char *dir, bool sync);
/* Frees every log (their files stay); nulls the caller's pointer. */
void zp_foldlogs_destroy(zp_foldlogs_t **self_p);

/* A new log for job (a valid job id) whose reducer is plugin: its file is
 * made (emptied if it was there) at the next zp_foldlogs_write. Returns
 * NULL when out of memory or plugin is too long. Borrowed from self until
 * zp_foldlogs_retire or zp_foldlogs_destroy. */
zp_foldlog_t *zp_foldlogs_create(zp_foldlogs_t *self, const char *job,
                                 const char *plugin);
/* Buffers one folded output of task. Returns 0, or -1 when out of
 * memory or len does not fit in a record (nothing buffered). */
int zp_foldlogs_append(zp_foldlogs_t *self, zp_foldlog_t *log, uint64_t task,
                       const void *data, size_t len);
/* Bytes buffered in every log and not yet written. */
size_t zp_foldlogs_pending(const zp_foldlogs_t *self);
/* The first half of the barrier: writes what every log buffered (synced
 * when self syncs). Returns 0, or -1 after logging why. */
int zp_foldlogs_write(zp_foldlogs_t *self);

/* The job's final record is written: its log is freed now (nulls the
 * caller's pointer, its buffer dropped) and its file removed at the next
 * zp_foldlogs_collect, once the barrier has made that record durable. */
void zp_foldlogs_retire(zp_foldlogs_t *self, zp_foldlog_t **log_p);
/* After a barrier: removes the files of the logs retired before it.
 * Returns how many could not be removed (logged). */
size_t zp_foldlogs_collect(zp_foldlogs_t *self);

/* Restart. What zp_foldlogs_resume calls: on_plugin once with the
 * reducer's name (returns false to leave the log alone: it is not freed
 * nor its file touched), then on_entry for each record in the file's
 * order (data borrowed for the call). on_entry returns false for a
 * record the journal does not have (never acknowledged): the log is cut
 * there, as a torn tail is (the records after it were not acknowledged
 * either: they are journaled in the log's order), so a stale result is
 * never folded after the task came again. */
typedef struct {
    bool (*on_plugin)(void *ctx, const char *plugin);
    bool (*on_entry)(void *ctx, uint64_t task, const void *data, size_t len);
} zp_foldlog_visitor_t;

/* Calls fn(ctx, job) for each fold log in the directory (any order).
 * Returns the number seen, or -1 after logging when it cannot be read. */
long zp_foldlogs_scan(zp_foldlogs_t *self,
                      void (*fn)(void *ctx, const char *job), void *ctx);
/* Reads job's fold log through v, cuts a torn tail (*torn: bytes cut; may
 * be NULL), and returns the log, ready for appends. NULL when there is
 * none, its header is torn (the file is removed: the job's open was never
 * acknowledged), on_plugin declined, or after logging a failure. */
zp_foldlog_t *zp_foldlogs_resume(zp_foldlogs_t *self, const char *job,
                                 const zp_foldlog_visitor_t *v, void *ctx,
                                 uint64_t *torn);
/* Removes job's fold log file now (a stale one). Returns 0, or -1
 * (errno) when it cannot be removed. */
int zp_foldlogs_remove(zp_foldlogs_t *self, const char *job);
/* At a clean stop with every job done: removes the retired logs' files
 * and the directory. Returns 0, or -1 (errno) when the directory stays. */
int zp_foldlogs_drop(zp_foldlogs_t *self);

#endif
