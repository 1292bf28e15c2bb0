/* Tests for wk_inputs: a batch's frame in pages of its own, read-only
 * while sealed, with a guard page behind it. */
#define _GNU_SOURCE
#include "failalloc.h"
#include "test.h"
#include "wk_inputs.h"

#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs write_at(p, off) in a child; returns the signal it died of, or 0
 * when it lived. */
static int s_write_in_child(zp_wk_inputs_t *in, uint8_t *p, size_t off,
                            bool seal)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* a sanitizer's handler would exit */
        signal(SIGBUS, SIG_DFL);
        if (seal && zp_wk_inputs_seal(in) < 0)
            _exit(2);
        ((volatile uint8_t *)p)[off] = 'X';
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) ? WTERMSIG(st) : 0;
}

static void test_load_gives_a_page_aligned_copy(void)
{
    zp_wk_inputs_t *in = zp_wk_inputs_new();
    const uint8_t *copy = NULL;
    TEST_CHECK(zp_wk_inputs_load(in, "hello", 5, &copy) == 0);
    TEST_CHECK(memcmp(copy, "hello", 5) == 0);
    TEST_EQ_INT((uintptr_t)copy % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
    zp_wk_inputs_destroy(&in);
    TEST_CHECK(in == NULL);
}

static void test_a_write_to_sealed_inputs_is_a_segv(void)
{
    zp_wk_inputs_t *in = zp_wk_inputs_new();
    const uint8_t *copy = NULL;
    TEST_CHECK(zp_wk_inputs_load(in, "abcdef", 6, &copy) == 0);
    uint8_t *p = (uint8_t *)(uintptr_t)copy;
    /* In an input, and just past the last one. */
    TEST_EQ_INT(s_write_in_child(in, p, 2, true), SIGSEGV);
    TEST_EQ_INT(s_write_in_child(in, p, 6, true), SIGSEGV);
    /* Unsealed, the same writes are fine. */
    TEST_EQ_INT(s_write_in_child(in, p, 2, false), 0);
    zp_wk_inputs_destroy(&in);
}

static void test_the_guard_page_stops_a_run_off_the_end(void)
{
    zp_wk_inputs_t *in = zp_wk_inputs_new();
    size_t len = 64 << 10; /* fills the first mapping to its last byte */
    uint8_t *data = calloc(1, len);
    const uint8_t *copy = NULL;
    TEST_CHECK(zp_wk_inputs_load(in, data, len, &copy) == 0);
    uint8_t *p = (uint8_t *)(uintptr_t)copy;
    TEST_EQ_INT(s_write_in_child(in, p, len, false), SIGSEGV);
    TEST_EQ_INT(s_write_in_child(in, p, len - 1, false), 0);
    free(data);
    zp_wk_inputs_destroy(&in);
}

static void test_sealed_at_knows_the_region_while_sealed(void)
{
    zp_wk_inputs_t *in = zp_wk_inputs_new();
    TEST_CHECK(!zp_wk_inputs_sealed_at(in, in));
    TEST_CHECK(!zp_wk_inputs_sealed_at(NULL, in));
    size_t len = 1 << 20; /* grows past the first mapping */
    uint8_t *data = malloc(len);
    memset(data, 7, len);
    const uint8_t *copy = NULL;
    TEST_CHECK(zp_wk_inputs_load(in, "x", 1, &copy) == 0);
    TEST_CHECK(zp_wk_inputs_load(in, data, len, &copy) == 0);
    TEST_CHECK(copy[len - 1] == 7);
    TEST_CHECK(!zp_wk_inputs_sealed_at(in, copy));
    TEST_CHECK(zp_wk_inputs_seal(in) == 0);
    TEST_CHECK(zp_wk_inputs_sealed_at(in, copy));
    TEST_CHECK(zp_wk_inputs_sealed_at(in, copy + len)); /* the guard */
    TEST_CHECK(!zp_wk_inputs_sealed_at(in, data));
    TEST_CHECK(copy[0] == 7); /* still readable */
    /* A load unseals by itself. */
    TEST_CHECK(zp_wk_inputs_load(in, "yz", 2, &copy) == 0);
    TEST_CHECK(!zp_wk_inputs_sealed_at(in, copy));
    TEST_CHECK(memcmp(copy, "yz", 2) == 0);
    TEST_CHECK(zp_wk_inputs_unseal(in) == 0); /* unsealed already: fine */
    free(data);
    zp_wk_inputs_destroy(&in);
}

static void s_scenario(void *arg)
{
    (void)arg;
    zp_wk_inputs_t *in = zp_wk_inputs_new();
    const uint8_t *copy;
    if (in && zp_wk_inputs_load(in, "abc", 3, &copy) == 0) {
        zp_wk_inputs_seal(in);
        zp_wk_inputs_unseal(in);
    }
    zp_wk_inputs_destroy(&in);
}

static void test_alloc_failures(void)
{
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 1);
}

static const test_case_t tests[] = {
    {"test_load_gives_a_page_aligned_copy",
     test_load_gives_a_page_aligned_copy},
    {"test_a_write_to_sealed_inputs_is_a_segv",
     test_a_write_to_sealed_inputs_is_a_segv},
    {"test_the_guard_page_stops_a_run_off_the_end",
     test_the_guard_page_stops_a_run_off_the_end},
    {"test_sealed_at_knows_the_region_while_sealed",
     test_sealed_at_knows_the_region_while_sealed},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
