/* wk_progress: the page an executor shares with its worker (a memfd
 * mapped by both): what it is running, for the worker to charge a death to
 * the right task, and the worker's counters for the executor's result
 * batches, which go to the sink as they are. */
#ifndef ZP_WK_PROGRESS_H
#define ZP_WK_PROGRESS_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct {
    _Atomic uint64_t busy;        /* 1 while a plugin call runs */
    _Atomic uint64_t index;       /* position of that task in the batch */
    _Atomic uint64_t start_us;    /* monotonic clock when it began */
    _Atomic uint64_t vm_bytes;    /* address space in use when it crashed */
    _Atomic uint64_t deadline_ms; /* the running task's own deadline, or 0 */
    _Atomic uint64_t seq;         /* frames taken; the last is running */
    /* Written by the worker for the executor's result batches: */
    _Atomic uint64_t window, max_held, completed;
    /* Result frames in the results region the worker is done with, in
     * order (wk_shm.h): their room can take new ones. */
    _Atomic uint64_t results_released;
    /* Written by the executor: */
    _Atomic uint64_t runq_wait_us;    /* waited for a CPU, at its last flush */
    _Atomic uint64_t input_write;     /* it faulted writing to its inputs */
    _Atomic uint64_t refused_appends; /* output refused outside a call */
} zp_wk_progress_t;

#endif
