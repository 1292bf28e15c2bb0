/* zp_frame: the length-prefixed frames a worker and its executor exchange
 * over their socket pair: a 4-byte little-endian length, then the bytes. */
#ifndef ZP_FRAME_H
#define ZP_FRAME_H

#include "zp_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of the length prefix. */
#define ZP_FRAME_HEADER 4

/* Writes one frame to fd, blocking until all of it is written (in one
 * system call when the socket takes it all). Returns 0, or -1 with errno
 * set (a closed peer, or len over 4 GiB - 1). */
int zp_frame_write(int fd, const void *data, size_t len);

/* Appends one frame (prefix and data) to out, for a caller that writes
 * it later. Returns 0 or -1 on allocation failure (out unchanged in
 * length). */
int zp_frame_append(zp_buf_t *out, const void *data, size_t len);

/* Accumulates bytes read from a stream and yields whole frames. The
 * caller does the reading: zp_frame_reader_space gives room, the caller
 * reads into it and commits what it read; zp_frame_reader_next then
 * yields each whole frame in turn. */
typedef struct zp_frame_reader zp_frame_reader_t;

/* A reader refusing frames over max_len bytes. Caller owns the result;
 * NULL on allocation failure. */
zp_frame_reader_t *zp_frame_reader_new(size_t max_len);
/* Frees the reader; nulls the caller's pointer. */
void zp_frame_reader_destroy(zp_frame_reader_t **self_p);

/* Room to read into at *dst, *room bytes: what the frame being assembled
 * still needs plus at least min. Moves unconsumed bytes to the front,
 * which ends the validity of frames zp_frame_reader_next returned.
 * Returns 0 or -1 on allocation failure. */
int zp_frame_reader_space(zp_frame_reader_t *self, size_t min, char **dst,
                          size_t *room);
/* Counts n bytes read into the room zp_frame_reader_space gave. */
void zp_frame_reader_commit(zp_frame_reader_t *self, size_t n);

/* The next whole frame: returns 1 with *frame (borrowed, valid until the
 * next zp_frame_reader_space or _reset) and *len; 0 when more bytes are
 * needed (*len is the length announced so far, 0 if no prefix yet); -1
 * when the announced length is over the limit (*len is that length; the
 * stream cannot be resynchronised). A zero-length frame is a frame. */
int zp_frame_reader_next(zp_frame_reader_t *self, const char **frame,
                         size_t *len);
/* Bytes held that no frame returned has taken: 0 between frames. */
size_t zp_frame_reader_pending(const zp_frame_reader_t *self);
/* Drops every byte held (a new stream begins); keeps the memory. */
void zp_frame_reader_reset(zp_frame_reader_t *self);

#endif
