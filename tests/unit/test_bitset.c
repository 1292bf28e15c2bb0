/* Tests for zp_bitset: the set of committed task ids. */
#include "failalloc.h"
#include "test.h"
#include "zp_bitset.h"

#include <string.h>

static void test_set_reports_new_and_present(void)
{
    zp_bitset_t s = {0};
    TEST_CHECK(!zp_bitset_has(&s, 0));
    TEST_EQ_INT(zp_bitset_set(&s, 0), 1);
    TEST_EQ_INT(zp_bitset_set(&s, 0), 0);
    TEST_EQ_INT(zp_bitset_set(&s, 63), 1);
    TEST_EQ_INT(zp_bitset_set(&s, 64), 1);
    TEST_CHECK(zp_bitset_has(&s, 0) && zp_bitset_has(&s, 63) &&
               zp_bitset_has(&s, 64));
    TEST_CHECK(!zp_bitset_has(&s, 1) && !zp_bitset_has(&s, 65));
    TEST_EQ_INT(s.count, 3);
    zp_bitset_free(&s);
    TEST_CHECK(s.words == NULL && s.count == 0 && !zp_bitset_has(&s, 0));
}

static void test_grows_far_and_keeps_what_it_had(void)
{
    zp_bitset_t s = {0};
    TEST_EQ_INT(zp_bitset_set(&s, 5), 1);
    TEST_EQ_INT(zp_bitset_set(&s, 10000000), 1); /* grows by doubling */
    TEST_CHECK(s.n_words * 64 > 10000000);
    TEST_CHECK(zp_bitset_has(&s, 5) && zp_bitset_has(&s, 10000000));
    TEST_CHECK(!zp_bitset_has(&s, 9999999));
    TEST_CHECK(!zp_bitset_has(&s, (uint64_t)1 << 62)); /* beyond: absent */
    zp_bitset_free(&s);
}

static void test_dense_ids_match_a_reference(void)
{
    enum { N = 200000 };
    static unsigned char ref[N];
    zp_bitset_t s = {0};
    uint64_t x = 88172645463325252ull, n = 0;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t id = x % N;
        int r = zp_bitset_set(&s, id);
        TEST_EQ_INT(r, ref[id] ? 0 : 1);
        n += !ref[id];
        ref[id] = 1;
    }
    for (uint64_t id = 0; id < N; id++)
        TEST_EQ_INT(zp_bitset_has(&s, id), ref[id]);
    TEST_EQ_INT(s.count, n);
    zp_bitset_free(&s);
}

/* Runs found by zp_bitset_next cover exactly the ids in the set. */
static void test_next_walks_runs_against_a_reference(void)
{
    enum { N = 5000 };
    static unsigned char ref[N];
    zp_bitset_t s = {0};
    TEST_EQ_INT(zp_bitset_next(&s, 0, true), UINT64_MAX);
    TEST_EQ_INT(zp_bitset_next(&s, 7, false), 7);
    uint64_t x = 2463534242ull;
    for (int i = 0; i < N / 100; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t id = x % N, len = x % 90;
        for (uint64_t k = id; k < id + len && k < N; k++) {
            ref[k] = 1;
            zp_bitset_set(&s, k);
        }
    }
    ref[N - 1] = 1;
    zp_bitset_set(&s, N - 1);
    unsigned char seen[N] = {0};
    uint64_t runs = 0, id = 0;
    while ((id = zp_bitset_next(&s, id, true)) != UINT64_MAX) {
        uint64_t end = zp_bitset_next(&s, id, false);
        TEST_CHECK(end > id && end <= s.n_words * 64);
        for (uint64_t k = id; k < end; k++)
            seen[k] = 1;
        runs++;
        id = end;
    }
    TEST_CHECK(runs > 10);
    TEST_CHECK(memcmp(seen, ref, N) == 0);
    TEST_EQ_INT(zp_bitset_next(&s, N, true), UINT64_MAX);
    TEST_EQ_INT(zp_bitset_next(&s, (uint64_t)1 << 40, false),
                (uint64_t)1 << 40);
    zp_bitset_free(&s);
}

static void s_grow_scenario(void *arg)
{
    int *ok = arg;
    zp_bitset_t s = {0};
    for (uint64_t id = 0; id < 1u << 20; id += 4099) {
        int r = zp_bitset_set(&s, id);
        if (r < 0) {
            /* a failed growth leaves the set as it was */
            if (zp_bitset_has(&s, id) || (id && !zp_bitset_has(&s, 0)))
                *ok = 0;
            break;
        }
    }
    zp_bitset_free(&s);
}

static void test_alloc_failures_leave_the_set_usable(void)
{
    int ok = 1;
    long runs = failalloc_sweep(s_grow_scenario, &ok);
    TEST_CHECK(ok);
    TEST_CHECK(runs >= 2); /* the first allocation and a growth */
}

static const test_case_t tests[] = {
    {"test_set_reports_new_and_present", test_set_reports_new_and_present},
    {"test_grows_far_and_keeps_what_it_had",
     test_grows_far_and_keeps_what_it_had},
    {"test_dense_ids_match_a_reference", test_dense_ids_match_a_reference},
    {"test_next_walks_runs_against_a_reference",
     test_next_walks_runs_against_a_reference},
    {"test_alloc_failures_leave_the_set_usable",
     test_alloc_failures_leave_the_set_usable},
    {NULL, NULL},
};
TEST_MAIN(tests)
