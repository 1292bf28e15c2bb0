/* Tests for sink_retain: the forgotten jobs' ids, matched by token,
 * capped with the oldest dropped, and an allocation-failure sweep. */
#include "failalloc.h"
#include "sink_retain.h"
#include "test.h"

static const zp_retain_entry_t S_NONE = {0};

#include <stdio.h>
#include <stdlib.h>

static void s_id(char *buf, size_t n, const char *prefix, int i)
{
    snprintf(buf, n, "%s-%d", prefix, i);
}

/* A forgotten id is the same job for its token or none, another job for
 * another token; an id never added is unknown. */
static void test_match_by_token(void)
{
    zp_retain_t r = {.cap = 100};
    TEST_EQ_INT(zp_retain_add(&r, "job-1", "tok-a", S_NONE), 0);
    TEST_EQ_INT(zp_retain_add(&r, "job-2", NULL, S_NONE), 0);
    TEST_EQ_INT(zp_retain_match(&r, "job-1", "tok-a"), ZP_RETAIN_SAME);
    TEST_EQ_INT(zp_retain_match(&r, "job-1", ""), ZP_RETAIN_SAME);
    TEST_EQ_INT(zp_retain_match(&r, "job-1", "tok-b"), ZP_RETAIN_OTHER);
    /* A job that had no token cannot become a tokened one. */
    TEST_EQ_INT(zp_retain_match(&r, "job-2", "tok-a"), ZP_RETAIN_OTHER);
    TEST_EQ_INT(zp_retain_match(&r, "job-2", NULL), ZP_RETAIN_SAME);
    TEST_EQ_INT(zp_retain_match(&r, "job-3", "tok-a"), ZP_RETAIN_UNKNOWN);
    TEST_CHECK(zp_retain_has(&r, "job-1") && !zp_retain_has(&r, "job-3"));
    /* What a late consumer is told: its counts and spool length. */
    zp_retain_entry_t c = {.total = 10, .succeeded = 9, .spooled = 1234};
    TEST_EQ_INT(zp_retain_add(&r, "job-4", "t", c), 0);
    const zp_retain_entry_t *f = zp_retain_find(&r, "job-4");
    TEST_CHECK(f && f->total == 10 && f->succeeded == 9 && f->spooled == 1234);
    TEST_CHECK(zp_retain_find(&r, "job-5") == NULL);
    /* Its records taken: gone, the rest as it was; an unknown id: no. */
    TEST_CHECK(zp_retain_spool_gone(&r, "job-4"));
    f = zp_retain_find(&r, "job-4");
    TEST_CHECK(f && f->spooled == ZP_RETAIN_SPOOL_GONE && f->total == 10 &&
               f->succeeded == 9);
    TEST_CHECK(!zp_retain_spool_gone(&r, "job-5"));
    TEST_CHECK(zp_retain_find(&r, "job-1")->spooled == 0);
    /* Added again: kept once. */
    TEST_EQ_INT(zp_retain_add(&r, "job-1", "tok-a", S_NONE), 0);
    TEST_EQ_INT(r.n, 3);
    zp_retain_fini(&r);
    TEST_EQ_INT(r.cap, 100);
}

/* Past the cap the oldest are dropped: the newest cap ids stay found,
 * through many drops (the index's backward shifts). */
static void test_cap_drops_the_oldest(void)
{
    enum { CAP = 1000, N = 25000 };
    zp_retain_t r = {.cap = CAP};
    char id[32];
    for (int i = 0; i < N; i++) {
        s_id(id, sizeof id, "job", i);
        TEST_EQ_INT(zp_retain_add(&r, id, "t", S_NONE), 0);
    }
    TEST_EQ_INT(r.n, CAP);
    TEST_CHECK(r.ring_cap == CAP);
    int found = 0;
    for (int i = 0; i < N; i++) {
        s_id(id, sizeof id, "job", i);
        bool want = i >= N - CAP;
        bool has = zp_retain_has(&r, id);
        if (has != want) {
            fprintf(stderr, "job-%d: has %d, want %d\n", i, has, want);
            TEST_CHECK(has == want);
            break;
        }
        found += has;
    }
    TEST_EQ_INT(found, CAP);
    /* Oldest first. */
    TEST_CHECK(zp_retain_at(&r, 0).id_hash == zp_retain_hash("job-24000"));
    zp_retain_fini(&r);
}

/* A cap of 0 remembers nothing. */
static void test_cap_zero(void)
{
    zp_retain_t r = {0};
    TEST_EQ_INT(zp_retain_add(&r, "job-1", "t", S_NONE), 0);
    TEST_EQ_INT(zp_retain_match(&r, "job-1", "x"), ZP_RETAIN_UNKNOWN);
    zp_retain_fini(&r);
}

/* By hashes, as a compacted journal gives them back. */
static void test_add_hashed(void)
{
    zp_retain_t r = {.cap = 10};
    zp_retain_entry_t e = {.id_hash = zp_retain_hash("job-9"),
                           .token_hash = zp_retain_hash("tok")};
    TEST_EQ_INT(zp_retain_add_hashed(&r, e), 0);
    TEST_EQ_INT(zp_retain_match(&r, "job-9", "tok"), ZP_RETAIN_SAME);
    TEST_EQ_INT(zp_retain_match(&r, "job-9", "other"), ZP_RETAIN_OTHER);
    zp_retain_fini(&r);
}

/* Out of memory: the set keeps what it has, drops its oldest to make
 * room once it has any, and every id it says it has is one added. */
static void s_scenario(void *arg)
{
    (void)arg;
    zp_retain_t r = {.cap = 300};
    char id[32];
    for (int i = 0; i < 400; i++) {
        s_id(id, sizeof id, "j", i);
        if (zp_retain_add(&r, id, "t", S_NONE) < 0 && r.n != 0)
            abort();
    }
    if (r.n > 300)
        abort();
    for (int i = 400 - (int)r.n; i < 400; i++) {
        s_id(id, sizeof id, "j", i);
        if (!zp_retain_has(&r, id))
            abort();
    }
    zp_retain_fini(&r);
}

static void test_alloc_failures(void)
{
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 4);
}

static const test_case_t tests[] = {
    {"test_match_by_token", test_match_by_token},
    {"test_cap_drops_the_oldest", test_cap_drops_the_oldest},
    {"test_cap_zero", test_cap_zero},
    {"test_add_hashed", test_add_hashed},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
