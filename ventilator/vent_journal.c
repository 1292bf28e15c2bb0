/* vent_journal: the ventilator's durable log; the format and the promises
 * are in vent_journal.h, the reading side (replay, torn tails, damage) in
 * vent_journal_replay.c. This file appends, syncs and compacts. */
#define _GNU_SOURCE
#include "vent_journal.h"
#include "vent_journal_int.h"
#include "zp_crc32c.h"
#include "zp_journal.h"
#include "zp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Past this many buffered bytes an append writes them out (no sync), so a
 * caller that appends much between syncs holds at most about this much. */
#define S_FLUSH_AT (4u << 20)

struct zp_vjournal {
    int fd;           /* the journal, flock'ed while we hold it */
    int dirfd;        /* its folder (fsync after create and rename); -1 in
                         a compaction's temporary journal */
    char *path;       /* PATH; NULL in a compaction's temporary journal */
    char *tmp_path;   /* PATH.compact */
    zp_buf_t buf;     /* records appended and not yet written */
    uint64_t written; /* the file's length: where buf goes */
    bool needs_sync;  /* a job, tasks, seqs or close since the last sync */
    bool unsynced;    /* bytes written since the last fdatasync */
    int failed;       /* errno of a failed fdatasync, else 0 */
};

/* ---- encoding ------------------------------------------------------- */

static uint8_t *s_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
    return p + 4;
}

static uint8_t *s_put64(uint8_t *p, uint64_t v)
{
    s_put32(p, (uint32_t)v);
    return s_put32(p + 4, (uint32_t)(v >> 32));
}

static uint8_t *s_putstr(uint8_t *p, const char *s, size_t n)
{
    p = s_put32(p, (uint32_t)n);
    if (n)
        memcpy(p, s, n);
    return p + n;
}

/* memcpy for a payload: most tasks are a few bytes, where a call to
 * memcpy per task costs more than the copy (a 1,000-task batch of 16-byte
 * payloads: about 5 us with memcpy, 1.5 us with this). Fixed-size copies
 * compile to single moves; the two may overlap, and touch no byte outside
 * [src, src + n). */
static void s_copy(uint8_t *dst, const uint8_t *src, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &b, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i];
    } else {
        memcpy(dst, src, n);
    }
}

static size_t s_len(const char *s)
{
    return s ? strlen(s) : 0;
}

/* Makes room for a record of body_len bytes; returns where its body goes
 * (type byte written), or NULL with errno (EFBIG over the record limit,
 * ENOMEM). Nothing counts as appended until s_end. */
static uint8_t *s_begin(zp_vjournal_t *self, uint64_t body_len, int type)
{
    if (body_len > ZP_VJ_MAX_RECORD) {
        errno = EFBIG;
        return NULL;
    }
    if (zp_buf_reserve(&self->buf, 8 + (size_t)body_len) < 0) {
        errno = ENOMEM;
        return NULL;
    }
    uint8_t *body = (uint8_t *)self->buf.data + self->buf.len + 8;
    body[0] = (uint8_t)type;
    return body + 1;
}

/* Seals the record begun by s_begin: its length and checksum. A record
 * that must be durable before its Ack sets needs_sync. */
static int s_end(zp_vjournal_t *self, uint64_t body_len, bool durable)
{
    uint8_t *h = (uint8_t *)self->buf.data + self->buf.len;
    s_put32(h, (uint32_t)body_len);
    s_put32(h + 4, zp_crc32c(0, h + 8, (size_t)body_len));
    self->buf.len += 8 + (size_t)body_len;
    self->needs_sync |= durable;
    if (self->buf.len >= S_FLUSH_AT)
        (void)zp_vjournal_flush(self); /* on failure it stays buffered */
    return 0;
}

static int s_bad_job(const char *job)
{
    if (zp_job_id_valid(job))
        return 0;
    errno = EINVAL;
    return -1;
}

/* ---- appending ------------------------------------------------------ */

int zp_vjournal_job(zp_vjournal_t *self, const zp_vjournal_job_t *job)
{
    if (s_bad_job(job->id) < 0)
        return -1;
    size_t li = strlen(job->id), lt = s_len(job->token),
           lp = s_len(job->plugin), lc = s_len(job->config);
    uint64_t len = 1 + 16 + (uint64_t)li + lt + lp + lc + 8 + 4 + 4 + 16;
    uint8_t *p = s_begin(self, len, ZP_VJ_JOB);
    if (!p)
        return -1;
    p = s_putstr(p, job->id, li);
    p = s_putstr(p, job->token, lt);
    p = s_putstr(p, job->plugin, lp);
    p = s_putstr(p, job->config, lc);
    p = s_put64(p, job->deadline_ms);
    p = s_put32(p, job->max_attempts);
    p = s_put32(p, job->priority);
    memcpy(p, job->key, sizeof job->key);
    return s_end(self, len, true);
}

