/* Tests for wk_shm: where frames go in a region, the reference frame, and
 * the regions a worker shares with its executor (read-only inputs,
 * results freed in any order and published in order). */
#define _GNU_SOURCE
#include "failalloc.h"
#include "test.h"
#include "wk_shm.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_slots_take_the_lowest_gap_that_fits(void)
{
    zp_wk_slots_t s;
    zp_wk_slots_init(&s, 1000);
    size_t a, b, c, d;
    uint64_t sa, sb, sc, sd;
    TEST_EQ_INT(zp_wk_slots_alloc(&s, 100, &a, &sa), 0);
    TEST_EQ_INT(zp_wk_slots_alloc(&s, 100, &b, &sb), 0);
    TEST_EQ_INT(a, 0);
    TEST_EQ_INT(b, 128); /* offsets are multiples of 64 */
    TEST_EQ_INT(sa, 1);
    TEST_EQ_INT(sb, 2);
    zp_wk_slots_release(&s, sa); /* a gap at the start */
    TEST_EQ_INT(zp_wk_slots_alloc(&s, 200, &c, &sc), 0);
    TEST_EQ_INT(c, 256); /* 200 does not fit before b */
    TEST_EQ_INT(zp_wk_slots_alloc(&s, 64, &d, &sd), 0);
    TEST_EQ_INT(d, 0); /* 64 does */
    TEST_EQ_INT(sd, 4);
    TEST_EQ_INT(zp_wk_slots_live(&s), 3);
}

static void test_slots_refuse_what_does_not_fit(void)
{
    zp_wk_slots_t s;
    zp_wk_slots_init(&s, 1000);
    size_t off;
    uint64_t seq;
    TEST_EQ_INT(zp_wk_slots_alloc(&s, 1001, &off, &seq), -1);
    TEST_EQ_INT(zp_wk_slots_alloc(&s, 0, &off, &seq), -1);
    TEST_EQ_INT(zp_wk_slots_alloc(&s, 1000, &off, &seq), 0);
    TEST_EQ_INT(zp_wk_slots_alloc(&s, 1, &off, &seq), -1); /* full */
    zp_wk_slots_release(&s, seq);
    TEST_EQ_INT(zp_wk_slots_live(&s), 0);
    /* At most ZP_WK_SLOTS_MAX frames, however small. */
    zp_wk_slots_init(&s, 1 << 20);
    for (unsigned i = 0; i < ZP_WK_SLOTS_MAX; i++)
        TEST_EQ_INT(zp_wk_slots_alloc(&s, 1, &off, &seq), 0);
    TEST_EQ_INT(zp_wk_slots_alloc(&s, 1, &off, &seq), -1);
}

static void test_slots_release_to_frees_every_earlier_frame(void)
{
    zp_wk_slots_t s;
    zp_wk_slots_init(&s, 1 << 20);
    size_t off;
    uint64_t seq;
    for (int i = 0; i < 5; i++)
        TEST_EQ_INT(zp_wk_slots_alloc(&s, 1000, &off, &seq), 0);
    zp_wk_slots_release_to(&s, 3);
    TEST_EQ_INT(zp_wk_slots_live(&s), 2);
    /* The room of 1..3 is taken first again. */
    TEST_EQ_INT(zp_wk_slots_alloc(&s, 2000, &off, &seq), 0);
    TEST_EQ_INT(off, 0);
    TEST_EQ_INT(seq, 6);
    zp_wk_slots_release_to(&s, 100);
    TEST_EQ_INT(zp_wk_slots_live(&s), 0);
}

/* A frame trimmed to start just past the previous frame's end, before
 * that end rounded up to 64: nothing fits between them. (The gap was
 * computed as 62 - 64 in size_t: the next frame went over the trimmed
 * one, which the executor had sent and libzmq had not; the sink got a
 * batch half overwritten by the outputs of later tasks.) */
static void test_slots_never_overlap_a_trimmed_frame(void)
{
    zp_wk_slots_t s;
    zp_wk_slots_init(&s, 1 << 20);
    size_t x, b, c;
    uint64_t sx, sb, sc;
    TEST_EQ_INT(zp_wk_slots_alloc(&s, 1000, &x, &sx), 0);
    zp_wk_slots_trim(&s, sx, 62, 71); /* written in place: [62, 133) */
    TEST_EQ_INT(zp_wk_slots_alloc(&s, 60, &b, &sb), 0);
    TEST_EQ_INT(b, 0); /* [0, 60) fits before it */
    TEST_EQ_INT(zp_wk_slots_alloc(&s, 10, &c, &sc), 0);
    TEST_CHECK(c >= 133);
    TEST_EQ_INT(c % 64, 0);
}

/* Allocs, trims and releases at random: the live frames never overlap,
 * and a frame is refused only when no gap would take it. */
