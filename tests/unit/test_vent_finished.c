/* Tests for vent_finished: finished job ids remembered by id and token,
 * the oldest forgotten past the count and the age, replacement of an id,
 * iteration for the journal, and allocation failures. */
#include "failalloc.h"
#include "test.h"
#include "vent_finished.h"

#include <stdio.h>
#include <string.h>

static void test_remembers_by_id_with_token_and_total(void)
{
    zp_vent_finished_t *f = zp_vent_finished_new(0, 0);
    TEST_EQ_INT(zp_vent_finished_add(f, "a", "tok", 5, 100), 0);
    TEST_EQ_INT(zp_vent_finished_add(f, "b", NULL, 7, 200), 0);
    const zp_vent_finished_job_t *e = zp_vent_finished_find(f, "a");
    TEST_CHECK(e != NULL);
    if (e) {
        TEST_EQ_STR(e->token, "tok");
        TEST_EQ_INT(e->total, 5);
        TEST_EQ_INT(e->when_us, 100);
    }
    e = zp_vent_finished_find(f, "b");
    TEST_CHECK(e && strcmp(e->token, "") == 0);
    TEST_CHECK(zp_vent_finished_find(f, "c") == NULL);
    TEST_EQ_INT(zp_vent_finished_count(f), 2);
    zp_vent_finished_destroy(&f);
    TEST_CHECK(f == NULL);
}

static void test_oldest_forgotten_past_the_count(void)
{
    zp_vent_finished_t *f = zp_vent_finished_new(100, 0);
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "job-%d", i);
        TEST_EQ_INT(zp_vent_finished_add(f, id, "t", (uint64_t)i, 1), 0);
    }
    TEST_EQ_INT(zp_vent_finished_count(f), 100);
    TEST_CHECK(zp_vent_finished_find(f, "job-899") == NULL);
    TEST_CHECK(zp_vent_finished_find(f, "job-900") != NULL);
    TEST_CHECK(zp_vent_finished_find(f, "job-999") != NULL);
    const zp_vent_finished_job_t *e = zp_vent_finished_at(f, 0);
    TEST_CHECK(e && strcmp(e->id, "job-900") == 0);
    zp_vent_finished_destroy(&f);
}

static void test_an_id_again_replaces_the_old_entry(void)
{
    zp_vent_finished_t *f = zp_vent_finished_new(0, 0);
    TEST_EQ_INT(zp_vent_finished_add(f, "a", "one", 1, 10), 0);
    TEST_EQ_INT(zp_vent_finished_add(f, "b", "two", 2, 20), 0);
    TEST_EQ_INT(zp_vent_finished_add(f, "a", "three", 3, 30), 0);
    const zp_vent_finished_job_t *e = zp_vent_finished_find(f, "a");
    TEST_CHECK(e && strcmp(e->token, "three") == 0 && e->total == 3);
    /* The old entry is a hole the iteration skips. */
    size_t live = 0;
    for (size_t i = 0; i < zp_vent_finished_count(f); i++)
        live += zp_vent_finished_at(f, i) != NULL;
    TEST_EQ_INT(live, 2);
    zp_vent_finished_destroy(&f);
}

static void test_expire_by_age(void)
{
    zp_vent_finished_t *f = zp_vent_finished_new(0, 1000);
    TEST_EQ_INT(zp_vent_finished_add(f, "old", "", 1, 100), 0);
    TEST_EQ_INT(zp_vent_finished_add(f, "mid", "", 1, 600), 0);
    TEST_EQ_INT(zp_vent_finished_add(f, "new", "", 1, 1500), 0);
    TEST_EQ_INT(zp_vent_finished_expire(f, 1200), 1);
    TEST_CHECK(zp_vent_finished_find(f, "old") == NULL);
    TEST_CHECK(zp_vent_finished_find(f, "mid") != NULL);
    TEST_EQ_INT(zp_vent_finished_expire(f, 3000), 2);
    TEST_EQ_INT(zp_vent_finished_count(f), 0);
    TEST_EQ_INT(zp_vent_finished_add(f, "again", "", 1, 3000), 0);
    TEST_CHECK(zp_vent_finished_find(f, "again") != NULL);
    zp_vent_finished_destroy(&f);
}

