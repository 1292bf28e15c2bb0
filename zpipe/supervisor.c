/* supervisor: starts, restarts (with backoff), gives up on and stops the
 * children of `zpipe run`; processes and time only through its ops. */
#define _GNU_SOURCE
#include "supervisor.h"
#include "zp_log.h"
#include "zp_spawn.h"
#include "zp_util.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A child's life (s_legal has the moves; anything else is a bug):
 *
 *   NEW -------> RUNNING <--------------+
 *    |            |    |                |  started again
 *    |    reaped, |    | reaped, to be  |  after the backoff
 *    |   not to be|    | restarted      |
 *    |   restarted|    +---------> BACKOFF
 *    |            v                     |
 *    +-------> ENDED <------------------+
 *   start failed                  start failed
 */
typedef enum {
    S_NEW,     /* added, not started yet */
    S_RUNNING, /* started and not reaped: pid is valid */
    S_BACKOFF, /* reaped; started again at restart_at_us */
    S_ENDED    /* reaped or never started; not to be started again */
} s_state_t;

typedef struct {
    zp_role_t role;
    char *const *argv; /* borrowed */
    s_state_t state;
    pid_t pid;
    int status;
    uint64_t started_us, restart_at_us, backoff_us;
    uint64_t starts; /* incarnations started */
    long maxrss_kb;  /* peak resident set of any of its incarnations */
    bool stopped;    /* ended by zp_super_stop */
    bool killed;     /* ... with SIGKILL, after the grace */
} s_child_t;

struct zp_super_t {
    zp_super_ops_t ops;
    const char *job; /* borrowed */
    bool sink_restartable;
    s_child_t *kids;
    size_t n_kids, cap_kids, n_workers;
    uint64_t worker_restarts, sink_restarts;
    uint64_t futile_restarts; /* worker deaths since the job last progressed */
    uint64_t last_done;       /* the job's committed count at the last tick */
    int sink_stop_status;     /* a sink's that failed as it stopped */
};

static const char *s_role_names[] = {"sink", "ventilator", "worker"};

const char *zp_role_name(zp_role_t role)
{
    return role < ZP_ROLE_COUNT ? s_role_names[role] : "?";
}

/* ---- the real processes and clock --------------------------------------- */

static pid_t s_os_spawn(void *arg, char *const argv[], int stdin_fd)
{
    (void)arg;
    return zp_spawn(argv, stdin_fd, -1);
}

static int s_os_kill(void *arg, pid_t pid, int sig)
{
    (void)arg;
    return kill(pid, sig);
}

static pid_t s_os_wait(void *arg, pid_t pid, int *status, bool nohang,
                       long *maxrss_kb)
{
    (void)arg;
    struct rusage ru = {0};
    pid_t r = wait4(pid, status, nohang ? WNOHANG : 0, &ru);
    if (r == pid)
        *maxrss_kb = ru.ru_maxrss;
    return r;
}

static uint64_t s_os_now_us(void *arg)
{
    (void)arg;
    return zp_mono_us();
}

