/* sink_disk: buffered files that survive a full disk, the pause after a
 * write error, and the watch for deleted files (see sink_disk.h). */
#define _GNU_SOURCE
#include "sink_disk.h"
#include "zp_log.h"
#include "zp_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* A buffer past this is written before more is added. */
#define S_WRITE_AT (1u << 20)

/* ---- the pause ---- */

void zp_disk_failed(zp_disk_t *self, const char *path, int err, uint64_t now)
{
    self->errors++;
    if (!self->paused) {
        self->paused = true;
        self->pauses++;
        self->since_us = now;
        self->backoff_us = ZP_DISK_RETRY_MIN_US;
        self->err = err;
        snprintf(self->path, sizeof self->path, "%s", path);
        zp_error("writing %s: %s; the sink is paused (nothing is "
                 "acknowledged, workers hold their results) and tries again "
                 "every %u to %u s until the write succeeds",
                 path, strerror(err), ZP_DISK_RETRY_MIN_US / 1000000u,
                 ZP_DISK_RETRY_MAX_US / 1000000u);
    } else if (self->backoff_us < ZP_DISK_RETRY_MAX_US) {
        self->backoff_us *= 2;
        if (self->backoff_us > ZP_DISK_RETRY_MAX_US)
            self->backoff_us = ZP_DISK_RETRY_MAX_US;
    }
    self->next_us = now + self->backoff_us;
}

void zp_disk_recovered(zp_disk_t *self, uint64_t now)
{
    if (!self->paused)
        return;
    zp_warn("writing %s works again (it failed: %s); the sink resumes "
            "after a pause of %.1f s",
            self->path, strerror(self->err),
            (double)(now - self->since_us) / 1e6);
    self->paused = false;
    self->err = 0;
}

bool zp_disk_paused(const zp_disk_t *self)
{
    return self->paused;
}

bool zp_disk_retry_due(const zp_disk_t *self, uint64_t now)
{
    return self->paused && now >= self->next_us;
}

/* ---- a file written through its own buffer ---- */

/* Bytes appended by reference: after buf[0, at). */
typedef struct {
    size_t at;
    const char *data;
    size_t len;
    zp_dfile_release_fn *release;
    void *hint;
} s_ref_t;

/* Iovecs per write call. */
#define S_IOV 64

struct zp_dfile {
    int fd;
    char *path;
    bool regular;    /* pwrite at an offset, cut back on failure */
    uint64_t synced; /* bytes in the file before the buffer */
    size_t written;  /* bytes of what follows written (not yet synced) */
    zp_buf_t buf;    /* every byte after synced, but the references' */
    s_ref_t *refs;   /* in the order they came */
    size_t n_refs, cap_refs;
    size_t ref_bytes; /* their bytes */
};

/* Bytes after synced: the buffer's and the references'. */
static size_t s_pending(const zp_dfile_t *self)
{
    return self->buf.len + self->ref_bytes;
}

/* Gives every reference back. */
static void s_release_refs(zp_dfile_t *self)
{
    for (size_t i = 0; i < self->n_refs; i++)
        if (self->refs[i].release)
            self->refs[i].release(self->refs[i].hint);
    self->n_refs = 0;
    self->ref_bytes = 0;
}

zp_dfile_t *zp_dfile_new(const char *path, int fd, uint64_t offset)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        goto fail_fd;
    bool regular = S_ISREG(st.st_mode);
    if (regular && (uint64_t)st.st_size < offset) {
        errno = EINVAL; /* never extended: that would be a NUL range */
        goto fail_fd;
    }
    if (regular && (uint64_t)st.st_size > offset &&
        ftruncate(fd, (off_t)offset) != 0)
        goto fail_fd;
    zp_dfile_t *self = calloc(1, sizeof *self);
    if (!self || !(self->path = strdup(path))) {
        free(self);
        errno = ENOMEM;
        goto fail_fd;
    }
    self->fd = fd;
    self->regular = regular;
    self->synced = regular ? offset : 0;
    return self;

fail_fd:;
    int saved = errno;
    if (fd > 2)
        close(fd);
    errno = saved;
    return NULL;
}

void zp_dfile_destroy(zp_dfile_t **self_p)
{
    zp_dfile_t *self = *self_p;
    if (!self)
        return;
    zp_dfile_write(self);
    if (self->fd > 2)
        close(self->fd);
    s_release_refs(self);
    free(self->refs);
    zp_buf_free(&self->buf);
    free(self->path);
    free(self);
    *self_p = NULL;
}

