/* Tests for the supervisor of zpipe run's children (zpipe/supervisor.c),
 * driven by a fake process table and a fake clock, and for zpipe run's
 * exit status (zpipe/run_report.c). */
#define _GNU_SOURCE
#include "failalloc.h"
#include "run.h"
#include "supervisor.h"
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

/* ---- a fake process table and clock -------------------------------------- */

#define F_MAX 64

typedef struct {
    pid_t pid;
    char *const *argv;
    int stdin_fd;
    bool running, reaped;
    bool ignores_term; /* keeps running after SIGTERM */
    int term_status;   /* its status after SIGTERM (0: killed by it) */
    int status;        /* its wait status once it ended */
    long rss_kb;
} fake_proc_t;

typedef struct {
    fake_proc_t procs[F_MAX];
    size_t n;
    uint64_t now;
    bool spawn_fails;
    int signals[F_MAX]; /* every signal sent, in order */
    pid_t signalled[F_MAX];
    size_t n_signals;
    long next_rss;
} fake_t;

static fake_t F;

static int s_exited(int code)
{
    return (code & 0xff) << 8;
}

static int s_killed(int sig)
{
    return sig & 0x7f;
}

static fake_proc_t *s_proc(pid_t pid)
{
    for (size_t i = 0; i < F.n; i++)
        if (F.procs[i].pid == pid)
            return &F.procs[i];
    return NULL;
}

static pid_t s_fake_spawn(void *arg, char *const argv[], int stdin_fd)
{
    (void)arg;
    if (F.spawn_fails || F.n == F_MAX) {
        errno = EAGAIN;
        return -1;
    }
    fake_proc_t *p = &F.procs[F.n];
    *p = (fake_proc_t){.pid = (pid_t)(1000 + F.n),
                       .argv = argv,
                       .stdin_fd = stdin_fd,
                       .running = true,
                       .rss_kb = F.next_rss};
    F.n++;
    return p->pid;
}

/* The process ends with status. */
static void s_end(fake_proc_t *p, int status)
{
    p->running = false;
    p->status = status;
}

static int s_fake_kill(void *arg, pid_t pid, int sig)
{
    (void)arg;
    if (F.n_signals < F_MAX) {
        F.signalled[F.n_signals] = pid;
        F.signals[F.n_signals++] = sig;
    }
    fake_proc_t *p = s_proc(pid);
    if (!p || !p->running)
        return 0;
    if (sig == SIGTERM && p->term_status && !p->ignores_term)
        s_end(p, p->term_status);
    else if (sig == SIGKILL || !p->ignores_term)
        s_end(p, s_killed(sig));
    return 0;
}

static pid_t s_fake_wait(void *arg, pid_t pid, int *status, bool nohang,
                         long *maxrss_kb)
{
    (void)arg;
    fake_proc_t *p = s_proc(pid);
    if (!p || p->reaped)
        return -1;
    if (p->running)
        return nohang ? 0 : -1; /* a blocking wait on a live one: a bug */
    p->reaped = true;
    *status = p->status;
    *maxrss_kb = p->rss_kb;
    return pid;
}

static uint64_t s_fake_now(void *arg)
{
    (void)arg;
    return F.now;
}

/* Nothing ends while we wait: the time passes. */
static void s_fake_await(void *arg, const pid_t *pids, size_t n, uint64_t us)
{
    (void)arg;
    for (size_t i = 0; i < n; i++) /* only children still to reap */
        TEST_CHECK(s_proc(pids[i]) && !s_proc(pids[i])->reaped);
    F.now += us;
}

static const zp_super_ops_t s_fake_ops = {
    NULL, s_fake_spawn, s_fake_kill, s_fake_wait, s_fake_now, s_fake_await};

static char *s_sink_argv[] = {"zpipe-sink", NULL};
static char *s_vent_argv[] = {"zpipe-ventilator", NULL};
static char *s_worker_argv[] = {"zpipe-worker", NULL};

/* A started supervisor of a sink, a ventilator and n_workers workers. */
static zp_super_t *s_started(size_t n_workers, bool sink_restartable)
{
    F = (fake_t){.now = 1000000};
    zp_super_t *s = zp_super_new(&s_fake_ops, "job-x", sink_restartable);
    if (!s)
        return NULL;
    zp_super_add(s, ZP_ROLE_SINK, s_sink_argv);
    zp_super_add(s, ZP_ROLE_VENTILATOR, s_vent_argv);
    for (size_t i = 0; i < n_workers; i++)
        zp_super_add(s, ZP_ROLE_WORKER, s_worker_argv);
    if (zp_super_start(s, 7) < 0)
        zp_super_destroy(&s);
    return s;
}