int zp_vjournal_tasks(zp_vjournal_t *self, const char *job, uint64_t seq,
                      uint64_t first, size_t n, const uint8_t *const *data,
                      const uint32_t *lens)
{
    if (s_bad_job(job) < 0)
        return -1;
    size_t lj = strlen(job);
    if (n > ZP_VJ_MAX_RECORD / 4) {
        errno = EFBIG;
        return -1;
    }
    uint64_t len = 1 + 4 + (uint64_t)lj + 8 + 8 + 4 + 4 * (uint64_t)n;
    for (size_t i = 0; i < n && len <= ZP_VJ_MAX_RECORD; i++)
        len += lens[i];
    uint8_t *p = s_begin(self, len, ZP_VJ_TASKS);
    if (!p)
        return -1;
    p = s_putstr(p, job, lj);
    p = s_put64(p, seq);
    p = s_put64(p, first);
    p = s_put32(p, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        p = s_put32(p, lens[i]);
        s_copy(p, data[i], lens[i]);
        p += lens[i];
    }
    return s_end(self, len, true);
}

int zp_vjournal_seqs(zp_vjournal_t *self, const char *job,
                     const zp_vjournal_seq_t *seqs, size_t n)
{
    if (s_bad_job(job) < 0)
        return -1;
    size_t lj = strlen(job);
    if (n > ZP_VJ_MAX_RECORD / 20) {
        errno = EFBIG;
        return -1;
    }
    uint64_t len = 1 + 4 + (uint64_t)lj + 4 + 20 * (uint64_t)n;
    uint8_t *p = s_begin(self, len, ZP_VJ_SEQS);
    if (!p)
        return -1;
    p = s_putstr(p, job, lj);
    p = s_put32(p, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        p = s_put64(p, seqs[i].seq);
        p = s_put64(p, seqs[i].first);
        p = s_put32(p, seqs[i].n);
    }
    return s_end(self, len, true);
}

int zp_vjournal_close(zp_vjournal_t *self, const char *job, uint64_t total)
{
    if (s_bad_job(job) < 0)
        return -1;
    size_t lj = strlen(job);
    uint64_t len = 1 + 4 + (uint64_t)lj + 8;
    uint8_t *p = s_begin(self, len, ZP_VJ_CLOSE);
    if (!p)
        return -1;
    p = s_putstr(p, job, lj);
    s_put64(p, total);
    return s_end(self, len, true);
}

int zp_vjournal_committed(zp_vjournal_t *self, const char *job,
                          const uint64_t *ids, size_t n)
{
    if (s_bad_job(job) < 0)
        return -1;
    size_t lj = strlen(job);
    if (n > ZP_VJ_MAX_RECORD / 8) {
        errno = EFBIG;
        return -1;
    }
    uint64_t len = 1 + 4 + (uint64_t)lj + 4 + 8 * (uint64_t)n;
    uint8_t *p = s_begin(self, len, ZP_VJ_COMMITTED);
    if (!p)
        return -1;
    p = s_putstr(p, job, lj);
    p = s_put32(p, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        p = s_put64(p, ids[i]);
    return s_end(self, len, false);
}

int zp_vjournal_finished(zp_vjournal_t *self, const char *job,
                         const char *token, uint64_t total, uint64_t when_us)
{
    if (s_bad_job(job) < 0)
        return -1;
    size_t lj = strlen(job), lt = s_len(token);
    uint64_t len = 1 + 8 + (uint64_t)lj + lt + 8 + 8;
    uint8_t *p = s_begin(self, len, ZP_VJ_FINISHED);
    if (!p)
        return -1;
    p = s_putstr(p, job, lj);
    p = s_putstr(p, token, lt);
    p = s_put64(p, total);
    s_put64(p, when_us);
    return s_end(self, len, false);
}

/* ---- writing and syncing -------------------------------------------- */

bool zp_vjournal_needs_sync(const zp_vjournal_t *self)
{
    return self->needs_sync;
}

/* Writes the buffer at the file's end, as far as it goes: what was
 * written leaves the buffer, the rest stays for the next try. */
int zp_vjournal_flush(zp_vjournal_t *self)
{
    size_t off = 0;
    int rc = 0;
    while (off < self->buf.len) {
        ssize_t n = pwrite(self->fd, self->buf.data + off, self->buf.len - off,
                           (off_t)self->written);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            rc = -1;
            break;
        }
        off += (size_t)n;
        self->written += (uint64_t)n;
        self->unsynced = true;
    }
    if (off) {
        memmove(self->buf.data, self->buf.data + off, self->buf.len - off);
        self->buf.len -= off;
    }
    return rc;
}

