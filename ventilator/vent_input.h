/* vent_input: the ventilator's input file as lines (one task each), and
 * the --resume-journal skip set (tasks an earlier run committed). */
#ifndef ZP_VENT_INPUT_H
#define ZP_VENT_INPUT_H

#include "zp_bitset.h"
#include "zp_util.h"

#include <stdbool.h>
#include <stddef.h>

/* A line reader over a file descriptor. Zero-initialise with fd = -1, or
 * use zp_vent_reader_init. */
typedef struct {
    int fd;
    zp_buf_t buf;
    size_t start; /* first unread byte */
    bool eof;
} zp_vent_reader_t;

/* Starts reading fd (borrowed until zp_vent_reader_close). */
void zp_vent_reader_init(zp_vent_reader_t *r, int fd);
/* Frees the buffer and closes the fd unless it is stdin or -1. */
void zp_vent_reader_close(zp_vent_reader_t *r);
/* Reads more input: with block = false only if the fd has some ready.
 * Returns 0, or -1 on a read error (errno) or out of memory. */
int zp_vent_reader_fill(zp_vent_reader_t *r, bool block);
/* Next complete line (or the last one, without its newline, at end of
 * input): true with *line borrowed, valid until the next fill; false if
 * none is buffered yet. */
bool zp_vent_reader_next(zp_vent_reader_t *r, const char **line, size_t *len);
/* Whether a line can be taken without reading. */
bool zp_vent_reader_line_buffered(const zp_vent_reader_t *r);
/* Whether every line has been taken and the input has ended. */
bool zp_vent_reader_done(const zp_vent_reader_t *r);

/* Ids above this are ignored in a journal (a hostile id would size the
 * set). */
#define ZP_VENT_SKIP_MAX (1ull << 34)

/* --resume-journal: adds to skip the tasks of job_id that the journal at
 * path has committed. Read only; the sink owns the journal. A missing
 * file is an empty journal. Returns 0, or -1 (logged) when the file
 * cannot be read or is not a journal. A task that cannot be added for
 * lack of memory is not skipped (it runs again; the sink drops the
 * duplicate). */
int zp_vent_skip_load(const char *path, const char *job_id, zp_bitset_t *skip);

#endif
