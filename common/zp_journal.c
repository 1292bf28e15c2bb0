/* zp_journal: a line-based commit log with checksummed lines, torn-tail
 * recovery and damage detection. */
#define _GNU_SOURCE
#include "zp_journal_int.h"
#include "zp_json.h"
#include "zp_log.h"
#include "zp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A dump's buffer is written out past this. */
#define S_DUMP_FLUSH (1u << 20)

struct zp_journal {
    int fd;
    char *path;
    zp_buf_t buf;
    uint64_t written; /* bytes in the file */
    uint32_t chain;   /* the checksum of the last line buffered */
    /* Its header's version: it is appended to in that format until a
     * compaction rewrites it (1 and 2: lines without checksums; 3: an R
     * line a record; 4: M lines). */
    unsigned version;
    /* The M line being filled (version 4): it starts at buf[run_start], has
     * run_job's records, the last of task run_task at offset run_off. It
     * is sealed before anything else is appended and before the buffer
     * is written, so a line is whole in the file or not there. */
    bool run_open;
    size_t run_start;
    uint64_t run_task, run_off;
    zp_buf_t run_job; /* the job's id and its NUL */
    bool unsynced;    /* written since the last fdatasync */
    bool failed;      /* (a dump) a write failed */
};

/* Whether s is a dispatch key: 32 lowercase hex digits. */
static bool s_key_hex(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");
    return n == 32 && s[n] == '\0';
}

/* Writes the header to a new, empty file and syncs it. */
static int s_write_header(int fd)
{
    size_t hl = strlen(ZP_JOURNAL_HEADER);
    return write(fd, ZP_JOURNAL_HEADER, hl) == (ssize_t)hl && fdatasync(fd) == 0
               ? 0
               : -1;
}

zp_journal_t *zp_journal_open(const char *path,
                              const zp_journal_visitor_t *visitor, void *ctx,
                              char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    long kept = 0;
    int saved;
    uint32_t chain = ZP_JOURNAL_CHAIN0;
    unsigned version = ZP_JOURNAL_VERSION;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail_fd;
    }
    if (st.st_size > 0) {
        kept = zp_journal_read_file(fd, path, (size_t)st.st_size, visitor, ctx,
                                    &chain, &version, err, errlen);
        if (kept < 0)
            goto fail_fd;
    } else if (s_write_header(fd) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail_fd;
    } else {
        kept = (long)strlen(ZP_JOURNAL_HEADER);
    }
    if (lseek(fd, 0, SEEK_END) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail_fd;
    }
    zp_journal_t *self = calloc(1, sizeof *self);
    if (!self || !(self->path = strdup(path))) {
        free(self);
        snprintf(err, errlen, "out of memory");
        goto fail_fd;
    }
    self->fd = fd;
    self->written = (uint64_t)kept;
    self->chain = chain;
    self->version = version;
    return self;

fail_fd:
    saved = errno;
    close(fd);
    errno = saved;
    return NULL;
}

static void s_destroy(zp_journal_t **self_p, bool sync)
{
    zp_journal_t *self = *self_p;
    if (!self)
        return;
    if (sync)
        zp_journal_sync(self);
    else
        zp_journal_write(self);
    close(self->fd);
    zp_buf_free(&self->buf);
    zp_buf_free(&self->run_job);
    free(self->path);
    free(self);
    *self_p = NULL;
}

void zp_journal_destroy(zp_journal_t **self_p)
{
    s_destroy(self_p, true);
}

void zp_journal_destroy_unsynced(zp_journal_t **self_p)
{
    s_destroy(self_p, false);
}

/* Ends the line that starts at buf[start]: its trailer (the checksum of
 * its body, chained from the line before) and newline. */
static int s_seal(zp_journal_t *self, size_t start, int rc)
{
    static const char hex[] = "0123456789abcdef";
    if (rc < 0 || zp_buf_reserve(&self->buf, ZP_JOURNAL_TRAILER + 1) < 0) {
        self->buf.len = start;
        return -1;
    }
    char *p = self->buf.data + self->buf.len;
    if (self->version < 3) { /* no checksums */
        *p = '\n';
        self->buf.len++;
        return 0;
    }
    uint32_t crc =
        zp_crc32c(self->chain, self->buf.data + start, self->buf.len - start);
    *p++ = ' ';
    for (int i = 28; i >= 0; i -= 4)
        *p++ = hex[(crc >> i) & 15];
    *p++ = '\n';
    self->buf.len = (size_t)(p - self->buf.data);
    self->chain = crc;
    return 0;
}

