/* sink_spool: spool files opened on demand, a bounded number at once
 * (see sink_spool.h). */
#define _GNU_SOURCE
#include "sink_spool.h"
#include "sink_disk.h"
#include "zp_crc32c.h"
#include "zp_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes appended between two checksum steps (zp_spools_appended). */
#define S_CHECKSUM_AT (64 * 1024)

struct zp_spools {
    const char *dir;
    char *abs_dir; /* dir made absolute, for consumers; NULL until asked */
    size_t max_open, n_open;
    size_t n_gone; /* found gone at restores */
    bool sync;
    zp_spool_t *newest, *oldest; /* open files */
    zp_spool_t *pending;         /* bytes not yet visible */
    char failed[4200];           /* the file the last sync failed on */
};

static size_t s_default_max_open(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur / 4 >= ZP_SPOOL_MAX_OPEN)
        return ZP_SPOOL_MAX_OPEN;
    return rl.rlim_cur / 4 > ZP_SPOOL_MIN_OPEN ? (size_t)(rl.rlim_cur / 4)
                                               : ZP_SPOOL_MIN_OPEN;
}

zp_spools_t *zp_spools_new(const char *dir, size_t max_open, bool sync)
{
    zp_spools_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->dir = dir;
    self->max_open = max_open ? max_open : s_default_max_open();
    self->sync = sync;
    return self;
}

/* DIR/JOB.jsonl into path; false (logged) when it does not fit. */
static bool s_path(const zp_spools_t *self, const char *job, char *path,
                   size_t cap)
{
    int n = snprintf(path, cap, "%s/%s.jsonl", self->dir, job);
    if (n < 0 || (size_t)n >= cap) {
        zp_error("spool for job %s: the path is too long", job);
        return false;
    }
    return true;
}

bool zp_spools_path(zp_spools_t *self, const char *job, char *path, size_t cap)
{
    if (!self->abs_dir)
        self->abs_dir = realpath(self->dir, NULL);
    if (!self->abs_dir)
        return false;
    int n = snprintf(path, cap, "%s/%s.jsonl", self->abs_dir, job);
    return n >= 0 && (size_t)n < cap;
}

