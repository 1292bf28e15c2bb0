/* wk_runq: how long this thread has waited for a CPU (runnable, not
 * running), from /proc/thread-self/schedstat. On a machine with more busy
 * executors than cores, that is the part of a task's wall time that was
 * other processes' turn: 32 executors on 2 cores each see a 1 ms task take
 * 16 ms, and without it would send a result batch, and ask for a new task
 * batch, for every task. */
#ifndef ZP_WK_RUNQ_H
#define ZP_WK_RUNQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Embedded in its owner; zp_wk_runq_open before use. */
typedef struct {
    int fd; /* the schedstat file, -1 where there is none */
} zp_wk_runq_t;

/* Opens the calling thread's schedstat (kept open: one pread per read).
 * Without one (no /proc, a kernel without scheduler statistics) every
 * read says 0. */
void zp_wk_runq_open(zp_wk_runq_t *self);
void zp_wk_runq_close(zp_wk_runq_t *self);
/* Microseconds the thread has waited on a run queue so far; 0 where
 * unknown. */
uint64_t zp_wk_runq_wait_us(zp_wk_runq_t *self);

/* Reads the wait (nanoseconds, the second of schedstat's three numbers)
 * from len bytes of its text: false when they are not that. */
bool zp_wk_runq_parse(const char *text, size_t len, uint64_t *wait_ns);

#endif