/* Seals the M line being filled, if any: before any other line is
 * appended and before the buffer is written. */
static void s_run_end(zp_journal_t *self)
{
    if (!self->run_open)
        return;
    self->run_open = false;
    if (s_seal(self, self->run_start, 0) < 0)
        self->buf.len = self->run_start; /* out of memory: its records */
}

int zp_journal_open_job(zp_journal_t *self, const char *job,
                        uint32_t max_attempts, const char *token)
{
    s_run_end(self);
    size_t start = self->buf.len;
    if (token && *token)
        return s_seal(
            self, start,
            zp_buf_printf(&self->buf, "O %s %u %s", job, max_attempts, token));
    return s_seal(self, start,
                  zp_buf_printf(&self->buf, "O %s %u", job, max_attempts));
}

int zp_journal_key(zp_journal_t *self, const char *job, const char *key)
{
    if (!s_key_hex(key)) {
        errno = EINVAL;
        return -1;
    }
    s_run_end(self);
    size_t start = self->buf.len;
    return s_seal(self, start, zp_buf_printf(&self->buf, "K %s %s", job, key));
}

int zp_journal_close_job(zp_journal_t *self, const char *job, uint64_t total)
{
    s_run_end(self);
    size_t start = self->buf.len;
    return s_seal(
        self, start,
        zp_buf_printf(&self->buf, "C %s %llu", job, (unsigned long long)total));
}

/* Appends "<letter> <job> <task> <ok|failed> <offset>" (an R line, or
 * an M line's start) with room for the trailer after it, formatted by
 * hand: printf cost the sink more than a tenth of its time on empty
 * tasks. 0, or -1 when out of memory (nothing appended). */
static int s_put_record(zp_journal_t *self, char letter, const char *job,
                        uint64_t task, bool ok, uint64_t offset)
{
    size_t jl = strlen(job);
    if (zp_buf_reserve(&self->buf, jl + 60 + ZP_JOURNAL_TRAILER + 1) < 0)
        return -1;
    char *p = self->buf.data + self->buf.len;
    *p++ = letter;
    *p++ = ' ';
    memcpy(p, job, jl);
    p += jl;
    *p++ = ' ';
    p = zp_json_u64(p, task);
    memcpy(p, ok ? " ok " : " failed ", ok ? 4 : 8);
    p += ok ? 4 : 8;
    p = zp_json_u64(p, offset);
    self->buf.len = (size_t)(p - self->buf.data);
    return 0;
}

/* The most bytes one item of an M line takes: a sign, two numbers, ':'
 * and 'f', after its space. */
#define S_ITEM_MAX (4 + 2 * ZP_JSON_U64_MAX)

/* Whether the M line being filled can take task at offset for job: the
 * same job, an offset not behind the last, and room for the item and
 * the trailer within the line length a replay reads. */
static bool s_run_takes(const zp_journal_t *self, const char *job,
                        uint64_t offset)
{
    return self->run_open && offset >= self->run_off &&
           self->buf.len - self->run_start + S_ITEM_MAX + ZP_JOURNAL_TRAILER +
                   1 <
               ZP_JOURNAL_LINE_MAX &&
           strcmp(self->run_job.data, job) == 0;
}

/* Version 4: the records of a job between two barriers share M lines,
 * each after the first written relative to the one before (task delta,
 * offset delta), one checksum a line: a line per record cost the sink
 * a seventh of a run of empty tasks, and 45 bytes of journal each. */
