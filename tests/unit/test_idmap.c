/* Tests for zp_idmap: the in-flight table and the retry queue. */
#include "failalloc.h"
#include "test.h"
#include "zp_idmap.h"

#include <string.h>

static void test_put_get_remove_many(void)
{
    zp_idmap_t *m = zp_idmap_new();
    static int vals[100000];
    for (uint64_t i = 0; i < 100000; i++)
        TEST_CHECK(zp_idmap_put(m, i * 7919, &vals[i]) == 0);
    TEST_EQ_INT(zp_idmap_size(m), 100000);
    for (uint64_t i = 0; i < 100000; i += 2)
        TEST_CHECK(zp_idmap_remove(m, i * 7919) == &vals[i]);
    TEST_EQ_INT(zp_idmap_size(m), 50000);
    for (uint64_t i = 0; i < 100000; i++)
        TEST_CHECK(zp_idmap_get(m, i * 7919) == (i % 2 ? &vals[i] : NULL));
    TEST_CHECK(zp_idmap_remove(m, 3) == NULL);
    zp_idmap_destroy(&m);
    TEST_CHECK(m == NULL);
}

/* The ventilator's table: a slow worker holds 4,096 tasks while a window
 * of 20,000 newer ones slides by, 150,000 in all, so the newer ids span
 * more than the table held them in. No member may sit far from its home:
 * the table grew instead; it did not, and the window piled up behind the
 * old block, 4,096 slots deep. */
static void test_old_ids_do_not_pile_up_newer_ones(void)
{
    enum { OLD = 4096, WINDOW = 20000, TOTAL = 150000 };
    const uint64_t job = 3ull << 40; /* the job's slot above the task id */
    zp_idmap_t *m = zp_idmap_new();
    static char vals[1];
    for (uint64_t id = 0; id < OLD; id++)
        TEST_CHECK(zp_idmap_put(m, job | id, vals) == 0);
    size_t worst = 0;
    for (uint64_t id = OLD; id < TOTAL; id++) {
        TEST_CHECK(zp_idmap_put(m, job | id, vals) == 0);
        if (id >= OLD + WINDOW)
            TEST_CHECK(zp_idmap_remove(m, job | (id - WINDOW)) == vals);
        if (id % 50000 == 0) {
            size_t p = zp_idmap_longest_probe(m);
            worst = p > worst ? p : worst;
        }
    }
    TEST_EQ_INT(zp_idmap_size(m), OLD + WINDOW);
    for (uint64_t id = 0; id < OLD; id++)
        TEST_CHECK(zp_idmap_get(m, job | id) == vals);
    TEST_CHECK(zp_idmap_get(m, job | (TOTAL - WINDOW - 1)) == NULL);
    TEST_CHECK(zp_idmap_get(m, job | (TOTAL - 1)) == vals);
    printf("    longest probe %zu slots\n", worst);
    TEST_CHECK(worst < 64);
    zp_idmap_destroy(&m);
}

/* Random puts, gets and removes against a plain array, on ids that are
 * dense, or collide in the low bits, or differ only in the high bits. */
static void test_random_churn_matches_a_reference(void)
{
    enum { N = 4096 };
    static const uint64_t scale[3] = {1, 1024, 1ull << 40};
    for (int k = 0; k < 3; k++) {
        zp_idmap_t *m = zp_idmap_new();
        static int vals[N];
        static bool in[N];
        memset(in, 0, sizeof in);
        size_t size = 0;
        uint64_t seed = 12345 + (uint64_t)k;
        for (int op = 0; op < 200000; op++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t x = (size_t)(seed >> 33) % N;
            uint64_t id = (uint64_t)x * scale[k] + (k == 2 ? 7 : 0);
            switch ((seed >> 20) % 3) {
            case 0:
                TEST_CHECK(zp_idmap_put(m, id, &vals[x]) == 0);
                size += !in[x];
                in[x] = true;
                break;
            case 1:
                TEST_CHECK(zp_idmap_remove(m, id) == (in[x] ? &vals[x] : NULL));
                size -= in[x];
                in[x] = false;
                break;
            default:
                TEST_CHECK(zp_idmap_get(m, id) == (in[x] ? &vals[x] : NULL));
            }
        }
        TEST_EQ_INT(zp_idmap_size(m), size);
        for (size_t x = 0; x < N; x++)
            TEST_CHECK(
                zp_idmap_get(m, (uint64_t)x * scale[k] + (k == 2 ? 7 : 0)) ==
                (in[x] ? &vals[x] : NULL));
        zp_idmap_destroy(&m);
    }
}

