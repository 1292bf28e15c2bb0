/* Tests for zp_frame: the length-prefixed codec between a worker and its
 * executor. */
#include "failalloc.h"
#include "test.h"
#include "zp_frame.h"

#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Feeds bytes to r in pieces of at most step bytes. */
static int s_feed(zp_frame_reader_t *r, const char *data, size_t len,
                  size_t step)
{
    while (len) {
        char *dst;
        size_t room;
        if (zp_frame_reader_space(r, 16, &dst, &room) < 0)
            return -1;
        size_t n = len < step ? len : step;
        if (n > room)
            n = room;
        memcpy(dst, data, n);
        zp_frame_reader_commit(r, n);
        data += n;
        len -= n;
    }
    return 0;
}

/* A stream of frames "a", "", "hello" encoded by zp_frame_append. */
static void s_stream(zp_buf_t *b)
{
    b->len = 0;
    zp_frame_append(b, "a", 1);
    zp_frame_append(b, "", 0);
    zp_frame_append(b, "hello", 5);
}

static void test_append_writes_little_endian_length(void)
{
    zp_buf_t b = {0};
    TEST_CHECK(zp_frame_append(&b, "xyz", 3) == 0);
    TEST_EQ_INT(b.len, 7);
    TEST_CHECK(memcmp(b.data, "\3\0\0\0xyz", 7) == 0);
    zp_buf_free(&b);
}

static void test_split_reads_yield_whole_frames(void)
{
    zp_buf_t b = {0};
    s_stream(&b);
    zp_frame_reader_t *r = zp_frame_reader_new(1024);
    const char *f;
    size_t len;
    /* One byte at a time: nothing until a frame is whole. */
    int got = 0;
    for (size_t i = 0; i < b.len; i++) {
        TEST_CHECK(s_feed(r, b.data + i, 1, 1) == 0);
        int rc;
        while ((rc = zp_frame_reader_next(r, &f, &len)) == 1) {
            got++;
            if (got == 1)
                TEST_CHECK(len == 1 && f[0] == 'a');
            if (got == 2)
                TEST_EQ_INT(len, 0);
            if (got == 3)
                TEST_CHECK(len == 5 && memcmp(f, "hello", 5) == 0);
        }
        TEST_EQ_INT(rc, 0);
    }
    TEST_EQ_INT(got, 3);
    TEST_EQ_INT(zp_frame_reader_pending(r), 0);
    zp_frame_reader_destroy(&r);
    TEST_CHECK(r == NULL);
    zp_buf_free(&b);
}

static void test_many_frames_in_one_read(void)
{
    zp_buf_t b = {0};
    for (int i = 0; i < 1000; i++)
        zp_frame_append(&b, &i, sizeof i);
    zp_frame_reader_t *r = zp_frame_reader_new(1024);
    TEST_CHECK(s_feed(r, b.data, b.len, b.len) == 0);
    const char *f;
    size_t len;
    for (int i = 0; i < 1000; i++) {
        TEST_EQ_INT(zp_frame_reader_next(r, &f, &len), 1);
        int v;
        memcpy(&v, f, sizeof v);
        TEST_EQ_INT(v, i);
    }
    TEST_EQ_INT(zp_frame_reader_next(r, &f, &len), 0);
    TEST_EQ_INT(len, 0);
    zp_frame_reader_destroy(&r);
    zp_buf_free(&b);
}

static void test_partial_frame_kept_and_announced(void)
{
    zp_buf_t b = {0};
    zp_frame_append(&b, "0123456789", 10);
    zp_frame_reader_t *r = zp_frame_reader_new(1024);
    TEST_CHECK(s_feed(r, b.data, 7, 7) == 0);
    const char *f;
    size_t len;
    TEST_EQ_INT(zp_frame_reader_next(r, &f, &len), 0);
    TEST_EQ_INT(len, 10); /* announced, not whole */
    TEST_EQ_INT(zp_frame_reader_pending(r), 7);
    /* Room covers the rest of the frame and the minimum asked. */
    char *dst;
    size_t room;
    TEST_CHECK(zp_frame_reader_space(r, 100, &dst, &room) == 0);
    TEST_CHECK(room >= 7 + 100);
    TEST_CHECK(s_feed(r, b.data + 7, b.len - 7, 100) == 0);
    TEST_EQ_INT(zp_frame_reader_next(r, &f, &len), 1);
    TEST_CHECK(len == 10 && memcmp(f, "0123456789", 10) == 0);
    zp_frame_reader_destroy(&r);
    zp_buf_free(&b);
}

