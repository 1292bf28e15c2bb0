/* Tests for vent_sched (with vent_workers and vent_tasks): fair share
 * with a slow and a late worker, priority turns, credit and batch sizing,
 * how much input a dispatch round needs. A dispatch round here is the
 * shell's loop without the socket. */
#include "test.h"
#include "vent_sched.h"
#include "vent_tasks.h"

#include <stdlib.h>

typedef struct {
    zp_vent_jobs_t *jobs;
    zp_vent_tasks_t *tasks;
    zp_vent_workers_t *workers;
    zp_vent_sched_t sched;
    uint64_t batch;
} s_world_t;

static void s_world(s_world_t *w, uint64_t batch)
{
    memset(w, 0, sizeof *w);
    w->jobs = zp_vent_jobs_new(0, 3, 0);
    w->tasks = zp_vent_tasks_new(0, 1 << 30, false);
    w->workers = zp_vent_workers_new(0);
    w->batch = batch;
}

static void s_world_free(s_world_t *w)
{
    zp_vent_tasks_destroy(&w->tasks);
    zp_vent_jobs_destroy(&w->jobs);
    zp_vent_workers_destroy(&w->workers);
}

static zp_vent_worker_t *s_worker(s_world_t *w, const char *id, uint64_t window,
                                  uint64_t credit, const char *plugin)
{
    char *plugins[2] = {(char *)plugin, (char *)"sha256"};
    Zpipe__V1__Hello h = ZPIPE__V1__HELLO__INIT;
    h.worker_id = (char *)id;
    h.window = window;
    h.credit = credit;
    h.plugins = plugins;
    h.n_plugins = 2;
    return zp_vent_workers_add(w->workers, id, strlen(id), &h, 1);
}

/* An open job of n queued tasks; input: more may come (a file job whose
 * end is not reached). */
static zp_vent_job_t *s_job(s_world_t *w, const char *id, uint32_t priority,
                            int n, bool input)
{
    zp_vent_job_t *j = zp_vent_jobs_add(w->jobs, id, "echo");
    zp_vent_job_to(j, ZP_VENT_JOB_OPEN);
    j->priority = priority;
    j->has_input = input;
    for (int i = 0; i < n; i++)
        zp_vent_tasks_add(w->tasks, j, "t", 1, 0);
    return j;
}

/* One dispatch round as the shell runs it: returns the tasks sent. */
static size_t s_round(s_world_t *w)
{
    size_t total = 0;
    zp_vent_task_t *out[4096];
    for (;;) {
        size_t nw = zp_vent_workers_count(w->workers), k, n = 0;
        for (k = 0; k < nw; k++) {
            zp_vent_worker_t *wk =
                zp_vent_workers_at(w->workers, (w->sched.rr + k) % nw);
            if (!wk->credit)
                continue;
            zp_vent_job_t *j = zp_vent_sched_pick(
                &w->sched, zp_vent_jobs_first(w->jobs), wk, true);
            if (!j)
                continue;
            size_t max = zp_vent_sched_batch(wk->credit, w->batch);
            size_t share = zp_vent_sched_fair_share(j, w->workers);
            n = zp_vent_tasks_collect(w->tasks, j, share < max ? share : max,
                                      1 << 30, out);
            if (!n)
                continue;
            zp_vent_sched_served(&w->sched, k, nw, j);
            for (size_t i = 0; i < n; i++)
                out[i]->state = ZP_VENT_INFLIGHT;
            zp_vent_worker_sent(wk, n);
            break;
        }
        if (!n)
            return total;
        total += n;
    }
}

static void test_batch_is_credit_capped_by_batch(void)
{
    TEST_EQ_INT(zp_vent_sched_batch(5, 1024), 5);
    TEST_EQ_INT(zp_vent_sched_batch(5000, 1024), 1024);
    TEST_EQ_INT(zp_vent_sched_batch(0, 1024), 0);
    /* --batch 0: half a worker's window under credit, 1,024 under push */
    TEST_EQ_INT(zp_vent_sched_batch_max(0, false), 2048);
    TEST_EQ_INT(zp_vent_sched_batch_max(0, true), 1024);
    TEST_EQ_INT(zp_vent_sched_batch_max(7, false), 7);
    TEST_EQ_INT(zp_vent_sched_batch_max(7, true), 7);
}

static void test_credit_clamped_to_window(void)
{
    s_world_t w;
    s_world(&w, 1024);
    zp_vent_worker_t *a = s_worker(&w, "a", 8, 20, "echo");
    TEST_EQ_INT(a->credit, 8); /* a first grant over the window */
    zp_vent_worker_sent(a, 6);
    TEST_EQ_INT(zp_vent_worker_credit(a, 4, 5), 0);
    TEST_EQ_INT(a->credit, 6);
    TEST_EQ_INT(zp_vent_worker_credit(a, 5, 6), 3); /* 3 over: clamped */
    TEST_EQ_INT(a->credit, 8);
    TEST_EQ_INT(a->last_progress_us, 6);
    TEST_EQ_INT(a->sent, 6);
    s_world_free(&w);
}