int zp_dfile_append(zp_dfile_t *self, const void *data, size_t len)
{
    if (len && zp_buf_append(&self->buf, data, len) < 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int zp_dfile_append_ref(zp_dfile_t *self, const void *data, size_t len,
                        zp_dfile_release_fn *release, void *hint)
{
    if (self->n_refs == self->cap_refs) {
        size_t cap = self->cap_refs ? 2 * self->cap_refs : 16;
        s_ref_t *refs = realloc(self->refs, cap * sizeof *refs);
        if (!refs) {
            errno = ENOMEM;
            return -1;
        }
        self->refs = refs;
        self->cap_refs = cap;
    }
    self->refs[self->n_refs++] =
        (s_ref_t){self->buf.len, data, len, release, hint};
    self->ref_bytes += len;
    return 0;
}

zp_buf_t *zp_dfile_buf(zp_dfile_t *self)
{
    return &self->buf;
}

/* After a failure: a regular file is cut back to its last committed
 * length, and the whole buffer is written again next time (a stream
 * keeps what it took). Keeps errno. */
static void s_cut_back(zp_dfile_t *self)
{
    if (!self->regular)
        return;
    int saved = errno;
    self->written = 0;
    if (ftruncate(self->fd, (off_t)self->synced) != 0)
        zp_debug("%s: cannot cut it back: %s", self->path, strerror(errno));
    errno = saved;
}

/* Up to S_IOV pieces of what is pending, from byte skip of it on: the
 * buffer's ranges between the references, and the references. Returns
 * how many. */
static int s_pieces(const zp_dfile_t *self, size_t skip, struct iovec *iov)
{
    int n = 0;
    size_t at = 0; /* of the buffer, up to which pieces were passed */
    for (size_t i = 0; i <= self->n_refs && n < S_IOV; i++) {
        size_t end = i < self->n_refs ? self->refs[i].at : self->buf.len;
        const char *p[2] = {self->buf.data + at,
                            i < self->n_refs ? self->refs[i].data : NULL};
        size_t l[2] = {end - at, i < self->n_refs ? self->refs[i].len : 0};
        at = end;
        for (int k = 0; k < 2 && n < S_IOV; k++) {
            if (skip >= l[k]) {
                skip -= l[k];
                continue;
            }
            iov[n++] = (struct iovec){(void *)(p[k] + skip), l[k] - skip};
            skip = 0;
        }
    }
    return n;
}

int zp_dfile_write(zp_dfile_t *self)
{
    struct stat st;
    size_t pending = s_pending(self);
    if (self->regular && self->written < pending &&
        (fstat(self->fd, &st) != 0 ||
         (uint64_t)st.st_size < self->synced + self->written)) {
        /* Cut short by someone else: writing at the offset would leave a
         * hole of NUL bytes where records were. */
        errno = ESTALE;
        return -1;
    }
    while (self->written < pending) {
        struct iovec iov[S_IOV];
        int n_iov = s_pieces(self, self->written, iov);
        ssize_t n = self->regular
                        ? pwritev(self->fd, iov, n_iov,
                                  (off_t)(self->synced + self->written))
                        : writev(self->fd, iov, n_iov);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            s_cut_back(self);
            return -1;
        }
        self->written += (size_t)n;
    }
    return 0;
}

int zp_dfile_commit(zp_dfile_t *self, bool sync)
{
    if (zp_dfile_write(self) < 0)
        return -1;
    /* Synced even with nothing new: earlier writes made without sync
     * (a compaction's snapshot needs them durable). */
    if (sync && self->regular && fdatasync(self->fd) != 0) {
        /* What the kernel failed to write may be gone from its cache:
         * write all of it again. */
        s_cut_back(self);
        return -1;
    }
    if (self->regular)
        self->synced += self->written;
    self->written = 0;
    self->buf.len = 0;
    s_release_refs(self);
    return 0;
}

bool zp_dfile_full(const zp_dfile_t *self)
{
    return s_pending(self) - self->written >= S_WRITE_AT;
}

uint64_t zp_dfile_size(const zp_dfile_t *self)
{
    return self->synced + s_pending(self);
}

size_t zp_dfile_pending(const zp_dfile_t *self)
{
    return s_pending(self);
}

int zp_dfile_fd(const zp_dfile_t *self)
{
    return self->fd;
}

const char *zp_dfile_path(const zp_dfile_t *self)
{
    return self->path;
}

/* ---- files that must stay where they are ---- */

int zp_disk_watch_set(zp_disk_watch_t *self, const char *path)
{
    struct stat st;
    self->path = path;
    self->set = false;
    if (stat(path, &st) != 0)
        return -1;
    self->dev = st.st_dev;
    self->ino = st.st_ino;
    self->set = true;
    return 0;
}

bool zp_disk_watch_ok(const zp_disk_watch_t *self, char *buf, size_t len)
{
    if (!self->set)
        return true;
    struct stat st;
    if (stat(self->path, &st) != 0) {
        snprintf(buf, len, "was deleted (%s)", strerror(errno));
        return false;
    }
    if (st.st_dev != self->dev || st.st_ino != self->ino) {
        snprintf(buf, len, "was replaced by another file");
        return false;
    }
    return true;
}
