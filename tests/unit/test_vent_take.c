/* zp_vent_shell_take_batch: a producer's batch is held, numbered and
 * journaled whole or not at all, so an allocation failure anywhere on the
 * way leaves no gap in the job's ids and a journal that replays. The
 * shell here has no sockets: only the job list, the task table and the
 * journal the function touches. */
#include "failalloc.h"
#include "test.h"
#include "vent_shell.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_BATCHES 3
#define S_PER     3

typedef struct {
    char dir[64], path[96];
    zp_ventilator_config_t cfg;
} s_env_t;

static void s_env_new(s_env_t *e)
{
    snprintf(e->dir, sizeof e->dir, "/tmp/zp-vtake-XXXXXX");
    if (!mkdtemp(e->dir))
        abort();
    snprintf(e->path, sizeof e->path, "%s/journal", e->dir);
    memset(&e->cfg, 0, sizeof e->cfg);
    e->cfg.journal = e->path;
}

static void s_env_done(s_env_t *e)
{
    char compact[128];
    snprintf(compact, sizeof compact, "%s.compact", e->path);
    unlink(compact);
    unlink(e->path);
    rmdir(e->dir);
}

/* A shell with jobs, tasks and the journal at e->path replayed; 0 or -1
 * (out of memory or a journal refused). */
static int s_shell_open(zp_vent_shell_t *v, const s_env_t *e)
{
    memset(v, 0, sizeof *v);
    v->cfg = &e->cfg;
    v->jobs = zp_vent_jobs_new(0, 3, 0);
    v->tasks = zp_vent_tasks_new(0, 1u << 30, false);
    if (!v->jobs || !v->tasks)
        return -1;
    return zp_vent_shell_journal_open(v);
}

static void s_shell_close(zp_vent_shell_t *v)
{
    zp_vent_shell_journal_close(v);
    zp_vent_tasks_destroy(&v->tasks);
    zp_vent_jobs_destroy(&v->jobs);
}

/* Batch seq of the job, its payloads "b<seq>-<k>"; batch 2 has its
 * first as a task and the others as lines (TaskBatch.lines). */
typedef struct {
    Zpipe__V1__TaskBatch b;
    Zpipe__V1__Task t[S_PER], *p[S_PER];
    char data[S_PER][16];
    char lines[S_PER * 16];
} s_batch_t;

static void s_batch(s_batch_t *x, uint64_t seq)
{
    zpipe__v1__task_batch__init(&x->b);
    x->b.job_id = "job-a";
    x->b.seq = seq;
    for (size_t k = 0; k < S_PER; k++) {
        zpipe__v1__task__init(&x->t[k]);
        snprintf(x->data[k], sizeof x->data[k], "b%llu-%zu",
                 (unsigned long long)seq, k);
        x->t[k].payload.data = (uint8_t *)x->data[k];
        x->t[k].payload.len = strlen(x->data[k]);
        x->p[k] = &x->t[k];
    }
    x->b.tasks = x->p;
    x->b.n_tasks = S_PER;
    if (seq == 2) {
        size_t at = 0;
        for (size_t k = 1; k < S_PER; k++) {
            size_t len = strlen(x->data[k]);
            memcpy(x->lines + at, x->data[k], len);
            at += len;
            x->lines[at++] = '\n';
        }
        x->lines[at] = '\0';
        x->b.n_tasks = 1;
        x->b.lines.data = (uint8_t *)x->lines;
        x->b.lines.len = strlen(x->lines);
    }
}

/* A producer's job: the open, then S_BATCHES batches, each sent again
 * while it is refused. Returns how many refusals, or -1 when the job
 * could not even be opened; *bad counts wrong answers. */
static int s_produce(const s_env_t *e, int *bad)
{
    zp_vent_shell_t v;
    int refused = -1;
    if (s_shell_open(&v, e) < 0)
        goto done;
    zp_vent_job_t *j = zp_vent_jobs_add(v.jobs, "job-a", "echo");
    if (!j || zp_vent_job_set_token(j, "tok") < 0 ||
        zp_vent_shell_journal_job(&v, j) < 0)
        goto done;
    refused = 0;
    for (uint64_t seq = 1; seq <= S_BATCHES; seq++) {
        s_batch_t x;
        s_batch(&x, seq);
        uint64_t first = 0;
        uint64_t before = j->next_task_id;
        size_t held = zp_vent_tasks_size(v.tasks);
        while (zp_vent_shell_take_batch(&v, j, &x.b, S_PER, &first) < 0) {
            /* refused: nothing kept, the next id unchanged */
            *bad += j->next_task_id != before || j->n_batches != seq - 1 ||
                    zp_vent_tasks_size(v.tasks) != held;
            if (++refused > 10)
                goto done;
        }
        *bad += first != (seq - 1) * S_PER;
    }
done:
    s_shell_close(&v);
    return refused;
}

