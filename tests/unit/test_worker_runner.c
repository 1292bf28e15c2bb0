/* Tests for wk_runner (plugin calls and how their outcome is recorded)
 * and wk_queue (the batches waiting for the executor). */
#define _GNU_SOURCE
#include "failalloc.h"
#include "test.h"
#include "wk_queue.h"
#include "wk_runner.h"

#include <stdbool.h>
#include <string.h>
#include <unistd.h>

static void test_classify_success(void)
{
    zp_wk_verdict_t v = zp_wk_classify(ZPIPE_OK, false, true);
    TEST_EQ_INT(v.status, ZPIPE_OK);
    TEST_EQ_INT(v.cause, ZP_CAUSE_NONE);
    TEST_CHECK(!v.retryable && !v.hit_limit && !v.replace_text);
}

static void test_classify_errors_and_retries(void)
{
    zp_wk_verdict_t v = zp_wk_classify(ZPIPE_ERROR, false, false);
    TEST_EQ_STR(zp_cause_name(v.cause), "plugin_error");
    TEST_CHECK(!v.retryable);
    v = zp_wk_classify(ZPIPE_RETRY, false, false);
    TEST_EQ_STR(zp_cause_name(v.cause), "plugin_retry");
    TEST_CHECK(v.retryable);
    /* Out of memory with no limit: transient. */
    v = zp_wk_classify(ZPIPE_NOMEM, false, false);
    TEST_EQ_STR(zp_cause_name(v.cause), "plugin_retry");
    TEST_CHECK(v.retryable && !v.hit_limit);
    /* An unknown status is an error. */
    v = zp_wk_classify(77, false, false);
    TEST_EQ_INT(v.status, 77);
    TEST_EQ_STR(zp_cause_name(v.cause), "plugin_error");
}

static void test_classify_memory_limit(void)
{
    zp_wk_verdict_t v = zp_wk_classify(ZPIPE_NOMEM, false, true);
    TEST_EQ_STR(zp_cause_name(v.cause), "resource_limit");
    TEST_CHECK(!v.retryable);
    TEST_CHECK(v.hit_limit);
}

static void test_classify_output_too_large(void)
{
    zp_wk_verdict_t v = zp_wk_classify(ZPIPE_OK, true, false);
    TEST_EQ_INT(v.status, ZPIPE_ERROR);
    TEST_EQ_STR(zp_cause_name(v.cause), "output_too_large");
    TEST_CHECK(v.replace_text && !v.retryable);
    /* A failure that also overflowed keeps its own cause. */
    v = zp_wk_classify(ZPIPE_RETRY, true, false);
    TEST_EQ_STR(zp_cause_name(v.cause), "plugin_retry");
}

static void test_classify_claimed_cause(void)
{
    /* A plugin's claimed cause names its failures; the status still
     * decides retrying. */
    zp_wk_verdict_t v = zp_wk_classify_claimed(ZPIPE_ERROR, false, false,
                                               ZP_CAUSE_PYTHON_EXCEPTION);
    TEST_EQ_STR(zp_cause_name(v.cause), "python_exception");
    TEST_CHECK(!v.retryable);
    v = zp_wk_classify_claimed(ZPIPE_RETRY, false, false,
                               ZP_CAUSE_PYTHON_EXCEPTION);
    TEST_EQ_STR(zp_cause_name(v.cause), "python_exception");
    TEST_CHECK(v.retryable);
    /* What the host found itself stands. */
    v = zp_wk_classify_claimed(ZPIPE_NOMEM, false, true,
                               ZP_CAUSE_PYTHON_EXCEPTION);
    TEST_EQ_STR(zp_cause_name(v.cause), "resource_limit");
    v = zp_wk_classify_claimed(ZPIPE_OK, true, false,
                               ZP_CAUSE_PYTHON_EXCEPTION);
    TEST_EQ_STR(zp_cause_name(v.cause), "output_too_large");
    /* A success has no cause, claimed or not. */
    v = zp_wk_classify_claimed(ZPIPE_OK, false, false,
                               ZP_CAUSE_PYTHON_EXCEPTION);
    TEST_EQ_INT(v.cause, ZP_CAUSE_NONE);
}

