/* Tests for vent_workers: registry (hello, find, drop), windows, credit,
 * progress, and liveness (who is silent too long). */
#include "failalloc.h"
#include "test.h"
#include "vent_workers.h"

#define S_SEC 1000000ull

static zp_vent_worker_t *s_hello(zp_vent_workers_t *ws, const char *id,
                                 uint64_t window, uint64_t now)
{
    char *plugins[] = {"echo", "sha256"};
    Zpipe__V1__Hello h = ZPIPE__V1__HELLO__INIT;
    h.worker_id = (char *)id;
    h.window = window;
    h.credit = window;
    h.plugins = plugins;
    h.n_plugins = 2;
    return zp_vent_workers_add(ws, id, strlen(id), &h, now);
}

static void test_registry(void)
{
    zp_vent_workers_t *ws = zp_vent_workers_new(7);
    TEST_EQ_INT(zp_vent_workers_none_since(ws), 7);
    zp_vent_worker_t *a = s_hello(ws, "a", 10, 1);
    TEST_CHECK(a);
    TEST_EQ_INT(a->serial, 1);
    s_hello(ws, "b", 20, 1);
    TEST_EQ_INT(zp_vent_workers_count(ws), 2);
    TEST_EQ_INT(zp_vent_workers_windows(ws), 30);
    zp_vent_worker_t *b = zp_vent_workers_find(ws, "b", 1);
    TEST_CHECK(b && b->serial == 2);
    TEST_CHECK(zp_vent_workers_by_serial(ws, 2) == b);
    TEST_CHECK(zp_vent_workers_find(ws, "c", 1) == NULL);
    TEST_CHECK(zp_vent_worker_has(b, "sha256"));
    TEST_CHECK(!zp_vent_worker_has(b, "gzip"));
    zp_vent_workers_remove(ws, zp_vent_workers_at(ws, 0), 50);
    TEST_EQ_INT(zp_vent_workers_count(ws), 1);
    TEST_EQ_INT(zp_vent_workers_windows(ws), 20);
    TEST_EQ_STR(zp_vent_workers_at(ws, 0)->id, "b");
    TEST_EQ_INT(zp_vent_workers_none_since(ws), 7);
    zp_vent_workers_remove(ws, zp_vent_workers_at(ws, 0), 60);
    TEST_EQ_INT(zp_vent_workers_none_since(ws), 60);
    /* Serials are never reused. */
    TEST_EQ_INT(s_hello(ws, "a", 1, 70)->serial, 3);
    zp_vent_workers_destroy(&ws);
    TEST_CHECK(ws == NULL);
}

static void test_hello_defaults(void)
{
    zp_vent_workers_t *ws = zp_vent_workers_new(0);
    Zpipe__V1__Hello h = ZPIPE__V1__HELLO__INIT;
    h.credit = 5; /* with no window: window 1, credit clamped to it */
    zp_vent_worker_t *w = zp_vent_workers_add(ws, "r", 1, &h, 0);
    TEST_EQ_STR(w->id, "?");
    TEST_EQ_STR(w->host, "");
    TEST_EQ_INT(w->pid, 0);
    TEST_EQ_INT(w->window, 1);
    TEST_EQ_INT(w->credit, 1);
    TEST_EQ_INT(w->n_plugins, 0);
    TEST_EQ_INT(w->strikes.strikes, 0);
    /* Host and pid kept: a quarantine names them and matches on them. */
    h.host = "vm";
    h.pid = 4211;
    w = zp_vent_workers_add(ws, "s", 1, &h, 0);
    TEST_EQ_STR(w->host, "vm");
    TEST_EQ_INT(w->pid, 4211);
    zp_vent_workers_destroy(&ws);
}

