/* Tests for zp_journal: replay, torn tails, corrupt lines, reopen. */
#include "failalloc.h"
#include "test.h"
#include "zp_journal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int opens, closes, records, oks;
    uint64_t last_total, last_task, last_offset;
    char last_job[160], last_token[160];
} s_seen_t;

static void s_open(void *ctx, const char *job, uint32_t max_attempts,
                   const char *token)
{
    s_seen_t *s = ctx;
    (void)max_attempts;
    s->opens++;
    snprintf(s->last_job, sizeof s->last_job, "%s", job);
    snprintf(s->last_token, sizeof s->last_token, "%s", token);
}
static void s_close(void *ctx, const char *job, uint64_t total)
{
    s_seen_t *s = ctx;
    (void)job;
    s->closes++;
    s->last_total = total;
}
static void s_record(void *ctx, const char *job, uint64_t task, bool ok,
                     uint64_t offset)
{
    s_seen_t *s = ctx;
    (void)job;
    s->records++;
    s->oks += ok;
    s->last_task = task;
    s->last_offset = offset;
}
static const zp_journal_visitor_t s_visitor = {s_open, s_close, s_record};

static void test_replay_reads_every_event(void)
{
    const char j[] = "zpipe-journal 1\nO job-1 3\nR job-1 0 ok 10\n"
                     "R job-1 1 failed 20\nC job-1 2\n";
    s_seen_t s = {0};
    size_t valid;
    TEST_EQ_INT(zp_journal_replay(j, sizeof j - 1, &s_visitor, &s, &valid), 4);
    TEST_EQ_INT(valid, sizeof j - 1);
    TEST_EQ_INT(s.opens, 1);
    TEST_EQ_INT(s.records, 2);
    TEST_EQ_INT(s.oks, 1);
    TEST_EQ_INT(s.last_total, 2);
    TEST_EQ_INT(s.last_offset, 20);
    TEST_EQ_STR(s.last_job, "job-1");
}

static void test_open_lines_with_and_without_a_token(void)
{
    /* A journal written before tokens has 3-field O lines; a 4th field is
     * the token, which must look like a job id. */
    const char j[] = "zpipe-journal 1\nO old 3\nO new 5 tok-1.a:b_c\n"
                     "O bad 3 to/ken\nR bad 0 ok 1\n";
    s_seen_t s = {0};
    size_t valid;
    TEST_EQ_INT(zp_journal_replay(j, sizeof j - 1, &s_visitor, &s, &valid), 2);
    TEST_EQ_INT(s.opens, 2);
    TEST_EQ_STR(s.last_job, "new");
    TEST_EQ_STR(s.last_token, "tok-1.a:b_c");
    TEST_EQ_INT(valid,
                strlen("zpipe-journal 1\nO old 3\nO new 5 tok-1.a:b_c\n"));
    const char k[] = "zpipe-journal 1\nO a 3 t\nO a 3\n";
    s_seen_t s2 = {0};
    TEST_EQ_INT(zp_journal_replay(k, sizeof k - 1, &s_visitor, &s2, &valid), 2);
    TEST_EQ_STR(s2.last_token, "");
    const char five[] = "zpipe-journal 1\nO a 3 t u\n";
    TEST_EQ_INT(
        zp_journal_replay(five, sizeof five - 1, &s_visitor, &s2, &valid), 0);
}