/* What the hooks saw. */
typedef struct {
    zp_wk_results_t *res; /* cleared on flush, as a sent batch */
    int flushes, done;
    uint64_t ids[16];
} s_seen_t;

static void s_flush(void *arg)
{
    s_seen_t *s = arg;
    s->flushes++;
    zp_wk_results_clear(s->res);
}

static bool s_done(void *arg, const zp_wk_done_t *d, size_t payload_len,
                   uint64_t end)
{
    s_seen_t *s = arg;
    (void)payload_len;
    (void)end;
    if (s->done < 16)
        s->ids[s->done] = d->task_id;
    s->done++;
    return false;
}

/* A worker config loading the echo plugin. */
static zp_worker_config_t s_config(const char **plugin)
{
    *plugin = ZP_PLUGIN_DIR "/echo.so";
    return (zp_worker_config_t){
        .plugins = {.items = plugin, .count = 1},
        .max_output = 1 << 20,
        .max_frame = 1 << 20,
    };
}

/* A batch of n tasks "t0", "t1", ... for plugin. */
typedef struct {
    Zpipe__V1__TaskBatch b;
    Zpipe__V1__Task t[4];
    Zpipe__V1__Task *p[4];
    char in[4][4];
} s_batch_t;

static void s_batch(s_batch_t *s, const char *job, const char *plugin)
{
    zpipe__v1__task_batch__init(&s->b);
    s->b.job_id = (char *)job;
    s->b.plugin = (char *)plugin;
    for (int i = 0; i < 4; i++) {
        zpipe__v1__task__init(&s->t[i]);
        snprintf(s->in[i], sizeof s->in[i], "t%d", i);
        s->t[i].task_id = 100 + (uint64_t)i;
        s->t[i].payload.data = (uint8_t *)s->in[i];
        s->t[i].payload.len = 2;
        s->p[i] = &s->t[i];
    }
    s->b.tasks = s->p;
    s->b.n_tasks = 4;
}

static void test_a_batch_runs_in_process(void)
{
    const char *plugin;
    zp_worker_config_t cfg = s_config(&plugin);
    zp_wk_runner_t *run = zp_wk_runner_new(&cfg, "w1");
    TEST_CHECK(run);
    TEST_CHECK(zp_wk_runner_load(run, false) == 0);
    zp_wk_results_t *res = zp_wk_results_new();
    s_batch_t s;
    s_batch(&s, "job", "echo");
    s_seen_t seen = {.res = res};
    zp_wk_hooks_t hooks = {s_flush, s_done, &seen};
    zp_wk_runner_run_batch(run, res, &s.b, NULL, &hooks);
    TEST_EQ_INT(seen.done, 4);
    TEST_EQ_INT(seen.flushes, 0);
    TEST_EQ_INT(seen.ids[3], 103);
    TEST_EQ_INT(zp_wk_results_count(res), 4);
    zp_buf_t *out = zp_wk_results_out(res);
    TEST_CHECK(out->len == 8 && memcmp(out->data, "t0t1t2t3", 8) == 0);
    /* Another job while results are pending: they are flushed first. */
    s_batch(&s, "other", "echo");
    zp_wk_runner_run_batch(run, res, &s.b, NULL, &hooks);
    TEST_EQ_INT(seen.flushes, 1);
    TEST_EQ_INT(zp_wk_results_count(res), 4);
    TEST_EQ_STR(zp_wk_results_job(res), "other");
    TEST_CHECK(!zp_wk_runner_hit_limit(run));
    zp_wk_results_destroy(&res);
    zp_wk_runner_destroy(&run);
    TEST_CHECK(run == NULL);
}

/* The files an executor is started with before the worker has loaded
 * them are the files the worker then loads. */
