/* vent_input: the ventilator's input file as lines or length-prefixed
 * frames (one task each), and the --resume-journal skip set (tasks an
 * earlier run committed). */
#ifndef ZP_VENT_INPUT_H
#define ZP_VENT_INPUT_H

#include "zp_bitset.h"
#include "zp_util.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Bytes before each frame's body: its length, unsigned, big-endian. */
#define ZP_VENT_FRAME_HEADER 4

/* A block the input is read into. Tasks of ZP_VENT_REF_MIN bytes or more
 * point into it instead of copying their payload (vent_tasks), and keep
 * it while they are held; the reader reads on into a fresh block then,
 * and copies only the line it had begun. Single-threaded. */
typedef struct {
    /* The reader's, one per task pointing into it, and one per payload
     * frame libzmq sends from it (freed in its I/O thread: atomic). */
    _Atomic size_t refs;
    size_t tasks; /* the tasks' (the block is charged to the held bytes
                     while there is one, vent_tasks) */
    size_t cap, len;
    char data[];
} zp_vent_chunk_t;

#define ZP_VENT_REF_MIN 4096u

/* One more reference; returns c. */
zp_vent_chunk_t *zp_vent_chunk_ref(zp_vent_chunk_t *c);
/* Drops a reference (freeing the block at the last); nulls the pointer. */
void zp_vent_chunk_unref(zp_vent_chunk_t **c_p);
/* zmq_msg_init_data's free function for a message sent from a block:
 * drops the reference hint (the block) holds for it. */
void zp_vent_chunk_free(void *data, void *hint);

/* A task reader over a file descriptor: lines (the default), or frames
 * (--input-format frames: a 4-byte big-endian length N, then N bytes).
 * Zero-initialise with fd = -1, or use zp_vent_reader_init. */
typedef struct {
    int fd;
    zp_vent_chunk_t *chunk; /* the block being read into, or NULL */
    size_t start;           /* first unread byte */
    size_t scan; /* lines: no newline in [start, scan) of the block */
    bool eof;
    bool frames;    /* frames, not lines */
    uint64_t max;   /* frames: longest body accepted, 0 = any */
    uint64_t taken; /* tasks taken so far (the next one's index) */
    char why[128];  /* the input's fault when fill said EPROTO */
} zp_vent_reader_t;

/* Starts reading fd (borrowed until zp_vent_reader_close) as lines. */
void zp_vent_reader_init(zp_vent_reader_t *r, int fd);
/* Reads frames instead of lines (before the first fill). A frame whose
 * length is over max (0 = no limit) is handed out by zp_vent_reader_next
 * as soon as its length is read, before its body, so that the caller
 * refuses it without buffering it. */
void zp_vent_reader_frames(zp_vent_reader_t *r, uint64_t max);
/* Frees the buffer and closes the fd unless it is stdin or -1. */
void zp_vent_reader_close(zp_vent_reader_t *r);
/* Reads more input: with block = false only if the fd has some ready.
 * Returns 0, or -1 on a read error (errno) or out of memory. In frames
 * mode, input that ends inside a frame (a partial length or a short body)
 * is -1 with errno EPROTO and r->why saying which frame and how many of
 * its bytes came. */
int zp_vent_reader_fill(zp_vent_reader_t *r, bool block);
/* Next complete line (or the last one, without its newline, at end of
 * input), or next complete frame's body: true with *line borrowed, valid
 * until the next fill (or as long as a reference to the reader's block,
 * which holds it); false if none is buffered yet. A frame never comes
 * out before its last byte. A frame over the reader's max comes out with
 * *line NULL and *len its length, and is not taken: the reader stays at
 * it. */
bool zp_vent_reader_next(zp_vent_reader_t *r, const char **line, size_t *len);
/* The block the lines zp_vent_reader_next gives lie in (borrowed; take a
 * reference to keep one); NULL before the first fill. */
zp_vent_chunk_t *zp_vent_reader_chunk(const zp_vent_reader_t *r);
/* Whether a task (a line, a frame, or a frame over the limit) can be
 * taken without reading. */
bool zp_vent_reader_line_buffered(zp_vent_reader_t *r);
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
