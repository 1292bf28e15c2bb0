/* worker: the zpipe worker daemon's logic (main.c only parses options).
 *
 * A worker loads plugins, connects to the ventilator (credit dispatch:
 * DEALER; push dispatch: PULL) and to the sink (PUSH), runs each task's
 * plugin and sends the results in batches. Under credit dispatch it never
 * holds more tasks than its window: it grants credit as it completes work,
 * sized to keep about target_ms of work queued. */
#ifndef ZP_WORKER_H
#define ZP_WORKER_H

#include "zp_opts.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *ventilator; /* endpoint to connect for tasks */
    const char *sink;       /* endpoint to connect for results */
    const char *dispatch;   /* "credit" or "push" */
    const char *id;         /* worker id, NULL = generated */
    zp_strlist_t plugins;   /* plugin names or paths */
    uint64_t window;        /* most tasks held at once (credit) */
    uint64_t target_ms;     /* work to keep queued when adapting credit */
    uint64_t max_output;    /* bytes a task may output */
    uint64_t max_frame;     /* largest frame accepted */
    uint64_t heartbeat_ms;
    long parent_pid; /* exit when this process is gone, 0 = never */
} zp_worker_config_t;

/* Runs until SIGTERM/SIGINT. Returns 0 on a clean stop, 3 when set-up
 * failed (a plugin refused, an endpoint unusable), logging the reason. */
int zp_worker_run(const zp_worker_config_t *cfg);

/* Loads cfg->plugins and prints each descriptor (name, version, ABI,
 * description) on stdout, one per line. Returns 0, or 3 if any is refused. */
int zp_worker_describe(const zp_worker_config_t *cfg);

#endif
