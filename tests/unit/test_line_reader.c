/* Tests for zpipe submit's line reader (zpipe/line_reader.c): lines from a
 * pipe written a little at a time, with the wait for the next one bounded. */
#define _GNU_SOURCE
#include "line_reader.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static double s_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Reads the next line into out ("" when none); returns next's result. */
static int s_next(zp_line_reader_t *r, int timeout_ms, char *out, size_t cap)
{
    const char *line;
    size_t len;
    int rc = zp_line_reader_next(r, timeout_ms, &line, &len);
    snprintf(out, cap, "%.*s", rc == 1 ? (int)len : 0, rc == 1 ? line : "");
    return rc;
}

static void s_write(int fd, const char *text)
{
    TEST_EQ_INT(write(fd, text, strlen(text)), (long)strlen(text));
}

static void test_lines_come_as_they_are_written(void)
{
    int p[2];
    TEST_EQ_INT(pipe(p), 0);
    zp_line_reader_t *r = zp_line_reader_new(p[0]);
    char out[64];
    TEST_CHECK(r != NULL);
    s_write(p[1], "one\ntwo\nthr");
    TEST_EQ_INT(s_next(r, 0, out, sizeof out), 1);
    TEST_EQ_STR(out, "one");
    TEST_EQ_INT(s_next(r, 0, out, sizeof out), 1);
    TEST_EQ_STR(out, "two");
    TEST_CHECK(!zp_line_reader_ready(r));
    /* half a line is no line: the wait is bounded */
    double t0 = s_now_ms();
    TEST_EQ_INT(s_next(r, 30, out, sizeof out), 0);
    double waited = s_now_ms() - t0;
    TEST_CHECK(waited >= 25 && waited < 1000);
    /* the rest of the line, in two writes 20 ms apart: one wait */
    pid_t child = fork();
    if (child == 0) {
        usleep(20000);
        s_write(p[1], "e");
        usleep(20000);
        s_write(p[1], "e\n");
        _exit(0);
    }
    TEST_EQ_INT(s_next(r, 2000, out, sizeof out), 1);
    TEST_EQ_STR(out, "three");
    waitpid(child, NULL, 0);
    s_write(p[1], "\nlast");
    TEST_CHECK(!zp_line_reader_ready(r)); /* not read yet */
    TEST_EQ_INT(s_next(r, 0, out, sizeof out), 1);
    TEST_EQ_STR(out, ""); /* an empty line is a line */
    close(p[1]);
    /* the end: a last line without '\n' first */
    TEST_EQ_INT(s_next(r, -1, out, sizeof out), 1);
    TEST_EQ_STR(out, "last");
    TEST_EQ_INT(s_next(r, -1, out, sizeof out), -1);
    TEST_EQ_INT(s_next(r, 0, out, sizeof out), -1);
    zp_line_reader_destroy(&r);
    TEST_CHECK(r == NULL);
    zp_line_reader_destroy(&r);
    close(p[0]);
}

static void test_a_line_longer_than_the_buffer_is_whole(void)
{
    char path[] = "/tmp/zp-line-reader-XXXXXX";
    int fd = mkstemp(path);
    TEST_CHECK(fd >= 0);
    unlink(path);
    size_t big = 300000; /* over the 128 KiB buffer */
    char *line = malloc(big + 1);
    TEST_CHECK(line != NULL);
    memset(line, 'x', big);
    line[big] = '\n';
    TEST_EQ_INT(write(fd, line, big + 1), (long)big + 1);
    s_write(fd, "after\n");
    lseek(fd, 0, SEEK_SET);
    zp_line_reader_t *r = zp_line_reader_new(fd);
    const char *got;
    size_t len;
    TEST_EQ_INT(zp_line_reader_next(r, 0, &got, &len), 1);
    TEST_EQ_INT(len, big);
    TEST_CHECK(memcmp(got, line, big) == 0);
    TEST_EQ_INT(zp_line_reader_next(r, 0, &got, &len), 1);
    TEST_CHECK(len == 5 && memcmp(got, "after", 5) == 0);
    TEST_EQ_INT(zp_line_reader_next(r, 0, &got, &len), -1);
    zp_line_reader_destroy(&r);
    free(line);
    close(fd);
}

