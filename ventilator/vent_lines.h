/* vent_lines: a producer's lines taken and not yet tasks. A TaskBatch of
 * lines gets its ids and its Ack when it is taken, but each line becomes
 * a task only when dispatch needs it, as a --input file's lines do: a
 * batch of 8,192 lines turned into tasks at once left most of them cold
 * in the cache by the time they were sent (a 1,000,000-task service job
 * spent twice the CPU of zpipe run in adding, collecting and committing
 * them). The lines are counted against the hold limits as if they were
 * tasks (vent_tasks' reserve). */
#ifndef ZP_VENT_LINES_H
#define ZP_VENT_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct zp_vent_lines_block zp_vent_lines_block_t;

/* A job's queue of line blocks, oldest first; zero-initialised is empty. */
typedef struct {
    zp_vent_lines_block_t *head, *tail;
    uint64_t n;     /* lines in it */
    uint64_t bytes; /* their bytes, newlines included */
} zp_vent_lines_t;

/* Appends a copy of text (n whole lines, each ending with '\n', checked
 * by vent_intake), whose first line is task first; queued_us: their
 * --trace stamp or 0. Returns 0, or -1 when out of memory (unchanged). */
int zp_vent_lines_push(zp_vent_lines_t *q, uint64_t first, const uint8_t *text,
                       size_t len, uint64_t n, uint64_t queued_us);
/* Takes back the block pushed last (its batch could not be kept). */
void zp_vent_lines_drop_back(zp_vent_lines_t *q);
/* The oldest line: its task id, its bytes without the '\n' (valid until
 * the queue changes) and stamp; false when empty. */
bool zp_vent_lines_peek(const zp_vent_lines_t *q, uint64_t *id,
                        const uint8_t **line, size_t *len, uint64_t *queued_us);
/* Drops the oldest line, len: its length as zp_vent_lines_peek gave it. */
void zp_vent_lines_pop(zp_vent_lines_t *q, size_t len);
/* Iteration over every line in order, for the journal's compaction:
 * start with a zeroed cursor; false when done. Nothing may change the
 * queue while it iterates. */
typedef struct {
    const zp_vent_lines_block_t *b;
    size_t pos;
    uint64_t id;
    bool started;
} zp_vent_lines_cursor_t;
bool zp_vent_lines_next(const zp_vent_lines_t *q, zp_vent_lines_cursor_t *c,
                        uint64_t *id, const uint8_t **line, size_t *len);
/* Frees every block; the queue is empty and usable again. */
void zp_vent_lines_free(zp_vent_lines_t *q);

#endif