static void test_write_without_sync_replays_the_same(void)
{
    char path[] = "/tmp/zpipe-journal-test-XXXXXX";
    int fd = mkstemp(path);
    TEST_CHECK(fd >= 0);
    close(fd);
    unlink(path);
    char err[256];
    zp_journal_t *j = zp_journal_open(path, &s_visitor, NULL, err, sizeof err);
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(zp_journal_open_job(j, "job-t", 0, "tok"), 0);
    TEST_EQ_INT(zp_journal_record(j, "job-t", 0, false, 0), 0);
    TEST_EQ_INT(zp_journal_record(j, "job-t", UINT64_MAX, false, UINT64_MAX),
                0);
    TEST_EQ_INT(zp_journal_record(j, "job-t", 4, true, 9), 0);
    TEST_EQ_INT(zp_journal_write(j), 0);
    TEST_EQ_INT(zp_journal_pending(j), 0);
    TEST_EQ_INT(zp_journal_write(j), 0); /* nothing to write */
    /* Another reader sees it before any sync, as a restarted process
     * would after a crash. */
    s_seen_t s = {0};
    zp_journal_t *k = zp_journal_open(path, &s_visitor, &s, err, sizeof err);
    TEST_CHECK(k != NULL);
    TEST_EQ_INT(s.opens, 1);
    TEST_EQ_INT(s.records, 3);
    TEST_EQ_INT(s.oks, 1);
    TEST_EQ_STR(s.last_token, "tok");
    TEST_EQ_INT(s.last_offset, 9);
    zp_journal_destroy(&k);
    TEST_EQ_INT(zp_journal_sync(j), 0);
    zp_journal_destroy(&j);
    unlink(path);
}

static void test_torn_tail_is_cut_at_the_last_whole_line(void)
{
    const char j[] = "zpipe-journal 1\nO a 3\nR a 0 ok 5\nR a 1 o";
    s_seen_t s = {0};
    size_t valid;
    TEST_EQ_INT(zp_journal_replay(j, sizeof j - 1, &s_visitor, &s, &valid), 2);
    TEST_EQ_INT(valid, strlen("zpipe-journal 1\nO a 3\nR a 0 ok 5\n"));
}

static void test_corrupt_lines_stop_the_replay(void)
{
    const char *bad[] = {
        "zpipe-journal 1\nR a 1 maybe 5\n",
        "zpipe-journal 1\nO a\n",
        "zpipe-journal 1\nR a -1 ok 5\n",
        "zpipe-journal 1\nO bad/job 3\n",
        "zpipe-journal 1\nX a 1\n",
        "zpipe-journal 1\nR a 1 ok 5 extra\n",
        "zpipe-journal 1\n\n",
        "zpipe-journal 1\nO a 3 \n",
        "zpipe-journal 1\nC a 99999999999999999999999\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s_seen_t s = {0};
        size_t valid;
        TEST_EQ_INT(
            zp_journal_replay(bad[i], strlen(bad[i]), &s_visitor, &s, &valid),
            0);
        TEST_EQ_INT(valid, strlen("zpipe-journal 1\n"));
    }
}

static void test_missing_header_is_not_a_journal(void)
{
    size_t valid;
    TEST_EQ_INT(zp_journal_replay("O a 3\n", 6, &s_visitor, NULL, &valid), -1);
    TEST_EQ_INT(zp_journal_replay("", 0, &s_visitor, NULL, &valid), -1);
}

static void test_job_ids(void)
{
    TEST_CHECK(zp_job_id_valid("job-1a2b.c:d_e"));
    TEST_CHECK(!zp_job_id_valid(""));
    TEST_CHECK(!zp_job_id_valid("a b"));
    TEST_CHECK(!zp_job_id_valid("a/b"));
    char longid[200];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    TEST_CHECK(!zp_job_id_valid(longid));
}

static void test_append_sync_reopen_round_trip(void)
{
    char path[] = "/tmp/zpipe-journal-test-XXXXXX";
    int fd = mkstemp(path);
    TEST_CHECK(fd >= 0);
    close(fd);
    unlink(path);
    char err[256];
    zp_journal_t *j = zp_journal_open(path, &s_visitor, NULL, err, sizeof err);
    TEST_CHECK(j != NULL);
    zp_journal_open_job(j, "job-x", 3, NULL);
    for (uint64_t i = 0; i < 1000; i++)
        zp_journal_record(j, "job-x", i, i % 10 != 0, i * 7);
    zp_journal_close_job(j, "job-x", 1000);
    TEST_CHECK(zp_journal_pending(j) > 0);
    TEST_CHECK(zp_journal_sync(j) == 0);
    TEST_EQ_INT(zp_journal_pending(j), 0);
    zp_journal_destroy(&j);
    TEST_CHECK(j == NULL);
    /* Tear the tail, as a crash mid-write would. */
    FILE *f = fopen(path, "a");
    fputs("R job-x 1000 o", f);
    fclose(f);
    s_seen_t s = {0};
    j = zp_journal_open(path, &s_visitor, &s, err, sizeof err);
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(s.records, 1000);
    TEST_EQ_INT(s.oks, 900);
    TEST_EQ_INT(s.closes, 1);
    zp_journal_record(j, "job-x", 5, true, 1);
    zp_journal_destroy(&j);
    s_seen_t s2 = {0};
    j = zp_journal_open(path, &s_visitor, &s2, err, sizeof err);
    TEST_EQ_INT(s2.records, 1001);
    zp_journal_destroy(&j);
    unlink(path);
}