/* The running process started from argv most recently. */
static fake_proc_t *s_latest(char **argv)
{
    for (size_t i = F.n; i-- > 0;)
        if (F.procs[i].argv == argv && F.procs[i].running)
            return &F.procs[i];
    return NULL;
}

/* ---- starting ------------------------------------------------------------ */

static void test_starts_in_order_and_workers_get_stdin(void)
{
    zp_super_t *s = s_started(2, false);
    TEST_CHECK(s);
    TEST_EQ_INT(F.n, 4);
    TEST_CHECK(F.procs[0].argv == s_sink_argv);
    TEST_CHECK(F.procs[1].argv == s_vent_argv);
    TEST_CHECK(F.procs[2].argv == s_worker_argv);
    TEST_EQ_INT(F.procs[0].stdin_fd, -1);
    TEST_EQ_INT(F.procs[1].stdin_fd, -1);
    TEST_EQ_INT(F.procs[2].stdin_fd, 7);
    TEST_EQ_INT(F.procs[3].stdin_fd, 7);
    zp_super_event_t ev;
    TEST_EQ_INT(zp_super_tick(s, 0, &ev), 0);
    TEST_EQ_INT(ev.state, ZP_SUPER_RUNNING);
    TEST_EQ_INT(F.n, 4);
    zp_super_stop(s);
    zp_super_destroy(&s);
    TEST_CHECK(s == NULL);
}

static void test_start_fails_when_a_spawn_fails(void)
{
    F = (fake_t){.spawn_fails = true};
    zp_super_t *s = zp_super_new(&s_fake_ops, "job-x", false);
    TEST_CHECK(s);
    zp_super_add(s, ZP_ROLE_SINK, s_sink_argv);
    TEST_EQ_INT(zp_super_start(s, -1), -1);
    zp_super_stop(s); /* nothing to stop */
    TEST_EQ_INT(F.n_signals, 0);
    zp_super_destroy(&s);
}

/* ---- restarting ---------------------------------------------------------- */

static void test_backoff_policy(void)
{
    TEST_EQ_INT(zp_super_backoff(0, 0), 100000);
    TEST_EQ_INT(zp_super_backoff(1000, 100000), 200000);
    TEST_EQ_INT(zp_super_backoff(1000, 200000), 400000);
    TEST_EQ_INT(zp_super_backoff(1000, 3200000), 5000000);
    TEST_EQ_INT(zp_super_backoff(1000, 5000000), 5000000);
    /* a child that lived 10 s was fine: start over */
    TEST_EQ_INT(zp_super_backoff(10000000, 5000000), 100000);
    TEST_EQ_INT(zp_super_backoff(9999999, 5000000), 5000000);
}

static void test_backoff_grows_between_restarts_of_a_crashing_child(void)
{
    zp_super_t *s = s_started(1, false);
    TEST_CHECK(s);
    zp_super_event_t ev;
    uint64_t expect[] = {100000,  200000,  400000,  800000,
                         1600000, 3200000, 5000000, 5000000};
    for (size_t k = 0; k < sizeof expect / sizeof *expect; k++) {
        s_end(s_latest(s_worker_argv), s_killed(SIGSEGV));
        /* progress between deaths: never futile */
        TEST_EQ_INT(zp_super_tick(s, k + 1, &ev), 0);
        size_t spawned = F.n;
        F.now += expect[k] - 1;
        TEST_EQ_INT(zp_super_tick(s, k + 1, &ev), 0);
        TEST_EQ_INT(F.n, spawned); /* not yet */
        F.now += 1;
        TEST_EQ_INT(zp_super_tick(s, k + 1, &ev), 0);
        TEST_EQ_INT(F.n, spawned + 1); /* restarted, inheriting stdin */
        TEST_EQ_INT(F.procs[F.n - 1].stdin_fd, -1);
    }
    TEST_EQ_INT(zp_super_restarts(s, ZP_ROLE_WORKER), 8);
    TEST_EQ_INT(zp_super_restarts(s, ZP_ROLE_SINK), 0);
    /* one that lived 10 s starts over at the minimum */
    F.now += ZP_SUPER_STABLE_US;
    s_end(s_latest(s_worker_argv), s_exited(1));
    TEST_EQ_INT(zp_super_tick(s, 100, &ev), 0);
    size_t spawned = F.n;
    F.now += 100000;
    TEST_EQ_INT(zp_super_tick(s, 100, &ev), 0);
    TEST_EQ_INT(F.n, spawned + 1);
    zp_super_stop(s);
    zp_super_destroy(&s);
}

