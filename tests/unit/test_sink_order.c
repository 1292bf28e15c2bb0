/* Tests for sink_order: records held back until every lower task id is
 * written, and the ring they wait in. */
#include "failalloc.h"
#include "sink_order.h"
#include "test.h"

#include <stdio.h>
#include <string.h>

/* What the shell does with a record: write it now when it is next (then
 * whatever it unblocks), else park it. Written ids go to out. */
static int s_deliver(zp_order_t *o, uint64_t id, uint64_t *out, size_t *n)
{
    char rec[32];
    int len = snprintf(rec, sizeof rec, "rec %llu\n", (unsigned long long)id);
    if (id != zp_order_next(o))
        return zp_order_park(o, id, id % 2 == 0, rec, (size_t)len, NULL, 0);
    out[(*n)++] = id;
    zp_order_advance(o);
    zp_order_rec_t p;
    while (zp_order_peek(o, &p)) {
        char want[32];
        int wl = snprintf(want, sizeof want, "rec %llu\n",
                          (unsigned long long)p.task);
        if (p.rec_len != (size_t)wl || memcmp(p.rec, want, (size_t)wl) != 0 ||
            p.ok != (p.task % 2 == 0) || p.json)
            return -2;
        out[(*n)++] = p.task;
        zp_order_advance(o);
    }
    return 0;
}

static void test_out_of_order_arrivals_come_out_in_order(void)
{
    zp_order_t o = {0};
    uint64_t out[8];
    size_t n = 0;
    const uint64_t arrive[] = {3, 1, 0, 2};
    TEST_EQ_INT(s_deliver(&o, arrive[0], out, &n), 0);
    TEST_EQ_INT(s_deliver(&o, arrive[1], out, &n), 0);
    TEST_EQ_INT(n, 0);
    TEST_EQ_INT(zp_order_parked(&o), 2);
    TEST_EQ_INT(s_deliver(&o, arrive[2], out, &n), 0);
    /* 0 and 1 are out; 3 waits for 2. */
    TEST_EQ_INT(n, 2);
    TEST_EQ_INT(out[0], 0);
    TEST_EQ_INT(out[1], 1);
    TEST_EQ_INT(zp_order_next(&o), 2);
    TEST_EQ_INT(s_deliver(&o, arrive[3], out, &n), 0);
    TEST_EQ_INT(n, 4);
    TEST_EQ_INT(out[2], 2);
    TEST_EQ_INT(out[3], 3);
    TEST_EQ_INT(zp_order_parked(&o), 0);
    zp_order_fini(&o);
}

static void test_a_gap_holds_back_later_records(void)
{
    zp_order_t o = {0};
    uint64_t out[16];
    size_t n = 0;
    TEST_EQ_INT(s_deliver(&o, 0, out, &n), 0);
    for (uint64_t id = 2; id < 10; id++)
        TEST_EQ_INT(s_deliver(&o, id, out, &n), 0);
    zp_order_rec_t p;
    TEST_CHECK(!zp_order_peek(&o, &p));
    TEST_EQ_INT(n, 1);
    TEST_EQ_INT(zp_order_parked(&o), 8);
    TEST_EQ_INT(s_deliver(&o, 1, out, &n), 0);
    TEST_EQ_INT(n, 10);
    for (size_t i = 0; i < n; i++)
        TEST_EQ_INT(out[i], i);
    zp_order_fini(&o);
}

/* Parked far ahead, with the ring's window wrapped around: the ring
 * grows and keeps every record in its place. */
static void test_ring_grows_and_keeps_records(void)
{
    enum { N = 5000 };
    static uint64_t out[N + 600];
    zp_order_t o = {0};
    size_t n = 0;
    for (uint64_t id = 0; id < 600; id++) /* next is 600: the ring wraps */
        TEST_EQ_INT(s_deliver(&o, id, out, &n), 0);
    TEST_EQ_INT(s_deliver(&o, 601, out, &n), 0);
    TEST_EQ_INT(o.ring_cap, 1024);
    for (uint64_t id = N + 599; id > 601; id--)
        TEST_EQ_INT(s_deliver(&o, id, out, &n), 0);
    TEST_EQ_INT(o.ring_cap, 8192);
    TEST_EQ_INT(zp_order_parked(&o), N - 1);
    TEST_EQ_INT(s_deliver(&o, 600, out, &n), 0);
    TEST_EQ_INT(n, N + 600);
    for (size_t i = 0; i < n; i++)
        TEST_EQ_INT(out[i], i);
    zp_order_fini(&o);
}