static void test_credit_sizes_batches(void)
{
    s_world_t w;
    s_world(&w, 16);
    zp_vent_worker_t *a = s_worker(&w, "a", 40, 40, "echo");
    s_job(&w, "j", 0, 100, true); /* more input coming: no fair share */
    TEST_EQ_INT(s_round(&w), 40); /* three batches: 16, 16, 8 */
    TEST_EQ_INT(a->credit, 0);
    TEST_EQ_INT(a->sent, 40);
    TEST_EQ_INT(s_round(&w), 0); /* no credit, nothing sent */
    zp_vent_worker_credit(a, 10, 2);
    TEST_EQ_INT(s_round(&w), 10);
    s_world_free(&w);
}

/* A short job, all of it known: no worker takes it all while another
 * with credit idles. */
static void test_fair_share_splits_a_short_job(void)
{
    s_world_t w;
    s_world(&w, 1024);
    s_worker(&w, "a", 100, 100, "echo");
    s_worker(&w, "b", 100, 100, "echo");
    /* (adding a worker may move the others) */
    zp_vent_worker_t *a = zp_vent_workers_at(w.workers, 0);
    zp_vent_worker_t *b = zp_vent_workers_at(w.workers, 1);
    zp_vent_job_t *j = s_job(&w, "j", 0, 10, false);
    TEST_EQ_INT(zp_vent_sched_fair_share(j, w.workers), 5);
    TEST_EQ_INT(s_round(&w), 10);
    TEST_EQ_INT(a->sent, 6); /* 5, then 1 */
    TEST_EQ_INT(b->sent, 4); /* 3, then 1 */
    s_world_free(&w);
}

/* A slow worker (its window nearly full: credit 1) takes what its credit
 * allows; once it has none, the fast one is the only taker. */
static void test_fair_share_with_a_slow_worker(void)
{
    s_world_t w;
    s_world(&w, 1024);
    s_worker(&w, "fast", 100, 100, "echo");
    s_worker(&w, "slow", 100, 1, "echo");
    zp_vent_worker_t *fast = zp_vent_workers_at(w.workers, 0);
    zp_vent_worker_t *slow = zp_vent_workers_at(w.workers, 1);
    s_job(&w, "j", 0, 10, false);
    TEST_EQ_INT(s_round(&w), 10);
    TEST_EQ_INT(slow->sent, 1);
    TEST_EQ_INT(fast->sent, 9);
    s_world_free(&w);
}

/* A worker that joins late still gets its share of what is left. */
static void test_fair_share_with_a_late_worker(void)
{
    s_world_t w;
    s_world(&w, 1024);
    zp_vent_worker_t *a = s_worker(&w, "a", 4, 4, "echo");
    s_job(&w, "j", 0, 20, false);
    TEST_EQ_INT(s_round(&w), 4); /* alone: as much as its credit */
    TEST_EQ_INT(a->sent, 4);
    zp_vent_worker_t *late = s_worker(&w, "late", 100, 100, "echo");
    a = zp_vent_workers_at(w.workers, 0);
    zp_vent_worker_credit(a, 4, 2);
    TEST_EQ_INT(s_round(&w), 16);
    TEST_EQ_INT(a->sent, 8);     /* its credit: 4 more */
    TEST_EQ_INT(late->sent, 12); /* the rest */
    s_world_free(&w);
}

/* More input coming: batches as big as credit (the share is unknown). */
static void test_no_fair_share_while_input_goes_on(void)
{
    s_world_t w;
    s_world(&w, 1024);
    s_worker(&w, "a", 100, 100, "echo");
    s_worker(&w, "b", 100, 100, "echo");
    zp_vent_job_t *j = s_job(&w, "j", 0, 10, true);
    TEST_EQ_INT(zp_vent_sched_fair_share(j, w.workers), SIZE_MAX);
    j->in.eof = true;
    TEST_EQ_INT(zp_vent_sched_fair_share(j, w.workers), 5);
    s_world_free(&w);
}

static void test_priority_first_then_turns(void)
{
    s_world_t w;
    s_world(&w, 1024);
    zp_vent_job_t *a = s_job(&w, "a", 0, 5, false);
    zp_vent_job_t *b = s_job(&w, "b", 0, 5, false);
    zp_vent_job_t *c = s_job(&w, "c", 5, 1, false);
    zp_vent_job_t *first = zp_vent_jobs_first(w.jobs);
    /* Higher priority first, wherever it is in the list. */
    TEST_CHECK(zp_vent_sched_pick(&w.sched, first, NULL, true) == c);
    zp_vent_task_t *out[8];
    TEST_EQ_INT(zp_vent_tasks_collect(w.tasks, c, 8, 1 << 20, out), 1);
    /* Equal priorities take turns: the first after the one served. */
    zp_vent_sched_served(&w.sched, 0, 0, c);
    TEST_CHECK(zp_vent_sched_pick(&w.sched, first, NULL, true) == a);
    zp_vent_sched_served(&w.sched, 0, 0, a);
    TEST_CHECK(zp_vent_sched_pick(&w.sched, first, NULL, true) == b);
    zp_vent_sched_served(&w.sched, 0, 0, b);
    TEST_CHECK(zp_vent_sched_pick(&w.sched, first, NULL, true) == a);
    /* A job not open at the sink is not served. */
    zp_vent_job_t *d = zp_vent_jobs_add(w.jobs, "d", "echo");
    d->priority = 9;
    zp_vent_tasks_add(w.tasks, d, "t", 1, 0);
    TEST_CHECK(zp_vent_sched_pick(&w.sched, first, NULL, true) == a);
    s_world_free(&w);
}

