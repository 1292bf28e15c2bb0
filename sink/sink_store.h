/* sink_store: what the sink keeps on disk. The output file, the journal
 * (--journal: the commit log a restarted sink resumes from, cutting the
 * output back to what it says was committed), each job's spool (--spool
 * DIR: DIR/JOB.jsonl, the records consumers fetch by cursor), and the
 * durability barrier: nothing is acknowledged before it is synced. */
#ifndef ZP_SINK_STORE_H
#define ZP_SINK_STORE_H

#include "sink_disk.h"
#include "sink_foldlog.h"
#include "sink_spool.h"
#include "zp_journal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* --output none: no output; with --spool, the spools are the output
 * (each record is written once, to its job's spool). */
#define ZP_STORE_NO_OUTPUT "none"

typedef struct {
    const char *output;  /* path, "-" = stdout, ZP_STORE_NO_OUTPUT */
    const char *journal; /* commit log; NULL = none */
    const char *spool;   /* directory of spools; NULL = none */
    bool sync;           /* with a journal: fdatasync before acknowledging; else
                            written at each commit (a crash loses nothing, a power
                            loss the unsynced tail) */
    bool rewind;         /* with a journal: the output is a file to cut back to
                            it (else a stream, appended to as it is) */
    size_t spool_files;  /* spool files open at once, at most; 0 = from
                            RLIMIT_NOFILE (sink_spool.h) */
    uint64_t compact;    /* with a journal: compacted once past this many
                            bytes (zp_store_compact_due); 0 = never */
    const char *folds;   /* with a journal: the directory of the reduced
                            jobs' fold logs (sink_foldlog.h); NULL = none */
} zp_store_config_t;

/* Journal replay, one call per event as the journal has it. on_record
 * returns true when it took the record (a new task of its job); the
 * output is cut back to the end of the last record taken, or to the
 * snapshot's offset (a compacted journal) when that is further. The
 * snapshot's events (zp_journal.h) go to the last four. */
typedef struct {
    void (*on_open)(void *ctx, const char *job, uint32_t max_attempts,
                    const char *token);
    void (*on_close)(void *ctx, const char *job, uint64_t total);
    bool (*on_record)(void *ctx, const char *job, uint64_t task, bool ok);
    void (*on_forgotten)(void *ctx, const zp_journal_forgotten_t *job);
    void (*on_done)(void *ctx, const char *job, const char *token,
                    const zp_journal_summary_t *summary);
    void (*on_counts)(void *ctx, const char *job,
                      const zp_journal_summary_t *counts);
    void (*on_have)(void *ctx, const char *job, uint64_t first, uint64_t count);
    void (*on_key)(void *ctx, const char *job, const char *key);
} zp_store_replay_t;

typedef struct zp_store zp_store_t;

/* Checks the spool directory and opens the output: truncated, or with a
 * journal, replayed through replay(ctx) and cut back to what the journal
 * says was committed, then appended to. A damaged journal (zp_journal.h),
 * or one whose records end past the output's end (never filled with
 * zeros: the output lost its tail, or the journal is damaged), fails the
 * open, naming the journal and the line's byte offset, with errno
 * EBADMSG (a restart would refuse again). cfg's strings are borrowed for
 * the store's life. Logs why and returns NULL on failure. Caller owns
 * the result. */
zp_store_t *zp_store_new(const zp_store_config_t *cfg,
                         const zp_store_replay_t *replay, void *ctx);
/* Closes the output and the journal; nulls the caller's pointer. */
void zp_store_destroy(zp_store_t **self_p);

/* Records taken from the journal, and the output's length after the cut
 * (0 and 0 without a journal). */
uint64_t zp_store_resumed(const zp_store_t *self);
uint64_t zp_store_offset(const zp_store_t *self);
bool zp_store_journaled(const zp_store_t *self);
/* The store has failed for good (out of memory, a fold log, a file
 * gone; logged once): the sink must stop. */
bool zp_store_failed(const zp_store_t *self);
/* The output or the journal was deleted or replaced while the sink wrote
 * it (checked at every barrier and at the stop; zp_store_failed too):
 * records committed to it are lost, and the run must fail. */
bool zp_store_lost(const zp_store_t *self);
/* A write of the output, the journal or a spool failed (a full disk, an
 * I/O error): the store is paused, zp_store_sync fails until a retry
 * (sink_disk.h's backoff) writes everything. Its state, borrowed. */
bool zp_store_paused(const zp_store_t *self);
const zp_disk_t *zp_store_disk(const zp_store_t *self);

/* Journal events (buffered; no-ops without a journal). token: the job's
 * JobOpen.token, NULL or "" for none. */
void zp_store_job_opened(zp_store_t *self, const char *job,
                         uint32_t max_attempts, const char *token);
/* The job's dispatch key, 32 hex digits (a K line). */
void zp_store_job_keyed(zp_store_t *self, const char *job, const char *key);
void zp_store_job_closed(zp_store_t *self, const char *job, uint64_t total);

/* Whether output names no output (ZP_STORE_NO_OUTPUT). */
bool zp_store_output_none(const char *output);
/* Whether the store writes an output (else only the spools, if any). */
bool zp_store_has_output(const zp_store_t *self);

/* Writes task's record: data to the output, json (NULL: data is JSON
 * already) to the job's spool, and the record to the journal. With no
 * output the spool gets the JSON (json, else data) and nothing else is
 * written. */
void zp_store_emit(zp_store_t *self, zp_spool_t *spool, const char *job,
                   uint64_t task, bool ok, const void *data, size_t len,
                   const void *json, size_t json_len);
/* The same for a record rendered in place, without a copy: the buffer
 * job's next record goes to (the output's; with no output the job's
 * spool's, where the record must be its JSON; a scratch buffer when
 * there is neither), borrowed until the next call on the store, or NULL
 * when the spool's file cannot be opened (logged; the store has failed).
 * The caller appends the record to it, then zp_store_emit_rendered
 * writes what was appended from byte `from` on (json as above; NULL
 * with no output). */
zp_buf_t *zp_store_record_buf(zp_store_t *self, zp_spool_t *spool,
                              const char *job);
void zp_store_emit_rendered(zp_store_t *self, zp_spool_t *spool,
                            const char *job, uint64_t task, bool ok,
                            size_t from, const void *json, size_t json_len);
/* The same for a record that is data, taken by reference (not copied:
 * see zp_dfile_append_ref, whose release(hint) gives it back once it is
 * committed), then tail (copied: a newline, say). Only to an output that
 * is not paused, and with spools only when json is given (the spool's
 * own rendering): returns -1 with nothing written (and release not
 * called) when it cannot take the record so, and the caller writes it
 * the usual way; 0 when written (or the store failed, logged). */
int zp_store_emit_ref(zp_store_t *self, zp_spool_t *spool, const char *job,
                      uint64_t task, bool ok, const void *data, size_t len,
                      const void *tail, size_t tail_len, const void *json,
                      size_t json_len, zp_dfile_release_fn *release,
                      void *hint);
/* Writes a reduced job's one record (closed with total tasks; ok: the
 * reduction succeeded), journaled as the record of task id total (see
 * zp_journal.h), and flushes the output. */
void zp_store_emit_final(zp_store_t *self, zp_spool_t *spool, const char *job,
                         uint64_t total, bool ok, const void *data, size_t len,
                         const void *json, size_t json_len);

/* The reduced jobs' fold logs (borrowed, valid for the store's life), or
 * NULL without a journal or --reduce. */
zp_foldlogs_t *zp_store_folds(const zp_store_t *self);
/* A successful result of task that a reduced job folded: appended to the
 * job's fold log (NULL: none, nothing kept) and journaled as the task's
 * record (nothing is written to the output). The barrier writes the fold
 * log before the journal. Out of memory fails the store. */
void zp_store_fold(zp_store_t *self, zp_foldlog_t *log, const char *job,
                   uint64_t task, const void *data, size_t len);

/* The barrier, in two steps. zp_store_sync makes what was written
 * durable: the spools with new records, the fold logs, then the output
 * and the journal (flushed; with a journal, synced), then removes the
 * fold logs retired before it; nothing when nothing was written. It
 * first checks that the output and journal are still there (else the
 * store is lost). A failed write pauses the store (zp_store_paused):
 * what it holds stays buffered, and while the pause's backoff runs
 * zp_store_sync fails at once (EAGAIN). Returns 0, or -1 (paused, or the
 * store has failed; logged once). Once it has
 * succeeded, zp_store_publish makes the spools' new records visible and
 * calls published(ctx, spool) for each spool that grew. */
int zp_store_sync(zp_store_t *self);
void zp_store_publish(zp_store_t *self, zp_spool_published_fn *published,
                      void *ctx);

/* Whether anything was written since the last zp_store_sync (or a spool
 * has records not yet visible): the barrier has work. */
bool zp_store_unsynced(const zp_store_t *self);

/* After a journal replay: keeps the first `records` records of the job's
 * spool (the journal's, in its order), cuts what follows, and leaves the
 * file closed until it is needed. The spool's length and checksum as the
 * journal last had them (a P line, written at each barrier) are checked
 * first: a spool that fails is damaged, and fails the store (logged,
 * naming the file; the sink stops and serves nothing wrong). */
void zp_store_spool_restore(zp_store_t *self, zp_spool_t *spool,
                            const char *job, uint64_t records);
/* The spool's file descriptor for reads (opened on demand; valid until
 * the next call on the store), or -1 when it has none. */
int zp_store_spool_fd(zp_store_t *self, zp_spool_t *spool, const char *job);
/* A forgotten job's spool file, opened for reading: a file descriptor
 * the caller closes, or -1 (errno; also without --spool). */
int zp_store_spool_open_read(const zp_store_t *self, const char *job);
/* The absolute path of job's spool file (see zp_spools_path); false
 * without --spool. */
bool zp_store_spool_path(zp_store_t *self, const char *job, char *path,
                         size_t cap);
/* A finished job's spool: its file is closed (what it holds made
 * durable first; a failure fails the store). */
void zp_store_spool_close(zp_store_t *self, zp_spool_t *spool);
/* A done job's records taken by a consumer: its spool file deleted
 * (spool NULL: a forgotten job's), see zp_spools_remove. 0, or -1
 * (errno; ENOENT without --spool). */
int zp_store_spool_remove(zp_store_t *self, zp_spool_t *spool, const char *job);
/* A done job's spool still at its path? See zp_spools_recheck (false
 * without --spool). */
bool zp_store_spool_recheck(zp_store_t *self, zp_spool_t *spool,
                            const char *job);
/* Spools a restore found gone (zp_spools_gone; 0 without --spool). */
size_t zp_store_spools_gone(const zp_store_t *self);
/* Spool files open now (0 without --spool). */
size_t zp_store_spools_open(const zp_store_t *self);

/* Whether a journal of size bytes, whose last compaction left last
 * bytes, is due one: past threshold (0 = never) and at least twice last
 * (a snapshot of many live records is not rewritten over and over). */
bool zp_store_compact_policy(uint64_t size, uint64_t last, uint64_t threshold);
/* Whether the store's journal is due a compaction (the policy above). */
bool zp_store_compact_due(const zp_store_t *self);
/* Compacts the journal: at a barrier (nothing unsynced), makes the output
 * durable, then has the journal rewritten as the snapshot: the output's
 * length, then what dump(ctx, out) writes (every job the sink keeps, see
 * zp_journal.h). Returns 0, or -1 after logging why (the old journal is
 * kept; the next try waits until it has grown as much again). Compaction
 * bytes and time: zp_store_compactions. */
int zp_store_compact(zp_store_t *self, zp_journal_dump_fn *dump, void *ctx);
/* The journal's size in bytes (0 without one). */
uint64_t zp_store_journal_size(const zp_store_t *self);
/* Compactions done, and the journal's size after the last one. */
uint64_t zp_store_compactions(const zp_store_t *self, uint64_t *last_size);

/* At a stop: writes the output's buffer; returns 0, or -1 if that or an
 * earlier write failed, or the output or journal is gone. Records the
 * output could not take are not journaled (a restart runs them again). */
int zp_store_finish(zp_store_t *self);
/* At a clean stop with nothing left to resume: closes the journal and
 * removes its file and the fold logs' directory. Returns 0, or -1 (errno)
 * when the journal cannot be removed. */
int zp_store_drop_journal(zp_store_t *self);

#endif
