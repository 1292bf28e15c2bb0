/* Tests for wk_runq: a thread's wait for a CPU, read from schedstat. */
#define _GNU_SOURCE
#include "test.h"
#include "wk_runq.h"

#include <sched.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_parse_takes_the_second_number(void)
{
    uint64_t ns = 7;
    const char *ok = "670820 300724 2\n";
    TEST_CHECK(zp_wk_runq_parse(ok, strlen(ok), &ns));
    TEST_EQ_INT(ns, 300724);
    TEST_CHECK(zp_wk_runq_parse("1 0 0", 5, &ns));
    TEST_EQ_INT(ns, 0);
    const char *bad[] = {
        "",          "1 2",      "1 x 3\n", "1  2 3",
        "1 2 3 4\n", "-1 2 3\n", "1 2 3x",  "1 99999999999999999999 3\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ns = 7;
        TEST_CHECK(!zp_wk_runq_parse(bad[i], strlen(bad[i]), &ns));
        TEST_EQ_INT(ns, 7);
    }
}

static uint64_t s_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void s_spin(uint64_t us)
{
    uint64_t until = s_mono_us() + us;
    while (s_mono_us() < until)
        ;
}

/* Three processes on one CPU for 150 ms each (processes, not threads:
 * under valgrind a process's threads take turns on a lock, not on the
 * CPU): this one must have waited for it. */
static void test_a_shared_cpu_shows_as_waiting(void)
{
    zp_wk_runq_t q;
    zp_wk_runq_open(&q);
    if (q.fd < 0) {
        printf("    NOT RUN: no /proc/thread-self/schedstat here\n");
        return;
    }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
    cpu_set_t was;
    TEST_CHECK(sched_getaffinity(0, sizeof was, &was) == 0);
    TEST_CHECK(sched_setaffinity(0, sizeof one, &one) == 0);
    uint64_t w0 = zp_wk_runq_wait_us(&q), span = 150000;
    pid_t kids[2];
    for (int i = 0; i < 2; i++)
        if ((kids[i] = fork()) == 0) {
            s_spin(span);
            _exit(0);
        }
    s_spin(span);
    for (int i = 0; i < 2; i++)
        TEST_CHECK(kids[i] > 0 && waitpid(kids[i], NULL, 0) == kids[i]);
    uint64_t w1 = zp_wk_runq_wait_us(&q);
    sched_setaffinity(0, sizeof was, &was);
    printf("    waited %llu us of 150,000 us with 3 processes on one CPU\n",
           (unsigned long long)(w1 - w0));
    TEST_CHECK(w1 >= w0 + 50000);
    zp_wk_runq_close(&q);
    TEST_EQ_INT(q.fd, -1);
    TEST_EQ_INT(zp_wk_runq_wait_us(&q), 0);
}

static const test_case_t tests[] = {
    {"test_parse_takes_the_second_number", test_parse_takes_the_second_number},
    {"test_a_shared_cpu_shows_as_waiting", test_a_shared_cpu_shows_as_waiting},
    {NULL, NULL},
};

TEST_MAIN(tests)