static void test_a_child_that_crashes_too_often_is_given_up(void)
{
    zp_super_t *s = s_started(2, false);
    TEST_CHECK(s);
    zp_super_event_t ev;
    /* 3 deaths per worker without progress are tolerated: 6 of them */
    for (int k = 0; k < 6; k++) {
        s_end(s_latest(s_worker_argv), s_killed(SIGABRT));
        TEST_EQ_INT(zp_super_tick(s, 5, &ev), 0);
        F.now += ZP_SUPER_BACKOFF_MAX_US;
        TEST_EQ_INT(zp_super_tick(s, 5, &ev), 0);
    }
    s_end(s_latest(s_worker_argv), s_killed(SIGABRT));
    TEST_EQ_INT(zp_super_tick(s, 5, &ev), -1);
    TEST_EQ_INT(ev.state, ZP_SUPER_FUTILE);
    TEST_EQ_INT(ev.restarts, 7);
    char why[512];
    zp_super_explain(s, &ev, why, sizeof why);
    TEST_EQ_STR(why, "\nzpipe run: workers died 7 times in a row without the "
                     "job progressing; job job-x cannot complete (see the "
                     "messages above)\n");
    zp_super_stop(s);
    zp_super_destroy(&s);
}

static void test_progress_resets_futility(void)
{
    zp_super_t *s = s_started(1, false);
    TEST_CHECK(s);
    zp_super_event_t ev;
    uint64_t done = 0;
    for (int k = 0; k < 20; k++) {
        s_end(s_latest(s_worker_argv), s_exited(2));
        /* three deaths, then one task more */
        if (k % 3 == 0)
            done++;
        TEST_EQ_INT(zp_super_tick(s, done, &ev), 0);
        F.now += ZP_SUPER_BACKOFF_MAX_US;
        TEST_EQ_INT(zp_super_tick(s, done, &ev), 0);
    }
    TEST_EQ_INT(zp_super_restarts(s, ZP_ROLE_WORKER), 20);
    zp_super_stop(s);
    zp_super_destroy(&s);
}

static void test_a_clean_ventilator_exit_is_not_restarted(void)
{
    for (int code = 0; code <= 1; code++) {
        zp_super_t *s = s_started(1, false);
        TEST_CHECK(s);
        s_end(s_latest(s_vent_argv), s_exited(code));
        zp_super_event_t ev;
        TEST_EQ_INT(zp_super_tick(s, 0, &ev), 0);
        F.now += 60000000;
        TEST_EQ_INT(zp_super_tick(s, 0, &ev), 0);
        TEST_EQ_INT(F.n, 3); /* not restarted */
        TEST_CHECK(s_latest(s_vent_argv) == NULL);
        zp_super_stop(s);
        zp_super_destroy(&s);
    }
}

static void test_a_failed_ventilator_ends_the_job(void)
{
    zp_super_t *s = s_started(1, false);
    TEST_CHECK(s);
    fake_proc_t *v = s_latest(s_vent_argv);
    s_end(v, s_exited(3));
    zp_super_event_t ev;
    TEST_EQ_INT(zp_super_tick(s, 0, &ev), -1);
    TEST_EQ_INT(ev.state, ZP_SUPER_CHILD_FAILED);
    TEST_EQ_INT(ev.role, ZP_ROLE_VENTILATOR);
    char why[512], expect[256];
    zp_super_explain(s, &ev, why, sizeof why);
    snprintf(expect, sizeof expect,
             "\nzpipe run: the ventilator (pid %d) exited with status 3; job "
             "job-x cannot complete\n",
             (int)v->pid);
    TEST_EQ_STR(why, expect);
    zp_super_stop(s);
    zp_super_destroy(&s);
}

