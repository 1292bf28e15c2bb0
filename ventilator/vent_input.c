/* vent_input: the input file as lines or frames, and the resume skip
 * set. */
#define _GNU_SOURCE
#include "vent_input.h"
#include "zp_journal.h"
#include "zp_log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define S_READ_CHUNK (1u << 20)

void zp_vent_reader_init(zp_vent_reader_t *r, int fd)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
}

void zp_vent_reader_frames(zp_vent_reader_t *r, uint64_t max)
{
    r->frames = true;
    r->max = max;
}

void zp_vent_reader_close(zp_vent_reader_t *r)
{
    if (r->fd > STDIN_FILENO)
        close(r->fd);
    r->fd = -1;
    zp_buf_free(&r->buf);
    r->start = r->scanned = 0;
}

/* The frame at byte off of the buffer: true with *n its body's length
 * when its length has come. */
static bool s_frame_len(const zp_vent_reader_t *r, size_t off, uint64_t *n)
{
    if (r->buf.len - off < ZP_VENT_FRAME_HEADER)
        return false;
    const unsigned char *p = (const unsigned char *)r->buf.data + off;
    *n = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 |
         (uint64_t)p[3];
    return true;
}

/* At end of input: 0 when the buffered frames are whole (or one is over
 * the limit, which next reports), else -1 with EPROTO and r->why. */
static int s_check_tail(zp_vent_reader_t *r)
{
    size_t off = r->start;
    uint64_t k = r->taken, n = 0;
    while (s_frame_len(r, off, &n)) {
        if (r->max && n > r->max)
            return 0;
        size_t body = r->buf.len - off - ZP_VENT_FRAME_HEADER;
        if (body < n) {
            snprintf(r->why, sizeof r->why,
                     "input ends inside frame %llu: got %zu of %llu bytes",
                     (unsigned long long)k, body, (unsigned long long)n);
            errno = EPROTO;
            return -1;
        }
        off += ZP_VENT_FRAME_HEADER + (size_t)n;
        k++;
    }
    if (off == r->buf.len)
        return 0;
    snprintf(r->why, sizeof r->why,
             "input ends inside frame %llu: got %zu of %d bytes of its "
             "length",
             (unsigned long long)k, r->buf.len - off, ZP_VENT_FRAME_HEADER);
    errno = EPROTO;
    return -1;
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
    r->buf.len += (size_t)n;
    if (n == 0) {
        r->eof = true;
        if (r->frames)
            return s_check_tail(r);
    }
    return 0;
}

/* The next frame (see zp_vent_reader_next). */
static bool s_next_frame(zp_vent_reader_t *r, const char **body, size_t *len)
{
    uint64_t n;
    if (!s_frame_len(r, r->start, &n))
        return false;
    if (r->max && n > r->max) { /* refused before its body is read */
        *body = NULL;
        *len = (size_t)n;
        return true;
    }
    if (r->buf.len - r->start - ZP_VENT_FRAME_HEADER < n)
        return false;
    *body = r->buf.data + r->start + ZP_VENT_FRAME_HEADER;
    *len = (size_t)n;
    r->start += ZP_VENT_FRAME_HEADER + (size_t)n;
    r->taken++;
    return true;
}

/* The first newline after start, or NULL; the bytes looked at without
 * finding one are not looked at again. */
static char *s_newline(zp_vent_reader_t *r)
{
    size_t avail = r->buf.len - r->start;
    char *p = r->buf.data + r->start;
    char *nl = memchr(p + r->scanned, '\n', avail - r->scanned);
    if (!nl)
        r->scanned = avail;
    return nl;
}

bool zp_vent_reader_next(zp_vent_reader_t *r, const char **line, size_t *len)
{
    if (r->frames)
        return s_next_frame(r, line, len);
    size_t avail = r->buf.len - r->start;
    if (avail == 0)
        return false;
    char *p = r->buf.data + r->start;
    char *nl = s_newline(r);
    if (nl) {
        *line = p;
        *len = (size_t)(nl - p);
        r->start += *len + 1;
        r->scanned = 0;
        r->taken++;
        return true;
    }
    if (r->eof) { /* last line without newline */
        *line = p;
        *len = avail;
        r->start += avail;
        r->scanned = 0;
        r->taken++;
        return true;
    }
    return false;
}

bool zp_vent_reader_line_buffered(zp_vent_reader_t *r)
{
    size_t avail = r->buf.len - r->start;
    if (r->frames) {
        uint64_t n;
        return s_frame_len(r, r->start, &n) &&
               ((r->max && n > r->max) || avail - ZP_VENT_FRAME_HEADER >= n);
    }
    return avail && (r->eof || s_newline(r));
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