static void test_locate_names_the_files_load_opens(void)
{
    const char *plugin;
    zp_worker_config_t cfg = s_config(&plugin);
    const char *two[] = {ZP_PLUGIN_DIR "/echo.so", "sha256"};
    cfg.plugins.items = two;
    cfg.plugins.count = 2;
    setenv("ZPIPE_PLUGIN_PATH", ZP_PLUGIN_DIR, 1);
    zp_wk_runner_t *run = zp_wk_runner_new(&cfg, "w1");
    size_t n = 9;
    char **files = zp_wk_runner_locate(run, &n);
    TEST_CHECK(files != NULL);
    TEST_EQ_INT(n, 2);
    TEST_CHECK(zp_wk_runner_load(run, false) == 0);
    zp_plugins_t *set = zp_wk_runner_plugins(run);
    TEST_EQ_INT(zp_plugins_count(set), 2);
    for (size_t i = 0; files && i < n; i++) {
        TEST_EQ_STR(files[i], zp_plugins_at(set, i)->path);
        free(files[i]);
    }
    free(files);
    zp_wk_runner_destroy(&run);
    /* A name that does not resolve: nothing early, loading says why. */
    const char *bad[] = {"echo", "no-such-plugin"};
    cfg.plugins.items = bad;
    run = zp_wk_runner_new(&cfg, "w1");
    n = 9;
    TEST_CHECK(zp_wk_runner_locate(run, &n) == NULL);
    TEST_EQ_INT(n, 0);
    zp_wk_runner_destroy(&run);
    /* Plugin directories: their files are known only by scanning. */
    const char *dir = ZP_PLUGIN_DIR;
    cfg.plugins.items = two;
    cfg.plugin_dirs = (zp_strlist_t){.items = &dir, .count = 1};
    run = zp_wk_runner_new(&cfg, "w1");
    TEST_CHECK(zp_wk_runner_locate(run, &n) == NULL);
    zp_wk_runner_destroy(&run);
    unsetenv("ZPIPE_PLUGIN_PATH");
}

static void test_a_missing_plugin_fails_every_task(void)
{
    const char *plugin;
    zp_worker_config_t cfg = s_config(&plugin);
    zp_wk_runner_t *run = zp_wk_runner_new(&cfg, "w1");
    TEST_CHECK(zp_wk_runner_load(run, false) == 0);
    zp_wk_results_t *res = zp_wk_results_new();
    s_batch_t s;
    s_batch(&s, "job", "nope");
    s_seen_t seen = {.res = res};
    zp_wk_hooks_t hooks = {s_flush, s_done, &seen};
    zp_wk_runner_run_batch(run, res, &s.b, NULL, &hooks);
    TEST_EQ_INT(seen.done, 4);
    zp_buf_t buf = {0};
    zp_wk_batch_info_t info = {.worker_id = "w1"};
    TEST_CHECK(zp_wk_results_encode(res, &info, &buf) == 0);
    zp_result_view_t v = {0};
    TEST_CHECK(zp_view_result_batch(&v, buf.data, buf.len, 1 << 20) == 0);
    TEST_EQ_STR(v.batch.results[0]->cause, "no_such_plugin");
    TEST_EQ_STR(v.batch.results[0]->error, "worker w1 has no plugin 'nope'");
    zp_result_view_free(&v);
    zp_buf_free(&buf);
    zp_wk_results_destroy(&res);
    zp_wk_runner_destroy(&run);
}

static void test_output_over_the_limit_fails_the_task(void)
{
    const char *plugin;
    zp_worker_config_t cfg = s_config(&plugin);
    cfg.max_output = 1;
    zp_wk_runner_t *run = zp_wk_runner_new(&cfg, "w1");
    TEST_CHECK(zp_wk_runner_load(run, false) == 0);
    zp_plugins_t *set = zp_wk_runner_plugins(run);
    Zpipe__V1__Task t = ZPIPE__V1__TASK__INIT;
    t.task_id = 5;
    t.payload.data = (uint8_t *)"abc";
    t.payload.len = 3;
    zp_buf_t out = {0}, err = {0};
    zp_buf_append(&out, "kept", 4); /* an earlier task's output */
    zp_wk_done_t d = {.out_off = 4};
    zp_wk_runner_run_task(run, zp_plugins_find(set, "echo"), "echo", "j", &t,
                          &d, &out, &err, zp_mono_us(), 0, NULL);
    /* echo reports the refused append itself: its error stands. */
    TEST_EQ_INT(d.status, ZPIPE_ERROR);
    TEST_EQ_STR(zp_cause_name(d.cause), "plugin_error");
    TEST_EQ_INT(out.len, 4); /* nothing of the failed task's */
    TEST_CHECK(err.len == 16 && memcmp(err.data, "output too large", 16) == 0);
    zp_buf_free(&out);
    zp_buf_free(&err);
    zp_wk_runner_destroy(&run);
}

