/* zp_frame: the one length-prefix codec between a worker and its
 * executor (see zp_frame.h). */
#include "zp_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

struct zp_frame_reader {
    zp_buf_t buf;   /* bytes read */
    size_t off;     /* of buf, taken by frames already returned */
    size_t max_len; /* largest frame accepted */
};

static void s_header(unsigned char hdr[ZP_FRAME_HEADER], size_t len)
{
    uint32_t n = (uint32_t)len;
    hdr[0] = (unsigned char)n;
    hdr[1] = (unsigned char)(n >> 8);
    hdr[2] = (unsigned char)(n >> 16);
    hdr[3] = (unsigned char)(n >> 24);
}

static size_t s_length(const char *p)
{
    const unsigned char *h = (const unsigned char *)p;
    return (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 |
           (size_t)h[3] << 24;
}

int zp_frame_write(int fd, const void *data, size_t len)
{
    if (len > UINT32_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    unsigned char hdr[ZP_FRAME_HEADER];
    s_header(hdr, len);
    struct iovec iov[2] = {{hdr, ZP_FRAME_HEADER}, {(void *)data, len}};
    ssize_t w;
    while ((w = writev(fd, iov, 2)) < 0 && errno == EINTR)
        ;
    if (w < 0)
        return -1;
    if ((size_t)w < ZP_FRAME_HEADER) {
        if (zp_write_all(fd, hdr + w, ZP_FRAME_HEADER - (size_t)w) < 0)
            return -1;
        return zp_write_all(fd, data, len);
    }
    size_t done = (size_t)w - ZP_FRAME_HEADER;
    return zp_write_all(fd, (const char *)data + done, len - done);
}

int zp_frame_append(zp_buf_t *out, const void *data, size_t len)
{
    if (len > UINT32_MAX || zp_buf_reserve(out, ZP_FRAME_HEADER + len) < 0)
        return -1;
    s_header((unsigned char *)out->data + out->len, len);
    if (len)
        memcpy(out->data + out->len + ZP_FRAME_HEADER, data, len);
    out->len += ZP_FRAME_HEADER + len;
    return 0;
}

zp_frame_reader_t *zp_frame_reader_new(size_t max_len)
{
    zp_frame_reader_t *self = calloc(1, sizeof *self);
    if (self)
        self->max_len = max_len;
    return self;
}

void zp_frame_reader_destroy(zp_frame_reader_t **self_p)
{
    zp_frame_reader_t *self = *self_p;
    if (!self)
        return;
    zp_buf_free(&self->buf);
    free(self);
    *self_p = NULL;
}

int zp_frame_reader_space(zp_frame_reader_t *self, size_t min, char **dst,
                          size_t *room)
{
    size_t have = self->buf.len - self->off;
    if (self->off) { /* keep the partial frame at the front */
        memmove(self->buf.data, self->buf.data + self->off, have);
        self->buf.len = have;
        self->off = 0;
    }
    size_t need = ZP_FRAME_HEADER - (have < ZP_FRAME_HEADER ? have : 0);
    if (have >= ZP_FRAME_HEADER) {
        size_t len = s_length(self->buf.data);
        if (len <= self->max_len && have - ZP_FRAME_HEADER < len)
            need = len - (have - ZP_FRAME_HEADER);
    }
    if (need + min < need || zp_buf_reserve(&self->buf, need + min) < 0)
        return -1;
    *dst = self->buf.data + self->buf.len;
    *room = self->buf.cap - self->buf.len;
    return 0;
}

void zp_frame_reader_commit(zp_frame_reader_t *self, size_t n)
{
    self->buf.len += n;
}

int zp_frame_reader_next(zp_frame_reader_t *self, const char **frame,
                         size_t *len)
{
    size_t have = self->buf.len - self->off;
    *len = 0;
    if (have < ZP_FRAME_HEADER)
        return 0;
    const char *p = self->buf.data + self->off;
    *len = s_length(p);
    if (*len > self->max_len)
        return -1;
    if (have - ZP_FRAME_HEADER < *len)
        return 0;
    *frame = p + ZP_FRAME_HEADER;
    self->off += ZP_FRAME_HEADER + *len;
    return 1;
}

size_t zp_frame_reader_pending(const zp_frame_reader_t *self)
{
    return self->buf.len - self->off;
}

void zp_frame_reader_reset(zp_frame_reader_t *self)
{
    self->buf.len = 0;
    self->off = 0;
}