static void s_scenario(void *arg)
{
    (void)arg;
    zp_vent_finished_t *f = zp_vent_finished_new(50, 0);
    if (!f)
        return;
    char id[32];
    for (int i = 0; i < 120; i++) {
        snprintf(id, sizeof id, "job-%d", i % 70);
        zp_vent_finished_add(f, id, "t", 1, (uint64_t)i);
    }
    zp_vent_finished_find(f, "job-3");
    zp_vent_finished_expire(f, 60);
    zp_vent_finished_destroy(&f);
}

/* Every id has one hash: the index holds one of them, the rest are
 * found by a scan, whichever entry leaves first. */
static uint64_t s_one_hash(const char *id)
{
    (void)id;
    return 42;
}

static bool s_has(const zp_vent_finished_t *f, const char *id, uint64_t total)
{
    const zp_vent_finished_job_t *e = zp_vent_finished_find(f, id);
    return e && strcmp(e->id, id) == 0 && e->total == total;
}

static void test_colliding_ids_are_found_whatever_leaves_first(void)
{
    zp_vent_finished_t *f = zp_vent_finished_new(3, 0);
    zp_vent_finished_set_hash(f, s_one_hash);
    TEST_EQ_INT(zp_vent_finished_add(f, "a", "t", 1, 10), 0);
    TEST_EQ_INT(zp_vent_finished_add(f, "b", "t", 2, 20), 0);
    TEST_EQ_INT(zp_vent_finished_add(f, "c", "t", 3, 30), 0);
    TEST_CHECK(s_has(f, "a", 1) && s_has(f, "b", 2) && s_has(f, "c", 3));
    /* "a", the indexed one, ages out: before the fix b and c were lost */
    TEST_EQ_INT(zp_vent_finished_add(f, "d", "t", 4, 40), 0);
    TEST_CHECK(!zp_vent_finished_find(f, "a"));
    TEST_CHECK(s_has(f, "b", 2) && s_has(f, "c", 3) && s_has(f, "d", 4));
    /* an unindexed id again: its old entry becomes a hole, and the full
     * ring lets "b" go */
    TEST_EQ_INT(zp_vent_finished_add(f, "c", "t", 5, 50), 0);
    TEST_CHECK(s_has(f, "c", 5) && s_has(f, "d", 4));
    TEST_CHECK(!zp_vent_finished_find(f, "b"));
    TEST_EQ_INT(zp_vent_finished_expire(f, 45 + ZP_VENT_FINISHED_AGE_US), 1);
    TEST_CHECK(!zp_vent_finished_find(f, "b") &&
               !zp_vent_finished_find(f, "d"));
    TEST_CHECK(s_has(f, "c", 5));
    TEST_EQ_INT(zp_vent_finished_add(f, "e", "t", 6, 60), 0);
    TEST_CHECK(s_has(f, "c", 5) && s_has(f, "e", 6));
    zp_vent_finished_destroy(&f);
}

static void test_alloc_failures(void)
{
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 10);
}

static const test_case_t tests[] = {
    {"test_remembers_by_id_with_token_and_total",
     test_remembers_by_id_with_token_and_total},
    {"test_oldest_forgotten_past_the_count",
     test_oldest_forgotten_past_the_count},
    {"test_an_id_again_replaces_the_old_entry",
     test_an_id_again_replaces_the_old_entry},
    {"test_expire_by_age", test_expire_by_age},
    {"test_colliding_ids_are_found_whatever_leaves_first",
     test_colliding_ids_are_found_whatever_leaves_first},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};
TEST_MAIN(tests)
