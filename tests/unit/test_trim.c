/* Tests for zp_trim: memory is given back once per idle period, after a
 * busy turn and idle_us without one; never while busy, never when idle
 * from the start. */
#include "test.h"
#include "zp_trim.h"

#include <stdlib.h>
#include <string.h>

static void test_due_once_per_idle_period(void)
{
    zp_trim_t t = {0};
    TEST_CHECK(!zp_trim_due(&t, 5000000, false, 1000)); /* never busy */
    TEST_CHECK(!zp_trim_due(&t, 100, true, 1000));
    TEST_CHECK(!zp_trim_due(&t, 600, false, 1000)); /* not idle long */
    TEST_CHECK(!zp_trim_due(&t, 900, true, 1000));  /* busy again */
    TEST_CHECK(!zp_trim_due(&t, 1800, false, 1000));
    TEST_CHECK(zp_trim_due(&t, 1900, false, 1000));
    TEST_CHECK(!zp_trim_due(&t, 5000, false, 1000)); /* once */
    TEST_CHECK(!zp_trim_due(&t, 6000, true, 1000));
    TEST_CHECK(zp_trim_due(&t, 7000, false, 1000)); /* the next period */
}

/* Freed memory can be given back (glibc): the call returns either way. */
static void test_release_after_a_burst(void)
{
    enum { N = 20000 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(700);
        memset(p[i], 1, 700);
    }
    for (int i = 0; i < N - 1; i++)
        free(p[i]); /* the last one pins the heap's top */
    int r = zp_trim_release();
    TEST_CHECK(r == 0 || r == 1);
    free(p[N - 1]);
}

static const test_case_t tests[] = {
    {"test_due_once_per_idle_period", test_due_once_per_idle_period},
    {"test_release_after_a_burst", test_release_after_a_burst},
    {NULL, NULL},
};
TEST_MAIN(tests)