static void test_progress_from_credit_and_heartbeats(void)
{
    zp_vent_workers_t *ws = zp_vent_workers_new(0);
    zp_vent_worker_t *w = s_hello(ws, "a", 10, S_SEC);
    zp_vent_worker_heartbeat(w, 0, 2 * S_SEC); /* nothing done: alive only */
    TEST_EQ_INT(w->last_seen_us, 2 * S_SEC);
    TEST_EQ_INT(w->last_progress_us, S_SEC);
    zp_vent_worker_heartbeat(w, 3, 3 * S_SEC);
    TEST_EQ_INT(w->last_progress_us, 3 * S_SEC);
    zp_vent_worker_sent(w, 10);
    TEST_EQ_INT(zp_vent_worker_credit(w, 2, 4 * S_SEC), 0);
    TEST_EQ_INT(w->last_progress_us, 4 * S_SEC);
    TEST_EQ_INT(w->credit, 2);
    zp_vent_workers_destroy(&ws);
}

static void test_silent_workers_are_found_in_order(void)
{
    zp_vent_workers_t *ws = zp_vent_workers_new(0);
    s_hello(ws, "a", 1, 0);
    s_hello(ws, "b", 1, 0);
    s_hello(ws, "c", 1, 0);
    zp_vent_worker_heartbeat(zp_vent_workers_at(ws, 1), 0, 2 * S_SEC);
    uint64_t now = 4 * S_SEC, timeout = 3 * S_SEC;
    zp_vent_worker_t *w = zp_vent_workers_silent(ws, now, timeout);
    TEST_CHECK(w && strcmp(w->id, "a") == 0);
    zp_vent_workers_remove(ws, w, now);
    w = zp_vent_workers_silent(ws, now, timeout);
    TEST_CHECK(w && strcmp(w->id, "c") == 0);
    zp_vent_workers_remove(ws, w, now);
    TEST_CHECK(zp_vent_workers_silent(ws, now, timeout) == NULL); /* b: 2 s */
    TEST_CHECK(zp_vent_workers_silent(ws, 5 * S_SEC + 1, timeout) != NULL);
    zp_vent_workers_destroy(&ws);
}

static void s_workers_scenario(void *arg)
{
    (void)arg;
    zp_vent_workers_t *ws = zp_vent_workers_new(0);
    if (!ws)
        return;
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "w%d", i);
        s_hello(ws, id, 4, 0);
    }
    if (zp_vent_workers_count(ws))
        zp_vent_workers_remove(ws, zp_vent_workers_at(ws, 0), 1);
    zp_vent_workers_destroy(&ws);
}

static void test_alloc_failures_in_the_registry(void)
{
    TEST_CHECK(failalloc_sweep(s_workers_scenario, NULL) >= 5);
}

/* The no-worker clock starts with the loop, not before set-up; a worker
 * already connected keeps it as it is. */
static void test_no_worker_clock_starts_with_the_loop(void)
{
    zp_vent_workers_t *ws = zp_vent_workers_new(7);
    zp_vent_workers_start(ws, 40 * S_SEC);
    TEST_EQ_INT(zp_vent_workers_none_since(ws), 40 * S_SEC);
    s_hello(ws, "a", 1, 41 * S_SEC);
    zp_vent_workers_start(ws, 50 * S_SEC);
    zp_vent_workers_remove(ws, zp_vent_workers_at(ws, 0), 60 * S_SEC);
    TEST_EQ_INT(zp_vent_workers_none_since(ws), 60 * S_SEC);
    zp_vent_workers_destroy(&ws);
}

static const test_case_t tests[] = {
    {"test_no_worker_clock_starts_with_the_loop",
     test_no_worker_clock_starts_with_the_loop},
    {"test_registry", test_registry},
    {"test_hello_defaults", test_hello_defaults},
    {"test_progress_from_credit_and_heartbeats",
     test_progress_from_credit_and_heartbeats},
    {"test_silent_workers_are_found_in_order",
     test_silent_workers_are_found_in_order},
    {"test_alloc_failures_in_the_registry",
     test_alloc_failures_in_the_registry},
    {NULL, NULL},
};
TEST_MAIN(tests)