int zp_journal_record(zp_journal_t *self, const char *job, uint64_t task,
                      bool ok, uint64_t offset)
{
    size_t start = self->buf.len;
    if (self->version < 4) /* an R line each */
        return s_put_record(self, 'R', job, task, ok, offset) < 0
                   ? -1
                   : s_seal(self, start, 0);
    if (!s_run_takes(self, job, offset)) {
        s_run_end(self);
        start = self->buf.len;
        self->run_job.len = 0;
        if (zp_buf_append(&self->run_job, job, strlen(job) + 1) < 0 ||
            s_put_record(self, 'M', job, task, ok, offset) < 0)
            return -1;
        self->run_open = true;
        self->run_start = start;
    } else {
        /* With room for the trailer: sealing it cannot fail later. */
        if (zp_buf_reserve(&self->buf, S_ITEM_MAX + ZP_JOURNAL_TRAILER + 1) < 0)
            return -1;
        char *p = self->buf.data + self->buf.len;
        *p++ = ' ';
        if (task >= self->run_task)
            p = zp_json_u64(p, task - self->run_task);
        else {
            *p++ = '-';
            p = zp_json_u64(p, self->run_task - task);
        }
        *p++ = ':';
        p = zp_json_u64(p, offset - self->run_off);
        if (!ok)
            *p++ = 'f';
        self->buf.len = (size_t)(p - self->buf.data);
    }
    self->run_task = task;
    self->run_off = offset;
    return 0;
}

/* Cuts the file back to length at (a failed write or sync), errno kept. */
static void s_cut_back(zp_journal_t *self, uint64_t at)
{
    int saved = errno;
    if (ftruncate(self->fd, (off_t)at) != 0 ||
        lseek(self->fd, (off_t)at, SEEK_SET) < 0)
        zp_warn("journal %s: cannot cut back a failed write: %s", self->path,
                strerror(errno));
    errno = saved;
}

int zp_journal_write(zp_journal_t *self)
{
    s_run_end(self);
    size_t off = self->buf.len;
    if (zp_write_all(self->fd, self->buf.data, off) < 0) {
        /* A short write (a full disk) leaves no torn line: the file is
         * cut back and the buffer is written whole on the next try. */
        s_cut_back(self, self->written);
        return -1;
    }
    self->buf.len = 0;
    self->written += off;
    self->unsynced |= off > 0;
    return 0;
}

int zp_journal_sync(zp_journal_t *self)
{
    s_run_end(self);
    uint64_t before = self->written;
    size_t n = self->buf.len;
    if (!n && !self->unsynced)
        return 0;
    if (n && zp_write_all(self->fd, self->buf.data, n) < 0) {
        s_cut_back(self, before);
        return -1; /* the buffer is kept: written whole next time */
    }
    if (fdatasync(self->fd) != 0) {
        /* A failed writeback may leave its pages clean but not on disk:
         * a second fdatasync would then succeed without them. So the
         * lines go back in the buffer's keeping (never cleared) and the
         * file is cut to where it was, to be written again. */
        s_cut_back(self, before);
        return -1;
    }
    self->buf.len = 0;
    self->written = before + n;
    self->unsynced = false;
    return 0;
}

void zp_journal_discard(zp_journal_t *self)
{
    self->buf.len = 0;
    self->run_open = false;
}

/* Bytes buffered, the M line being filled with its trailer to come. */
static size_t s_buffered(const zp_journal_t *self)
{
    return self->buf.len + (self->run_open ? ZP_JOURNAL_TRAILER + 1 : 0);
}

size_t zp_journal_pending(const zp_journal_t *self)
{
    return s_buffered(self);
}

uint64_t zp_journal_size(const zp_journal_t *self)
{
    return self->written + s_buffered(self);
}

/* ---- compaction ---- */

/* A dump's line is in its buffer: written out once enough piled up. */
static int s_dump_line(zp_journal_t *out, int rc)
{
    if (rc < 0 || out->failed)
        return -1;
    if (out->buf.len >= S_DUMP_FLUSH && zp_journal_write(out) < 0) {
        out->failed = true;
        return -1;
    }
    return 0;
}

int zp_journal_put_offset(zp_journal_t *out, uint64_t offset)
{
    s_run_end(out);
    size_t start = out->buf.len;
    return s_dump_line(out, s_seal(out, start,
                                   zp_buf_printf(&out->buf, "W %llu",
                                                 (unsigned long long)offset)));
}

int zp_journal_put_forgotten(zp_journal_t *out, const zp_journal_forgotten_t *j)
{
    s_run_end(out);
    size_t start = out->buf.len;
    return s_dump_line(
        out,
        s_seal(out, start,
               zp_buf_printf(&out->buf, "F %016llx %016llx %llu %llu %llu %u",
                             (unsigned long long)j->id_hash,
                             (unsigned long long)j->token_hash,
                             (unsigned long long)j->total,
                             (unsigned long long)j->succeeded,
                             (unsigned long long)j->spooled, j->flags)));
}

