/* Tests for vent_input: the input file as lines, and the --resume-journal
 * skip set read from a journal zp_journal wrote. */
#include "failalloc.h"
#include "test.h"
#include "vent_input.h"
#include "zp_journal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* A temporary file holding text; the caller unlinks path. */
static int s_file(char *path, const char *text)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        close(fd);
        return -1;
    }
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* Reads every line of r into out ("|" between lines); returns the count. */
static int s_read_all(zp_vent_reader_t *r, char *out, size_t cap)
{
    int n = 0;
    out[0] = '\0';
    while (!zp_vent_reader_done(r)) {
        const char *line;
        size_t len;
        if (zp_vent_reader_next(r, &line, &len)) {
            size_t used = strlen(out);
            snprintf(out + used, cap - used, "%s%.*s", n ? "|" : "", (int)len,
                     line);
            n++;
            continue;
        }
        if (zp_vent_reader_fill(r, true) < 0)
            return -1;
    }
    return n;
}

static void test_lines_and_last_line_without_newline(void)
{
    char path[] = "/tmp/vent_input_XXXXXX";
    int fd = s_file(path, "a\nbb\n\nccc");
    TEST_CHECK(fd >= 0);
    zp_vent_reader_t r;
    zp_vent_reader_init(&r, fd);
    char out[64];
    TEST_EQ_INT(s_read_all(&r, out, sizeof out), 4);
    TEST_EQ_STR(out, "a|bb||ccc");
    TEST_CHECK(zp_vent_reader_done(&r));
    zp_vent_reader_close(&r);
    TEST_EQ_INT(r.fd, -1);
    unlink(path);
}

static void test_trailing_newline_makes_no_empty_line(void)
{
    char path[] = "/tmp/vent_input_XXXXXX";
    int fd = s_file(path, "x\ny\n");
    TEST_CHECK(fd >= 0);
    zp_vent_reader_t r;
    zp_vent_reader_init(&r, fd);
    char out[64];
    TEST_EQ_INT(s_read_all(&r, out, sizeof out), 2);
    TEST_EQ_STR(out, "x|y");
    zp_vent_reader_close(&r);
    unlink(path);
}

static void test_partial_line_waits_for_its_newline(void)
{
    int p[2];
    TEST_CHECK(pipe(p) == 0);
    zp_vent_reader_t r;
    zp_vent_reader_init(&r, p[0]);
    const char *line;
    size_t len;
    TEST_CHECK(!zp_vent_reader_line_buffered(&r));
    TEST_EQ_INT(zp_vent_reader_fill(&r, false), 0); /* nothing ready */
    TEST_CHECK(write(p[1], "ab", 2) == 2);
    TEST_EQ_INT(zp_vent_reader_fill(&r, false), 0);
    TEST_CHECK(!zp_vent_reader_next(&r, &line, &len));
    TEST_CHECK(!zp_vent_reader_line_buffered(&r));
    TEST_CHECK(write(p[1], "c\nd", 3) == 3);
    TEST_EQ_INT(zp_vent_reader_fill(&r, true), 0);
    TEST_CHECK(zp_vent_reader_line_buffered(&r));
    TEST_CHECK(zp_vent_reader_next(&r, &line, &len));
    TEST_EQ_INT(len, 3);
    TEST_CHECK(memcmp(line, "abc", 3) == 0);
    TEST_CHECK(!zp_vent_reader_next(&r, &line, &len)); /* "d" is not whole */
    close(p[1]);
    TEST_EQ_INT(zp_vent_reader_fill(&r, true), 0); /* end of input */
    TEST_CHECK(!zp_vent_reader_done(&r));
    TEST_CHECK(zp_vent_reader_next(&r, &line, &len));
    TEST_EQ_INT(len, 1);
    TEST_CHECK(zp_vent_reader_done(&r));
    zp_vent_reader_close(&r);
}

/* A journal with records of two jobs, as the sink writes it. */
static int s_journal(char *path)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    unlink(path);
    char err[256];
    zp_journal_t *j = zp_journal_open(path, NULL, NULL, err, sizeof err);
    if (!j)
        return -1;
    zp_journal_open_job(j, "job-1", 3, NULL);
    zp_journal_record(j, "job-1", 0, true, 10);
    zp_journal_record(j, "job-1", 2, false, 20);
    zp_journal_record(j, "other", 3, true, 30);
    zp_journal_record(j, "job-1", 70000, true, 40);
    zp_journal_record(j, "job-1", ZP_VENT_SKIP_MAX, true, 50);
    int rc = zp_journal_sync(j);
    zp_journal_destroy(&j);
    return rc;
}

static void test_skip_set_holds_the_jobs_committed_tasks(void)
{
    char path[] = "/tmp/vent_journal_XXXXXX";
    TEST_EQ_INT(s_journal(path), 0);
    zp_bitset_t skip = {0};
    TEST_EQ_INT(zp_vent_skip_load(path, "job-1", &skip), 0);
    TEST_CHECK(zp_bitset_has(&skip, 0));
    TEST_CHECK(!zp_bitset_has(&skip, 1));
    TEST_CHECK(zp_bitset_has(&skip, 2));  /* failed is committed too */
    TEST_CHECK(!zp_bitset_has(&skip, 3)); /* another job's */
    TEST_CHECK(zp_bitset_has(&skip, 70000));
    TEST_CHECK(!zp_bitset_has(&skip, ZP_VENT_SKIP_MAX)); /* out of bounds */
    TEST_EQ_INT(skip.count, 3);
    zp_bitset_free(&skip);
    unlink(path);
}

