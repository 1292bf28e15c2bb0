/* Tests for vent_input: the input file as lines or frames, and the
 * --resume-journal skip set read from a journal zp_journal wrote. */
#include "failalloc.h"
#include "test.h"
#include "vent_input.h"
#include "zp_journal.h"

#include <errno.h>
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

/* Appends a frame (4-byte big-endian length, body) to b. */
static void s_frame(zp_buf_t *b, const void *body, uint32_t n)
{
    unsigned char h[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
    zp_buf_append(b, h, sizeof h);
    zp_buf_append(b, body, n);
}

/* A temporary file holding b's bytes; the caller unlinks path. */
static int s_file_bytes(char *path, const zp_buf_t *b)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    if (write(fd, b->data, b->len) != (ssize_t)b->len) {
        close(fd);
        return -1;
    }
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* Reads every frame of r: their bodies end to end in out, their lengths
 * in lens. Returns the count, or -1 when a fill fails (errno). */
static int s_read_frames(zp_vent_reader_t *r, zp_buf_t *out, size_t *lens,
                         int max)
{
    int n = 0;
    while (!zp_vent_reader_done(r)) {
        const char *body;
        size_t len;
        if (zp_vent_reader_next(r, &body, &len)) {
            if (!body || n == max)
                return -1;
            if (zp_buf_append(out, body, len) < 0)
                return -1;
            lens[n++] = len;
            continue;
        }
        if (zp_vent_reader_fill(r, true) < 0)
            return -1;
    }
    return n;
}

static void test_frames_several_in_one_read(void)
{
    zp_buf_t in = {0}, out = {0};
    s_frame(&in, "a", 1);
    s_frame(&in, "", 0);
    s_frame(&in, "b\nc\0\rd", 6);
    s_frame(&in, "\n", 1);
    char path[] = "/tmp/vent_input_XXXXXX";
    int fd = s_file_bytes(path, &in);
    TEST_CHECK(fd >= 0);
    zp_vent_reader_t r;
    zp_vent_reader_init(&r, fd);
    zp_vent_reader_frames(&r, 0);
    size_t lens[8];
    TEST_EQ_INT(s_read_frames(&r, &out, lens, 8), 4);
    TEST_EQ_INT(lens[0], 1);
    TEST_EQ_INT(lens[1], 0);
    TEST_EQ_INT(lens[2], 6);
    TEST_EQ_INT(lens[3], 1);
    TEST_EQ_INT(out.len, 8);
    TEST_CHECK(memcmp(out.data, "ab\nc\0\rd\n", 8) == 0);
    TEST_EQ_INT(r.taken, 4);
    TEST_CHECK(zp_vent_reader_done(&r));
    zp_vent_reader_close(&r);
    zp_buf_free(&in);
    zp_buf_free(&out);
    unlink(path);
}

/* Byte by byte through a pipe that stays open: a frame comes out with
 * its last byte, never before, and never needs the end of input. */
static void test_frame_split_across_one_byte_reads(void)
{
    char body[300];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (char)(i % 7 == 0 ? '\0' : i % 7 == 1 ? '\n' : i);
    zp_buf_t in = {0};
    s_frame(&in, body, sizeof body);
    s_frame(&in, "", 0);
    int p[2];
    TEST_CHECK(pipe(p) == 0);
    zp_vent_reader_t r;
    zp_vent_reader_init(&r, p[0]);
    zp_vent_reader_frames(&r, 1000);
    const char *got;
    size_t len;
    int frames = 0;
    for (size_t i = 0; i < in.len; i++) {
        TEST_CHECK(write(p[1], in.data + i, 1) == 1);
        TEST_EQ_INT(zp_vent_reader_fill(&r, false), 0);
        bool last_of_a_frame = i == 303 || i == 307;
        TEST_EQ_INT(zp_vent_reader_line_buffered(&r), last_of_a_frame);
        if (!last_of_a_frame) {
            TEST_CHECK(!zp_vent_reader_next(&r, &got, &len));
            continue;
        }
        TEST_CHECK(zp_vent_reader_next(&r, &got, &len));
        TEST_EQ_INT(len, frames == 0 ? sizeof body : 0);
        TEST_CHECK(frames > 0 || memcmp(got, body, sizeof body) == 0);
        frames++;
    }
    TEST_EQ_INT(frames, 2);
    TEST_CHECK(!zp_vent_reader_done(&r)); /* the pipe is still open */
    close(p[1]);
    TEST_EQ_INT(zp_vent_reader_fill(&r, true), 0);
    TEST_CHECK(zp_vent_reader_done(&r));
    zp_vent_reader_close(&r);
    close(p[0]);
    zp_buf_free(&in);
}

static void test_frame_of_zero_bytes_is_an_empty_task(void)
{
    zp_buf_t in = {0}, out = {0};
    s_frame(&in, "", 0);
    char path[] = "/tmp/vent_input_XXXXXX";
    int fd = s_file_bytes(path, &in);
    TEST_CHECK(fd >= 0);
    zp_vent_reader_t r;
    zp_vent_reader_init(&r, fd);
    zp_vent_reader_frames(&r, 10);
    size_t lens[2];
    TEST_EQ_INT(s_read_frames(&r, &out, lens, 2), 1);
    TEST_EQ_INT(lens[0], 0);
    zp_vent_reader_close(&r);
    zp_buf_free(&in);
    unlink(path);
}

/* A frame of max bytes is a task; one over it comes out at once as its
 * length alone (its body not read), and the reader stays at it. */
static void test_frame_at_the_limit_and_one_over(void)
{
    int p[2];
    TEST_CHECK(pipe(p) == 0);
    zp_vent_reader_t r;
    zp_vent_reader_init(&r, p[0]);
    zp_vent_reader_frames(&r, 8);
    zp_buf_t in = {0};
    s_frame(&in, "12345678", 8);
    zp_buf_append(&in, "\xff\xff\xff\xff", 4); /* 4 GiB, no body */
    TEST_CHECK(write(p[1], in.data, in.len) == (ssize_t)in.len);
    TEST_EQ_INT(zp_vent_reader_fill(&r, true), 0);
    const char *got;
    size_t len;
    TEST_CHECK(zp_vent_reader_next(&r, &got, &len));
    TEST_EQ_INT(len, 8);
    TEST_CHECK(got && memcmp(got, "12345678", 8) == 0);
    TEST_CHECK(zp_vent_reader_line_buffered(&r));
    TEST_CHECK(zp_vent_reader_next(&r, &got, &len));
    TEST_CHECK(got == NULL);
    TEST_EQ_INT(len, 0xffffffffu);
    TEST_CHECK(zp_vent_reader_next(&r, &got, &len) && got == NULL);
    TEST_EQ_INT(r.taken, 1);
    /* At the end of input the limit is what is reported, not the short
     * body. */
    close(p[1]);
    TEST_EQ_INT(zp_vent_reader_fill(&r, true), 0);
    TEST_CHECK(zp_vent_reader_next(&r, &got, &len) && got == NULL);
    zp_vent_reader_close(&r);
    close(p[0]);
    zp_buf_free(&in);
}

static void test_input_ending_inside_a_length_is_an_error(void)
{
    zp_buf_t in = {0}, out = {0};
    s_frame(&in, "ok", 2);
    zp_buf_append(&in, "\0\0", 2);
    char path[] = "/tmp/vent_input_XXXXXX";
    int fd = s_file_bytes(path, &in);
    TEST_CHECK(fd >= 0);
    zp_vent_reader_t r;
    zp_vent_reader_init(&r, fd);
    zp_vent_reader_frames(&r, 0);
    size_t lens[4];
    errno = 0;
    TEST_EQ_INT(s_read_frames(&r, &out, lens, 4), -1);
    TEST_EQ_INT(errno, EPROTO);
    TEST_EQ_STR(r.why,
                "input ends inside frame 1: got 2 of 4 bytes of its length");
    zp_vent_reader_close(&r);
    zp_buf_free(&in);
    zp_buf_free(&out);
    unlink(path);
}

static void test_input_ending_inside_a_body_is_an_error(void)
{
    zp_buf_t in = {0}, out = {0};
    s_frame(&in, "", 0);
    s_frame(&in, "abc", 3);
    zp_buf_append(&in,
                  "\0\0\0\x0a"
                  "abc",
                  7); /* 3 of 10 bytes */
    char path[] = "/tmp/vent_input_XXXXXX";
    int fd = s_file_bytes(path, &in);
    TEST_CHECK(fd >= 0);
    zp_vent_reader_t r;
    zp_vent_reader_init(&r, fd);
    zp_vent_reader_frames(&r, 100);
    size_t lens[4];
    errno = 0;
    TEST_EQ_INT(s_read_frames(&r, &out, lens, 4), -1);
    TEST_EQ_INT(errno, EPROTO);
    TEST_EQ_STR(r.why, "input ends inside frame 2: got 3 of 10 bytes");
    zp_vent_reader_close(&r);
    zp_buf_free(&in);
    zp_buf_free(&out);
    unlink(path);
}

/* A frame bigger than a read (1 MiB) comes out whole and exact. */
static void test_frame_larger_than_a_read(void)
{
    size_t n = 3u << 20;
    char *body = malloc(n);
    TEST_CHECK(body != NULL);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)(i * 31 + (i >> 12));
    zp_buf_t in = {0}, out = {0};
    s_frame(&in, body, (uint32_t)n);
    s_frame(&in, "z", 1);
    char path[] = "/tmp/vent_input_XXXXXX";
    int fd = s_file_bytes(path, &in);
    TEST_CHECK(fd >= 0);
    zp_vent_reader_t r;
    zp_vent_reader_init(&r, fd);
    zp_vent_reader_frames(&r, 64u << 20);
    size_t lens[4];
    TEST_EQ_INT(s_read_frames(&r, &out, lens, 4), 2);
    TEST_EQ_INT(lens[0], n);
    TEST_CHECK(memcmp(out.data, body, n) == 0 && out.data[n] == 'z');
    zp_vent_reader_close(&r);
    zp_buf_free(&in);
    zp_buf_free(&out);
    free(body);
    unlink(path);
}