static void test_a_dead_sink_without_journal_ends_the_job(void)
{
    zp_super_t *s = s_started(1, false);
    TEST_CHECK(s);
    fake_proc_t *k = s_latest(s_sink_argv);
    s_end(k, s_killed(SIGKILL));
    zp_super_event_t ev;
    TEST_EQ_INT(zp_super_tick(s, 0, &ev), -1);
    TEST_EQ_INT(ev.state, ZP_SUPER_CHILD_FAILED);
    char why[512], expect[256];
    zp_super_explain(s, &ev, why, sizeof why);
    snprintf(expect, sizeof expect,
             "\nzpipe run: the sink (pid %d) was killed by %s; job job-x "
             "cannot complete (it keeps no journal to restart from)\n",
             (int)k->pid, strsignal(SIGKILL));
    TEST_EQ_STR(why, expect);
    zp_super_stop(s);
    zp_super_destroy(&s);
}

static void test_a_dead_sink_with_journal_is_restarted(void)
{
    zp_super_t *s = s_started(1, true);
    TEST_CHECK(s);
    s_end(s_latest(s_sink_argv), s_killed(SIGKILL));
    zp_super_event_t ev;
    TEST_EQ_INT(zp_super_tick(s, 0, &ev), 0);
    F.now += ZP_SUPER_BACKOFF_MIN_US;
    TEST_EQ_INT(zp_super_tick(s, 0, &ev), 0);
    TEST_CHECK(s_latest(s_sink_argv) != NULL);
    TEST_EQ_INT(zp_super_restarts(s, ZP_ROLE_SINK), 1);
    TEST_EQ_INT(zp_super_restarts(s, ZP_ROLE_WORKER), 0);
    zp_super_stop(s);
    zp_super_destroy(&s);
}

static void test_a_restart_that_cannot_start_ends_the_job(void)
{
    zp_super_t *s = s_started(1, false);
    TEST_CHECK(s);
    s_end(s_latest(s_worker_argv), s_exited(1));
    zp_super_event_t ev;
    TEST_EQ_INT(zp_super_tick(s, 0, &ev), 0);
    F.spawn_fails = true;
    F.now += ZP_SUPER_BACKOFF_MIN_US;
    TEST_EQ_INT(zp_super_tick(s, 0, &ev), -1);
    TEST_EQ_INT(ev.state, ZP_SUPER_START_FAILED);
    char why[64] = "x";
    zp_super_explain(s, &ev, why, sizeof why);
    TEST_EQ_STR(why, ""); /* logged when it failed; nothing more to say */
    zp_super_stop(s);
    zp_super_destroy(&s);
}

/* ---- stopping ------------------------------------------------------------ */

static void test_stop_sends_sigterm_then_sigkill_after_the_grace(void)
{
    zp_super_t *s = s_started(2, false);
    TEST_CHECK(s);
    fake_proc_t *stubborn = &F.procs[3];
    stubborn->ignores_term = true;
    uint64_t t0 = F.now;
    zp_super_stop(s);
    /* the ventilator; the workers, the stubborn one killed; the sink */
    TEST_EQ_INT(F.n_signals, 5);
    int want[] = {SIGTERM, SIGTERM, SIGTERM, SIGKILL, SIGTERM};
    for (size_t i = 0; i < 5; i++)
        TEST_EQ_INT(F.signals[i], want[i]);
    TEST_EQ_INT(F.signalled[3], stubborn->pid);
    TEST_EQ_INT(F.signalled[4], F.procs[0].pid); /* the sink, last */
    TEST_CHECK(F.now - t0 > ZP_SUPER_GRACE_US);
    TEST_CHECK(F.now - t0 <= ZP_SUPER_GRACE_US + 2 * ZP_SUPER_POLL_US);
    for (size_t i = 0; i < F.n; i++)
        TEST_CHECK(F.procs[i].reaped);
    zp_super_destroy(&s);
}

/* A sink that fails as it stops (its last flush, its journal deleted)
 * makes the stop fail; one that exits 0, or dies of the SIGTERM it was
 * sent, does not; so does a worker's failure not. */