/* Runs payload on fx_fail through a fresh runner into d and err. */
static void s_run_fx_fail(const char *payload, zp_wk_done_t *d, zp_buf_t *err)
{
    const char *plugin = ZP_FIXTURE_DIR "/fx_fail.so";
    zp_worker_config_t cfg = {
        .plugins = {.items = &plugin, .count = 1},
        .max_output = 1 << 20,
        .max_frame = 1 << 20,
    };
    zp_wk_runner_t *run = zp_wk_runner_new(&cfg, "w1");
    TEST_CHECK(zp_wk_runner_load(run, false) == 0);
    Zpipe__V1__Task t = ZPIPE__V1__TASK__INIT;
    t.payload.data = (uint8_t *)payload;
    t.payload.len = strlen(payload);
    zp_buf_t out = {0};
    zp_wk_runner_run_task(
        run, zp_plugins_find(zp_wk_runner_plugins(run), "fx_fail"), "fx_fail",
        "j", &t, d, &out, err, zp_mono_us(), 0, NULL);
    zp_buf_free(&out);
    zp_wk_runner_destroy(&run);
}

static void test_a_plugin_names_only_claimable_causes(void)
{
    zp_wk_done_t d = {0};
    zp_buf_t err = {0};
    s_run_fx_fail("claim", &d, &err);
    TEST_EQ_STR(zp_cause_name(d.cause), "python_exception");
    TEST_CHECK(d.retryable); /* the status decides */
    TEST_CHECK(err.len == 7 && memcmp(err.data, "claimed", 7) == 0);
    /* A cause the host finds itself is refused: -1, and the plain one. */
    memset(&d, 0, sizeof d);
    err.len = 0;
    s_run_fx_fail("claimbad", &d, &err);
    TEST_EQ_STR(zp_cause_name(d.cause), "plugin_error");
    TEST_CHECK(!d.retryable);
    TEST_CHECK(err.len == 21 &&
               memcmp(err.data, "set_cause returned -1", 21) == 0);
    /* The claim ends with its call: the next task's failure is plain. */
    memset(&d, 0, sizeof d);
    err.len = 0;
    s_run_fx_fail("fail", &d, &err);
    TEST_EQ_STR(zp_cause_name(d.cause), "plugin_error");
    zp_buf_free(&err);
}

/* Runs two batches through a fresh runner under allocation failure. */
static void s_runner_scenario(void *arg)
{
    (void)arg;
    const char *plugin;
    zp_worker_config_t cfg = s_config(&plugin);
    zp_wk_runner_t *run = zp_wk_runner_new(&cfg, "w1");
    zp_wk_results_t *res = zp_wk_results_new();
    if (run && res && zp_wk_runner_load(run, false) == 0) {
        s_batch_t s;
        s_seen_t seen = {.res = res};
        zp_wk_hooks_t hooks = {s_flush, s_done, &seen};
        s_batch(&s, "job", "echo");
        zp_wk_runner_run_batch(run, res, &s.b, NULL, &hooks);
        s_batch(&s, "job", "missing");
        zp_wk_runner_run_batch(run, res, &s.b, NULL, &hooks);
    }
    zp_wk_results_destroy(&res);
    zp_wk_runner_destroy(&run);
}

/* Kept loaded to the end: its plugin's threads outlive the test. */
static zp_wk_runner_t *s_late_runner;