int zp_spools_open_read(const zp_spools_t *self, const char *job)
{
    char path[4096];
    if (!s_path(self, job, path, sizeof path))
        return -1;
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* The open files' list, most recent first. */
static void s_unlink_open(zp_spools_t *self, zp_spool_t *spool)
{
    if (spool->newer)
        spool->newer->older = spool->older;
    else
        self->newest = spool->older;
    if (spool->older)
        spool->older->newer = spool->newer;
    else
        self->oldest = spool->newer;
    spool->newer = spool->older = NULL;
}

static void s_link_newest(zp_spools_t *self, zp_spool_t *spool)
{
    spool->newer = NULL;
    spool->older = self->newest;
    if (self->newest)
        self->newest->newer = spool;
    else
        self->oldest = spool;
    self->newest = spool;
}

/* The checksum past crc_len: those bytes are still in the file's buffer
 * (it keeps every byte until a commit, and every commit comes here
 * first). Summed a stretch at a time rather than a record at a time: a
 * CRC of a record's hundred bytes ran at a third of the instruction's
 * speed, 16 ms of the sink's CPU on 1,000,000 records. */
static void s_checksum(zp_spool_t *spool)
{
    if (!spool->file || spool->crc_len == spool->len)
        return;
    const zp_buf_t *b = zp_dfile_buf(spool->file);
    size_t n = (size_t)(spool->len - spool->crc_len);
    if (n > b->len) { /* a commit came without this first: a bug */
        zp_error("spool for job %s: %zu bytes left out of its checksum; a "
                 "restart will find it damaged",
                 spool->job, n - b->len);
        n = b->len;
    }
    spool->crc = zp_crc32c(spool->crc, b->data + b->len - n, n);
    spool->crc_len = spool->len;
}

/* Whatever was written reaches the file (and with sync, the disk); on
 * failure it stays buffered (errno; the file named in self->failed). */
static int s_make_durable(zp_spools_t *self, zp_spool_t *spool)
{
    s_checksum(spool);
    if (!spool->file || spool->synced == spool->len)
        return 0;
    if (zp_dfile_commit(spool->file, self->sync) != 0) {
        int saved = errno;
        snprintf(self->failed, sizeof self->failed, "%s",
                 zp_dfile_path(spool->file));
        errno = saved;
        return -1;
    }
    spool->synced = spool->len;
    return 0;
}

const char *zp_spools_failed_path(const zp_spools_t *self)
{
    return self->failed;
}

/* Closes spool's file once what it holds is durable. */
static int s_close(zp_spools_t *self, zp_spool_t *spool)
{
    if (!spool->file)
        return 0;
    if (s_make_durable(self, spool) < 0) {
        zp_error("spool %s: %s", self->failed, strerror(errno));
        return -1;
    }
    s_unlink_open(self, spool);
    self->n_open--;
    zp_dfile_destroy(&spool->file); /* written: nothing left to fail */
    return 0;
}

/* A closed spool's file, opened again: it must hold what was written. */
static int s_reopened(zp_spool_t *spool, int fd, const char *path)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        zp_error("spool %s: %s", path, strerror(errno));
        return -1;
    }
    if ((uint64_t)st.st_size < spool->len) {
        zp_error("spool %s holds %llu bytes, the sink wrote %llu: it was cut "
                 "or replaced",
                 path, (unsigned long long)st.st_size,
                 (unsigned long long)spool->len);
        return -1;
    }
    if ((uint64_t)st.st_size > spool->len &&
        ftruncate(fd, (off_t)spool->len) != 0) {
        zp_error("spool %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Opens spool's file unless it is open (closing the least recently used
 * one when max_open are), and makes it the most recently used. */
static int s_open(zp_spools_t *self, zp_spool_t *spool, const char *job)
{
    spool->job = job;
    if (spool->file) {
        s_unlink_open(self, spool);
        s_link_newest(self, spool);
        return 0;
    }
    /* The least recently used one goes; one that cannot be written now (a
     * full disk) stays open, and one more file is open for a while. */
    if (self->n_open >= self->max_open && s_close(self, self->oldest) < 0)
        zp_debug("spool: keeping %zu files open", self->n_open + 1);
    char path[4200];
    if (!s_path(self, job, path, sizeof path))
        return -1;
    /* A new spool is a new file, not an old one cut: a consumer reading
     * the old one by reference (ResultsRequest.by_reference), a job that
     * had this id before, keeps reading what it was told is there. */
    if (!spool->created && unlink(path) != 0 && errno != ENOENT)
        zp_debug("spool %s: %s (it is truncated instead)", path,
                 strerror(errno));
    int flags = O_RDWR | O_CLOEXEC | (spool->created ? 0 : O_CREAT | O_TRUNC);
    int fd = open(path, flags, 0644);
    if (fd < 0) {
        zp_error("spool %s: %s", path, strerror(errno));
        return -1;
    }
    if (spool->created && s_reopened(spool, fd, path) < 0) {
        close(fd);
        return -1;
    }
    zp_dfile_t *f = zp_dfile_new(path, fd, spool->len);
    if (!f) {
        zp_error("spool %s: %s", path, strerror(errno));
        return -1;
    }
    spool->file = f;
    spool->created = true;
    s_link_newest(self, spool);
    self->n_open++;
    return 0;
}

zp_buf_t *zp_spools_buf(zp_spools_t *self, zp_spool_t *spool, const char *job)
{
    return s_open(self, spool, job) < 0 ? NULL : zp_dfile_buf(spool->file);
}

void zp_spools_appended(zp_spools_t *self, zp_spool_t *spool, size_t from)
{
    const zp_buf_t *b = zp_dfile_buf(spool->file);
    size_t len = b->len - from;
    spool->len += len;
    if (spool->len - spool->crc_len >= S_CHECKSUM_AT)
        s_checksum(spool); /* while the bytes are in the cache */
    if (zp_dfile_full(spool->file) && zp_dfile_write(spool->file) < 0)
        zp_debug("spool for job %s: %s (tried again at the barrier)",
                 spool->job, strerror(errno));
    if (!spool->pending && len) {
        spool->pending = true;
        spool->next_pending = self->pending;
        self->pending = spool;
    }
}

int zp_spools_append(zp_spools_t *self, zp_spool_t *spool, const char *job,
                     const void *data, size_t len)
{
    zp_buf_t *b = zp_spools_buf(self, spool, job);
    if (!b)
        return -1;
    size_t from = b->len;
    if (zp_buf_append(b, data, len) < 0) {
        zp_error("spool for job %s: out of memory", job);
        return -1;
    }
    zp_spools_appended(self, spool, from);
    return 0;
}

int zp_spools_sync(zp_spools_t *self)
{
    for (zp_spool_t *sp = self->pending; sp; sp = sp->next_pending)
        if (s_make_durable(self, sp) < 0)
            return -1;
    return 0;
}

int zp_spools_each_pending(zp_spools_t *self, zp_spool_fn *fn, void *ctx)
{
    for (zp_spool_t *sp = self->pending; sp; sp = sp->next_pending) {
        int rc = fn(ctx, sp);
        if (rc)
            return rc;
    }
    return 0;
}

void zp_spools_publish(zp_spools_t *self, zp_spool_published_fn *published,
                       void *ctx)
{
    zp_spool_t *sp = self->pending, **keep = &self->pending;
    while (sp) {
        zp_spool_t *next = sp->next_pending;
        bool grew = sp->flushed < sp->synced;
        sp->flushed = sp->synced;
        if (sp->flushed < sp->len) { /* written after the sync: next time */
            *keep = sp;
            keep = &sp->next_pending;
        } else {
            sp->pending = false;
            sp->next_pending = NULL;
        }
        if (grew && published)
            published(ctx, sp);
        sp = next;
    }
    *keep = NULL;
}

bool zp_spools_pending(const zp_spools_t *self)
{
    return self->pending != NULL;
}

int zp_spools_fd(zp_spools_t *self, zp_spool_t *spool, const char *job)
{
    /* Readers see the first `flushed` bytes, which are in the file: no
     * flush of the stream is needed. */
    if (!spool->created || s_open(self, spool, job) < 0)
        return -1;
    return zp_dfile_fd(spool->file);
}

int zp_spools_close(zp_spools_t *self, zp_spool_t *spool)
{
    return s_close(self, spool);
}

/* Bytes of fd's first `records` lines, and the CRC-32C of those bytes
 * (*crc; of the first check_len bytes in *check_crc); *lines says how
 * many it has. */
static uint64_t s_count_lines(int fd, uint64_t records, uint64_t *lines,
                              uint32_t *crc, uint64_t check_len,
                              uint32_t *check_crc)
{
    char buf[65536];
    uint64_t off = 0;
    *lines = 0;
    *crc = 0;
    ssize_t n;
    while (*lines < records &&
           (n = pread(fd, buf, sizeof buf, (off_t)off)) > 0) {
        const char *p = buf, *end = buf + n;
        while (*lines < records && (p = memchr(p, '\n', (size_t)(end - p)))) {
            p++;
            (*lines)++;
        }
        size_t used = *lines < records ? (size_t)n : (size_t)(p - buf);
        if (off < check_len && off + used >= check_len)
            *check_crc = zp_crc32c(*crc, buf, (size_t)(check_len - off));
        *crc = zp_crc32c(*crc, buf, used);
        off += used;
    }
    return off;
}

int zp_spools_restore(zp_spools_t *self, zp_spool_t *spool, const char *job,
                      uint64_t records, const zp_spool_check_t *check)
{
    char path[4200];
    spool->job = job;
    if (!s_path(self, job, path, sizeof path))
        return 0;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        /* Records owed and none to serve: refused, not served as none. A
         * missing file was taken (ResultsRequest.take) or deleted, which
         * is the consumer's or the operator's right. */
        spool->gone = records > 0;
        self->n_gone += spool->gone;
        if (records && errno != ENOENT)
            zp_warn("spool %s: %s; the job's %llu earlier records cannot be "
                    "fetched",
                    path, strerror(errno), (unsigned long long)records);
        return 0;
    }
    uint64_t lines, clen = check ? check->len : 0;
    uint32_t crc, ccrc = 0;
    uint64_t off = s_count_lines(fd, records, &lines, &crc, clen, &ccrc);
    if (check && (off < clen || ccrc != check->crc)) {
        /* Its journaled records are not what was written: serving them
         * would hand consumers wrong or missing records. */
        zp_error("spool %s: damaged: its bytes 0 to %llu (%llu records) do "
                 "not match the checksum its journal has for the first %llu "
                 "bytes (changed, cut or replaced); it is not served and "
                 "the sink does not start",
                 path, (unsigned long long)off, (unsigned long long)lines,
                 (unsigned long long)clen);
        close(fd);
        return -1;
    }
    if (lines < records) {
        /* Served, the job would look complete with records missing. */
        spool->gone = true;
        zp_warn("spool %s has %llu of the job's %llu journaled records: "
                "they are refused, not served short",
                path, (unsigned long long)lines, (unsigned long long)records);
    }
    if (ftruncate(fd, (off_t)off) != 0)
        zp_error("spool %s: %s", path, strerror(errno));
    close(fd);
    spool->created = true;
    spool->len = spool->synced = spool->flushed = off;
    spool->journaled = off;
    spool->crc = crc;
    spool->crc_len = off;
    return 0;
}