static void test_over_limit_frame_refused(void)
{
    zp_buf_t b = {0};
    char big[65] = {0};
    zp_frame_append(&b, big, 64); /* at the limit: fine */
    zp_frame_append(&b, big, 65); /* over it */
    zp_frame_reader_t *r = zp_frame_reader_new(64);
    TEST_CHECK(s_feed(r, b.data, 4 + 64 + 4, 1000) == 0);
    const char *f;
    size_t len;
    TEST_EQ_INT(zp_frame_reader_next(r, &f, &len), 1);
    TEST_EQ_INT(len, 64);
    /* Refused from its prefix alone, before its bytes arrive. */
    TEST_EQ_INT(zp_frame_reader_next(r, &f, &len), -1);
    TEST_EQ_INT(len, 65);
    zp_frame_reader_reset(r);
    TEST_EQ_INT(zp_frame_reader_pending(r), 0);
    zp_frame_reader_destroy(&r);
    zp_buf_free(&b);
}

static void test_zero_length_frame_is_a_frame(void)
{
    zp_frame_reader_t *r = zp_frame_reader_new(0);
    TEST_CHECK(s_feed(r, "\0\0\0\0", 4, 4) == 0);
    const char *f = NULL;
    size_t len = 99;
    TEST_EQ_INT(zp_frame_reader_next(r, &f, &len), 1);
    TEST_EQ_INT(len, 0);
    TEST_CHECK(f != NULL);
    TEST_EQ_INT(zp_frame_reader_pending(r), 0);
    zp_frame_reader_destroy(&r);
}

static void test_write_then_read_through_a_socket(void)
{
    int sv[2];
    TEST_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    TEST_CHECK(zp_frame_write(sv[0], "ping", 4) == 0);
    TEST_CHECK(zp_frame_write(sv[0], "", 0) == 0);
    close(sv[0]);
    zp_frame_reader_t *r = zp_frame_reader_new(16);
    for (;;) {
        char *dst;
        size_t room;
        TEST_CHECK(zp_frame_reader_space(r, 3, &dst, &room) == 0);
        ssize_t n = read(sv[1], dst, 3); /* short reads on purpose */
        if (n <= 0)
            break;
        zp_frame_reader_commit(r, (size_t)n);
    }
    close(sv[1]);
    const char *f;
    size_t len;
    TEST_EQ_INT(zp_frame_reader_next(r, &f, &len), 1);
    TEST_CHECK(len == 4 && memcmp(f, "ping", 4) == 0);
    TEST_EQ_INT(zp_frame_reader_next(r, &f, &len), 1);
    TEST_EQ_INT(len, 0);
    TEST_EQ_INT(zp_frame_reader_next(r, &f, &len), 0);
    zp_frame_reader_destroy(&r);
}

static void test_write_to_a_closed_peer_fails(void)
{
    int sv[2];
    TEST_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    close(sv[1]);
    signal(SIGPIPE, SIG_IGN);
    TEST_CHECK(zp_frame_write(sv[0], "x", 1) < 0);
    close(sv[0]);
}

/* Reads a stream under allocation failure: whatever fails, no leak. */
static void s_reader_scenario(void *arg)
{
    int *bad = arg;
    zp_buf_t b = {0};
    for (int i = 0; i < 50; i++)
        if (zp_frame_append(&b, "0123456789abcdef", 16) < 0)
            goto done;
    zp_frame_reader_t *r = zp_frame_reader_new(1 << 20);
    if (!r)
        goto done;
    int frames = 0;
    bool failed = false;
    for (size_t off = 0; off < b.len; off += 100) {
        size_t n = b.len - off < 100 ? b.len - off : 100;
        if (s_feed(r, b.data + off, n, n) < 0) {
            failed = true;
            break;
        }
        const char *f;
        size_t len;
        while (zp_frame_reader_next(r, &f, &len) == 1) {
            if (len != 16 || memcmp(f, "0123456789abcdef", 16) != 0)
                (*bad)++;
            frames++;
        }
    }
    if (!failed && frames != 50)
        (*bad)++;
    zp_frame_reader_destroy(&r);
done:
    zp_buf_free(&b);
}

static void test_alloc_failures_in_the_reader(void)
{
    int bad = 0;
    long runs = failalloc_sweep(s_reader_scenario, &bad);
    TEST_EQ_INT(bad, 0);
    TEST_CHECK(runs >= 2);
}

static const test_case_t tests[] = {
    {"test_append_writes_little_endian_length",
     test_append_writes_little_endian_length},
    {"test_split_reads_yield_whole_frames",
     test_split_reads_yield_whole_frames},
    {"test_many_frames_in_one_read", test_many_frames_in_one_read},
    {"test_partial_frame_kept_and_announced",
     test_partial_frame_kept_and_announced},
    {"test_over_limit_frame_refused", test_over_limit_frame_refused},
    {"test_zero_length_frame_is_a_frame", test_zero_length_frame_is_a_frame},
    {"test_write_then_read_through_a_socket",
     test_write_then_read_through_a_socket},
    {"test_write_to_a_closed_peer_fails", test_write_to_a_closed_peer_fails},
    {"test_alloc_failures_in_the_reader", test_alloc_failures_in_the_reader},
    {NULL, NULL},
};

TEST_MAIN(tests)