/* What the journal replays to: every batch, ids 0 .. in order, no gap. */
static int s_check_replay(const s_env_t *e)
{
    zp_vent_shell_t v;
    int bad = 0;
    if (s_shell_open(&v, e) < 0) {
        bad = 100; /* the journal was refused */
        goto done;
    }
    zp_vent_job_t *j = zp_vent_jobs_find(v.jobs, "job-a");
    if (!j) { /* the open itself was refused: nothing else was taken */
        bad += zp_vent_tasks_size(v.tasks) != 0;
        goto done;
    }
    bad += j->next_task_id != S_BATCHES * S_PER;
    bad += j->n_batches != S_BATCHES;
    for (size_t i = 0; i < j->n_batches && i < S_BATCHES; i++)
        bad += j->batches[i].first != i * S_PER || j->batches[i].n != S_PER;
    bad += zp_vent_tasks_size(v.tasks) != S_BATCHES * S_PER;
    for (uint64_t id = 0; id < S_BATCHES * S_PER; id++) {
        char want[16];
        snprintf(want, sizeof want, "b%llu-%llu",
                 (unsigned long long)(id / S_PER + 1),
                 (unsigned long long)(id % S_PER));
        zp_vent_task_t *t = zp_vent_tasks_get(v.tasks, ZP_VENT_KEY(j, id));
        bad += !t || t->len != strlen(want) || memcmp(t->data, want, t->len);
    }
done:
    s_shell_close(&v);
    return bad;
}

static void test_batches_taken_whole_replay_in_order(void)
{
    s_env_t e;
    s_env_new(&e);
    int bad = 0;
    TEST_EQ_INT(s_produce(&e, &bad), 0);
    TEST_EQ_INT(bad, 0);
    TEST_EQ_INT(s_check_replay(&e), 0);
    s_env_done(&e);
}

/* Every allocation of the producer's side fails once, in turn (the
 * journal's buffer, the tasks, the batch numbers); the batch refused is
 * sent again, as a producer does. Each journal left replays with the
 * ids in order; before the fix, a failed journal append kept the tasks
 * and their ids, and the batch sent again was journaled past a gap the
 * replay refuses ("tasks that do not follow their job's"). */
static void test_allocation_failures_leave_no_gap_in_the_ids(void)
{
    long runs = 0, refusals = 0;
    int bad = 0, replay_bad = 0;
    for (long n = 1;; n++) {
        s_env_t e;
        s_env_new(&e);
        failalloc_arm(n);
        int r = s_produce(&e, &bad);
        bool failed = failalloc_disarm();
        refusals += r > 0 ? r : 0;
        int rb = s_check_replay(&e);
        if (rb)
            printf("  allocation %ld failing: replay wrong (%d)\n", n, rb);
        replay_bad += rb;
        s_env_done(&e);
        if (!failed)
            break;
        runs++;
    }
    printf("  %ld allocation failures injected, %ld batches refused and "
           "sent again\n",
           runs, refusals);
    TEST_EQ_INT(bad, 0);
    TEST_EQ_INT(replay_bad, 0);
    TEST_CHECK(runs >= 10);
    TEST_CHECK(refusals >= 3);
}

/* Lines taken are tasks only once dispatch asks (vent_lines), yet held
 * from their Ack on: a compaction while some are still lines writes them
 * after the tasks made, and the journal replays every one, in order,
 * with its payload. Before the compaction wrote lines, the replay would
 * have lost every acknowledged task not yet made. */