static void test_put_replaces(void)
{
    zp_idmap_t *m = zp_idmap_new();
    int a, b;
    zp_idmap_put(m, 5, &a);
    zp_idmap_put(m, 5, &b);
    TEST_EQ_INT(zp_idmap_size(m), 1);
    TEST_CHECK(zp_idmap_get(m, 5) == &b);
    zp_idmap_destroy(&m);
}

static void test_iteration_sees_each_entry_once_even_when_removing(void)
{
    zp_idmap_t *m = zp_idmap_new();
    static int vals[1000];
    for (uint64_t i = 0; i < 1000; i++)
        zp_idmap_put(m, i, &vals[i]);
    size_t cursor = 0, seen = 0;
    uint64_t id;
    void *v;
    while (zp_idmap_next(m, &cursor, &id, &v)) {
        TEST_CHECK(v == &vals[id]);
        seen++;
    }
    TEST_EQ_INT(seen, 1000);
    /* Removing everything while iterating leaves it empty. */
    for (int round = 0; round < 10 && zp_idmap_size(m); round++) {
        cursor = 0;
        while (zp_idmap_next(m, &cursor, &id, &v))
            zp_idmap_remove(m, id);
    }
    TEST_EQ_INT(zp_idmap_size(m), 0);
    zp_idmap_destroy(&m);
}

static void test_deque_front_and_back(void)
{
    zp_iddeque_t q = {0};
    for (uint64_t i = 0; i < 1000; i++)
        TEST_CHECK(zp_iddeque_push_back(&q, i) == 0);
    TEST_CHECK(zp_iddeque_push_front(&q, 4242) == 0);
    uint64_t id;
    TEST_CHECK(zp_iddeque_pop_front(&q, &id));
    TEST_EQ_INT(id, 4242);
    for (uint64_t i = 0; i < 1000; i++) {
        TEST_CHECK(zp_iddeque_pop_front(&q, &id));
        TEST_EQ_INT(id, i);
    }
    TEST_CHECK(!zp_iddeque_pop_front(&q, &id));
    zp_iddeque_free(&q);
}

/* A put or push that cannot grow fails alone: what was there stays. */
static void s_idmap_scenario(void *arg)
{
    int *bad = arg;
    static int vals[5000];
    zp_idmap_t *m = zp_idmap_new();
    zp_iddeque_t q = {0};
    uint64_t put = 0, pushed = 0;
    if (m) {
        for (; put < 5000; put++)
            if (zp_idmap_put(m, put * 3, &vals[put]) < 0)
                break;
        for (uint64_t i = 0; i < put; i++)
            if (zp_idmap_get(m, i * 3) != &vals[i])
                *bad = 1;
        if (zp_idmap_size(m) != put)
            *bad = 1;
    }
    for (; pushed < 5000; pushed++)
        if ((pushed % 2 ? zp_iddeque_push_front(&q, pushed)
                        : zp_iddeque_push_back(&q, pushed)) < 0)
            break;
    if (q.len != pushed)
        *bad = 1;
    zp_iddeque_free(&q);
    zp_idmap_destroy(&m);
}

static void test_alloc_failures_lose_nothing_already_held(void)
{
    int bad = 0;
    long runs = failalloc_sweep(s_idmap_scenario, &bad);
    TEST_EQ_INT(bad, 0);
    TEST_CHECK(runs >= 3);
}

static const test_case_t tests[] = {
    {"test_alloc_failures_lose_nothing_already_held",
     test_alloc_failures_lose_nothing_already_held},
    {"test_old_ids_do_not_pile_up_newer_ones",
     test_old_ids_do_not_pile_up_newer_ones},
    {"test_put_get_remove_many", test_put_get_remove_many},
    {"test_put_replaces", test_put_replaces},
    {"test_random_churn_matches_a_reference",
     test_random_churn_matches_a_reference},
    {"test_iteration_sees_each_entry_once_even_when_removing",
     test_iteration_sees_each_entry_once_even_when_removing},
    {"test_deque_front_and_back", test_deque_front_and_back},
    {NULL, NULL},
};
TEST_MAIN(tests)
