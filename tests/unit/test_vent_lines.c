/* Tests for vent_lines: a producer's lines taken, not yet tasks. */
#include "failalloc.h"
#include "test.h"
#include "vent_lines.h"

#include <string.h>

/* Pops every line, checking ids and bytes against want (n lines). */
static int s_drain(zp_vent_lines_t *q, uint64_t first, const char *const *want,
                   size_t n)
{
    int bad = 0;
    uint64_t id, stamp;
    const uint8_t *line;
    size_t len, k = 0;
    while (zp_vent_lines_peek(q, &id, &line, &len, &stamp)) {
        bad += k >= n || id != first + k || len != strlen(want[k]) ||
               memcmp(line, want[k], len) != 0;
        zp_vent_lines_pop(q, len);
        k++;
    }
    return bad + (k != n) + (q->n != 0) + (q->bytes != 0);
}

static void test_lines_come_out_in_order_with_their_ids(void)
{
    zp_vent_lines_t q = {0};
    const char *want[] = {"a", "", "ccc", "dd", "e"};
    TEST_EQ_INT(
        zp_vent_lines_push(&q, 10, (const uint8_t *)"a\n\nccc\n", 7, 3, 5), 0);
    TEST_EQ_INT(zp_vent_lines_push(&q, 13, (const uint8_t *)"dd\ne\n", 5, 2, 6),
                0);
    TEST_EQ_INT(q.n, 5);
    TEST_EQ_INT(q.bytes, 12);
    uint64_t id, stamp;
    const uint8_t *line;
    size_t len;
    TEST_CHECK(zp_vent_lines_peek(&q, &id, &line, &len, &stamp));
    TEST_EQ_INT(stamp, 5);
    TEST_EQ_INT(s_drain(&q, 10, want, 5), 0);
    TEST_CHECK(!zp_vent_lines_peek(&q, &id, &line, &len, &stamp));
    TEST_CHECK(q.head == NULL && q.tail == NULL);
}

static void test_the_last_block_is_taken_back_whole(void)
{
    zp_vent_lines_t q = {0};
    const char *want[] = {"x2", "y"};
    zp_vent_lines_push(&q, 0, (const uint8_t *)"x1\nx2\ny\n", 8, 3, 0);
    uint64_t id, stamp;
    const uint8_t *line;
    size_t len;
    TEST_CHECK(zp_vent_lines_peek(&q, &id, &line, &len, &stamp));
    zp_vent_lines_pop(&q, len); /* x1 became a task */
    zp_vent_lines_push(&q, 3, (const uint8_t *)"z1\nz2\n", 6, 2, 0);
    zp_vent_lines_drop_back(&q);
    TEST_EQ_INT(q.n, 2);
    TEST_EQ_INT(q.bytes, 5);
    TEST_EQ_INT(s_drain(&q, 1, want, 2), 0);
    zp_vent_lines_drop_back(&q); /* empty: nothing to do */
    TEST_EQ_INT(q.n, 0);
}

/* The compaction's walk sees what a pop would give, without popping,
 * from wherever the oldest block was left. */
static void test_the_walk_sees_every_line_left(void)
{
    zp_vent_lines_t q = {0};
    zp_vent_lines_push(&q, 0, (const uint8_t *)"a\nb\n", 4, 2, 0);
    zp_vent_lines_push(&q, 2, (const uint8_t *)"c\n", 2, 1, 0);
    zp_vent_lines_push(&q, 3, (const uint8_t *)"\nd\n", 3, 2, 0);
    uint64_t id, stamp;
    const uint8_t *line;
    size_t len;
    zp_vent_lines_peek(&q, &id, &line, &len, &stamp);
    zp_vent_lines_pop(&q, len);
    const char *want[] = {"b", "c", "", "d"};
    zp_vent_lines_cursor_t c = {0};
    size_t k = 0;
    int bad = 0;
    while (zp_vent_lines_next(&q, &c, &id, &line, &len)) {
        bad += k >= 4 || id != 1 + k || len != strlen(want[k]) ||
               memcmp(line, want[k], len) != 0;
        k++;
    }
    TEST_EQ_INT(bad, 0);
    TEST_EQ_INT(k, 4);
    TEST_CHECK(!zp_vent_lines_next(&q, &c, &id, &line, &len)); /* stays done */
    TEST_EQ_INT(q.n, 4); /* the walk took nothing */
    zp_vent_lines_free(&q);
    TEST_CHECK(q.head == NULL && q.n == 0 && q.bytes == 0);
    zp_vent_lines_cursor_t e = {0};
    TEST_CHECK(!zp_vent_lines_next(&q, &e, &id, &line, &len));
}

static void s_scenario(void *arg)
{
    (void)arg;
    zp_vent_lines_t q = {0};
    for (int i = 0; i < 5; i++)
        zp_vent_lines_push(&q, (uint64_t)i * 2, (const uint8_t *)"p\nq\n", 4, 2,
                           0);
    zp_vent_lines_free(&q);
}

/* A push that cannot allocate changes nothing. */
static void test_alloc_failures(void)
{
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 5);
    zp_vent_lines_t q = {0};
    failalloc_arm(1);
    int r = zp_vent_lines_push(&q, 0, (const uint8_t *)"a\n", 2, 1, 0);
    failalloc_disarm();
    TEST_EQ_INT(r, -1);
    TEST_CHECK(q.n == 0 && q.bytes == 0 && q.head == NULL);
}

static const test_case_t tests[] = {
    {"test_lines_come_out_in_order_with_their_ids",
     test_lines_come_out_in_order_with_their_ids},
    {"test_the_last_block_is_taken_back_whole",
     test_the_last_block_is_taken_back_whole},
    {"test_the_walk_sees_every_line_left", test_the_walk_sees_every_line_left},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};
TEST_MAIN(tests)