/* After a failed fdatasync the kernel may have dropped the pages it could
 * not write and will not report it again, so a later "successful" sync
 * would prove nothing: the journal stays failed until a compaction has
 * rewritten the live state into a new file. */
int zp_vjournal_sync(zp_vjournal_t *self)
{
    if (self->failed) {
        errno = self->failed;
        return -1;
    }
    if (zp_vjournal_flush(self) < 0)
        return -1;
    if (self->unsynced) {
        int rc;
        do
            rc = fdatasync(self->fd);
        while (rc < 0 && errno == EINTR);
        if (rc < 0) {
            self->failed = errno ? errno : EIO;
            return -1;
        }
        self->unsynced = false;
    }
    self->needs_sync = false;
    return 0;
}

uint64_t zp_vjournal_size(const zp_vjournal_t *self)
{
    return self->written + self->buf.len;
}

/* ---- opening and closing -------------------------------------------- */

static const char *s_strerror(int e)
{
    return e == ENOMEM ? "out of memory" : strerror(e);
}

static void s_free(zp_vjournal_t *self)
{
    if (self->fd >= 0)
        close(self->fd);
    if (self->dirfd >= 0)
        close(self->dirfd);
    zp_buf_free(&self->buf);
    free(self->path);
    free(self->tmp_path);
    free(self);
}

void zp_vjournal_destroy(zp_vjournal_t **self_p)
{
    zp_vjournal_t *self = *self_p;
    if (!self)
        return;
    (void)zp_vjournal_flush(self);
    s_free(self);
    *self_p = NULL;
}

static zp_vjournal_t *s_new(void)
{
    zp_vjournal_t *self = calloc(1, sizeof *self);
    if (self)
        self->fd = self->dirfd = -1;
    return self;
}

/* Opens path's folder (for fsync after create and rename). */
static int s_open_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (slash == path)
        return open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char *dir = strndup(path, (size_t)(slash - path));
    if (!dir) {
        errno = ENOMEM;
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    return fd;
}

