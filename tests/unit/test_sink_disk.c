/* Tests for sink_disk: a file whose writes fail part way (RLIMIT_FSIZE
 * stands in for a full disk: a write past it is short, then EFBIG) is cut
 * back and written whole once there is room, never extended past its
 * end; the pause's log-once and backoff; the watch for deleted and
 * replaced files. In a temporary directory. */
#include "failalloc.h"
#include "sink_disk.h"
#include "test.h"
#include "zp_log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_dir[64];
static char s_path[128];

static void s_mkdir(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/test_sink_disk.XXXXXX");
    if (!mkdtemp(s_dir))
        abort();
    snprintf(s_path, sizeof s_path, "%s/out", s_dir);
}

static void s_cleanup(void)
{
    unlink(s_path);
    char other[160];
    snprintf(other, sizeof other, "%s.new", s_path);
    unlink(other);
    rmdir(s_dir);
}

/* The file's bytes into buf; its length, -1 when missing. */
static long s_file(char *buf, size_t cap)
{
    FILE *f = fopen(s_path, "rb");
    if (!f)
        return -1;
    long n = (long)fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void s_fsize_limit(rlim_t n)
{
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = n;
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        abort();
}

static zp_dfile_t *s_open(uint64_t offset)
{
    int fd = open(s_path, O_WRONLY | O_CREAT, 0644);
    return zp_dfile_new(s_path, fd, offset);
}

static void test_short_write_is_cut_back_and_written_again(void)
{
    s_mkdir();
    signal(SIGXFSZ, SIG_IGN);
    zp_dfile_t *f = s_open(0);
    TEST_CHECK(f != NULL);
    TEST_EQ_INT(zp_dfile_append(f, "0123456789\n", 11), 0);
    TEST_EQ_INT(zp_dfile_commit(f, true), 0);
    /* Room for 5 more bytes: the next record is written short. */
    s_fsize_limit(16);
    TEST_EQ_INT(zp_dfile_append(f, "abcdefghij\n", 11), 0);
    TEST_EQ_INT(zp_dfile_commit(f, true), -1);
    TEST_EQ_INT(errno, EFBIG);
    char buf[64];
    TEST_EQ_INT(s_file(buf, sizeof buf), 11); /* cut back: no torn record */
    /* Still failing: the buffer is kept whole, the file as it was. */
    TEST_EQ_INT(zp_dfile_append(f, "ABC\n", 4), 0);
    TEST_EQ_INT(zp_dfile_commit(f, false), -1);
    TEST_EQ_INT(s_file(buf, sizeof buf), 11);
    TEST_EQ_INT((long)zp_dfile_size(f), 26);
    /* Room again: everything, once, in order. */
    s_fsize_limit(RLIM_INFINITY);
    TEST_EQ_INT(zp_dfile_commit(f, true), 0);
    TEST_EQ_INT((long)zp_dfile_pending(f), 0);
    long n = s_file(buf, sizeof buf);
    TEST_EQ_INT(n, 26);
    TEST_CHECK(memcmp(buf, "0123456789\nabcdefghij\nABC\n", 26) == 0);
    TEST_CHECK(memchr(buf, '\0', (size_t)n) == NULL);
    zp_dfile_destroy(&f);
    TEST_CHECK(f == NULL);
    s_cleanup();
}

static void test_opened_at_an_offset_is_cut_never_extended(void)
{
    s_mkdir();
    zp_dfile_t *f = s_open(0);
    zp_dfile_append(f, "0123456789", 10);
    TEST_EQ_INT(zp_dfile_commit(f, false), 0);
    zp_dfile_destroy(&f);
    /* Past the end (a journal that says more than the file has): refused,
     * not a NUL range. */
    errno = 0;
    TEST_CHECK(s_open(20) == NULL);
    TEST_EQ_INT(errno, EINVAL);
    char buf[64];
    TEST_EQ_INT(s_file(buf, sizeof buf), 10);
    /* Before it: cut there, and written from there. */
    f = s_open(4);
    TEST_CHECK(f != NULL);
    TEST_EQ_INT(s_file(buf, sizeof buf), 4);
    zp_dfile_append(f, "xy", 2);
    zp_dfile_destroy(&f); /* writes what is buffered */
    TEST_EQ_INT(s_file(buf, sizeof buf), 6);
    TEST_CHECK(memcmp(buf, "0123xy", 6) == 0);
    s_cleanup();
}

static void test_a_file_cut_under_it_is_not_written_past_its_end(void)
{
    s_mkdir();
    zp_dfile_t *f = s_open(0);
    zp_dfile_append(f, "0123456789", 10);
    TEST_EQ_INT(zp_dfile_commit(f, false), 0);
    TEST_EQ_INT(truncate(s_path, 3), 0);
    zp_dfile_append(f, "abc", 3);
    TEST_EQ_INT(zp_dfile_commit(f, false), -1);
    TEST_EQ_INT(errno, ESTALE);
    char buf[64];
    TEST_EQ_INT(s_file(buf, sizeof buf), 3); /* no hole at 3..10 */
    zp_dfile_destroy(&f);
    TEST_EQ_INT(s_file(buf, sizeof buf), 3);
    s_cleanup();
}

static void test_a_pipe_is_written_as_a_stream(void)
{
    int p[2];
    TEST_EQ_INT(pipe(p), 0);
    zp_dfile_t *f = zp_dfile_new("a pipe", p[1], 0);
    TEST_CHECK(f != NULL);
    zp_dfile_append(f, "hello\n", 6);
    TEST_EQ_INT(zp_dfile_commit(f, true), 0);
    char buf[16];
    TEST_EQ_INT(read(p[0], buf, sizeof buf), 6);
    zp_dfile_destroy(&f); /* closes the write end */
    TEST_EQ_INT(read(p[0], buf, sizeof buf), 0);
    close(p[0]);
}

static void test_big_buffer_is_full(void)
{
    s_mkdir();
    zp_dfile_t *f = s_open(0);
    static char block[1 << 16];
    memset(block, 'x', sizeof block);
    for (int i = 0; i < 15; i++)
        zp_dfile_append(f, block, sizeof block);
    TEST_CHECK(!zp_dfile_full(f));
    zp_dfile_append(f, block, sizeof block);
    TEST_CHECK(zp_dfile_full(f));
    TEST_EQ_INT(zp_dfile_write(f), 0);
    TEST_CHECK(!zp_dfile_full(f));
    zp_dfile_destroy(&f);
    s_cleanup();
}

static int s_released[8];

static void s_release(void *hint)
{
    s_released[(int)(intptr_t)hint]++;
}

/* Bytes by reference come where they were appended, among buffered ones;
 * a short write writes them again once there is room (they are kept
 * until committed, then given back, each once); a pipe gets them too. */
static void test_references_are_written_in_place_and_kept_until_committed(void)
{
    s_mkdir();
    signal(SIGXFSZ, SIG_IGN);
    memset(s_released, 0, sizeof s_released);
    zp_dfile_t *f = s_open(0);
    TEST_CHECK(f != NULL);
    static char big[100000];
    memset(big, 'b', sizeof big);
    zp_dfile_append(f, "<", 1);
    TEST_EQ_INT(zp_dfile_append_ref(f, "REF1", 4, s_release, (void *)1), 0);
    zp_dfile_append(f, "|", 1);
    TEST_EQ_INT(zp_dfile_append_ref(f, big, sizeof big, s_release, (void *)2),
                0);
    TEST_EQ_INT(zp_dfile_append_ref(f, "R3", 2, s_release, (void *)3), 0);
    zp_dfile_append(f, ">\n", 2);
    TEST_EQ_INT((long)zp_dfile_pending(f), 100010);
    TEST_EQ_INT((long)zp_dfile_size(f), 100010);
    /* Room for part of it: cut back, nothing given back yet. */
    s_fsize_limit(50000);
    TEST_EQ_INT(zp_dfile_commit(f, true), -1);
    TEST_EQ_INT(errno, EFBIG);
    static char buf[200000];
    TEST_EQ_INT(s_file(buf, sizeof buf), 0);
    TEST_EQ_INT(s_released[1] + s_released[2] + s_released[3], 0);
    /* Room again: all of it, in order, once; then each given back once. */
    s_fsize_limit(RLIM_INFINITY);
    TEST_EQ_INT(zp_dfile_commit(f, true), 0);
    TEST_EQ_INT(s_file(buf, sizeof buf), 100010);
    TEST_CHECK(memcmp(buf, "<REF1|b", 7) == 0);
    TEST_CHECK(memcmp(buf + 6 + sizeof big, "R3>\n", 4) == 0);
    TEST_CHECK(memchr(buf, '\0', 100010) == NULL);
    TEST_EQ_INT(s_released[1], 1);
    TEST_EQ_INT(s_released[2], 1);
    TEST_EQ_INT(s_released[3], 1);
    TEST_EQ_INT((long)zp_dfile_pending(f), 0);
    /* More than a write call's iovecs: written whole, in order. */
    char text[200][8];
    for (int i = 0; i < 200; i++) {
        snprintf(text[i], sizeof text[i], "%03d", i);
        zp_dfile_append_ref(f, text[i], 3, NULL, NULL);
        zp_dfile_append(f, ",", 1);
    }
    TEST_CHECK(zp_dfile_write(f) == 0);
    TEST_EQ_INT(s_file(buf, sizeof buf), 100010 + 800);
    TEST_CHECK(memcmp(buf + 100010, "000,001,002,", 12) == 0);
    TEST_CHECK(memcmp(buf + 100010 + 796, "199,", 4) == 0);
    /* Given back as it is destroyed, when not committed. */
    zp_dfile_append_ref(f, "last\n", 5, s_release, (void *)4);
    zp_dfile_destroy(&f);
    TEST_EQ_INT(s_released[4], 1);
    TEST_EQ_INT(s_file(buf, sizeof buf), 100010 + 805);
    /* A pipe. */
    int p[2];
    TEST_EQ_INT(pipe(p), 0);
    f = zp_dfile_new("a pipe", p[1], 0);
    zp_dfile_append(f, "a", 1);
    zp_dfile_append_ref(f, "bc", 2, s_release, (void *)5);
    zp_dfile_append(f, "d\n", 2);
    TEST_EQ_INT(zp_dfile_commit(f, false), 0);
    TEST_EQ_INT(s_released[5], 1);
    TEST_EQ_INT(read(p[0], buf, sizeof buf), 5);
    TEST_CHECK(memcmp(buf, "abcd\n", 5) == 0);
    zp_dfile_destroy(&f);
    close(p[0]);
    s_cleanup();
}

static void test_big_reference_is_full(void)
{
    s_mkdir();
    zp_dfile_t *f = s_open(0);
    static char block[1 << 20];
    zp_dfile_append_ref(f, block, sizeof block - 1, NULL, NULL);
    TEST_CHECK(!zp_dfile_full(f));
    zp_dfile_append(f, "\n", 1);
    TEST_CHECK(zp_dfile_full(f));
    TEST_EQ_INT(zp_dfile_write(f), 0);
    TEST_CHECK(!zp_dfile_full(f));
    zp_dfile_destroy(&f);
    s_cleanup();
}

static void test_pause_backs_off_and_recovers(void)
{
    zp_disk_t d = {0};
    TEST_CHECK(!zp_disk_paused(&d));
    TEST_CHECK(!zp_disk_retry_due(&d, 0));
    uint64_t t = 1000;
    zp_disk_failed(&d, "/full/out", ENOSPC, t);
    TEST_CHECK(zp_disk_paused(&d));
    TEST_EQ_INT(d.err, ENOSPC);
    TEST_EQ_STR(d.path, "/full/out");
    TEST_CHECK(!zp_disk_retry_due(&d, t + ZP_DISK_RETRY_MIN_US - 1));
    TEST_CHECK(zp_disk_retry_due(&d, t + ZP_DISK_RETRY_MIN_US));
    /* Each failed retry waits twice as long, up to the most. */
    uint64_t waits[] = {2000000, 4000000, 5000000, 5000000};
    for (int i = 0; i < 4; i++) {
        t = d.next_us;
        zp_disk_failed(&d, "/full/journal", ENOSPC, t);
        TEST_EQ_INT((long)(d.next_us - t), (long)waits[i]);
    }
    TEST_EQ_STR(d.path, "/full/out"); /* the first failure is the one told */
    TEST_EQ_INT((long)d.pauses, 1);
    TEST_EQ_INT((long)d.errors, 5);
    zp_disk_recovered(&d, t + 1);
    TEST_CHECK(!zp_disk_paused(&d));
    TEST_CHECK(!zp_disk_retry_due(&d, UINT64_MAX));
    /* A new pause starts at the shortest wait again. */
    zp_disk_failed(&d, "/full/out", EIO, t + 10);
    TEST_EQ_INT((long)(d.next_us - (t + 10)), (long)ZP_DISK_RETRY_MIN_US);
    TEST_EQ_INT((long)d.pauses, 2);
}

static void test_watch_sees_deleted_and_replaced(void)
{
    s_mkdir();
    zp_disk_watch_t w = {0};
    char why[128];
    TEST_CHECK(zp_disk_watch_ok(&w, why, sizeof why)); /* not watched */
    TEST_EQ_INT(zp_disk_watch_set(&w, s_path), -1);    /* missing */
    int fd = open(s_path, O_WRONLY | O_CREAT, 0644);
    TEST_EQ_INT(zp_disk_watch_set(&w, s_path), 0);
    TEST_CHECK(zp_disk_watch_ok(&w, why, sizeof why));
    /* Replaced: another file renamed over it (the old one stays open). */
    char other[160];
    snprintf(other, sizeof other, "%s.new", s_path);
    close(open(other, O_WRONLY | O_CREAT, 0644));
    TEST_EQ_INT(rename(other, s_path), 0);
    TEST_CHECK(!zp_disk_watch_ok(&w, why, sizeof why));
    TEST_CONTAINS(why, "replaced");
    /* A rename on purpose (a compaction) is set again. */
    TEST_EQ_INT(zp_disk_watch_set(&w, s_path), 0);
    TEST_CHECK(zp_disk_watch_ok(&w, why, sizeof why));
    unlink(s_path);
    TEST_CHECK(!zp_disk_watch_ok(&w, why, sizeof why));
    TEST_CONTAINS(why, "deleted");
    close(fd);
    s_cleanup();
}

/* Allocation failures: the append fails (ENOMEM), nothing else does. */
static void s_scenario(void *arg)
{
    (void)arg;
    zp_dfile_t *f = s_open(0);
    if (!f)
        return;
    if (zp_dfile_append(f, "abc\n", 4) == 0 &&
        zp_dfile_append_ref(f, "ref\n", 4, NULL, NULL) == 0)
        zp_dfile_commit(f, false);
    zp_dfile_destroy(&f);
}

static void test_alloc_failures(void)
{
    s_mkdir();
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 1);
    s_cleanup();
}

static const test_case_t tests[] = {
    {"test_short_write_is_cut_back_and_written_again",
     test_short_write_is_cut_back_and_written_again},
    {"test_opened_at_an_offset_is_cut_never_extended",
     test_opened_at_an_offset_is_cut_never_extended},
    {"test_a_file_cut_under_it_is_not_written_past_its_end",
     test_a_file_cut_under_it_is_not_written_past_its_end},
    {"test_a_pipe_is_written_as_a_stream", test_a_pipe_is_written_as_a_stream},
    {"test_big_buffer_is_full", test_big_buffer_is_full},
    {"test_references_are_written_in_place_and_kept_until_committed",
     test_references_are_written_in_place_and_kept_until_committed},
    {"test_big_reference_is_full", test_big_reference_is_full},
    {"test_pause_backs_off_and_recovers", test_pause_backs_off_and_recovers},
    {"test_watch_sees_deleted_and_replaced",
     test_watch_sees_deleted_and_replaced},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