static void test_slots_random_never_overlap(void)
{
    uint64_t rng = 0x9e3779b97f4a7c15ull;
#define S_RAND() (rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, rng)
    for (int round = 0; round < 200; round++) {
        zp_wk_slots_t s;
        size_t cap = 4096 + S_RAND() % 65536;
        zp_wk_slots_init(&s, cap);
        struct {
            uint64_t seq;
            size_t off, len;
        } live[ZP_WK_SLOTS_MAX];
        size_t n = 0;
        for (int step = 0; step < 2000; step++) {
            unsigned op = (unsigned)(S_RAND() % 4);
            if (op < 2 && n < ZP_WK_SLOTS_MAX) {
                size_t len = 1 + S_RAND() % (op ? 200 : 3000), off;
                uint64_t seq;
                if (zp_wk_slots_alloc(&s, len, &off, &seq) == 0) {
                    TEST_CHECK(off % 64 == 0 && off + len <= cap);
                    for (size_t i = 0; i < n; i++)
                        TEST_CHECK(off + len <= live[i].off ||
                                   live[i].off + live[i].len <= off);
                    live[n].seq = seq;
                    live[n].off = off;
                    live[n++].len = len;
                }
            } else if (op == 2 && n) { /* written in place: trimmed */
                size_t i = S_RAND() % n;
                size_t skip = S_RAND() % live[i].len;
                size_t len = 1 + S_RAND() % (live[i].len - skip);
                zp_wk_slots_trim(&s, live[i].seq, live[i].off + skip, len);
                live[i].off += skip;
                live[i].len = len;
            } else if (n) {
                size_t i = S_RAND() % n;
                zp_wk_slots_release(&s, live[i].seq);
                live[i] = live[--n];
            }
            TEST_EQ_INT(zp_wk_slots_live(&s), n);
        }
    }
#undef S_RAND
}

static void test_ref_round_trip_and_refusals(void)
{
    zp_wk_ref_t r = {ZP_WK_REF_RESULTS, 7, 4096, 100}, back;
    uint8_t f[ZP_WK_REF_LEN];
    zp_wk_ref_write(&r, f);
    TEST_CHECK(zp_wk_ref_is(f, sizeof f));
    TEST_CHECK(zp_wk_ref_parse(f, sizeof f, ZP_WK_REF_RESULTS, 8192, &back));
    TEST_EQ_INT(back.seq, 7);
    TEST_EQ_INT(back.off, 4096);
    TEST_EQ_INT(back.len, 100);
    /* Another kind, a region too small, a wrong length. */
    TEST_CHECK(!zp_wk_ref_parse(f, sizeof f, ZP_WK_REF_TASKS, 8192, &back));
    TEST_CHECK(!zp_wk_ref_parse(f, sizeof f, ZP_WK_REF_RESULTS, 4195, &back));
    TEST_CHECK(
        !zp_wk_ref_parse(f, sizeof f - 1, ZP_WK_REF_RESULTS, 8192, &back));
    /* A frame running past the region's end, with or without wrapping. */
    r.off = UINT64_MAX - 10;
    zp_wk_ref_write(&r, f);
    TEST_CHECK(!zp_wk_ref_parse(f, sizeof f, ZP_WK_REF_RESULTS, 8192, &back));
    /* Not a reference: a Message's frame never starts with 0. */
    uint8_t msg[] = {0x1a, 0x00};
    TEST_CHECK(!zp_wk_ref_is(msg, sizeof msg));
    TEST_CHECK(!zp_wk_ref_is(msg, 0));
    f[3] = 1; /* padding must be zero */
    r.off = 0;
    zp_wk_ref_write(&r, f);
    f[3] = 1;
    TEST_CHECK(!zp_wk_ref_parse(f, sizeof f, ZP_WK_REF_RESULTS, 8192, &back));
}

/* Writes to p[off] in a child; the signal it died of, or 0. */
static int s_write_in_child(uint8_t *p, size_t off)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* a sanitizer's handler would exit */
        signal(SIGBUS, SIG_DFL);
        ((volatile uint8_t *)p)[off] = 'X';
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) ? WTERMSIG(st) : 0;
}

static void test_inputs_are_read_only_to_the_executor(void)
{
    zp_wk_region_t *in = zp_wk_region_new("test-in", 1 << 16, true);
    TEST_CHECK(in != NULL);
    memcpy(zp_wk_region_base(in), "batch", 5); /* the worker writes */
    size_t size = 0;
    uint8_t *p = zp_wk_region_map(zp_wk_region_fd(in), false, &size);
    TEST_CHECK(p != NULL);
    TEST_EQ_INT(size, 1 << 16);
    TEST_CHECK(memcmp(p, "batch", 5) == 0);
    TEST_EQ_INT(s_write_in_child(p, 2), SIGSEGV);
    TEST_EQ_INT(s_write_in_child(p, size), SIGSEGV); /* the guard page */
    TEST_CHECK(zp_wk_region_holds(p, size, p + 2));
    TEST_CHECK(zp_wk_region_holds(p, size, p + size));
    TEST_CHECK(!zp_wk_region_holds(p, size, p + size + 65536));
    TEST_CHECK(!zp_wk_region_holds(NULL, 0, p));
    /* Where the kernel seals future writes, nothing maps it writable. */
    if (fcntl(zp_wk_region_fd(in), F_GET_SEALS) & F_SEAL_FUTURE_WRITE) {
        size_t n;
        TEST_CHECK(zp_wk_region_map(zp_wk_region_fd(in), true, &n) == NULL);
        TEST_CHECK(mprotect(p, size, PROT_READ | PROT_WRITE) != 0);
    }
    /* Its size is fixed. */
    TEST_CHECK(ftruncate(zp_wk_region_fd(in), 4096) != 0);
    munmap(p, size + (size_t)sysconf(_SC_PAGESIZE));
    zp_wk_region_unref(&in);
    TEST_CHECK(in == NULL);
}

