/* vent_input: the input file as lines, and the resume skip set. */
#define _GNU_SOURCE
#include "vent_input.h"
#include "zp_journal.h"
#include "zp_log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#define S_READ_CHUNK (1u << 20)

void zp_vent_reader_init(zp_vent_reader_t *r, int fd)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
}

void zp_vent_reader_close(zp_vent_reader_t *r)
{
    if (r->fd > STDIN_FILENO)
        close(r->fd);
    r->fd = -1;
    zp_buf_free(&r->buf);
    r->start = 0;
}

int zp_vent_reader_fill(zp_vent_reader_t *r, bool block)
{
    if (r->eof)
        return 0;
    if (!block) {
        struct pollfd p = {r->fd, POLLIN, 0};
        if (poll(&p, 1, 0) <= 0)
            return 0;
    }
    if (r->start > 0) {
        memmove(r->buf.data, r->buf.data + r->start, r->buf.len - r->start);
        r->buf.len -= r->start;
        r->start = 0;
    }
    if (zp_buf_reserve(&r->buf, S_READ_CHUNK) < 0)
        return -1;
    ssize_t n;
    do
        n = read(r->fd, r->buf.data + r->buf.len, S_READ_CHUNK);
    while (n < 0 && errno == EINTR && !zp_stopping());
    if (n < 0)
        return -1;
    if (n == 0)
        r->eof = true;
    r->buf.len += (size_t)n;
    return 0;
}

bool zp_vent_reader_next(zp_vent_reader_t *r, const char **line, size_t *len)
{
    size_t avail = r->buf.len - r->start;
    if (avail == 0)
        return false;
    char *p = r->buf.data + r->start;
    char *nl = memchr(p, '\n', avail);
    if (nl) {
        *line = p;
        *len = (size_t)(nl - p);
        r->start += *len + 1;
        return true;
    }
    if (r->eof) { /* last line without newline */
        *line = p;
        *len = avail;
        r->start += avail;
        return true;
    }
    return false;
}

bool zp_vent_reader_line_buffered(const zp_vent_reader_t *r)
{
    size_t avail = r->buf.len - r->start;
    return avail && (r->eof || memchr(r->buf.data + r->start, '\n', avail));
}

bool zp_vent_reader_done(const zp_vent_reader_t *r)
{
    return r->eof && r->start == r->buf.len;
}

typedef struct {
    const char *job_id;
    zp_bitset_t *skip;
} s_skip_ctx_t;

static void s_skip_record(void *ctx, const char *job, uint64_t task, bool ok,
                          uint64_t offset)
{
    s_skip_ctx_t *c = ctx;
    (void)ok;
    (void)offset;
    if (strcmp(job, c->job_id) != 0 || task >= ZP_VENT_SKIP_MAX)
        return;
    zp_bitset_set(c->skip, task); /* out of memory: it runs again */
}

/* A compacted journal's runs of committed tasks (H), and a finished job
 * (D: every task below its total). */
static void s_skip_run(s_skip_ctx_t *c, const char *job, uint64_t first,
                       uint64_t count)
{
    if (strcmp(job, c->job_id) != 0)
        return;
    for (uint64_t t = first; t - first < count && t < ZP_VENT_SKIP_MAX; t++)
        zp_bitset_set(c->skip, t); /* out of memory: it runs again */
}

static void s_skip_have(void *ctx, const char *job, uint64_t first,
                        uint64_t count)
{
    s_skip_run(ctx, job, first, count);
}

static void s_skip_done(void *ctx, const char *job, const char *token,
                        const zp_journal_summary_t *summary)
{
    (void)token;
    s_skip_run(ctx, job, 0, summary->total);
}

/* Reads the whole of fd; returns 0 or -1 when out of memory. */
static int s_read_all(int fd, zp_buf_t *data)
{
    for (;;) {
        if (zp_buf_reserve(data, 1 << 20) < 0)
            return -1;
        ssize_t n = read(fd, data->data + data->len, 1 << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        data->len += (size_t)n;
    }
}

int zp_vent_skip_load(const char *path, const char *job_id, zp_bitset_t *skip)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0; /* nothing to resume: run everything */
        zp_error("cannot read journal %s: %s", path, strerror(errno));
        return -1;
    }
    zp_buf_t data = {0};
    int rc = s_read_all(fd, &data);
    close(fd);
    if (rc < 0) {
        zp_buf_free(&data);
        return -1;
    }
    zp_journal_visitor_t vis = {.on_record = s_skip_record,
                                .on_done = s_skip_done,
                                .on_have = s_skip_have};
    s_skip_ctx_t ctx = {job_id, skip};
    size_t valid;
    long events = zp_journal_replay(data.data, data.len, &vis, &ctx, &valid);
    zp_buf_free(&data);
    if (events == ZP_JOURNAL_DAMAGED) {
        zp_error("journal %s: damaged record at byte offset %zu; nothing was "
                 "resumed",
                 path, valid);
        return -1;
    }
    if (events < 0) {
        zp_error("%s is not a zpipe journal", path);
        return -1;
    }
    return 0;
}