static void s_os_sleep_us(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Polls a pidfd per child, so an exit wakes us at once (no polling
 * sleeps on the stop path); sleeps ZP_SUPER_POLL_US at most where
 * pidfd_open fails (a kernel before 5.3). */
static void s_os_await_us(void *arg, const pid_t *pids, size_t n, uint64_t us)
{
    (void)arg;
    struct pollfd *fds = n ? calloc(n, sizeof *fds) : NULL;
    size_t k = 0;
#ifdef SYS_pidfd_open
    for (; fds && k < n; k++) {
        fds[k] = (struct pollfd){.fd = (int)syscall(SYS_pidfd_open, pids[k], 0),
                                 .events = POLLIN};
        if (fds[k].fd < 0)
            break;
    }
#endif
    if (fds && k == n) {
        uint64_t ms = (us + 999) / 1000;
        poll(fds, (nfds_t)n, ms > INT_MAX ? INT_MAX : (int)ms);
    } else
        s_os_sleep_us(us < ZP_SUPER_POLL_US ? us : ZP_SUPER_POLL_US);
    for (size_t i = 0; i < k; i++)
        close(fds[i].fd);
    free(fds);
}

static const zp_super_ops_t s_os_ops = {NULL,      s_os_spawn,  s_os_kill,
                                        s_os_wait, s_os_now_us, s_os_await_us};

const zp_super_ops_t *zp_super_os_ops(void)
{
    return &s_os_ops;
}

/* ---- policy -------------------------------------------------------------- */

zp_super_verdict_t zp_super_verdict(zp_role_t role, int status,
                                    bool sink_restartable, bool first_setup)
{
    if (role == ZP_ROLE_VENTILATOR && WIFEXITED(status) &&
        WEXITSTATUS(status) <= 1)
        return ZP_SUPER_IGNORE; /* it saw the job done; our reply is on its
                                   way */
    /* A sink whose output or journal was deleted or replaced: its records
     * are gone, and a restart would resume as if they were not. */
    if (role == ZP_ROLE_SINK && WIFEXITED(status) &&
        WEXITSTATUS(status) == ZP_SUPER_SINK_EXIT_LOST)
        return ZP_SUPER_GIVE_UP;
    if (role == ZP_ROLE_SINK && first_setup && WIFEXITED(status) &&
        WEXITSTATUS(status) == 3)
        return ZP_SUPER_GIVE_UP;
    if (role == ZP_ROLE_WORKER || (role == ZP_ROLE_SINK && sink_restartable))
        return ZP_SUPER_RESTART;
    return ZP_SUPER_GIVE_UP;
}

uint64_t zp_super_backoff(uint64_t lived_us, uint64_t prev_us)
{
    uint64_t b = prev_us;
    if (lived_us >= ZP_SUPER_STABLE_US)
        b = ZP_SUPER_BACKOFF_MIN_US;
    else if (b < ZP_SUPER_BACKOFF_MIN_US)
        b = ZP_SUPER_BACKOFF_MIN_US;
    else if (b < ZP_SUPER_BACKOFF_MAX_US)
        b *= 2;
    return b > ZP_SUPER_BACKOFF_MAX_US ? ZP_SUPER_BACKOFF_MAX_US : b;
}

bool zp_super_futile(uint64_t deaths, size_t n_workers)
{
    return deaths > ZP_SUPER_FUTILE_PER_WORKER * (uint64_t)n_workers;
}

void zp_super_describe_exit(char *buf, size_t len, int status)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by %s", strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "stopped");
}

/* ---- the class ----------------------------------------------------------- */

zp_super_t *zp_super_new(const zp_super_ops_t *ops, const char *job,
                         bool sink_restartable)
{
    zp_super_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->ops = *ops;
    self->job = job;
    self->sink_restartable = sink_restartable;
    return self;
}

int zp_super_add(zp_super_t *self, zp_role_t role, char *const *argv)
{
    if (self->n_kids == self->cap_kids) {
        size_t cap = self->cap_kids ? self->cap_kids * 2 : 8;
        s_child_t *kids = realloc(self->kids, cap * sizeof *kids);
        if (!kids)
            return -1;
        self->kids = kids;
        self->cap_kids = cap;
    }
    self->kids[self->n_kids++] = (s_child_t){.role = role, .argv = argv};
    if (role == ZP_ROLE_WORKER)
        self->n_workers++;
    return 0;
}

void zp_super_destroy(zp_super_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->kids);
    free(*self_p);
    *self_p = NULL;
}

static bool s_legal(s_state_t from, s_state_t to)
{
    switch (from) {
    case S_NEW:
    case S_BACKOFF:
        return to == S_RUNNING || to == S_ENDED;
    case S_RUNNING:
        return to == S_BACKOFF || to == S_ENDED;
    default:
        return false;
    }
}

/* Moves c to state to; refuses an illegal move (a bug, so asserted). */
static int s_move(s_child_t *c, s_state_t to)
{
    if (!s_legal(c->state, to)) {
        assert(!"illegal supervisor child transition");
        return -1;
    }
    assert(to != S_RUNNING || c->pid > 0);
    c->state = to;
    return 0;
}

/* Starts (or restarts) c with the stdin it inherits; logs a failure. */
static int s_start(zp_super_t *self, s_child_t *c)
{
    c->pid = self->ops.spawn(self->ops.arg, c->argv, -1);
    if (c->pid < 0) {
        zp_error("cannot start the %s: %s", zp_role_name(c->role),
                 strerror(errno));
        s_move(c, S_ENDED);
        return -1;
    }
    s_move(c, S_RUNNING);
    c->started_us = self->ops.now_us(self->ops.arg);
    c->restart_at_us = 0;
    c->starts++;
    return 0;
}

