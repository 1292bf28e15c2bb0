/* line_reader: buffered lines from a file descriptor, with a deadline. */
#define _GNU_SOURCE
#include "line_reader.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Read size: a pipe gives up to 64 KiB at once. */
#define S_BLOCK 65536

struct zp_line_reader_t {
    int fd;
    char *buf;
    size_t cap;
    size_t start, end; /* the bytes not given yet */
    size_t scanned;    /* from start, bytes known to hold no '\n' */
    bool eof;
};

zp_line_reader_t *zp_line_reader_new(int fd)
{
    zp_line_reader_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->fd = fd;
    self->cap = 2 * S_BLOCK;
    self->buf = malloc(self->cap);
    if (!self->buf) {
        free(self);
        return NULL;
    }
    return self;
}

void zp_line_reader_destroy(zp_line_reader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->buf);
    free(*self_p);
    *self_p = NULL;
}

/* Gives the bytes from start to nl (exclusive) as a line, past nl. */
static int s_give(zp_line_reader_t *self, char *nl, const char **line,
                  size_t *len)
{
    *line = self->buf + self->start;
    *len = (size_t)(nl - *line);
    self->start += *len + (nl < self->buf + self->end);
    self->scanned = 0;
    return 1;
}

/* Room for a block after end: moves what is left to the front, or grows
 * the buffer (a long line). Returns 0, -1 when out of memory. */
static int s_make_room(zp_line_reader_t *self)
{
    if (self->start) {
        memmove(self->buf, self->buf + self->start, self->end - self->start);
        self->end -= self->start;
        self->start = 0;
    }
    if (self->cap - self->end >= S_BLOCK)
        return 0;
    char *bigger = realloc(self->buf, 2 * self->cap);
    if (!bigger)
        return -1;
    self->buf = bigger;
    self->cap *= 2;
    return 0;
}

/* Reads once, waiting up to timeout_ms. Returns 1 (bytes or the end
 * came), 0 (nothing in time, or EINTR), -2 (error). */
static int s_fill(zp_line_reader_t *self, int timeout_ms)
{
    struct pollfd p = {.fd = self->fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0)
        return errno == EINTR ? 0 : -2;
    if (r == 0)
        return 0;
    if (s_make_room(self) < 0) {
        errno = ENOMEM;
        return -2;
    }
    ssize_t n = read(self->fd, self->buf + self->end, self->cap - self->end);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -2;
    if (n == 0)
        self->eof = true;
    self->end += (size_t)n;
    return 1;
}

static long long s_mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int zp_line_reader_next(zp_line_reader_t *self, int timeout_ms,
                        const char **line, size_t *len)
{
    long long due = 0; /* read only when a read gave half a line */
    for (;;) {
        char *from = self->buf + self->start + self->scanned;
        char *nl = memchr(from, '\n', self->end - self->start - self->scanned);
        if (nl)
            return s_give(self, nl, line, len);
        self->scanned = self->end - self->start;
        if (self->eof)
            return self->end > self->start
                       ? s_give(self, self->buf + self->end, line, len)
                       : -1;
        /* After a read that gave half a line, the rest is waited for
         * until timeout_ms from the first wait, not timeout_ms again. */
        int wait = timeout_ms;
        if (due && timeout_ms > 0) {
            long long left = due - s_mono_ms();
            wait = left > 0 ? (int)left : 0;
        } else if (timeout_ms > 0)
            due = s_mono_ms() + timeout_ms;
        int r = s_fill(self, wait);
        if (r <= 0)
            return r;
    }
}

bool zp_line_reader_ready(const zp_line_reader_t *self)
{
    return self->eof ||
           memchr(self->buf + self->start, '\n', self->end - self->start);
}

void zp_line_reader_buffered(const zp_line_reader_t *self, const char **data,
                             size_t *len)
{
    const char *from = self->buf + self->start;
    const char *nl = memrchr(from, '\n', self->end - self->start);
    *data = from;
    *len = nl ? (size_t)(nl - from) + 1 : 0;
}

void zp_line_reader_skip(zp_line_reader_t *self, size_t n)
{
    self->start += n;
    self->scanned = 0;
}