static void test_stop_reports_a_sink_that_failed_as_it_stopped(void)
{
    zp_super_t *s = s_started(2, true);
    TEST_CHECK(s);
    F.procs[0].term_status = s_exited(0);
    F.procs[2].term_status = s_exited(3); /* a worker: not the sink's */
    TEST_EQ_INT(zp_super_stop(s), 0);
    TEST_EQ_INT(zp_super_stop(s), 0); /* again: nothing more */
    zp_super_destroy(&s);

    s = s_started(2, true);
    TEST_CHECK(s);
    TEST_EQ_INT(zp_super_stop(s), 0); /* died of the SIGTERM */
    zp_super_destroy(&s);

    s = s_started(2, true);
    TEST_CHECK(s);
    F.procs[0].term_status = s_exited(3);
    TEST_EQ_INT(zp_super_stop(s), -1);
    TEST_EQ_INT(zp_super_sink_stop_status(s), s_exited(3));
    TEST_EQ_INT(zp_super_stop(s), 0); /* told once */
    zp_super_destroy(&s);

    s = s_started(1, true);
    TEST_CHECK(s);
    F.procs[0].ignores_term = true; /* needs SIGKILL */
    TEST_EQ_INT(zp_super_stop(s), -1);
    TEST_EQ_INT(zp_super_sink_stop_status(s), s_killed(SIGKILL));
    zp_super_destroy(&s);
}

static void test_stop_needs_no_sigkill_when_children_obey(void)
{
    zp_super_t *s = s_started(2, false);
    TEST_CHECK(s);
    uint64_t t0 = F.now;
    zp_super_stop(s);
    TEST_EQ_INT(F.n_signals, 4);
    for (size_t i = 0; i < F.n_signals; i++)
        TEST_EQ_INT(F.signals[i], SIGTERM);
    TEST_EQ_INT(F.now, t0);
    /* a second stop sends nothing: all are reaped */
    zp_super_stop(s);
    TEST_EQ_INT(F.n_signals, 4);
    zp_super_destroy(&s);
}

/* The ventilator first (the workers then find it gone and do not wait
 * to say bye), the sink last (the workers' last results reach it). */
static void test_stop_order_is_ventilator_workers_sink(void)
{
    zp_super_t *s = s_started(2, false);
    TEST_CHECK(s);
    zp_super_stop(s);
    TEST_EQ_INT(F.n_signals, 4);
    pid_t want[] = {F.procs[1].pid, F.procs[2].pid, F.procs[3].pid,
                    F.procs[0].pid};
    for (size_t i = 0; i < 4; i++)
        TEST_EQ_INT(F.signalled[i], want[i]);
    TEST_CHECK(F.procs[0].argv == s_sink_argv &&
               F.procs[1].argv == s_vent_argv);
    zp_super_destroy(&s);
}

static void test_stop_skips_the_dead_and_reaped(void)
{
    zp_super_t *s = s_started(1, false);
    TEST_CHECK(s);
    s_end(s_latest(s_vent_argv), s_exited(0));
    zp_super_event_t ev;
    TEST_EQ_INT(zp_super_tick(s, 0, &ev), 0);
    zp_super_stop(s);
    TEST_EQ_INT(F.n_signals, 2); /* the sink and the worker */
    zp_super_destroy(&s);
}

static void test_peak_rss_is_the_largest_of_a_role(void)
{
    zp_super_t *s = s_started(0, false);
    TEST_CHECK(s);
    F.next_rss = 500;
    zp_super_add(s, ZP_ROLE_WORKER, s_worker_argv);
    /* a worker added after the start is not running: peak RSS counts
     * what was reaped */
    F.procs[0].rss_kb = 300;
    F.procs[1].rss_kb = 200;
    zp_super_stop(s);
    TEST_EQ_INT(zp_super_peak_rss(s, ZP_ROLE_SINK), 300);
    TEST_EQ_INT(zp_super_peak_rss(s, ZP_ROLE_VENTILATOR), 200);
    TEST_EQ_INT(zp_super_peak_rss(s, ZP_ROLE_WORKER), 0);
    zp_super_destroy(&s);
}

/* ---- exits --------------------------------------------------------------- */

