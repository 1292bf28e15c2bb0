/* wk_spawn: starting and stopping an executor process: zpipe-executor
 * beside this binary (else this binary again with --executor), its socket
 * pair end on fd 3, a fresh progress page on fd 4 and fresh shared
 * regions for its batches and results on fds 5 and 6 (wk_shm.h), in its
 * own process group. */
#ifndef ZP_WK_SPAWN_H
#define ZP_WK_SPAWN_H

#include "wk_progress.h"
#include "wk_shm.h"
#include "worker.h"

#include <sys/types.h>

/* The executor's fds: its end of the socket pair, its progress page. */
#define ZP_WK_EXEC_FD 3
#define ZP_WK_SHM_FD  4

/* A running executor as its worker holds it. */
typedef struct {
    pid_t pid;                  /* 0: none */
    int fd;                     /* the worker's end (blocking), -1: none */
    zp_wk_progress_t *progress; /* mapped, zeroed; NULL: none */
    /* Its regions, NULL where none could be made (the socket pair then
     * carries those frames); where the worker places frames in them. */
    zp_wk_region_t *in, *out;
    zp_wk_slots_t in_slots;
    uint64_t out_seq;   /* the last result frame it referred to */
    uint64_t runq_seen; /* its wait for a CPU, as of its last frame */
} zp_wk_child_t;

/* Starts an executor for worker id running exactly the n plugin files
 * under cfg's settings, into child (a previous page is unmapped, previous
 * regions dropped). Returns 0, or -1 having logged why. */
int zp_wk_spawn(zp_wk_child_t *child, const zp_worker_config_t *cfg,
                const char *id, const char *const *files, size_t n);
/* Closes its socket (which ends an idle executor), kills it after 200 ms
 * if still running, reaps it, unmaps the page and drops the regions (a
 * results region stays mapped until libzmq has freed every frame sent
 * from it). */
void zp_wk_spawn_stop(zp_wk_child_t *child);

#endif