static void test_map_refuses_what_is_not_a_region(void)
{
    size_t size = 7;
    TEST_CHECK(zp_wk_region_map(-1, false, &size) == NULL);
    TEST_EQ_INT(size, 0);
    /* A file left open on the fd number is not mapped, let alone
     * written. */
    char path[] = "/tmp/zp-shm-XXXXXX";
    int fd = mkstemp(path);
    TEST_CHECK(fd >= 0);
    unlink(path);
    TEST_CHECK(ftruncate(fd, 65536) == 0);
    TEST_CHECK(zp_wk_region_map(fd, true, &size) == NULL);
    close(fd);
}

static void test_results_freed_out_of_order_publish_in_order(void)
{
    zp_wk_region_t *out = zp_wk_region_new("test-out", 1 << 16, false);
    TEST_CHECK(out != NULL);
    for (uint64_t seq = 1; seq <= 3; seq++)
        zp_wk_region_received(out, seq);
    void *h1 = zp_wk_region_hold(out, 1), *h3 = zp_wk_region_hold(out, 3);
    TEST_CHECK(h1 && h3);
    zp_wk_region_free(NULL, h3); /* libzmq frees 3 first */
    TEST_EQ_INT(zp_wk_region_released(out), 0);
    zp_wk_region_free(NULL, h1);
    TEST_EQ_INT(zp_wk_region_released(out), 1);
    zp_wk_region_release(out, 2); /* decoded, not sent */
    TEST_EQ_INT(zp_wk_region_released(out), 3);
    /* Frames not received yet are never counted. */
    zp_wk_region_release(out, 4);
    TEST_EQ_INT(zp_wk_region_released(out), 3);
    zp_wk_region_received(out, 4);
    TEST_EQ_INT(zp_wk_region_released(out), 4);
    zp_wk_region_unref(&out);
}

static void test_region_outlives_its_holder_until_frames_are_freed(void)
{
    zp_wk_region_t *out = zp_wk_region_new("test-out", 1 << 16, false);
    TEST_CHECK(out != NULL);
    uint8_t *base = zp_wk_region_base(out);
    memcpy(base, "result", 6);
    zp_wk_region_received(out, 1);
    void *h = zp_wk_region_hold(out, 1);
    zp_wk_region_t *keep = out;
    zp_wk_region_unref(&out);                   /* the executor is gone */
    TEST_CHECK(memcmp(base, "result", 6) == 0); /* libzmq still sends it */
    zp_wk_region_free(base, h); /* the last reference: unmapped, freed */
    (void)keep;
}

static void s_scenario(void *arg)
{
    (void)arg;
    zp_wk_region_t *out = zp_wk_region_new("test-out", 1 << 16, false);
    if (!out)
        return;
    zp_wk_region_received(out, 1);
    void *h = zp_wk_region_hold(out, 1);
    if (h)
        zp_wk_region_free(NULL, h);
    zp_wk_region_released(out);
    zp_wk_region_unref(&out);
}

static void test_alloc_failures(void)
{
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 2);
}

static const test_case_t tests[] = {
    {"test_slots_take_the_lowest_gap_that_fits",
     test_slots_take_the_lowest_gap_that_fits},
    {"test_slots_refuse_what_does_not_fit",
     test_slots_refuse_what_does_not_fit},
    {"test_slots_release_to_frees_every_earlier_frame",
     test_slots_release_to_frees_every_earlier_frame},
    {"test_slots_never_overlap_a_trimmed_frame",
     test_slots_never_overlap_a_trimmed_frame},
    {"test_slots_random_never_overlap", test_slots_random_never_overlap},
    {"test_ref_round_trip_and_refusals", test_ref_round_trip_and_refusals},
    {"test_inputs_are_read_only_to_the_executor",
     test_inputs_are_read_only_to_the_executor},
    {"test_map_refuses_what_is_not_a_region",
     test_map_refuses_what_is_not_a_region},
    {"test_results_freed_out_of_order_publish_in_order",
     test_results_freed_out_of_order_publish_in_order},
    {"test_region_outlives_its_holder_until_frames_are_freed",
     test_region_outlives_its_holder_until_frames_are_freed},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