/* Long lines of a file bigger than a block: every line exact, and the
 * lines a holder of the block keeps stay as they were while the reader
 * reads on (into a fresh block: it never writes over a kept one). */
static void test_kept_blocks_stay_whole_as_reading_goes_on(void)
{
    size_t line = 700000, n = 9;
    char path[] = "/tmp/vent_input_XXXXXX";
    int fd = mkstemp(path);
    TEST_CHECK(fd >= 0);
    char *buf = malloc(line + 1);
    for (size_t i = 0; i < n; i++) {
        memset(buf, 'a' + (int)i, line);
        buf[line] = '\n';
        TEST_CHECK(write(fd, buf, line + 1) == (ssize_t)(line + 1));
    }
    lseek(fd, 0, SEEK_SET);
    zp_vent_reader_t r;
    zp_vent_reader_init(&r, fd);
    zp_vent_chunk_t *kept[9] = {0};
    const char *lines[9];
    size_t got = 0;
    while (!zp_vent_reader_done(&r) && got < n) {
        const char *l;
        size_t len;
        if (zp_vent_reader_next(&r, &l, &len)) {
            TEST_EQ_INT(len, line);
            kept[got] = zp_vent_chunk_ref(zp_vent_reader_chunk(&r));
            TEST_CHECK(l >= kept[got]->data &&
                       l + len <= kept[got]->data + kept[got]->len);
            lines[got++] = l;
            continue;
        }
        TEST_EQ_INT(zp_vent_reader_fill(&r, true), 0);
    }
    TEST_EQ_INT(got, n);
    for (size_t i = 0; i < n; i++) {
        TEST_CHECK(lines[i][0] == 'a' + (int)i);
        TEST_CHECK(lines[i][line - 1] == 'a' + (int)i);
    }
    zp_vent_reader_close(&r);
    for (size_t i = 0; i < n; i++) /* the blocks outlive the reader */
        TEST_CHECK(lines[i][line / 2] == 'a' + (int)i);
    for (size_t i = 0; i < n; i++)
        zp_vent_chunk_unref(&kept[i]);
    TEST_CHECK(kept[0] == NULL);
    free(buf);
    unlink(path);
}