static void test_lines_not_yet_tasks_survive_a_compaction(void)
{
    s_env_t e;
    s_env_new(&e);
    zp_vent_shell_t v;
    TEST_EQ_INT(s_shell_open(&v, &e), 0);
    zp_vent_job_t *j = zp_vent_jobs_add(v.jobs, "job-a", "echo");
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(zp_vent_job_set_token(j, "tok"), 0);
    TEST_EQ_INT(zp_vent_shell_journal_job(&v, j), 0);
    char text[3][64];
    for (uint64_t seq = 1; seq <= 3; seq++) {
        Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
        b.job_id = "job-a";
        b.seq = seq;
        char *t = text[seq - 1];
        snprintf(t, 64, "c%llu-0\nc%llu-1\nc%llu-2\n", (unsigned long long)seq,
                 (unsigned long long)seq, (unsigned long long)seq);
        b.lines.data = (uint8_t *)t;
        b.lines.len = strlen(t);
        uint64_t first = 99;
        TEST_EQ_INT(zp_vent_shell_take_batch(&v, j, &b, 3, &first), 0);
        TEST_EQ_INT(first, (seq - 1) * 3);
    }
    TEST_EQ_INT(j->held, 0); /* none made yet */
    TEST_EQ_INT(zp_vent_tasks_size(v.tasks), 9);
    TEST_EQ_INT(zp_vent_tasks_from_lines(v.tasks, j, 4), 0);
    TEST_EQ_INT(j->held, 4);
    TEST_EQ_INT(j->lines.n, 5);
    TEST_EQ_INT(zp_vent_tasks_size(v.tasks), 9);
    char err[256];
    TEST_EQ_INT(zp_vent_shell_journal_compact(&v, err, sizeof err), 0);
    s_shell_close(&v);
    TEST_EQ_INT(s_shell_open(&v, &e), 0);
    j = zp_vent_jobs_find(v.jobs, "job-a");
    TEST_CHECK(j != NULL);
    if (j) {
        TEST_EQ_INT(j->next_task_id, 9);
        TEST_EQ_INT(j->n_batches, 3);
        int bad = 0;
        for (uint64_t id = 0; id < 9; id++) {
            char want[16];
            snprintf(want, sizeof want, "c%llu-%llu",
                     (unsigned long long)(id / 3 + 1),
                     (unsigned long long)(id % 3));
            zp_vent_task_t *t = zp_vent_tasks_get(v.tasks, ZP_VENT_KEY(j, id));
            bad +=
                !t || t->len != strlen(want) || memcmp(t->data, want, t->len);
        }
        TEST_EQ_INT(bad, 0);
    }
    s_shell_close(&v);
    s_env_done(&e);
}

/* A batch of tasks given whole after lines still waiting: the lines are
 * made first, so ids stay in order in the ready queue and in a
 * compaction; a job dropped with lines left frees them and their room
 * in the hold limits. */
static void test_tasks_after_lines_keep_the_order(void)
{
    s_env_t e;
    s_env_new(&e);
    e.cfg.journal = NULL;
    zp_vent_shell_t v;
    TEST_EQ_INT(s_shell_open(&v, &e), 0);
    zp_vent_job_t *j = zp_vent_jobs_add(v.jobs, "job-a", "echo");
    Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
    b.job_id = "job-a";
    b.lines.data = (uint8_t *)"l0\nl1\n";
    b.lines.len = 6;
    uint64_t first;
    TEST_EQ_INT(zp_vent_shell_take_batch(&v, j, &b, 2, &first), 0);
    Zpipe__V1__TaskBatch w = ZPIPE__V1__TASK_BATCH__INIT;
    Zpipe__V1__Task t = ZPIPE__V1__TASK__INIT, *tp = &t;
    t.payload.data = (uint8_t *)"w2";
    t.payload.len = 2;
    w.job_id = "job-a";
    w.tasks = &tp;
    w.n_tasks = 1;
    TEST_EQ_INT(zp_vent_shell_take_batch(&v, j, &w, 1, &first), 0);
    TEST_EQ_INT(first, 2);
    TEST_EQ_INT(j->lines.n, 0);
    zp_vent_task_t *out[4];
    TEST_EQ_INT(zp_vent_tasks_collect(v.tasks, j, 4, 1u << 20, out), 3);
    TEST_CHECK(out[0]->id == 0 && out[1]->id == 1 && out[2]->id == 2);
    TEST_CHECK(memcmp(out[2]->data, "w2", 2) == 0);
    b.lines.data = (uint8_t *)"l3\nl4\n";
    TEST_EQ_INT(zp_vent_shell_take_batch(&v, j, &b, 2, &first), 0);
    TEST_EQ_INT(zp_vent_tasks_size(v.tasks), 5);
    zp_vent_tasks_drop_job(v.tasks, j);
    TEST_EQ_INT(zp_vent_tasks_size(v.tasks), 0);
    TEST_EQ_INT(j->lines.n, 0);
    s_shell_close(&v);
    s_env_done(&e);
}

static const test_case_t tests[] = {
    {"test_lines_not_yet_tasks_survive_a_compaction",
     test_lines_not_yet_tasks_survive_a_compaction},
    {"test_tasks_after_lines_keep_the_order",
     test_tasks_after_lines_keep_the_order},
    {"test_batches_taken_whole_replay_in_order",
     test_batches_taken_whole_replay_in_order},
    {"test_allocation_failures_leave_no_gap_in_the_ids",
     test_allocation_failures_leave_no_gap_in_the_ids},
    {NULL, NULL},
};

TEST_MAIN(tests)