static void test_many_lines_across_reads(void)
{
    char path[] = "/tmp/zp-line-reader-XXXXXX";
    int fd = mkstemp(path);
    TEST_CHECK(fd >= 0);
    unlink(path);
    FILE *f = fdopen(dup(fd), "w");
    for (int i = 0; i < 100000; i++)
        fprintf(f, "%d\n", i);
    fclose(f);
    lseek(fd, 0, SEEK_SET);
    zp_line_reader_t *r = zp_line_reader_new(fd);
    char out[32], want[32];
    int i = 0, bad = 0;
    while (s_next(r, 0, out, sizeof out) == 1) {
        snprintf(want, sizeof want, "%d", i++);
        bad += strcmp(out, want) != 0;
    }
    TEST_EQ_INT(i, 100000);
    TEST_EQ_INT(bad, 0);
    zp_line_reader_destroy(&r);
    close(fd);
}

static void test_a_read_error_is_reported(void)
{
    zp_line_reader_t *r = zp_line_reader_new(-1);
    const char *got;
    size_t len;
    /* poll ignores a negative fd: nothing comes */
    TEST_EQ_INT(zp_line_reader_next(r, 0, &got, &len), 0);
    zp_line_reader_destroy(&r);
    int p[2];
    TEST_EQ_INT(pipe(p), 0);
    r = zp_line_reader_new(p[1]); /* the write end: read fails */
    close(p[0]);
    int rc = zp_line_reader_next(r, 100, &got, &len);
    TEST_EQ_INT(rc, -2);
    zp_line_reader_destroy(&r);
    close(p[1]);
}

/* The whole lines buffered, shown and given many at a time, between
 * lines given one at a time: every byte once, in order. */
static void test_buffered_lines_are_given_at_once(void)
{
    int p[2];
    TEST_EQ_INT(pipe(p), 0);
    zp_line_reader_t *r = zp_line_reader_new(p[0]);
    char out[64];
    const char *data;
    size_t len;
    TEST_CHECK(r != NULL);
    zp_line_reader_buffered(r, &data, &len);
    TEST_EQ_INT(len, 0); /* nothing read yet: buffered reads nothing */
    s_write(p[1], "a\nbb\n\nccc\ndd");
    TEST_EQ_INT(s_next(r, 0, out, sizeof out), 1);
    TEST_EQ_STR(out, "a");
    zp_line_reader_buffered(r, &data, &len);
    TEST_EQ_INT(len, 8); /* "bb\n\nccc\n", not the half line "dd" */
    TEST_CHECK(len == 8 && memcmp(data, "bb\n\nccc\n", 8) == 0);
    zp_line_reader_skip(r, 4); /* "bb\n\n" */
    zp_line_reader_buffered(r, &data, &len);
    TEST_CHECK(len == 4 && memcmp(data, "ccc\n", 4) == 0);
    TEST_EQ_INT(s_next(r, 0, out, sizeof out), 1);
    TEST_EQ_STR(out, "ccc");
    zp_line_reader_buffered(r, &data, &len);
    TEST_EQ_INT(len, 0);
    close(p[1]);
    TEST_EQ_INT(s_next(r, 1000, out, sizeof out), 1);
    TEST_EQ_STR(out, "dd");
    TEST_EQ_INT(s_next(r, 1000, out, sizeof out), -1);
    zp_line_reader_destroy(&r);
    close(p[0]);
}

static const test_case_t tests[] = {
    {"test_buffered_lines_are_given_at_once",
     test_buffered_lines_are_given_at_once},
    {"test_lines_come_as_they_are_written",
     test_lines_come_as_they_are_written},
    {"test_a_line_longer_than_the_buffer_is_whole",
     test_a_line_longer_than_the_buffer_is_whole},
    {"test_many_lines_across_reads", test_many_lines_across_reads},
    {"test_a_read_error_is_reported", test_a_read_error_is_reported},
    {NULL, NULL},
};

TEST_MAIN(tests)