static void test_verdicts(void)
{
    TEST_EQ_INT(zp_super_verdict(ZP_ROLE_VENTILATOR, s_exited(0), false, false),
                ZP_SUPER_IGNORE);
    TEST_EQ_INT(zp_super_verdict(ZP_ROLE_VENTILATOR, s_exited(1), true, false),
                ZP_SUPER_IGNORE);
    TEST_EQ_INT(zp_super_verdict(ZP_ROLE_VENTILATOR, s_exited(2), true, false),
                ZP_SUPER_GIVE_UP);
    TEST_EQ_INT(
        zp_super_verdict(ZP_ROLE_VENTILATOR, s_killed(SIGTERM), true, false),
        ZP_SUPER_GIVE_UP);
    TEST_EQ_INT(zp_super_verdict(ZP_ROLE_WORKER, s_exited(0), false, false),
                ZP_SUPER_RESTART);
    TEST_EQ_INT(
        zp_super_verdict(ZP_ROLE_WORKER, s_killed(SIGSEGV), false, false),
        ZP_SUPER_RESTART);
    TEST_EQ_INT(zp_super_verdict(ZP_ROLE_SINK, s_exited(0), false, false),
                ZP_SUPER_GIVE_UP);
    TEST_EQ_INT(zp_super_verdict(ZP_ROLE_SINK, s_exited(0), true, false),
                ZP_SUPER_RESTART);
    /* A sink that refused a damaged journal would refuse again. */
    TEST_EQ_INT(zp_super_verdict(ZP_ROLE_SINK,
                                 s_exited(ZP_SUPER_SINK_EXIT_LOST), true,
                                 false),
                ZP_SUPER_GIVE_UP);
    /* A sink that could not set up at its first start would fail again;
     * later, or after it ran a while, set-up failures are restarted. */
    TEST_EQ_INT(zp_super_verdict(ZP_ROLE_SINK, s_exited(3), true, true),
                ZP_SUPER_GIVE_UP);
    TEST_EQ_INT(zp_super_verdict(ZP_ROLE_SINK, s_exited(3), true, false),
                ZP_SUPER_RESTART);
    TEST_EQ_INT(zp_super_verdict(ZP_ROLE_SINK, s_killed(SIGKILL), true, true),
                ZP_SUPER_RESTART);
    TEST_EQ_INT(zp_super_verdict(ZP_ROLE_WORKER, s_exited(3), false, true),
                ZP_SUPER_RESTART);
    TEST_CHECK(!zp_super_futile(6, 2));
    TEST_CHECK(zp_super_futile(7, 2));
}

/* The sink of a run with a journal exits 3 at once (say, -o names a
 * folder that does not exist): the run ends instead of restarting it
 * forever; the same exit after it ran ZP_SUPER_SETUP_US is restarted. */
static void test_a_sink_that_cannot_set_up_ends_the_job(void)
{
    zp_super_t *s = s_started(1, true);
    TEST_CHECK(s);
    F.now += ZP_SUPER_SETUP_US / 2;
    s_end(s_latest(s_sink_argv), s_exited(3));
    zp_super_event_t ev;
    TEST_EQ_INT(zp_super_tick(s, 0, &ev), -1);
    TEST_EQ_INT(ev.state, ZP_SUPER_CHILD_FAILED);
    TEST_EQ_INT(ev.role, ZP_ROLE_SINK);
    TEST_EQ_INT(zp_super_restarts(s, ZP_ROLE_SINK), 0);
    char why[512];
    zp_super_explain(s, &ev, why, sizeof why);
    TEST_CHECK(strstr(why, "could not start") != NULL);
    zp_super_stop(s);
    zp_super_destroy(&s);
    s = s_started(1, true);
    F.now += ZP_SUPER_SETUP_US;
    s_end(s_latest(s_sink_argv), s_exited(3));
    TEST_EQ_INT(zp_super_tick(s, 0, &ev), 0);
    TEST_EQ_INT(zp_super_restarts(s, ZP_ROLE_SINK), 1);
    zp_super_stop(s);
    zp_super_destroy(&s);
}

static void test_exit_descriptions(void)
{
    char buf[96];
    zp_super_describe_exit(buf, sizeof buf, s_exited(3));
    TEST_EQ_STR(buf, "exited with status 3");
    zp_super_describe_exit(buf, sizeof buf, s_killed(SIGSEGV));
    char expect[96];
    snprintf(expect, sizeof expect, "was killed by %s", strsignal(SIGSEGV));
    TEST_EQ_STR(buf, expect);
    zp_super_describe_exit(buf, sizeof buf, 0x137f); /* stopped by SIGSTOP */
    TEST_EQ_STR(buf, "stopped");
    TEST_EQ_STR(zp_role_name(ZP_ROLE_SINK), "sink");
    TEST_EQ_STR(zp_role_name(ZP_ROLE_VENTILATOR), "ventilator");
    TEST_EQ_STR(zp_role_name(ZP_ROLE_WORKER), "worker");
}