static void test_json_is_kept_beside_the_record(void)
{
    zp_order_t o = {0};
    TEST_EQ_INT(zp_order_park(&o, 1, false, "line\n", 5, "{\"j\":1}\n", 8), 0);
    TEST_EQ_INT(zp_order_park(&o, 2, true, "", 0, NULL, 0), 0);
    zp_order_advance(&o);
    zp_order_rec_t p;
    TEST_CHECK(zp_order_peek(&o, &p));
    TEST_EQ_INT(p.task, 1);
    TEST_CHECK(!p.ok);
    TEST_CHECK(p.rec_len == 5 && memcmp(p.rec, "line\n", 5) == 0);
    TEST_CHECK(p.json_len == 8 && memcmp(p.json, "{\"j\":1}\n", 8) == 0);
    zp_order_advance(&o);
    TEST_CHECK(zp_order_peek(&o, &p));
    TEST_CHECK(p.ok && p.rec_len == 0 && p.json == NULL);
    zp_order_advance(&o);
    TEST_CHECK(!zp_order_peek(&o, &p));
    zp_order_fini(&o);
}

static void test_park_refuses_ids_not_ahead(void)
{
    zp_order_t o = {0};
    zp_order_restart(&o, 10);
    TEST_EQ_INT(zp_order_park(&o, 10, true, "x", 1, NULL, 0), -1);
    TEST_EQ_INT(zp_order_park(&o, 3, true, "x", 1, NULL, 0), -1);
    TEST_EQ_INT(zp_order_park(&o, UINT64_MAX, true, "x", 1, NULL, 0), -1);
    TEST_EQ_INT(zp_order_parked(&o), 0);
    zp_order_fini(&o);
}

/* Batches of 1,000 records arriving before the batch ahead of them, as
 * two workers' batches do: once the chunks are warm, parking and writing
 * them allocates nothing. */
static void test_steady_parking_allocates_nothing(void)
{
    zp_order_t o = {0};
    char rec[64];
    long warm = 0;
    for (int round = 0; round < 6; round++) {
        if (round == 3)
            failalloc_arm(0); /* counting from here */
        uint64_t base = zp_order_next(&o);
        for (uint64_t id = base + 1000; id < base + 2000; id++) {
            zp_buf_t *b = zp_order_park_buf(&o);
            TEST_CHECK(b != NULL);
            size_t from = b->len;
            int n = snprintf(rec, sizeof rec, "{\"task\":%llu}\n",
                             (unsigned long long)id);
            TEST_CHECK(zp_buf_append(b, rec, (size_t)n) == 0);
            TEST_CHECK(zp_buf_append(b, "J", 1) == 0); /* its JSON */
            TEST_EQ_INT(zp_order_park_rendered(&o, id, true, from, (size_t)n),
                        0);
        }
        TEST_EQ_INT(zp_order_parked(&o), 1000);
        for (uint64_t id = base; id < base + 1000; id++)
            zp_order_advance(&o); /* written as they came, in order */
        zp_order_rec_t p;
        for (uint64_t id = base + 1000; id < base + 2000; id++) {
            TEST_CHECK(zp_order_peek(&o, &p));
            int n = snprintf(rec, sizeof rec, "{\"task\":%llu}\n",
                             (unsigned long long)id);
            TEST_CHECK(p.task == id && p.rec_len == (size_t)n &&
                       memcmp(p.rec, rec, (size_t)n) == 0);
            TEST_CHECK(p.json_len == 1 && p.json[0] == 'J');
            zp_order_advance(&o);
        }
        TEST_EQ_INT(zp_order_parked(&o), 0);
        if (round == 5)
            warm = failalloc_count();
    }
    TEST_EQ_INT(warm, 0);
    zp_order_fini(&o);
}

/* Records parked past one chunk's size stay whole and in order while the
 * chunks before them are written and reused. */