static void test_open_refuses_a_file_that_is_not_a_journal(void)
{
    char path[] = "/tmp/zpipe-journal-test-XXXXXX";
    int fd = mkstemp(path);
    TEST_CHECK(write(fd, "hello\n", 6) == 6);
    close(fd);
    char err[256];
    TEST_CHECK(zp_journal_open(path, &s_visitor, NULL, err, sizeof err) ==
               NULL);
    TEST_CONTAINS(err, "not a zpipe journal");
    unlink(path);
}

/* Opening (with a replay), appending and syncing under allocation
 * failure: each call reports it, nothing leaks, and what a successful
 * sync wrote replays whole. */
static void s_journal_scenario(void *arg)
{
    int *bad = arg;
    char path[] = "/tmp/zpipe-journal-fail-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        *bad = 1;
        return;
    }
    const char old[] = "zpipe-journal 1\nO job-1 3\nR job-1 0 ok 10\n";
    if (write(fd, old, sizeof old - 1) != (ssize_t)(sizeof old - 1))
        *bad = 1;
    close(fd);
    char err[256];
    s_seen_t seen = {0};
    zp_journal_t *j = zp_journal_open(path, &s_visitor, &seen, err, sizeof err);
    if (j) {
        if (seen.records != 1)
            *bad = 1;
        bool ok = zp_journal_open_job(j, "job-2", 3, "tok-2") == 0;
        for (uint64_t i = 0; ok && i < 300; i++)
            ok = zp_journal_record(j, "job-2", i, true, i) == 0;
        ok = ok && zp_journal_close_job(j, "job-2", 300) == 0;
        ok = ok && zp_journal_sync(j) == 0;
        zp_journal_destroy(&j);
        if (ok) { /* a journal that opens replays every synced event */
            s_seen_t again = {0};
            j = zp_journal_open(path, &s_visitor, &again, err, sizeof err);
            if (j && (again.records != 301 || again.closes != 1))
                *bad = 1;
            zp_journal_destroy(&j);
        }
    }
    unlink(path);
}

static void test_alloc_failures_are_reported_not_fatal(void)
{
    int bad = 0;
    long runs = failalloc_sweep(s_journal_scenario, &bad);
    TEST_EQ_INT(bad, 0);
    TEST_CHECK(runs >= 2);
}

static const test_case_t tests[] = {
    {"test_alloc_failures_are_reported_not_fatal",
     test_alloc_failures_are_reported_not_fatal},
    {"test_replay_reads_every_event", test_replay_reads_every_event},
    {"test_open_lines_with_and_without_a_token",
     test_open_lines_with_and_without_a_token},
    {"test_write_without_sync_replays_the_same",
     test_write_without_sync_replays_the_same},
    {"test_torn_tail_is_cut_at_the_last_whole_line",
     test_torn_tail_is_cut_at_the_last_whole_line},
    {"test_corrupt_lines_stop_the_replay", test_corrupt_lines_stop_the_replay},
    {"test_missing_header_is_not_a_journal",
     test_missing_header_is_not_a_journal},
    {"test_job_ids", test_job_ids},
    {"test_append_sync_reopen_round_trip", test_append_sync_reopen_round_trip},
    {"test_open_refuses_a_file_that_is_not_a_journal",
     test_open_refuses_a_file_that_is_not_a_journal},
    {NULL, NULL},
};
TEST_MAIN(tests)