static int s_dump(void *ctx, zp_journal_t *out)
{
    (void)ctx;
    zp_journal_summary_t done = {.total = 5, .succeeded = 5};
    zp_journal_summary_t none = {0};
    return zp_journal_put_done(out, "old", NULL, &done) < 0 ||
                   zp_journal_put_done(out, "fin", NULL, &done) < 0 ||
                   zp_journal_open_job(out, "job-1", 3, NULL) < 0 ||
                   zp_journal_put_counts(out, "job-1", &none) < 0 ||
                   zp_journal_put_have(out, "job-1", 10, 3) < 0 ||
                   zp_journal_put_have(out, "other", 20, 3) < 0
               ? -1
               : 0;
}

/* A compacted journal: a finished job skips every task below its total,
 * a live one the runs its snapshot lists, then the records after it. */
static void test_skip_set_from_a_compacted_journal(void)
{
    char path[] = "/tmp/vent_journal_XXXXXX";
    TEST_EQ_INT(s_journal(path), 0);
    char err[256];
    zp_journal_t *j = zp_journal_open(path, NULL, NULL, err, sizeof err);
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(zp_journal_compact(j, s_dump, NULL), 0);
    zp_journal_record(j, "job-1", 30, true, 40);
    zp_journal_destroy(&j);
    zp_bitset_t skip = {0};
    TEST_EQ_INT(zp_vent_skip_load(path, "job-1", &skip), 0);
    TEST_EQ_INT(skip.count, 4);
    TEST_CHECK(zp_bitset_has(&skip, 10) && zp_bitset_has(&skip, 12));
    TEST_CHECK(!zp_bitset_has(&skip, 0) && !zp_bitset_has(&skip, 20));
    TEST_CHECK(zp_bitset_has(&skip, 30));
    zp_bitset_free(&skip);
    TEST_EQ_INT(zp_vent_skip_load(path, "fin", &skip), 0);
    TEST_EQ_INT(skip.count, 5);
    TEST_CHECK(zp_bitset_has(&skip, 4) && !zp_bitset_has(&skip, 5));
    zp_bitset_free(&skip);
    unlink(path);
}

static void test_missing_journal_skips_nothing(void)
{
    zp_bitset_t skip = {0};
    TEST_EQ_INT(zp_vent_skip_load("/nonexistent/journal", "job-1", &skip), 0);
    TEST_EQ_INT(skip.count, 0);
}

static void test_not_a_journal_is_refused(void)
{
    char path[] = "/tmp/vent_input_XXXXXX";
    int fd = s_file(path, "hello\n");
    TEST_CHECK(fd >= 0);
    close(fd);
    zp_bitset_t skip = {0};
    TEST_EQ_INT(zp_vent_skip_load(path, "job-1", &skip), -1);
    zp_bitset_free(&skip);
    unlink(path);
}

static const char *s_sweep_journal;

/* Reads a file as lines and a journal as a skip set, whatever fails. */
static void s_input_scenario(void *arg)
{
    (void)arg;
    char path[] = "/tmp/vent_input_XXXXXX";
    int fd = s_file(path, "1\n2\n3");
    if (fd >= 0) {
        zp_vent_reader_t r;
        zp_vent_reader_init(&r, fd);
        char out[64];
        s_read_all(&r, out, sizeof out);
        zp_vent_reader_close(&r);
        unlink(path);
    }
    zp_bitset_t skip = {0};
    zp_vent_skip_load(s_sweep_journal, "job-1", &skip);
    zp_bitset_free(&skip);
}

static void test_alloc_failures_in_reader_and_skip_set(void)
{
    char path[] = "/tmp/vent_journal_XXXXXX";
    TEST_EQ_INT(s_journal(path), 0);
    s_sweep_journal = path;
    long runs = failalloc_sweep(s_input_scenario, NULL);
    TEST_CHECK(runs >= 3);
    unlink(path);
}

static const test_case_t tests[] = {
    {"test_skip_set_from_a_compacted_journal",
     test_skip_set_from_a_compacted_journal},
    {"test_lines_and_last_line_without_newline",
     test_lines_and_last_line_without_newline},
    {"test_trailing_newline_makes_no_empty_line",
     test_trailing_newline_makes_no_empty_line},
    {"test_partial_line_waits_for_its_newline",
     test_partial_line_waits_for_its_newline},
    {"test_skip_set_holds_the_jobs_committed_tasks",
     test_skip_set_holds_the_jobs_committed_tasks},
    {"test_missing_journal_skips_nothing", test_missing_journal_skips_nothing},
    {"test_not_a_journal_is_refused", test_not_a_journal_is_refused},
    {"test_alloc_failures_in_reader_and_skip_set",
     test_alloc_failures_in_reader_and_skip_set},
    {NULL, NULL},
};
TEST_MAIN(tests)