static void test_output_after_the_call_returned_is_refused(void)
{
    /* fx_rogue's "late": a thread keeps appending "LATE" to the call
     * after process returned, while later calls run. */
    const char *plugin = ZP_FIXTURE_DIR "/fx_rogue.so";
    zp_worker_config_t cfg = {
        .plugins = {.items = &plugin, .count = 1},
        .max_output = 1 << 20,
        .max_frame = 1 << 20,
    };
    zp_wk_runner_t *run = zp_wk_runner_new(&cfg, "w1");
    zp_wk_results_t *res = zp_wk_results_new();
    TEST_CHECK(zp_wk_runner_load(run, false) == 0);
    _Atomic uint64_t mirror = 0;
    zp_wk_runner_mirror_refused(&mirror);
    uint64_t before = zp_wk_runner_refused();
    s_batch_t s;
    s_seen_t seen = {.res = res};
    zp_wk_hooks_t hooks = {s_flush, s_done, &seen};
    s_batch(&s, "job", "fx_rogue");
    s.t[0].payload.data = (uint8_t *)"late";
    s.t[0].payload.len = 4;
    for (int round = 0; round < 50; round++) /* calls while it appends */
        zp_wk_runner_run_batch(run, res, &s.b, NULL, &hooks);
    for (int i = 0; i < 100 && zp_wk_runner_refused() == before; i++)
        usleep(1000);
    TEST_CHECK(zp_wk_runner_refused() > before);
    TEST_CHECK(atomic_load(&mirror) >= zp_wk_runner_refused() - 1);
    zp_wk_runner_mirror_refused(NULL);
    /* Every batch's outputs are its own inputs, nothing spliced. */
    zp_buf_t *out = zp_wk_results_out(res);
    TEST_EQ_INT(out->len, 50 * 10);
    for (size_t off = 0; off + 10 <= out->len; off += 10)
        TEST_CHECK(memcmp(out->data + off, "latet1t2t3", 10) == 0);
    zp_wk_results_destroy(&res);
    /* Its threads may still append: the plugin stays loaded (no fini,
     * no dlclose) until the test exits. */
    s_late_runner = run;
}

static void test_alloc_failures_in_the_runner(void)
{
    long runs = failalloc_sweep(s_runner_scenario, NULL);
    TEST_CHECK(runs >= 3);
}

/* A batch of n tasks whose head holds i (and parts payload frames). */
static void s_queued(zp_wk_batch_t *b, size_t i, size_t n, size_t parts)
{
    zp_wk_batch_init(b);
    zmq_msg_init_size(&b->head, 8);
    memcpy(zmq_msg_data(&b->head), &i, sizeof i);
    b->n = n;
    if (parts) {
        b->parts = calloc(parts, sizeof *b->parts);
        for (size_t k = 0; k < parts; k++)
            zmq_msg_init_size(&b->parts[k], 100 + k);
        b->n_parts = parts;
    }
}

static void test_queue_keeps_order_and_puts_back_at_the_head(void)
{
    zp_wk_queue_t *q = zp_wk_queue_new();
    for (size_t i = 0; i < 40; i++) { /* past the first growth */
        zp_wk_batch_t b;
        s_queued(&b, i, i + 1, i % 2);
        TEST_CHECK(zp_wk_queue_push(q, &b) == 0);
        TEST_CHECK(b.n == 0 && b.parts == NULL); /* taken */
        zp_wk_batch_close(&b);
    }
    TEST_EQ_INT(zp_wk_queue_len(q), 40);
    zp_wk_batch_t m;
    zp_wk_batch_init(&m);
    TEST_CHECK(zp_wk_queue_pop(q, &m));
    TEST_EQ_INT(m.n, 1);
    /* Back at the head: popped again first. */
    m.n = 99;
    TEST_CHECK(zp_wk_queue_push_front(q, &m) == 0);
    TEST_CHECK(zp_wk_queue_pop(q, &m));
    TEST_EQ_INT(m.n, 99);
    size_t v;
    memcpy(&v, zmq_msg_data(&m.head), sizeof v);
    TEST_EQ_INT(v, 0);
    zp_wk_batch_close(&m);
    for (size_t i = 1; i < 40; i++) {
        TEST_CHECK(zp_wk_queue_pop(q, &m));
        TEST_EQ_INT(m.n, i + 1);
        TEST_EQ_INT(m.n_parts, i % 2);
        TEST_EQ_INT(zp_wk_batch_bytes(&m), 8 + (i % 2 ? 100 : 0));
        zp_wk_batch_close(&m);
    }
    TEST_CHECK(!zp_wk_queue_pop(q, &m));
    zp_wk_batch_close(&m);
    zp_wk_queue_destroy(&q);
    TEST_CHECK(q == NULL);
}

/* Payload frames named by tasks go back into them, in order, each
 * once; anything else is refused. */