int zp_super_start(zp_super_t *self, int worker_stdin)
{
    for (size_t i = 0; i < self->n_kids; i++) {
        s_child_t *c = &self->kids[i];
        if (c->role != ZP_ROLE_WORKER || worker_stdin < 0) {
            if (s_start(self, c) < 0)
                return -1;
            continue;
        }
        /* A worker's first start is not logged when it fails: the caller
         * says a process could not be started. */
        c->pid = self->ops.spawn(self->ops.arg, c->argv, worker_stdin);
        c->started_us = self->ops.now_us(self->ops.arg);
        c->starts++;
        if (c->pid <= 0) {
            s_move(c, S_ENDED);
            return -1;
        }
        s_move(c, S_RUNNING);
    }
    return 0;
}

/* Reaps c (RUNNING) if it ended; returns whether it did. The caller
 * moves it on. */
static bool s_reaped(zp_super_t *self, s_child_t *c, bool nohang)
{
    long rss = 0;
    if (self->ops.wait(self->ops.arg, c->pid, &c->status, nohang, &rss) !=
        c->pid)
        return false;
    if (rss > c->maxrss_kb)
        c->maxrss_kb = rss;
    return true;
}

/* c ended; schedules its restart or gives up (then fills ev). */
static int s_ended(zp_super_t *self, s_child_t *c, uint64_t now,
                   zp_super_event_t *ev)
{
    bool first_setup =
        c->starts == 1 && now - c->started_us < ZP_SUPER_SETUP_US;
    zp_super_verdict_t v = zp_super_verdict(
        c->role, c->status, self->sink_restartable, first_setup);
    if (v != ZP_SUPER_RESTART)
        s_move(c, S_ENDED);
    if (v == ZP_SUPER_IGNORE)
        return 0;
    if (v == ZP_SUPER_GIVE_UP) {
        *ev = (zp_super_event_t){ZP_SUPER_CHILD_FAILED, c->role, c->pid,
                                 c->status, 0};
        return -1;
    }
    /* Back off when it keeps dying young. */
    c->backoff_us = zp_super_backoff(now - c->started_us, c->backoff_us);
    c->restart_at_us = now + c->backoff_us;
    s_move(c, S_BACKOFF);
    if (c->role == ZP_ROLE_WORKER) {
        self->worker_restarts++;
        self->futile_restarts++;
    } else
        self->sink_restarts++;
    char why[96];
    zp_super_describe_exit(why, sizeof why, c->status);
    zp_warn("the %s (pid %d) %s; restarting it in %.1f s",
            zp_role_name(c->role), (int)c->pid, why,
            (double)c->backoff_us / 1e6);
    if (zp_super_futile(self->futile_restarts, self->n_workers)) {
        *ev = (zp_super_event_t){ZP_SUPER_FUTILE, c->role, c->pid, c->status,
                                 self->futile_restarts};
        return -1;
    }
    return 0;
}

int zp_super_tick(zp_super_t *self, uint64_t done, zp_super_event_t *ev)
{
    *ev = (zp_super_event_t){.state = ZP_SUPER_RUNNING};
    uint64_t now = self->ops.now_us(self->ops.arg);
    if (done != self->last_done) {
        self->last_done = done;
        self->futile_restarts = 0;
    }
    for (size_t i = 0; i < self->n_kids; i++) {
        s_child_t *c = &self->kids[i];
        if (c->state == S_BACKOFF && now >= c->restart_at_us) {
            if (s_start(self, c) < 0) {
                *ev = (zp_super_event_t){ZP_SUPER_START_FAILED, c->role, -1, 0,
                                         0};
                return -1;
            }
            zp_info("restarted the %s as pid %d", zp_role_name(c->role),
                    (int)c->pid);
        }
        if (c->state == S_RUNNING && s_reaped(self, c, true) &&
            s_ended(self, c, now, ev))
            return -1;
    }
    return 0;
}