static void test_pick_needs_the_plugin(void)
{
    s_world_t w;
    s_world(&w, 1024);
    s_worker(&w, "x", 10, 10, "other");
    s_worker(&w, "e", 10, 10, "echo");
    zp_vent_worker_t *x = zp_vent_workers_at(w.workers, 0);
    zp_vent_worker_t *e = zp_vent_workers_at(w.workers, 1);
    zp_vent_job_t *j = s_job(&w, "j", 0, 5, false);
    zp_vent_job_t *first = zp_vent_jobs_first(w.jobs);
    TEST_CHECK(zp_vent_sched_pick(&w.sched, first, x, true) == NULL);
    TEST_CHECK(zp_vent_sched_pick(&w.sched, first, e, true) == j);
    TEST_EQ_INT(zp_vent_sched_free_credit(w.workers, j), 10);
    s_world_free(&w);
}

/* Input to read before a round: the credit of every worker that may
 * serve the file job in it. */
static void test_refill_want(void)
{
    s_world_t w;
    s_world(&w, 1024);
    s_worker(&w, "a", 10, 10, "echo");
    s_worker(&w, "b", 5, 5, "other");
    s_worker(&w, "c", 7, 7, "echo");
    zp_vent_job_t *f = s_job(&w, "file", 0, 0, true);
    TEST_EQ_INT(zp_vent_sched_refill_want(f, w.workers, true), 17);
    /* No room to hold more: nothing to read. */
    TEST_EQ_INT(zp_vent_sched_refill_want(f, w.workers, false), 0);
    /* A higher priority job may run dry within the round: still 17. */
    zp_vent_job_t *p = s_job(&w, "urgent", 3, 4, false);
    TEST_EQ_INT(zp_vent_sched_refill_want(f, w.workers, true), 17);
    /* A producer's job has no input to read. */
    TEST_EQ_INT(zp_vent_sched_refill_want(p, w.workers, true), 0);
    /* Not open at the sink yet: nothing to read. */
    zp_vent_job_t *g = zp_vent_jobs_add(w.jobs, "opening", "echo");
    g->has_input = true;
    TEST_EQ_INT(zp_vent_sched_refill_want(g, w.workers, true), 0);
    s_world_free(&w);
}

/* Input to read before the next dispatch, in bytes: a batch for each
 * worker with credit, one batch with none. */
static void test_refill_bytes(void)
{
    s_world_t w;
    s_world(&w, 1024);
    TEST_EQ_INT(zp_vent_sched_refill_bytes(w.workers, 1000), 1000);
    s_worker(&w, "a", 10, 10, "echo");
    s_worker(&w, "b", 5, 0, "echo"); /* no credit: no batch for it now */
    s_worker(&w, "c", 7, 7, "other");
    TEST_EQ_INT(zp_vent_sched_refill_bytes(w.workers, 1000), 2000);
    s_world_free(&w);
}

static void test_rr_moves_past_the_served_worker(void)
{
    zp_vent_sched_t s = {0};
    zp_vent_job_t j = {.slot = 4};
    zp_vent_sched_served(&s, 1, 3, &j);
    TEST_EQ_INT(s.rr, 2);
    TEST_EQ_INT(s.last_slot, 4);
    zp_vent_sched_served(&s, 2, 3, &j);
    TEST_EQ_INT(s.rr, 2); /* (2 + 2 + 1) % 3 */
    zp_vent_sched_workers_changed(&s, 2);
    TEST_EQ_INT(s.rr, 0);
}

static const test_case_t tests[] = {
    {"test_refill_bytes", test_refill_bytes},
    {"test_batch_is_credit_capped_by_batch",
     test_batch_is_credit_capped_by_batch},
    {"test_credit_clamped_to_window", test_credit_clamped_to_window},
    {"test_credit_sizes_batches", test_credit_sizes_batches},
    {"test_fair_share_splits_a_short_job", test_fair_share_splits_a_short_job},
    {"test_fair_share_with_a_slow_worker", test_fair_share_with_a_slow_worker},
    {"test_fair_share_with_a_late_worker", test_fair_share_with_a_late_worker},
    {"test_no_fair_share_while_input_goes_on",
     test_no_fair_share_while_input_goes_on},
    {"test_priority_first_then_turns", test_priority_first_then_turns},
    {"test_pick_needs_the_plugin", test_pick_needs_the_plugin},
    {"test_refill_want", test_refill_want},
    {"test_rr_moves_past_the_served_worker",
     test_rr_moves_past_the_served_worker},
    {NULL, NULL},
};
TEST_MAIN(tests)
