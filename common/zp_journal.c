/* zp_journal: a line-based commit log with torn-tail recovery. */
#define _GNU_SOURCE
#include "zp_journal.h"
#include "zp_name.h"
#include "zp_log.h"
#include "zp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_HEADER "zpipe-journal 1\n"

struct zp_journal {
    int fd;
    zp_buf_t buf;
    bool unsynced; /* written since the last fdatasync */
};

bool zp_job_id_valid(const char *s)
{
    return s && zp_name_valid(s, strnlen(s, 129), 128, "_.:-");
}

/* Splits line (without newline) into up to max space-separated fields;
 * returns the count, or -1 when there are more. Modifies line. */
static int s_fields(char *line, char **out, int max)
{
    int n = 0;
    char *p = line;
    while (*p) {
        if (n == max)
            return -1;
        out[n++] = p;
        char *sp = strchr(p, ' ');
        if (!sp)
            break;
        *sp = '\0';
        p = sp + 1;
        if (!*p)
            return -1; /* trailing space */
    }
    return n;
}

static bool s_num(const char *s, uint64_t *v)
{
    return zp_parse_u64(s, 0, UINT64_MAX, v) == 0;
}

long zp_journal_replay(const char *data, size_t len,
                       const zp_journal_visitor_t *visitor, void *ctx,
                       size_t *valid_len)
{
    size_t hl = strlen(S_HEADER);
    *valid_len = 0;
    if (len < hl || memcmp(data, S_HEADER, hl) != 0)
        return -1;
    size_t pos = hl;
    long events = 0;
    char line[512];
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        if (!nl)
            break; /* torn last line */
        size_t ll = (size_t)(nl - (data + pos));
        if (ll == 0 || ll >= sizeof line)
            break;
        memcpy(line, data + pos, ll);
        line[ll] = '\0';
        if (memchr(line, '\0', ll))
            break;
        char *f[6];
        int n = s_fields(line, f, 6);
        uint64_t a, b;
        bool ok = false;
        if ((n == 3 || n == 4) && !strcmp(f[0], "O") && zp_job_id_valid(f[1]) &&
            s_num(f[2], &a) && a <= UINT32_MAX &&
            (n == 3 || zp_job_id_valid(f[3]))) {
            if (visitor && visitor->on_open)
                visitor->on_open(ctx, f[1], (uint32_t)a, n == 4 ? f[3] : "");
            ok = true;
        } else if (n == 3 && !strcmp(f[0], "C") && zp_job_id_valid(f[1]) &&
                   s_num(f[2], &a)) {
            if (visitor && visitor->on_close)
                visitor->on_close(ctx, f[1], a);
            ok = true;
        } else if (n == 5 && !strcmp(f[0], "R") && zp_job_id_valid(f[1]) &&
                   s_num(f[2], &a) &&
                   (!strcmp(f[3], "ok") || !strcmp(f[3], "failed")) &&
                   s_num(f[4], &b)) {
            if (visitor && visitor->on_record)
                visitor->on_record(ctx, f[1], a, f[3][0] == 'o', b);
            ok = true;
        }
        if (!ok)
            break;
        events++;
        pos += ll + 1;
    }
    *valid_len = pos;
    return events;
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
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail_fd;
    }
    zp_buf_t old = {0};
    if (st.st_size > 0) {
        if (zp_buf_reserve(&old, (size_t)st.st_size) < 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto fail_fd;
        }
        ssize_t got = pread(fd, old.data, (size_t)st.st_size, 0);
        if (got != st.st_size) {
            snprintf(err, errlen, "%s: short read", path);
            zp_buf_free(&old);
            goto fail_fd;
        }
        old.len = (size_t)got;
        size_t valid = 0;
        if (zp_journal_replay(old.data, old.len, visitor, ctx, &valid) < 0) {
            snprintf(err, errlen, "%s: not a zpipe journal (bad header)", path);
            zp_buf_free(&old);
            goto fail_fd;
        }
        if (valid < old.len) {
            zp_warn("journal %s: discarding a torn or corrupt tail of %zu "
                    "bytes",
                    path, old.len - valid);
            if (ftruncate(fd, (off_t)valid) < 0) {
                snprintf(err, errlen, "%s: %s", path, strerror(errno));
                zp_buf_free(&old);
                goto fail_fd;
            }
        }
        zp_buf_free(&old);
    } else if (write(fd, S_HEADER, strlen(S_HEADER)) !=
                   (ssize_t)strlen(S_HEADER) ||
               fdatasync(fd) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail_fd;
    }
    if (lseek(fd, 0, SEEK_END) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail_fd;
    }
    zp_journal_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        goto fail_fd;
    }
    self->fd = fd;
    return self;

fail_fd:
    close(fd);
    return NULL;
}

void zp_journal_destroy(zp_journal_t **self_p)
{
    zp_journal_t *self = *self_p;
    if (!self)
        return;
    zp_journal_sync(self);
    close(self->fd);
    zp_buf_free(&self->buf);
    free(self);
    *self_p = NULL;
}

int zp_journal_open_job(zp_journal_t *self, const char *job,
                        uint32_t max_attempts, const char *token)
{
    if (token && *token)
        return zp_buf_printf(&self->buf, "O %s %u %s\n", job, max_attempts,
                             token);
    return zp_buf_printf(&self->buf, "O %s %u\n", job, max_attempts);
}

int zp_journal_close_job(zp_journal_t *self, const char *job, uint64_t total)
{
    return zp_buf_printf(&self->buf, "C %s %llu\n", job,
                         (unsigned long long)total);
}

/* Writes v in decimal at p; returns the end. */
static char *s_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* One line per record, so formatted by hand: printf cost the sink more
 * than a tenth of its time on empty tasks. */
int zp_journal_record(zp_journal_t *self, const char *job, uint64_t task,
                      bool ok, uint64_t offset)
{
    size_t jl = strlen(job);
    if (zp_buf_reserve(&self->buf, jl + 60) < 0)
        return -1;
    char *p = self->buf.data + self->buf.len;
    *p++ = 'R';
    *p++ = ' ';
    memcpy(p, job, jl);
    p += jl;
    *p++ = ' ';
    p = s_u64(p, task);
    memcpy(p, ok ? " ok " : " failed ", ok ? 4 : 8);
    p += ok ? 4 : 8;
    p = s_u64(p, offset);
    *p++ = '\n';
    self->buf.len = (size_t)(p - self->buf.data);
    return 0;
}

int zp_journal_write(zp_journal_t *self)
{
    size_t off = 0;
    while (off < self->buf.len) {
        ssize_t n = write(self->fd, self->buf.data + off, self->buf.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    self->buf.len = 0;
    self->unsynced |= off > 0;
    return 0;
}

int zp_journal_sync(zp_journal_t *self)
{
    if (zp_journal_write(self) < 0)
        return -1;
    if (!self->unsynced)
        return 0;
    self->unsynced = false;
    return fdatasync(self->fd);
}

size_t zp_journal_pending(const zp_journal_t *self)
{
    return self->buf.len;
}