static void test_batch_puts_payload_frames_back(void)
{
    zp_wk_batch_t b;
    s_queued(&b, 0, 3, 2);
    Zpipe__V1__Task t[3], *tp[3] = {&t[0], &t[1], &t[2]};
    Zpipe__V1__TaskBatch tb = ZPIPE__V1__TASK_BATCH__INIT;
    tb.tasks = tp;
    tb.n_tasks = 3;
    for (int i = 0; i < 3; i++)
        zpipe__v1__task__init(&t[i]);
    t[0].payload_frame = 1;
    t[1].payload.data = (uint8_t *)"inline";
    t[1].payload.len = 6;
    t[2].payload_frame = 2;
    TEST_CHECK(zp_wk_batch_attach(&b, &tb));
    TEST_CHECK(t[0].payload.data == zmq_msg_data(&b.parts[0]));
    TEST_EQ_INT(t[0].payload.len, 100);
    TEST_EQ_INT(t[2].payload.len, 101);
    TEST_EQ_INT(t[2].payload_frame, 0);
    /* Out of order, repeated, beyond the frames, unused, or both. */
    uint32_t bad[][3] = {{2, 0, 1}, {1, 0, 1}, {1, 0, 3}, {1, 0, 0}};
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 3; i++) {
            t[i].payload_frame = bad[k][i];
            t[i].payload.len = 0;
        }
        TEST_CHECK(!zp_wk_batch_attach(&b, &tb));
    }
    t[0].payload_frame = 1;
    t[2].payload_frame = 2;
    t[0].payload.len = 3; /* a payload of its own too */
    TEST_CHECK(!zp_wk_batch_attach(&b, &tb));
    zp_wk_batch_close(&b);
}

/* Queues, requeues and drops batches under allocation failure. */
static void s_queue_scenario(void *arg)
{
    int *bad = arg;
    zp_wk_queue_t *q = zp_wk_queue_new();
    if (!q)
        return;
    size_t held = 0;
    for (size_t i = 0; i < 40; i++) {
        zp_wk_batch_t m;
        zp_wk_batch_init(&m);
        zmq_msg_init_size(&m.head, 64);
        m.n = 1;
        int rc =
            i % 3 ? zp_wk_queue_push(q, &m) : zp_wk_queue_push_front(q, &m);
        held += rc == 0;
        zp_wk_batch_close(&m);
    }
    if (zp_wk_queue_len(q) != held)
        (*bad)++;
    zp_wk_queue_destroy(&q); /* closes what is queued */
}

static void test_alloc_failures_in_the_queue(void)
{
    int bad = 0;
    long runs = failalloc_sweep(s_queue_scenario, &bad);
    TEST_EQ_INT(bad, 0);
    TEST_CHECK(runs >= 2);
}

static const test_case_t tests[] = {
    {"test_classify_success", test_classify_success},
    {"test_classify_errors_and_retries", test_classify_errors_and_retries},
    {"test_classify_memory_limit", test_classify_memory_limit},
    {"test_classify_output_too_large", test_classify_output_too_large},
    {"test_classify_claimed_cause", test_classify_claimed_cause},
    {"test_a_batch_runs_in_process", test_a_batch_runs_in_process},
    {"test_a_plugin_names_only_claimable_causes",
     test_a_plugin_names_only_claimable_causes},
    {"test_a_missing_plugin_fails_every_task",
     test_a_missing_plugin_fails_every_task},
    {"test_locate_names_the_files_load_opens",
     test_locate_names_the_files_load_opens},
    {"test_output_over_the_limit_fails_the_task",
     test_output_over_the_limit_fails_the_task},
    {"test_output_after_the_call_returned_is_refused",
     test_output_after_the_call_returned_is_refused},
    {"test_alloc_failures_in_the_runner", test_alloc_failures_in_the_runner},
    {"test_batch_puts_payload_frames_back",
     test_batch_puts_payload_frames_back},
    {"test_queue_keeps_order_and_puts_back_at_the_head",
     test_queue_keeps_order_and_puts_back_at_the_head},
    {"test_alloc_failures_in_the_queue", test_alloc_failures_in_the_queue},
    {NULL, NULL},
};

TEST_MAIN(tests)