static void test_records_span_many_chunks(void)
{
    zp_order_t o = {0};
    static char big[100000];
    memset(big, 'b', sizeof big);
    uint64_t n = 40; /* 4 MB: many chunks */
    for (uint64_t id = n; id >= 1; id--) {
        big[0] = (char)('0' + id % 10);
        TEST_EQ_INT(
            zp_order_park(&o, id, id % 3 != 0, big, sizeof big - id, NULL, 0),
            0);
    }
    TEST_CHECK(o.n_chunks > 1);
    zp_order_advance(&o);
    zp_order_rec_t p;
    for (uint64_t id = 1; id <= n; id++) {
        TEST_CHECK(zp_order_peek(&o, &p));
        TEST_CHECK(p.task == id && p.ok == (id % 3 != 0));
        TEST_CHECK(p.rec_len == sizeof big - id && p.json == NULL);
        TEST_CHECK(p.rec[0] == (char)('0' + id % 10) && p.rec[1] == 'b');
        zp_order_advance(&o);
    }
    TEST_EQ_INT(zp_order_parked(&o), 0);
    zp_order_fini(&o);
}

static void s_scenario(void *arg)
{
    int *failed = arg;
    zp_order_t o = {0};
    for (uint64_t k = 0; k < 420; k++)
        if (zp_order_park(&o, 3000 - 7 * k, true, "abc\n", 4, "{}\n", 3) < 0)
            (*failed)++;
    zp_order_advance(&o);
    zp_order_rec_t p;
    while (zp_order_peek(&o, &p))
        zp_order_advance(&o);
    zp_order_fini(&o);
}

static void test_alloc_failures(void)
{
    int failed = 0;
    long runs = failalloc_sweep(s_scenario, &failed);
    TEST_CHECK(runs >= 3); /* the ring, a copy, a growth */
    TEST_CHECK(failed > 0);
}

/* Ids with a record that is not parked: an unordered sink's journal. */
static bool s_in_journal(void *ctx, uint64_t id)
{
    const char *set = ctx; /* '1' at the ids that have a record */
    return id < strlen(set) && set[id] == '1';
}

/* A restart on an unordered journal holding 0, 1, 2, 5 and 7: the order
 * resumes at 3; once 3 and 4 are written it steps over 5 (written before)
 * to the parked 6, then over 7. Without the skip it would wait for 5 for
 * ever and 6's record would never be written. */
static void test_skip_steps_over_records_written_before(void)
{
    const char *journal = "11100101";
    zp_order_t o = {0};
    TEST_EQ_INT(zp_order_skip_written(&o, s_in_journal, (void *)journal), 3);
    TEST_EQ_INT(zp_order_next(&o), 3);
    TEST_EQ_INT(zp_order_park(&o, 6, true, "six\n", 4, NULL, 0), 0);
    TEST_EQ_INT(zp_order_park(&o, 4, true, "four\n", 5, NULL, 0), 0);
    zp_order_advance(&o); /* 3 arrived in order and was written */
    zp_order_rec_t p;
    TEST_CHECK(zp_order_peek(&o, &p) && p.task == 4);
    zp_order_advance(&o);
    TEST_CHECK(!zp_order_peek(&o, &p)); /* 5: in the journal, not parked */
    TEST_EQ_INT(zp_order_skip_written(&o, s_in_journal, (void *)journal), 1);
    TEST_CHECK(zp_order_peek(&o, &p) && p.task == 6);
    /* A parked record is never skipped, even when the set says written. */
    TEST_EQ_INT(zp_order_skip_written(&o, s_in_journal, (void *)"1111111"), 0);
    zp_order_advance(&o);
    TEST_EQ_INT(zp_order_skip_written(&o, s_in_journal, (void *)journal), 1);
    TEST_EQ_INT(zp_order_next(&o), 8);
    TEST_EQ_INT(zp_order_skip_written(&o, s_in_journal, (void *)journal), 0);
    zp_order_fini(&o);
}

static const test_case_t tests[] = {
    {"test_skip_steps_over_records_written_before",
     test_skip_steps_over_records_written_before},
    {"test_out_of_order_arrivals_come_out_in_order",
     test_out_of_order_arrivals_come_out_in_order},
    {"test_a_gap_holds_back_later_records",
     test_a_gap_holds_back_later_records},
    {"test_ring_grows_and_keeps_records", test_ring_grows_and_keeps_records},
    {"test_json_is_kept_beside_the_record",
     test_json_is_kept_beside_the_record},
    {"test_park_refuses_ids_not_ahead", test_park_refuses_ids_not_ahead},
    {"test_steady_parking_allocates_nothing",
     test_steady_parking_allocates_nothing},
    {"test_records_span_many_chunks", test_records_span_many_chunks},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
