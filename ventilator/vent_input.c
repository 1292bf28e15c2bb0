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
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh block holds at least this much, and four times what must lie
 * in one piece (a line begun, a frame; past 16 MiB, 48 MiB more than
 * that, and as big as the block before unless that is far bigger): a
 * line longer than a block then costs the copy of its start about once
 * per four such lines. Reads ask for all the room there is,
 * at least S_READ_MIN. A frame's length makes room for all of it when it
 * is at most S_FRAME_AHEAD (a longer one's room grows as it comes). */
#define S_READ_CHUNK  ((size_t)1 << 20)
#define S_READ_MIN    ((size_t)64 << 10)
#define S_FRAME_AHEAD ((uint64_t)64 << 20)

zp_vent_chunk_t *zp_vent_chunk_ref(zp_vent_chunk_t *c)
{
    atomic_fetch_add(&c->refs, 1);
    return c;
}

void zp_vent_chunk_unref(zp_vent_chunk_t **c_p)
{
    zp_vent_chunk_t *c = *c_p;
    if (c && atomic_fetch_sub(&c->refs, 1) == 1)
        free(c);
    *c_p = NULL;
}

void zp_vent_chunk_free(void *data, void *hint)
{
    (void)data;
    zp_vent_chunk_t *c = hint;
    zp_vent_chunk_unref(&c);
}

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
    zp_vent_chunk_unref(&r->chunk);
    r->start = r->scan = 0;
}

static size_t s_len(const zp_vent_reader_t *r)
{
    return r->chunk ? r->chunk->len : 0;
}

/* The frame at byte off of the block: true with *n its body's length
 * when its length has come. */
static bool s_frame_len(const zp_vent_reader_t *r, size_t off, uint64_t *n)
{
    if (s_len(r) - off < ZP_VENT_FRAME_HEADER)
        return false;
    const unsigned char *p = (const unsigned char *)r->chunk->data + off;
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
        size_t body = s_len(r) - off - ZP_VENT_FRAME_HEADER;
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
    if (off == s_len(r))
        return 0;
    snprintf(r->why, sizeof r->why,
             "input ends inside frame %llu: got %zu of %d bytes of its "
             "length",
             (unsigned long long)k, s_len(r) - off, ZP_VENT_FRAME_HEADER);
    errno = EPROTO;
    return -1;
}

/* Room to read into: S_READ_MIN bytes at least, and the whole of a frame
 * whose length has come, after the unread bytes. The block is compacted
 * when only the reader holds it, else they move to a fresh block (tasks
 * point into this one). 0, or -1 when out of memory. */
static int s_room(zp_vent_reader_t *r)
{
    zp_vent_chunk_t *c = r->chunk;
    size_t part = s_len(r) - r->start, need = part + S_READ_MIN;
    uint64_t n;
    if (r->frames && s_frame_len(r, r->start, &n) && !(r->max && n > r->max) &&
        n <= S_FRAME_AHEAD && ZP_VENT_FRAME_HEADER + n > need)
        need = ZP_VENT_FRAME_HEADER + (size_t)n;
    if (c && c->cap - r->start >= need && c->cap - c->len >= S_READ_MIN)
        return 0;
    if (c && atomic_load(&c->refs) == 1 && c->cap >= need) {
        memmove(c->data, c->data + r->start, part);
    } else {
        size_t cap = need < ((size_t)16 << 20) ? 4 * need : need + (48u << 20);
        if (cap < S_READ_CHUNK)
            cap = S_READ_CHUNK;
        if (c && cap < c->cap && c->cap <= 4 * need + (48u << 20))
            cap = c->cap; /* no smaller than the last: lines stay long */
        zp_vent_chunk_t *fresh =
            cap < need ? NULL : malloc(sizeof *fresh + cap);
        if (!fresh)
            return -1;
        atomic_init(&fresh->refs, 1);
        fresh->tasks = 0;
        fresh->cap = cap;
        if (part)
            memcpy(fresh->data, c->data + r->start, part);
        zp_vent_chunk_unref(&r->chunk);
        r->chunk = c = fresh;
    }
    c->len = part;
    r->scan = r->scan > r->start ? r->scan - r->start : 0;
    r->start = 0;
    return 0;
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
    if (s_room(r) < 0)
        return -1;
    zp_vent_chunk_t *c = r->chunk;
    ssize_t n;
    do
        n = read(r->fd, c->data + c->len, c->cap - c->len);
    while (n < 0 && errno == EINTR && !zp_stopping());
    if (n < 0)
        return -1;
    c->len += (size_t)n;
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
    if (s_len(r) - r->start - ZP_VENT_FRAME_HEADER < n)
        return false;
    *body = r->chunk->data + r->start + ZP_VENT_FRAME_HEADER;
    *len = (size_t)n;
    r->start += ZP_VENT_FRAME_HEADER + (size_t)n;
    r->taken++;
    return true;
}

/* Whether the next line's newline has come: then r->scan is at it. Each
 * byte is searched once, however many reads a long line takes. */
static bool s_find_newline(zp_vent_reader_t *r)
{
    if (r->scan < r->start)
        r->scan = r->start;
    size_t avail = s_len(r) - r->scan;
    char *nl = avail ? memchr(r->chunk->data + r->scan, '\n', avail) : NULL;
    if (!nl) {
        r->scan += avail;
        return false;
    }
    r->scan = (size_t)(nl - r->chunk->data);
    return true;
}

bool zp_vent_reader_next(zp_vent_reader_t *r, const char **line, size_t *len)
{
    if (r->frames)
        return s_next_frame(r, line, len);
    size_t avail = s_len(r) - r->start;
    if (avail == 0)
        return false;
    char *p = r->chunk->data + r->start;
    if (s_find_newline(r)) {
        *line = p;
        *len = r->scan - r->start;
        r->start = r->scan = r->scan + 1;
        r->taken++;
        return true;
    }
    if (r->eof) { /* last line without newline */
        *line = p;
        *len = avail;
        r->start += avail;
        r->taken++;
        return true;
    }
    return false;
}

zp_vent_chunk_t *zp_vent_reader_chunk(const zp_vent_reader_t *r)
{
    return r->chunk;
}

bool zp_vent_reader_line_buffered(zp_vent_reader_t *r)
{
    size_t avail = s_len(r) - r->start;
    if (r->frames) {
        uint64_t n;
        return s_frame_len(r, r->start, &n) &&
               ((r->max && n > r->max) || avail - ZP_VENT_FRAME_HEADER >= n);
    }
    return avail && (r->eof || s_find_newline(r));
}

bool zp_vent_reader_done(const zp_vent_reader_t *r)
{
    return r->eof && r->start == s_len(r);
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