int zp_journal_put_done(zp_journal_t *out, const char *job, const char *token,
                        const zp_journal_summary_t *m)
{
    s_run_end(out);
    size_t start = out->buf.len;
    int rc = zp_buf_printf(
        &out->buf, "D %s %u %llu %llu %llu %llu %llu %llu %llu %u%s%s", job,
        m->max_attempts, (unsigned long long)m->total,
        (unsigned long long)m->succeeded, (unsigned long long)m->failed,
        (unsigned long long)m->duplicates, (unsigned long long)m->retries,
        (unsigned long long)m->first_us, (unsigned long long)m->last_us,
        m->flags, token && *token ? " " : "", token && *token ? token : "");
    return s_dump_line(out, s_seal(out, start, rc));
}

int zp_journal_put_counts(zp_journal_t *out, const char *job,
                          const zp_journal_summary_t *m)
{
    s_run_end(out);
    size_t start = out->buf.len;
    return s_dump_line(
        out, s_seal(out, start,
                    zp_buf_printf(&out->buf, "S %s %llu %llu %llu %llu", job,
                                  (unsigned long long)m->succeeded,
                                  (unsigned long long)m->failed,
                                  (unsigned long long)m->duplicates,
                                  (unsigned long long)m->retries)));
}

int zp_journal_put_have(zp_journal_t *out, const char *job, uint64_t first,
                        uint64_t count)
{
    s_run_end(out);
    size_t start = out->buf.len;
    return s_dump_line(out, s_seal(out, start,
                                   zp_buf_printf(&out->buf, "H %s %llu %llu",
                                                 job, (unsigned long long)first,
                                                 (unsigned long long)count)));
}

int zp_journal_spool(zp_journal_t *self, const char *job, uint64_t length,
                     uint32_t crc)
{
    s_run_end(self);
    size_t start = self->buf.len;
    int rc = s_seal(self, start,
                    zp_buf_printf(&self->buf, "P %s %llu %08x", job,
                                  (unsigned long long)length, crc));
    return self->path ? rc : s_dump_line(self, rc); /* a dump has none */
}

/* Syncs the directory that holds path (a rename in it). */
static int s_sync_dir(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return -1;
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* The new file whole: the dump, then the header's version, synced. */
static int s_compact_write(zp_journal_t *out, zp_journal_dump_fn *dump,
                           void *ctx)
{
    if (zp_buf_printf(&out->buf, "%s", ZP_JOURNAL_HEADER) < 0 ||
        dump(ctx, out) < 0 || out->failed || zp_journal_write(out) < 0 ||
        fdatasync(out->fd) < 0)
        return -1;
    return 0;
}

int zp_journal_compact(zp_journal_t *self, zp_journal_dump_fn *dump, void *ctx)
{
    if (zp_journal_write(self) < 0)
        return -1;
    zp_journal_t out = {
        .fd = -1, .chain = ZP_JOURNAL_CHAIN0, .version = ZP_JOURNAL_VERSION};
    zp_buf_t tmp = {0};
    if (zp_buf_printf(&tmp, "%s.compact", self->path) < 0)
        return -1;
    out.fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = out.fd < 0 ? -1 : s_compact_write(&out, dump, ctx);
    if (rc == 0)
        rc = rename(tmp.data, self->path);
    int saved = errno;
    if (rc < 0) {
        if (out.fd >= 0)
            close(out.fd);
        unlink(tmp.data);
    } else {
        /* The rename is done: the new file is the journal, whether or not
         * the directory's sync says so yet. */
        close(self->fd);
        self->fd = out.fd;
        self->written = out.written;
        self->chain = out.chain;
        self->version = ZP_JOURNAL_VERSION;
        self->unsynced = false;
        if (s_sync_dir(self->path) < 0)
            zp_warn("journal %s: syncing its directory: %s", self->path,
                    strerror(errno));
    }
    zp_buf_free(&out.buf);
    zp_buf_free(&out.run_job);
    zp_buf_free(&tmp);
    errno = saved;
    return rc;
}
