/* supervisor: the child processes of `zpipe run` (a sink, a ventilator and
 * N workers): starting them, restarting the ones that may be restarted
 * with backoff, giving up when restarts are futile, and stopping them.
 * The processes and the clock are reached through an ops table, so a test
 * drives it with a fake process table and a fake clock. */
#ifndef ZP_SUPERVISOR_H
#define ZP_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum {
    ZP_ROLE_SINK,
    ZP_ROLE_VENTILATOR,
    ZP_ROLE_WORKER,
    ZP_ROLE_COUNT
} zp_role_t;

#define ZP_SUPER_BACKOFF_MIN_US 100000u
#define ZP_SUPER_BACKOFF_MAX_US 5000000u
/* A child that lived this long was fine: its backoff starts over. */
#define ZP_SUPER_STABLE_US 10000000u
/* Worker deaths per worker with no progress between: then it is futile. */
#define ZP_SUPER_FUTILE_PER_WORKER 3
/* How long stopping waits after SIGTERM before SIGKILL, and how often it
 * looks. */
#define ZP_SUPER_GRACE_US 5000000u
#define ZP_SUPER_POLL_US  10000u

/* How the supervisor reaches processes and time. arg is passed to each. */
typedef struct {
    void *arg;
    /* Starts argv[0] with argv; stdin_fd >= 0 becomes its stdin. Returns
     * the pid, or -1 with errno. */
    pid_t (*spawn)(void *arg, char *const argv[], int stdin_fd);
    int (*kill)(void *arg, pid_t pid, int sig);
    /* Reaps pid (without blocking when nohang): returns pid with *status
     * and *maxrss_kb (its peak RSS) set, 0 when it is still running, -1 on
     * error. */
    pid_t (*wait)(void *arg, pid_t pid, int *status, bool nohang,
                  long *maxrss_kb);
    uint64_t (*now_us)(void *arg); /* a monotonic clock */
    /* Waits up to us for one of the n pids (children not reaped yet) to
     * end; may return sooner (a signal). */
    void (*await_us)(void *arg, const pid_t *pids, size_t n, uint64_t us);
} zp_super_ops_t;

/* The real ones: posix_spawn (zp_spawn), kill, wait4, zp_mono_us, poll
 * on pidfds (a ZP_SUPER_POLL_US sleep where pidfd_open fails). Borrowed,
 * valid for the life of the process. */
const zp_super_ops_t *zp_super_os_ops(void);

typedef struct zp_super_t zp_super_t;

/* A supervisor for job (borrowed, valid until destroy) that reaches
 * processes through ops (copied). sink_restartable: the sink keeps a
 * journal, so a dead sink is restarted. Caller owns the result; NULL when
 * out of memory. */
zp_super_t *zp_super_new(const zp_super_ops_t *ops, const char *job,
                         bool sink_restartable);

/* Adds a child of role run as argv (borrowed, valid until destroy); it is
 * started by zp_super_start. Returns 0, or -1 when out of memory. */
int zp_super_add(zp_super_t *self, zp_role_t role, char *const *argv);

/* Frees self (stopping nothing: call zp_super_stop first) and nulls the
 * pointer. */
void zp_super_destroy(zp_super_t **self_p);

/* Starts every child in the order added; workers get worker_stdin (when
 * >= 0) as their stdin. Returns 0, or -1 with errno when a child could not
 * be started (the ones started are left running for zp_super_stop). */
int zp_super_start(zp_super_t *self, int worker_stdin);

/* What one zp_super_tick found. */
typedef enum {
    ZP_SUPER_RUNNING,      /* all is well, or being restarted */
    ZP_SUPER_CHILD_FAILED, /* a child that cannot be restarted died */
    ZP_SUPER_FUTILE,       /* workers keep dying while nothing progresses */
    ZP_SUPER_START_FAILED  /* a restart could not start (logged) */
} zp_super_state_t;