/* Opens or creates the file, locks it and its folder; sets *created. */
static int s_open_file(zp_vjournal_t *self, bool *created, char *err,
                       size_t errlen)
{
    *created = false;
    self->fd = open(self->path, O_RDWR | O_CLOEXEC);
    if (self->fd < 0 && errno == ENOENT) {
        self->fd =
            open(self->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        *created = self->fd >= 0;
    }
    if (self->fd < 0) {
        snprintf(err, errlen, "%s: %s", self->path, s_strerror(errno));
        return -1;
    }
    if (flock(self->fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "%s: %s", self->path,
                 errno == EWOULDBLOCK ? "in use by another process (locked)"
                                      : s_strerror(errno));
        return -1;
    }
    self->dirfd = s_open_dir(self->path);
    if (self->dirfd < 0) {
        snprintf(err, errlen, "%s: its folder: %s", self->path,
                 s_strerror(errno));
        return -1;
    }
    return 0;
}

/* Starts the file afresh: the header alone, synced (and the folder, when
 * the file is new, so the file itself survives a power loss). */
static int s_start(zp_vjournal_t *self, bool created, char *err, size_t errlen)
{
    self->written = 0;
    if (ftruncate(self->fd, 0) < 0 ||
        zp_buf_append(&self->buf, ZP_VJ_HEADER, ZP_VJ_HEADER_LEN) < 0 ||
        zp_vjournal_sync(self) < 0 || (created && fsync(self->dirfd) < 0)) {
        snprintf(err, errlen, "%s: %s", self->path, s_strerror(errno));
        return -1;
    }
    return 0;
}

zp_vjournal_t *zp_vjournal_open(const char *path,
                                const zp_vjournal_visitor_t *visitor, void *ctx,
                                zp_vjournal_info_t *info, char *err,
                                size_t errlen)
{
    zp_vjournal_info_t local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    zp_vjournal_t *self = s_new();
    if (!self || !(self->path = strdup(path)) ||
        asprintf(&self->tmp_path, "%s.compact", path) < 0) {
        if (self)
            self->tmp_path = NULL; /* asprintf leaves it undefined */
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail_self;
    }
    if (s_open_file(self, &info->created, err, errlen) < 0)
        goto fail_self;
    struct stat st;
    if (fstat(self->fd, &st) < 0) {
        snprintf(err, errlen, "%s: %s", path, s_strerror(errno));
        goto fail_self;
    }
    uint64_t end = 0;
    int kind = zp_vj_replay(self->fd, path, (uint64_t)st.st_size, visitor, ctx,
                            info, &end, err, errlen);
    if (kind < 0)
        goto fail_self;
    if (kind == ZP_VJ_EMPTY) {
        if (s_start(self, info->created, err, errlen) < 0)
            goto fail_self;
    } else {
        self->written = end;
        /* What was replayed may be in the page cache only (this process
         * was killed between a write and its fdatasync): the first sync
         * makes it durable before anything it holds is answered again. */
        self->unsynced = self->needs_sync = true;
        if (end < (uint64_t)st.st_size &&
            (ftruncate(self->fd, (off_t)end) < 0 || fdatasync(self->fd) < 0)) {
            snprintf(err, errlen, "%s: cutting a torn tail: %s", path,
                     s_strerror(errno));
            goto fail_self;
        }
    }
    info->bytes = self->written;
    return self;

fail_self:
    if (self)
        s_free(self);
    return NULL;
}

/* ---- compaction ----------------------------------------------------- */

bool zp_vjournal_compact_due(const zp_vjournal_t *self, uint64_t live_bytes,
                             uint64_t min_bytes)
{
    uint64_t size = zp_vjournal_size(self);
    return size > min_bytes && live_bytes <= UINT64_MAX / 2 &&
           size > 2 * live_bytes;
}

/* Creates PATH.compact, with the old file's permissions, locked. */
static zp_vjournal_t *s_open_tmp(zp_vjournal_t *self)
{
    struct stat st;
    if (fstat(self->fd, &st) < 0)
        return NULL;
    zp_vjournal_t *tmp = s_new();
    if (!tmp) {
        errno = ENOMEM;
        return NULL;
    }
    mode_t mode = st.st_mode & 07777;
    tmp->fd =
        open(self->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (tmp->fd < 0 || fchmod(tmp->fd, mode) < 0 ||
        flock(tmp->fd, LOCK_EX | LOCK_NB) < 0 ||
        zp_buf_append(&tmp->buf, ZP_VJ_HEADER, ZP_VJ_HEADER_LEN) < 0) {
        int e = errno;
        s_free(tmp);
        errno = e;
        return NULL;
    }
    return tmp;
}

/* The compacted file is at PATH now: append there. */
static int s_switch(zp_vjournal_t *self, zp_vjournal_t *tmp)
{
    close(self->fd);
    self->fd = tmp->fd;
    tmp->fd = -1;
    self->written = tmp->written;
    self->needs_sync = false;
    self->unsynced = false;
    self->failed = 0;
    s_free(tmp);
    return fsync(self->dirfd);
}

int zp_vjournal_compact(zp_vjournal_t *self, zp_vjournal_dump_fn *dump,
                        void *ctx, char *err, size_t errlen)
{
    /* What is buffered goes to the old file first: if the compaction
     * fails, nothing appended is lost; if it succeeds, the dump holds it. */
    if (zp_vjournal_flush(self) < 0) {
        snprintf(err, errlen, "%s: %s", self->path, s_strerror(errno));
        return -1;
    }
    zp_vjournal_t *tmp = s_open_tmp(self);
    if (!tmp) {
        snprintf(err, errlen, "%s: %s", self->tmp_path, s_strerror(errno));
        goto fail_unlink;
    }
    if (dump(ctx, tmp) < 0) {
        snprintf(err, errlen, "%s: compaction abandoned: the dump failed",
                 self->path);
        goto fail_tmp;
    }
    if (zp_vjournal_sync(tmp) < 0 || rename(self->tmp_path, self->path) < 0) {
        snprintf(err, errlen, "%s: %s", self->tmp_path, s_strerror(errno));
        goto fail_tmp;
    }
    if (s_switch(self, tmp) < 0) {
        /* The new file is in place and in use, but the rename may not
         * survive a power loss: no further sync may claim durability. */
        self->failed = errno ? errno : EIO;
        snprintf(err, errlen,
                 "%s: compacted, but syncing its folder failed: %s (the "
                 "journal refuses to sync from now on)",
                 self->path, s_strerror(errno));
        return -1;
    }
    return 0;

fail_tmp:
    s_free(tmp);
fail_unlink:
    unlink(self->tmp_path);
    return -1;
}
