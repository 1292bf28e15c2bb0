/* sink_spool: the jobs' spool files (--spool DIR: DIR/JOB.jsonl, the
 * records consumers fetch by cursor), with a bounded number open. A file
 * is opened when a record is appended or read, and at most max_open are
 * open at once: opening one more closes the least recently used, after
 * flushing (and with sync, syncing) what it holds, so a sink runs as long
 * as it likes under any fd limit. Spools whose new bytes are not yet
 * visible are kept on a list, so the durability barrier touches those
 * and no other. */
#ifndef ZP_SINK_SPOOL_H
#define ZP_SINK_SPOOL_H

#include "zp_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Open spool files at most when the caller names no number: a quarter of
 * RLIMIT_NOFILE, between ZP_SPOOL_MIN_OPEN and ZP_SPOOL_MAX_OPEN. */
#define ZP_SPOOL_MAX_OPEN 64
#define ZP_SPOOL_MIN_OPEN 4

/* One job's spool; zero-initialise. Consumers may read the first
 * `flushed` bytes: whole records, durable, that the journal has too.
 * The links belong to the spool set. */
typedef struct zp_spool {
    uint64_t len;          /* bytes written */
    uint64_t synced;       /* bytes made durable (flushed; synced with sync) */
    uint64_t flushed;      /* bytes visible to consumers */
    uint32_t crc;          /* CRC-32C of the first crc_len bytes */
    uint64_t crc_len;      /* len at each barrier, when the two are
                              journaled (a P line, zp_journal.h); until
                              then the bytes after it wait in the buffer */
    uint64_t journaled;    /* len when its last P line was written */
    struct zp_dfile *file; /* NULL while closed (sink_disk.h) */
    const char *job;       /* the job's id, borrowed from the job */
    bool created;          /* the file exists: created here, or restored */
    bool gone;             /* its records are not served: taken by a
                              consumer (zp_spools_remove), or the file
                              was missing at a restore */
    bool pending;          /* on the list of spools with bytes to publish */
    struct zp_spool *newer, *older; /* open files, most recent first */
    struct zp_spool *next_pending;
} zp_spool_t;

typedef struct zp_spools zp_spools_t;

/* Spools in dir (borrowed for the set's life), at most max_open files
 * open (0 = from RLIMIT_NOFILE, see above); with sync, made durable with
 * fdatasync, else only flushed. NULL when out of memory. Caller owns the
 * result. */
zp_spools_t *zp_spools_new(const char *dir, size_t max_open, bool sync);
/* Flushes and closes every open file; nulls the caller's pointer. The
 * spools themselves (in the jobs) are the caller's. */
void zp_spools_destroy(zp_spools_t **self_p);

/* The absolute path of job's spool file in path (cap bytes), for a
 * consumer on this host to read itself; false when the directory has no
 * absolute path now or the path does not fit. */
bool zp_spools_path(zp_spools_t *self, const char *job, char *path, size_t cap);
/* A finished and forgotten job's spool file opened for reading: a file
 * descriptor the caller closes, or -1 (errno). */
int zp_spools_open_read(const zp_spools_t *self, const char *job);

/* Appends len bytes to job's spool (buffered until zp_spools_sync),
 * opening its file when it is closed (created, truncated, the first
 * time). Returns 0, or -1 after logging (the sink must stop: the spool no
 * longer matches the journal). */
int zp_spools_append(zp_spools_t *self, zp_spool_t *spool, const char *job,
                     const void *data, size_t len);
/* The same in two steps, for a record rendered in place: the buffer of
 * job's spool file (opened as zp_spools_append does; NULL after logging,
 * the sink must stop), borrowed until the next call on the set; then,
 * once the caller has appended to it, the bytes from `from` on are
 * counted as appended. */
zp_buf_t *zp_spools_buf(zp_spools_t *self, zp_spool_t *spool, const char *job);
void zp_spools_appended(zp_spools_t *self, zp_spool_t *spool, size_t from);
/* Makes the written bytes of every spool on the list durable. Returns 0,
 * or -1 (errno; not logged: a full disk pauses the sink, which says so
 * once): what failed stays buffered, for the next call, and the file is
 * cut back to its last good length. */
int zp_spools_sync(zp_spools_t *self);
/* The spool file the last failed zp_spools_sync could not write. */
const char *zp_spools_failed_path(const zp_spools_t *self);
/* Calls fn(ctx, spool) for each spool on the list (bytes not yet
 * visible), until fn returns non-zero (returned). */
typedef int(zp_spool_fn)(void *ctx, zp_spool_t *spool);
int zp_spools_each_pending(zp_spools_t *self, zp_spool_fn *fn, void *ctx);
/* Called with each spool whose visible part grew. */
typedef void(zp_spool_published_fn)(void *ctx, zp_spool_t *spool);
/* Once the journal has them too: the synced bytes of every spool on the
 * list become visible; published(ctx, spool) (may be NULL) for each that
 * grew. The list is then empty. */
void zp_spools_publish(zp_spools_t *self, zp_spool_published_fn *published,
                       void *ctx);
/* Whether a spool has bytes not yet visible. */
bool zp_spools_pending(const zp_spools_t *self);

/* The spool's file descriptor for reads (pread), opened when closed;
 * valid until the next call on the set. -1 when it has no file (logged
 * when it should have one). */
int zp_spools_fd(zp_spools_t *self, zp_spool_t *spool, const char *job);
/* A finished job: flushes (and syncs) its file and closes it; it is
 * opened again for reads. Returns 0, or -1 after logging. */
int zp_spools_close(zp_spools_t *self, zp_spool_t *spool);
/* A done job's records taken by a consumer (ResultsRequest.take): closes
 * spool's file and deletes it (one already gone, renamed away by the
 * consumer, is no error), and marks the spool gone. spool NULL: a
 * forgotten job's file, by job's name. Returns 0, or -1 (errno; the
 * file stays, and so does the spool). */
int zp_spools_remove(zp_spools_t *self, zp_spool_t *spool, const char *job);

/* A done job's spool, before its records are read: a file no longer at
 * its path (moved away by a consumer that did not say it took the
 * records, deleted, or replaced) is closed and the spool gone, rather
 * than served from a descriptor that now reads someone else's file.
 * Returns whether the spool is gone. */
bool zp_spools_recheck(zp_spools_t *self, zp_spool_t *spool, const char *job);

/* What the journal's last P line says of a spool (zp_journal.h). */
typedef struct {
    uint64_t len;
    uint32_t crc;
} zp_spool_check_t;

/* After a journal replay: keeps the first `records` records of job's
 * spool file (the journal's, in its order), cuts what follows and closes
 * the file. A missing file is an empty spool; when records are owed it is
 * gone (taken or deleted: counted, zp_spools_gone) and a file that cannot
 * be opened for another reason, or holds fewer records than are owed, is
 * gone with a warning (refused, not served short). With check (NULL: none,
 * a journal before spool checksums), the file's first check->len bytes must
 * have its CRC and hold whole records of the `records`: else the spool was
 * damaged (or cut, or replaced) and is not served: -1 after logging the file
 * and the byte range (the file is left as it is). Returns 0 otherwise. */
int zp_spools_restore(zp_spools_t *self, zp_spool_t *spool, const char *job,
                      uint64_t records, const zp_spool_check_t *check);

/* Spools found gone by zp_spools_restore (their records owed, their
 * file missing). */
size_t zp_spools_gone(const zp_spools_t *self);

/* Files open now, and the most that may be. */
size_t zp_spools_open(const zp_spools_t *self);
size_t zp_spools_max_open(const zp_spools_t *self);

#endif