typedef struct {
    zp_super_state_t state;
    zp_role_t role;    /* the child concerned (CHILD_FAILED) */
    pid_t pid;         /* its pid */
    int status;        /* its wait status */
    uint64_t restarts; /* FUTILE: the worker deaths in a row */
} zp_super_event_t;

/* One round: restarts children whose backoff is over, reaps children that
 * ended and schedules their restart or gives up. done is the job's
 * committed count (progress resets futility). Returns 0 to go on, or -1
 * when the job can no longer complete, with *ev saying why (the text for
 * the user from zp_super_explain). */
int zp_super_tick(zp_super_t *self, uint64_t done, zp_super_event_t *ev);

/* The message zpipe run prints when the job cannot complete after ev
 * (empty when there is none to print: a failed start was logged). */
void zp_super_explain(const zp_super_t *self, const zp_super_event_t *ev,
                      char *buf, size_t len);

/* Stops every running child, the ventilator first, then the workers,
 * the sink last: each in turn SIGTERM, then after ZP_SUPER_GRACE_US
 * SIGKILL (logged) for those still running; reaps them all. The workers
 * find the ventilator gone (no bye to wait on) and the sink still there
 * (their last results reach it). Returns 0, or -1 when a sink stopped
 * badly (exited non-zero, died of another signal, or needed SIGKILL):
 * what it last wrote is in doubt (zp_super_sink_stop_status says how it
 * ended). */
int zp_super_stop(zp_super_t *self);
int zp_super_sink_stop_status(const zp_super_t *self);

/* Restarts of role so far (the accounting line's worker and sink
 * restarts). */
uint64_t zp_super_restarts(const zp_super_t *self, zp_role_t role);

/* The largest peak RSS (KiB) of any child of role, over its incarnations
 * reaped so far. */
long zp_super_peak_rss(const zp_super_t *self, zp_role_t role);

/* The name of role in messages: "sink", "ventilator", "worker". */
const char *zp_role_name(zp_role_t role);

/* ---- policy (pure) ------------------------------------------------------ */

typedef enum {
    ZP_SUPER_IGNORE,  /* the ventilator ended 0 or 1: it saw the job done */
    ZP_SUPER_RESTART, /* restart after the backoff */
    ZP_SUPER_GIVE_UP  /* it cannot be restarted: the job cannot complete */
} zp_super_verdict_t;

/* The sink's exit status when its output or journal was deleted,
 * replaced or damaged (ZP_SINK_EXIT_LOST in sink/sink.h): records it
 * committed are gone or cannot be trusted, and a restart would resume as
 * if they were not, or refuse again. Never restarted. */
#define ZP_SUPER_SINK_EXIT_LOST 4

/* A sink that exits 3 (set-up failed: an output it cannot open, an
 * endpoint it cannot bind) this soon after its first start is not
 * restarted: nothing was committed yet, and the same settings would fail
 * the same way, forever (a mistyped -o path used to make `zpipe run`
 * retry until interrupted). */
#define ZP_SUPER_SETUP_US 2000000u

/* What to do about a child of role that ended with wait status status;
 * first_setup: it was its first start, and it lived less than
 * ZP_SUPER_SETUP_US. */
zp_super_verdict_t zp_super_verdict(zp_role_t role, int status,
                                    bool sink_restartable, bool first_setup);

/* The backoff before restarting a child that lived lived_us, whose last
 * backoff was prev_us (0 the first time): starts at the minimum, doubles
 * while it keeps dying young, at most the maximum; a child that lived
 * ZP_SUPER_STABLE_US starts over. */
uint64_t zp_super_backoff(uint64_t lived_us, uint64_t prev_us);

/* Whether deaths worker deaths in a row without progress, among n_workers
 * workers, mean the job cannot complete. */
bool zp_super_futile(uint64_t deaths, size_t n_workers);

/* How a child ended, for messages: "exited with status N", "was killed by
 * Segmentation fault", "stopped". */
void zp_super_describe_exit(char *buf, size_t len, int status);

#endif