int zp_spools_remove(zp_spools_t *self, zp_spool_t *spool, const char *job)
{
    char path[4200];
    if (!s_path(self, job, path, sizeof path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (spool && s_close(self, spool) < 0)
        return -1;
    if (unlink(path) != 0 && errno != ENOENT)
        return -1;
    if (spool)
        spool->gone = true;
    return 0;
}

bool zp_spools_recheck(zp_spools_t *self, zp_spool_t *spool, const char *job)
{
    char path[4200];
    if (spool->gone || !spool->created || !s_path(self, job, path, sizeof path))
        return spool->gone;
    struct stat at, open_one;
    if (stat(path, &at) != 0) {
        if (errno != ENOENT)
            return false; /* cannot tell: left as it is */
    } else if (!spool->file ||
               (fstat(zp_dfile_fd(spool->file), &open_one) == 0 &&
                at.st_dev == open_one.st_dev && at.st_ino == open_one.st_ino)) {
        return false; /* still there */
    }
    if (s_close(self, spool) < 0)
        return false;
    spool->gone = true;
    return true;
}

size_t zp_spools_gone(const zp_spools_t *self)
{
    return self->n_gone;
}

size_t zp_spools_open(const zp_spools_t *self)
{
    return self->n_open;
}

size_t zp_spools_max_open(const zp_spools_t *self)
{
    return self->max_open;
}

void zp_spools_destroy(zp_spools_t **self_p)
{
    zp_spools_t *self = *self_p;
    if (!self)
        return;
    while (self->newest) {
        zp_spool_t *sp = self->newest;
        s_unlink_open(self, sp);
        s_checksum(sp);
        if (zp_dfile_commit(sp->file, false) != 0)
            zp_warn("spool for job %s: %s", sp->job, strerror(errno));
        zp_dfile_destroy(&sp->file);
    }
    free(self->abs_dir);
    free(self);
    *self_p = NULL;
}