void zp_super_explain(const zp_super_t *self, const zp_super_event_t *ev,
                      char *buf, size_t len)
{
    char why[96];
    if (len)
        buf[0] = '\0';
    if (ev->state == ZP_SUPER_CHILD_FAILED) {
        zp_super_describe_exit(why, sizeof why, ev->status);
        bool sink = ev->role == ZP_ROLE_SINK;
        int code = WIFEXITED(ev->status) ? WEXITSTATUS(ev->status) : -1;
        bool lost = sink && code == ZP_SUPER_SINK_EXIT_LOST;
        bool setup = sink && code == 3 && self->sink_restartable;
        snprintf(buf, len,
                 "\nzpipe run: the %s (pid %d) %s; job %s cannot complete%s\n",
                 zp_role_name(ev->role), (int)ev->pid, why, self->job,
                 lost    ? ": its output or journal was deleted, replaced or "
                           "damaged (the sink's message above names the file "
                           "and what to do)"
                 : setup ? ": it could not start (its message above says "
                           "why), and would fail the same way again"
                 : sink  ? " (it keeps no journal to restart from)"
                         : "");
    } else if (ev->state == ZP_SUPER_FUTILE)
        snprintf(buf, len,
                 "\nzpipe run: workers died %llu times in a row without the "
                 "job progressing; job %s cannot complete (see the messages "
                 "above)\n",
                 (unsigned long long)ev->restarts, self->job);
}

/* Reaps the running children of role that ended; fills pids with those
 * still running (when pids is not NULL) and returns how many there are. */
static size_t s_reap_role(zp_super_t *self, zp_role_t role, pid_t *pids)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n_kids; i++) {
        s_child_t *c = &self->kids[i];
        if (c->role != role || c->state != S_RUNNING)
            continue;
        if (s_reaped(self, c, true))
            s_move(c, S_ENDED);
        else if (pids)
            pids[n++] = c->pid;
        else
            n++;
    }
    return n;
}

/* Stops the running children of role: SIGTERM, a wait of up to
 * ZP_SUPER_GRACE_US for them to end, then SIGKILL (logged). pids has
 * room for every child, or is NULL (then the wait names none). */
static void s_stop_role(zp_super_t *self, zp_role_t role, pid_t *pids)
{
    const zp_super_ops_t *o = &self->ops;
    for (size_t i = 0; i < self->n_kids; i++)
        if (self->kids[i].role == role && self->kids[i].state == S_RUNNING) {
            self->kids[i].stopped = true;
            o->kill(o->arg, self->kids[i].pid, SIGTERM);
        }
    uint64_t until = o->now_us(o->arg) + ZP_SUPER_GRACE_US;
    for (;;) {
        size_t n = s_reap_role(self, role, pids);
        if (!n)
            return;
        uint64_t now = o->now_us(o->arg);
        if (now > until)
            break;
        o->await_us(o->arg, pids, pids ? n : 0, until - now + 1);
    }
    for (size_t i = 0; i < self->n_kids; i++) {
        s_child_t *c = &self->kids[i];
        if (c->role != role || c->state != S_RUNNING)
            continue;
        zp_warn("%s pid %d did not stop within 5 s; killing it",
                zp_role_name(c->role), (int)c->pid);
        o->kill(o->arg, c->pid, SIGKILL);
        c->killed = true;
        s_reaped(self, c, false);
        s_move(c, S_ENDED);
    }
}

int zp_super_stop(zp_super_t *self)
{
    pid_t *pids = calloc(self->n_kids ? self->n_kids : 1, sizeof *pids);
    s_stop_role(self, ZP_ROLE_VENTILATOR, pids);
    s_stop_role(self, ZP_ROLE_WORKER, pids);
    s_stop_role(self, ZP_ROLE_SINK, pids);
    free(pids);
    /* A sink asked to stop exits 0 (or dies of that SIGTERM, before it
     * handles signals); anything else is a failure it met as it stopped:
     * its last write or sync, its journal or output gone. */
    int rc = 0;
    for (size_t i = 0; i < self->n_kids; i++) {
        s_child_t *c = &self->kids[i];
        if (c->role != ZP_ROLE_SINK || !c->stopped)
            continue;
        bool clean =
            !c->killed &&
            ((WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0) ||
             (WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGTERM));
        if (!clean) {
            self->sink_stop_status = c->status;
            rc = -1;
        }
        c->stopped = false; /* told once */
    }
    return rc;
}

int zp_super_sink_stop_status(const zp_super_t *self)
{
    return self->sink_stop_status;
}

uint64_t zp_super_restarts(const zp_super_t *self, zp_role_t role)
{
    return role == ZP_ROLE_WORKER ? self->worker_restarts
           : role == ZP_ROLE_SINK ? self->sink_restarts
                                  : 0;
}

long zp_super_peak_rss(const zp_super_t *self, zp_role_t role)
{
    long rss = 0;
    for (size_t i = 0; i < self->n_kids; i++)
        if (self->kids[i].role == role && self->kids[i].maxrss_kb > rss)
            rss = self->kids[i].maxrss_kb;
    return rss;
}
