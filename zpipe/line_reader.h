/* line_reader: lines from a file descriptor, with a time limit on waiting
 * for the next one, so that zpipe submit reading a slow pipe (tail -f log
 * | zpipe submit) can send the lines it has instead of holding them until
 * a batch is full. Reads in large blocks (no per-line system call). */
#ifndef ZP_LINE_READER_H
#define ZP_LINE_READER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct zp_line_reader_t zp_line_reader_t;

/* A reader of fd (borrowed: not closed by the reader; it need not be
 * non-blocking). Caller owns the result; NULL when out of memory. */
zp_line_reader_t *zp_line_reader_new(int fd);

/* Frees the reader; nulls the pointer (NULL is fine). */
void zp_line_reader_destroy(zp_line_reader_t **self_p);

/* The next line, without its '\n', in *line and *len (borrowed, valid
 * until the next call on self). Waits at most timeout_ms for it (0: only
 * what is already there or readable at once; -1: as long as it takes).
 * Returns 1 with a line; 0 when none came in time, or a signal cut the
 * wait short; -1 at the end of the input (a last line without '\n' is
 * given first); -2 on an error, errno set (ENOMEM: a line too long for
 * memory). */
int zp_line_reader_next(zp_line_reader_t *self, int timeout_ms,
                        const char **line, size_t *len);

/* The whole lines already buffered, each with its '\n', in *data and
 * *len (borrowed, valid until the next call on self; *len 0: none),
 * without reading and without giving them: zp_line_reader_skip gives
 * them. For taking many lines at once. */
void zp_line_reader_buffered(const zp_line_reader_t *self, const char **data,
                             size_t *len);

/* Gives the first n bytes zp_line_reader_buffered showed (whole lines). */
void zp_line_reader_skip(zp_line_reader_t *self, size_t n);

/* Whether a whole line, or the end of input, is buffered: the next call
 * returns without reading. */
bool zp_line_reader_ready(const zp_line_reader_t *self);

#endif