static void test_run_exit_codes(void)
{
    Zpipe__V1__JobStatus st = ZPIPE__V1__JOB_STATUS__INIT;
    st.total = 10;
    st.succeeded = 10;
    TEST_EQ_INT(zp_run_exit_code(ZP_RUN_DONE, &st, false, 0), 0);
    TEST_EQ_INT(zp_run_exit_code(ZP_RUN_DONE, &st, true, 0), 1);
    st.succeeded = 8;
    st.failed = 2;
    TEST_EQ_INT(zp_run_exit_code(ZP_RUN_DONE, &st, false, 0), 1);
    st.failed = 1; /* the accounting does not balance */
    TEST_EQ_INT(zp_run_exit_code(ZP_RUN_DONE, &st, false, 0), 3);
    TEST_EQ_INT(zp_run_exit_code(ZP_RUN_DONE, &st, true, 0), 3);
    TEST_EQ_INT(zp_run_exit_code(ZP_RUN_INTERRUPTED, &st, false, SIGINT), 130);
    TEST_EQ_INT(zp_run_exit_code(ZP_RUN_INTERRUPTED, &st, false, SIGTERM), 143);
    TEST_EQ_INT(zp_run_exit_code(ZP_RUN_FAILED, &st, false, 0), 3);
}

/* ---- allocation failures ------------------------------------------------- */

static void s_scenario_new_add_destroy(void *arg)
{
    (void)arg;
    zp_super_t *s = zp_super_new(&s_fake_ops, "job-x", false);
    if (!s)
        return;
    if (zp_super_add(s, ZP_ROLE_SINK, s_sink_argv) == 0 &&
        zp_super_add(s, ZP_ROLE_VENTILATOR, s_vent_argv) == 0)
        for (int i = 0; i < 20; i++)
            if (zp_super_add(s, ZP_ROLE_WORKER, s_worker_argv) < 0)
                break;
    zp_super_destroy(&s);
}

static void test_allocation_failures(void)
{
    /* new, then the child table's first allocation and its growth */
    long runs = failalloc_sweep(s_scenario_new_add_destroy, NULL);
    TEST_CHECK(runs >= 3);
}

static const test_case_t tests[] = {
    {"test_starts_in_order_and_workers_get_stdin",
     test_starts_in_order_and_workers_get_stdin},
    {"test_start_fails_when_a_spawn_fails",
     test_start_fails_when_a_spawn_fails},
    {"test_backoff_policy", test_backoff_policy},
    {"test_backoff_grows_between_restarts_of_a_crashing_child",
     test_backoff_grows_between_restarts_of_a_crashing_child},
    {"test_a_child_that_crashes_too_often_is_given_up",
     test_a_child_that_crashes_too_often_is_given_up},
    {"test_progress_resets_futility", test_progress_resets_futility},
    {"test_a_clean_ventilator_exit_is_not_restarted",
     test_a_clean_ventilator_exit_is_not_restarted},
    {"test_a_failed_ventilator_ends_the_job",
     test_a_failed_ventilator_ends_the_job},
    {"test_a_dead_sink_without_journal_ends_the_job",
     test_a_dead_sink_without_journal_ends_the_job},
    {"test_a_dead_sink_with_journal_is_restarted",
     test_a_dead_sink_with_journal_is_restarted},
    {"test_a_restart_that_cannot_start_ends_the_job",
     test_a_restart_that_cannot_start_ends_the_job},
    {"test_stop_order_is_ventilator_workers_sink",
     test_stop_order_is_ventilator_workers_sink},
    {"test_stop_sends_sigterm_then_sigkill_after_the_grace",
     test_stop_sends_sigterm_then_sigkill_after_the_grace},
    {"test_stop_reports_a_sink_that_failed_as_it_stopped",
     test_stop_reports_a_sink_that_failed_as_it_stopped},
    {"test_stop_needs_no_sigkill_when_children_obey",
     test_stop_needs_no_sigkill_when_children_obey},
    {"test_stop_skips_the_dead_and_reaped",
     test_stop_skips_the_dead_and_reaped},
    {"test_peak_rss_is_the_largest_of_a_role",
     test_peak_rss_is_the_largest_of_a_role},
    {"test_verdicts", test_verdicts},
    {"test_a_sink_that_cannot_set_up_ends_the_job",
     test_a_sink_that_cannot_set_up_ends_the_job},
    {"test_exit_descriptions", test_exit_descriptions},
    {"test_run_exit_codes", test_run_exit_codes},
    {"test_allocation_failures", test_allocation_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