/* A line split across many short reads (a pipe) is searched once per
 * byte, and the block is reused in place when no one else holds it. */
static void test_line_across_short_reads_from_a_pipe(void)
{
    int p[2];
    TEST_CHECK(pipe(p) == 0);
    zp_vent_reader_t r;
    zp_vent_reader_init(&r, p[0]);
    const char *l;
    size_t len;
    for (int i = 0; i < 5; i++) {
        TEST_CHECK(write(p[1], "abc", 3) == 3);
        TEST_EQ_INT(zp_vent_reader_fill(&r, true), 0);
        TEST_CHECK(!zp_vent_reader_line_buffered(&r));
        TEST_CHECK(!zp_vent_reader_next(&r, &l, &len));
    }
    zp_vent_chunk_t *first = zp_vent_reader_chunk(&r);
    TEST_CHECK(write(p[1], "\nxy", 3) == 3);
    TEST_EQ_INT(zp_vent_reader_fill(&r, true), 0);
    TEST_CHECK(zp_vent_reader_line_buffered(&r));
    TEST_CHECK(zp_vent_reader_next(&r, &l, &len));
    TEST_EQ_INT(len, 15);
    TEST_CHECK(memcmp(l, "abcabcabcabcabc", 15) == 0);
    TEST_CHECK(zp_vent_reader_chunk(&r) == first); /* not moved */
    close(p[1]);
    TEST_EQ_INT(zp_vent_reader_fill(&r, true), 0);
    TEST_CHECK(zp_vent_reader_next(&r, &l, &len));
    TEST_EQ_INT(len, 2);
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
    zp_buf_t in = {0}, out = {0};
    s_frame(&in, "one", 3);
    s_frame(&in, "", 0);
    char fpath[] = "/tmp/vent_input_XXXXXX";
    fd = in.data ? s_file_bytes(fpath, &in) : -1;
    if (fd >= 0) {
        zp_vent_reader_t r;
        zp_vent_reader_init(&r, fd);
        zp_vent_reader_frames(&r, 16);
        size_t lens[4];
        s_read_frames(&r, &out, lens, 4);
        zp_vent_reader_close(&r);
        unlink(fpath);
    }
    zp_buf_free(&in);
    zp_buf_free(&out);
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

static void test_a_long_line_in_pieces_is_scanned_once(void)
{
    /* 1 MiB without a newline, written 4 KiB at a time: each look for
     * the newline starts where the last one stopped (a rescan from the
     * line's start made this quadratic: hours for a 64 MiB line). */
    int p[2];
    TEST_CHECK(pipe(p) == 0);
    zp_vent_reader_t r;
    zp_vent_reader_init(&r, p[0]);
    char piece[4096];
    memset(piece, 'x', sizeof piece);
    const char *line;
    size_t len;
    for (int i = 0; i < 256; i++) {
        TEST_CHECK(write(p[1], piece, sizeof piece) == (ssize_t)sizeof piece);
        TEST_EQ_INT(zp_vent_reader_fill(&r, true), 0);
        TEST_CHECK(!zp_vent_reader_line_buffered(&r));
        TEST_CHECK(!zp_vent_reader_next(&r, &line, &len));
        TEST_EQ_INT(r.scan - r.start, (size_t)(i + 1) * sizeof piece);
    }
    TEST_CHECK(write(p[1], "y\nz", 3) == 3);
    TEST_EQ_INT(zp_vent_reader_fill(&r, true), 0);
    TEST_CHECK(zp_vent_reader_line_buffered(&r));
    TEST_CHECK(zp_vent_reader_next(&r, &line, &len));
    TEST_EQ_INT(len, 256 * sizeof piece + 1);
    TEST_CHECK(line[len - 1] == 'y' && line[0] == 'x');
    TEST_EQ_INT(r.scan - r.start, 0); /* the next line: afresh */
    TEST_CHECK(!zp_vent_reader_next(&r, &line, &len));
    close(p[1]);
    TEST_EQ_INT(zp_vent_reader_fill(&r, true), 0);
    TEST_CHECK(zp_vent_reader_next(&r, &line, &len));
    TEST_EQ_INT(len, 1);
    TEST_CHECK(line[0] == 'z');
    TEST_CHECK(zp_vent_reader_done(&r));
    zp_vent_reader_close(&r);
}

static const test_case_t tests[] = {
    {"test_a_long_line_in_pieces_is_scanned_once",
     test_a_long_line_in_pieces_is_scanned_once},
    {"test_skip_set_from_a_compacted_journal",
     test_skip_set_from_a_compacted_journal},
    {"test_lines_and_last_line_without_newline",
     test_lines_and_last_line_without_newline},
    {"test_trailing_newline_makes_no_empty_line",
     test_trailing_newline_makes_no_empty_line},
    {"test_partial_line_waits_for_its_newline",
     test_partial_line_waits_for_its_newline},
    {"test_frames_several_in_one_read", test_frames_several_in_one_read},
    {"test_frame_split_across_one_byte_reads",
     test_frame_split_across_one_byte_reads},
    {"test_frame_of_zero_bytes_is_an_empty_task",
     test_frame_of_zero_bytes_is_an_empty_task},
    {"test_frame_at_the_limit_and_one_over",
     test_frame_at_the_limit_and_one_over},
    {"test_input_ending_inside_a_length_is_an_error",
     test_input_ending_inside_a_length_is_an_error},
    {"test_input_ending_inside_a_body_is_an_error",
     test_input_ending_inside_a_body_is_an_error},
    {"test_frame_larger_than_a_read", test_frame_larger_than_a_read},
    {"test_kept_blocks_stay_whole_as_reading_goes_on",
     test_kept_blocks_stay_whole_as_reading_goes_on},
    {"test_line_across_short_reads_from_a_pipe",
     test_line_across_short_reads_from_a_pipe},
    {"test_skip_set_holds_the_jobs_committed_tasks",
     test_skip_set_holds_the_jobs_committed_tasks},
    {"test_missing_journal_skips_nothing", test_missing_journal_skips_nothing},
    {"test_not_a_journal_is_refused", test_not_a_journal_is_refused},
    {"test_alloc_failures_in_reader_and_skip_set",
     test_alloc_failures_in_reader_and_skip_set},
    {NULL, NULL},
};
TEST_MAIN(tests)
