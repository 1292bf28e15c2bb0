/* sink_disk: how the sink's writes survive a full or failing disk. A
 * zp_dfile_t is an output file written through its own buffer, which
 * keeps every byte until it is written (and with sync, synced): a failed
 * or short write cuts the file back to its last good length and the same
 * bytes are written again later, so the file never holds a hole, a NUL
 * range or a torn record. zp_disk_t is the pause that follows a write
 * error: logged once, retried with backoff, ended when a write succeeds.
 * zp_disk_watch_t notices a file deleted or replaced under the sink. */
#ifndef ZP_SINK_DISK_H
#define ZP_SINK_DISK_H

#include "zp_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Retries of a paused sink: the first after this long, then twice as long
 * each time up to the most, in µs. */
#define ZP_DISK_RETRY_MIN_US 1000000u
#define ZP_DISK_RETRY_MAX_US 5000000u

/* ---- the pause ---- */

typedef struct {
    bool paused;         /* a write failed; nothing is acknowledged */
    int err;             /* its errno */
    char path[512];      /* the file it failed on */
    uint64_t since_us;   /* when the pause began */
    uint64_t next_us;    /* when to try again */
    uint64_t backoff_us; /* the wait after the next failure */
    uint64_t pauses;     /* pauses so far */
    uint64_t errors;     /* failed writes so far (tries included) */
} zp_disk_t;

/* A write of path failed with err at now (µs, monotonic): the pause
 * starts (logged once, as an error naming path and err) or goes on (the
 * next try waits longer, up to ZP_DISK_RETRY_MAX_US; not logged). */
void zp_disk_failed(zp_disk_t *self, const char *path, int err, uint64_t now);
/* Everything was written at now: a pause ends (logged, with how long it
 * lasted). Nothing when not paused. */
void zp_disk_recovered(zp_disk_t *self, uint64_t now);
/* Whether the sink is paused, and whether its next try is due at now. */
bool zp_disk_paused(const zp_disk_t *self);
bool zp_disk_retry_due(const zp_disk_t *self, uint64_t now);

/* ---- a file written through its own buffer ---- */

typedef struct zp_dfile zp_dfile_t;

/* Writes to fd (takes ownership; closed by zp_dfile_destroy unless it is
 * 0, 1 or 2), whose first `offset` bytes are kept: a regular file is cut
 * to offset (never extended: an offset past its end fails, EINVAL) and
 * written at offset with pwrite; anything else (a pipe, a terminal) is
 * written as a stream. path (copied) names it in messages and is the
 * file watched for deletion. NULL (errno) on failure, fd closed. Caller
 * owns the result. */
zp_dfile_t *zp_dfile_new(const char *path, int fd, uint64_t offset);
/* Writes what is buffered (a failure is not retried here), closes the
 * file; nulls the caller's pointer. */
void zp_dfile_destroy(zp_dfile_t **self_p);

/* Buffers len bytes; written by zp_dfile_commit (or when the buffer is
 * past 1 MiB, by zp_dfile_write). Returns 0, or -1 (ENOMEM). */
int zp_dfile_append(zp_dfile_t *self, const void *data, size_t len);
/* The buffer zp_dfile_append appends to, for a caller that renders
 * records into it in place: it may only append (the bytes there are the
 * file's), and write when zp_dfile_full says so. Borrowed, valid until
 * the next call on self. */
zp_buf_t *zp_dfile_buf(zp_dfile_t *self);
/* What zp_dfile_append_ref calls once the file no longer needs the
 * bytes it was given (after they are committed, or as it is destroyed). */
typedef void zp_dfile_release_fn(void *hint);
/* Appends len bytes at data by reference, not copied: they come after
 * what the buffer holds now, and bytes appended to the buffer afterwards
 * come after them. The caller keeps them unchanged until release(hint) is
 * called, which is once they are committed (or as self is destroyed): a
 * failed write writes them again, as it does the buffer. Returns 0, or -1
 * (ENOMEM: nothing taken, release not called). */
int zp_dfile_append_ref(zp_dfile_t *self, const void *data, size_t len,
                        zp_dfile_release_fn *release, void *hint);
/* Writes what is buffered. On failure a regular file is cut back to its
 * last committed length (so it never holds a torn record or a hole), the
 * buffer is kept whole for the next try, and -1 is returned with errno
 * set. A regular file found shorter than what was written to it (cut by
 * someone else) is not written at all (ESTALE: never a hole). */
int zp_dfile_write(zp_dfile_t *self);
/* zp_dfile_write, then with sync, fdatasync; once that succeeds the
 * buffer is released. A failed sync cuts the file back to its last
 * synced length too (the kernel may have dropped the pages). Returns 0,
 * or -1 (errno). */
int zp_dfile_commit(zp_dfile_t *self, bool sync);
/* Whether what waits to be written (buffer and references) is past
 * 1 MiB (time to write it). */
bool zp_dfile_full(const zp_dfile_t *self);
/* Bytes in the file once everything buffered is written. */
uint64_t zp_dfile_size(const zp_dfile_t *self);
/* Bytes buffered or referenced, not yet committed. */
size_t zp_dfile_pending(const zp_dfile_t *self);
int zp_dfile_fd(const zp_dfile_t *self);
const char *zp_dfile_path(const zp_dfile_t *self);

/* ---- files that must stay where they are ---- */

typedef struct {
    const char *path; /* borrowed; NULL = not watched */
    dev_t dev;
    ino_t ino;
    bool set;
} zp_disk_watch_t;

/* Remembers which file path is now (after it is opened, or replaced on
 * purpose: a compaction's rename). Returns 0, or -1 (errno). */
int zp_disk_watch_set(zp_disk_watch_t *self, const char *path);
/* Whether path is still the file zp_disk_watch_set saw: false when it was
 * deleted (or its parent) or replaced by another file, with why (e.g.
 * "was deleted") in buf. Also true when not watched. */
bool zp_disk_watch_ok(const zp_disk_watch_t *self, char *buf, size_t len);

#endif
