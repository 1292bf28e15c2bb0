/* Tests for sink_fetch: what a ResultsRequest gets, the whole records a
 * reply carries, parked requests and status waiters. */
#include "failalloc.h"
#include "sink_fetch.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A spool of three records: 8 + 9 + 10 bytes. */
static const char s_recs[] = "{\"t\":0}\n{\"t\":11}\n{\"t\":222}\n";

static int s_spool(void)
{
    char path[] = "/tmp/test_sink_fetch.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, s_recs, strlen(s_recs)) != (ssize_t)strlen(s_recs))
        abort();
    unlink(path);
    return fd;
}

static Zpipe__V1__ResultsRequest s_req(uint64_t cursor, bool wait)
{
    Zpipe__V1__ResultsRequest rq = ZPIPE__V1__RESULTS_REQUEST__INIT;
    rq.job_id = "j";
    rq.cursor = cursor;
    rq.wait = wait;
    return rq;
}

static void test_cursor_must_be_at_a_visible_boundary(void)
{
    int fd = s_spool();
    zp_fetch_t f = {0};
    zp_fetch_source_t src = {.fd = fd, .flushed = 17};
    const char *why = NULL;
    Zpipe__V1__ResultsRequest rq = s_req(0, false);
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "p", 1, &why), ZP_FETCH_ANSWER);
    rq.cursor = 8;
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "p", 1, &why), ZP_FETCH_ANSWER);
    rq.cursor = 9; /* inside a record */
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "p", 1, &why),
                ZP_FETCH_REFUSED);
    TEST_EQ_STR(why, "cursor is not at a record boundary");
    rq.cursor = 27; /* a boundary, but not durable yet */
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "p", 1, &why),
                ZP_FETCH_REFUSED);
    TEST_EQ_INT(f.n, 0);
    close(fd);
}

static void test_chunks_hold_whole_records(void)
{
    int fd = s_spool();
    zp_buf_t b = {0};
    zp_fetch_source_t src = {.fd = fd, .flushed = 27};
    Zpipe__V1__ResultsChunk c = ZPIPE__V1__RESULTS_CHUNK__INIT;
    zp_fetch_chunk(&b, &src, 0, 0, false, &c);
    TEST_EQ_INT(c.cursor, 0);
    TEST_EQ_INT(c.next_cursor, 27);
    TEST_CHECK(c.records.len == 27 && memcmp(c.records.data, s_recs, 27) == 0);
    TEST_CHECK(!c.done);
    /* max 10 from 0: the first record, and no part of the second. */
    zp_fetch_chunk(&b, &src, 0, 10, false, &c);
    TEST_EQ_INT(c.next_cursor, 8);
    TEST_EQ_INT(c.records.len, 8);
    /* max 1: the next record whole, and alone (the .proto's promise). */
    zp_fetch_chunk(&b, &src, 8, 1, false, &c);
    TEST_EQ_INT(c.next_cursor, 17);
    TEST_EQ_INT(c.records.len, 9);
    /* max 12 from 8: the one record that fits, not the second. */
    zp_fetch_chunk(&b, &src, 8, 12, false, &c);
    TEST_EQ_INT(c.next_cursor, 17);
    /* max 19 from 8: both fit. */
    zp_fetch_chunk(&b, &src, 8, 19, false, &c);
    TEST_EQ_INT(c.next_cursor, 27);
    /* Only what is durable; done once the job is and all is read. */
    src.flushed = 17;
    zp_fetch_chunk(&b, &src, 8, 0, false, &c);
    TEST_EQ_INT(c.next_cursor, 17);
    src.done = true;
    TEST_CHECK(c.done == false);
    zp_fetch_chunk(&b, &src, 8, 0, false, &c);
    TEST_CHECK(c.done);
    zp_fetch_chunk(&b, &src, 17, 0, false, &c);
    TEST_EQ_INT(c.records.len, 0);
    TEST_CHECK(c.done);
    /* No spool file yet: an empty answer. */
    zp_fetch_source_t none = {.fd = -1};
    zp_fetch_chunk(&b, &none, 0, 0, false, &c);
    TEST_EQ_INT(c.records.len, 0);
    TEST_EQ_INT(c.next_cursor, 0);
    zp_buf_free(&b);
    close(fd);
}

/* A request for 4 GiB gets at most ZP_FETCH_MAX_BYTES of records (the
 * sink allocated what was asked, up to the spool's size), and the rest
 * from next_cursor. */
static void test_a_huge_max_bytes_is_capped(void)
{
    char path[] = "/tmp/zp-fetch-XXXXXX";
    int fd = mkstemp(path);
    TEST_CHECK(fd >= 0);
    unlink(path);
    static char rec[4096];
    memset(rec, 'r', sizeof rec - 1);
    rec[sizeof rec - 1] = '\n';
    size_t total = ZP_FETCH_MAX_BYTES + 3 * sizeof rec;
    for (size_t off = 0; off < total; off += sizeof rec)
        TEST_CHECK(write(fd, rec, sizeof rec) == (ssize_t)sizeof rec);
    zp_buf_t b = {0};
    zp_fetch_source_t src = {.fd = fd, .flushed = total, .done = true};
    Zpipe__V1__ResultsChunk c = ZPIPE__V1__RESULTS_CHUNK__INIT;
    zp_fetch_chunk(&b, &src, 0, UINT32_MAX, false, &c);
    TEST_EQ_INT(c.next_cursor, ZP_FETCH_MAX_BYTES);
    TEST_CHECK(b.cap <= ZP_FETCH_MAX_BYTES + 65536);
    TEST_CHECK(!c.done);
    zp_fetch_chunk(&b, &src, c.next_cursor, UINT32_MAX, false, &c);
    TEST_EQ_INT(c.next_cursor, total);
    TEST_CHECK(c.done);
    zp_buf_free(&b);
    close(fd);
}

static void test_waiting_requests_park_until_records(void)
{
    int fd = s_spool();
    zp_fetch_t f = {0};
    zp_fetch_source_t src = {.fd = fd, .flushed = 8};
    const char *why;
    Zpipe__V1__ResultsRequest rq = s_req(8, true);
    rq.max_bytes = 100;
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "peer-a", 6, &why),
                ZP_FETCH_PARKED);
    rq.cursor = 0; /* records there already: answered now */
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "peer-b", 6, &why),
                ZP_FETCH_ANSWER);
    zp_fetch_req_t ready[ZP_FETCH_MAX_WAITERS];
    TEST_EQ_INT(zp_fetch_take_ready(&f, &src, ready), 0);
    TEST_EQ_INT(f.n, 1);
    src.flushed = 17;
    TEST_EQ_INT(zp_fetch_take_ready(&f, &src, ready), 1);
    TEST_EQ_INT(f.n, 0);
    TEST_EQ_INT(ready[0].cursor, 8);
    TEST_EQ_INT(ready[0].max_bytes, 100);
    TEST_CHECK(ready[0].peer.rid_len == 6 &&
               memcmp(ready[0].peer.rid, "peer-a", 6) == 0);
    /* A done job answers at once, and releases what is parked. */
    rq.cursor = 17;
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "peer-c", 6, &why),
                ZP_FETCH_PARKED);
    src.done = true;
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "peer-d", 6, &why),
                ZP_FETCH_ANSWER);
    TEST_EQ_INT(zp_fetch_take_ready(&f, &src, ready), 1);
    /* A peer asking again renews its parked request, once. */
    src.done = false;
    rq.max_bytes = 7;
    for (int i = 0; i < 100; i++)
        TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "again", 5, &why),
                    ZP_FETCH_PARKED);
    TEST_EQ_INT(f.n, 1);
    rq.max_bytes = 9;
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "again", 5, &why),
                ZP_FETCH_PARKED);
    TEST_EQ_INT(f.n, 1);
    TEST_EQ_INT(f.req[0].max_bytes, 9);
    /* Another peer whose id begins the same is another peer. */
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "again2", 6, &why),
                ZP_FETCH_PARKED);
    TEST_EQ_INT(f.n, 2);
    src.flushed = 27;
    TEST_EQ_INT(zp_fetch_take_ready(&f, &src, ready), 2);
    src.flushed = 17;
    /* Full: answered now rather than parked. */
    char id[8];
    for (int i = 0; i < ZP_FETCH_MAX_WAITERS; i++) {
        snprintf(id, sizeof id, "p%d", i);
        TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, id, strlen(id), &why),
                    ZP_FETCH_PARKED);
    }
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "q", 1, &why), ZP_FETCH_ANSWER);
    TEST_EQ_INT(f.cap, ZP_FETCH_MAX_WAITERS);
    zp_fetch_fini(&f);
    TEST_CHECK(f.req == NULL && f.n == 0);
    close(fd);
}

/* Records the spool file cannot be opened for: refused with a reason,
 * never an empty answer a consumer would wait on. */
static void test_unreadable_spool_is_refused(void)
{
    zp_fetch_t f = {0};
    zp_fetch_source_t src = {.fd = -1, .flushed = 17};
    const char *why = NULL;
    Zpipe__V1__ResultsRequest rq = s_req(0, true);
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "p", 1, &why),
                ZP_FETCH_REFUSED);
    TEST_CONTAINS(why, "cannot be read");
    /* Nothing spooled yet: no file is needed. */
    src.flushed = 0;
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "p", 1, &why), ZP_FETCH_PARKED);
    zp_fetch_fini(&f);
}

/* Records taken (or their file deleted): refused with the reason, done or
 * not, whatever the cursor; never answered as "done, no records". */
static void test_gone_records_are_refused(void)
{
    zp_fetch_t f = {0};
    zp_fetch_source_t src = {
        .fd = -1, .flushed = 0, .done = true, .gone = true};
    const char *why = NULL;
    Zpipe__V1__ResultsRequest rq = s_req(0, true);
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "p", 1, &why),
                ZP_FETCH_REFUSED);
    TEST_CONTAINS(why, "taken");
    src.done = false;
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "p", 1, &why),
                ZP_FETCH_REFUSED);
    TEST_EQ_INT(f.n, 0);
    zp_fetch_fini(&f);
}

static void test_waiters_once_each_oldest_dropped(void)
{
    zp_waiters_t w = {0};
    TEST_EQ_INT(zp_waiters_add(&w, "a", 1), 0);
    TEST_EQ_INT(zp_waiters_add(&w, "a", 1), 0);
    TEST_EQ_INT(w.n, 1);
    for (int i = 1; i < ZP_FETCH_MAX_WAITERS; i++) {
        char rid[8];
        int n = snprintf(rid, sizeof rid, "p%d", i);
        TEST_EQ_INT(zp_waiters_add(&w, rid, (size_t)n), 0);
    }
    TEST_EQ_INT(w.n, ZP_FETCH_MAX_WAITERS);
    TEST_EQ_INT(zp_waiters_add(&w, "a", 1), 0); /* there already */
    TEST_EQ_INT(zp_waiters_add(&w, "new", 3), 1);
    TEST_EQ_INT(w.n, ZP_FETCH_MAX_WAITERS);
    TEST_CHECK(memcmp(w.peer[0].rid, "p1", 2) == 0);
    TEST_CHECK(memcmp(w.peer[w.n - 1].rid, "new", 3) == 0);
    zp_waiters_clear(&w); /* told: forgotten, room kept */
    TEST_EQ_INT(w.n, 0);
    TEST_EQ_INT(w.cap, ZP_FETCH_MAX_WAITERS);
    TEST_EQ_INT(zp_waiters_add(&w, "a", 1), 0);
    zp_waiters_fini(&w);
    TEST_CHECK(w.peer == NULL && w.n == 0 && w.cap == 0);
}

/* An idle job's lists hold what they need: one waiter takes room for
 * one, not for ZP_FETCH_MAX_WAITERS. */
static void test_lists_grow_on_demand(void)
{
    zp_waiters_t w = {0};
    TEST_EQ_INT(zp_waiters_add(&w, "opener", 6), 0);
    TEST_EQ_INT(w.cap, 1);
    TEST_EQ_INT(zp_waiters_add(&w, "other", 5), 0);
    TEST_EQ_INT(w.cap, 2);
    zp_waiters_fini(&w);
}

/* Out of memory: a waiter is not added (-1) and the list is unchanged;
 * a request that cannot be parked is answered now. */
static void s_lists_scenario(void *arg)
{
    (void)arg;
    zp_waiters_t w = {0};
    for (int i = 0; i < 5; i++) {
        char rid[8];
        int n = snprintf(rid, sizeof rid, "p%d", i);
        size_t before = w.n;
        int r = zp_waiters_add(&w, rid, (size_t)n);
        if ((r < 0 && w.n != before) || (r == 0 && w.n != before + 1))
            abort();
    }
    zp_waiters_fini(&w);
    zp_fetch_t f = {0};
    zp_fetch_source_t src = {.fd = -1};
    Zpipe__V1__ResultsRequest rq = s_req(0, true);
    const char *why;
    for (int i = 0; i < 3; i++) {
        zp_fetch_action_t a = zp_fetch_request(&f, &src, &rq, "p", 1, &why);
        if (a == ZP_FETCH_REFUSED)
            abort();
    }
    zp_fetch_fini(&f);
}

static void test_alloc_failures_in_lists(void)
{
    TEST_CHECK(failalloc_sweep(s_lists_scenario, NULL) >= 5);
}

/* A reply's buffer cannot grow: an empty answer at the same cursor. */
static void s_scenario(void *arg)
{
    int *fd = arg;
    zp_buf_t b = {0};
    zp_fetch_source_t src = {.fd = *fd, .flushed = 27, .done = true};
    Zpipe__V1__ResultsChunk c = ZPIPE__V1__RESULTS_CHUNK__INIT;
    zp_fetch_chunk(&b, &src, 8, 0, false, &c);
    if (c.next_cursor != 27 && (c.next_cursor != 8 || c.records.len || c.done))
        abort();
    zp_buf_free(&b);
}

static void test_alloc_failures(void)
{
    int fd = s_spool();
    TEST_EQ_INT(failalloc_sweep(s_scenario, &fd), 1);
    close(fd);
}

/* By reference: every visible record past the cursor, told by the file's
 * path and identity, none read; max_bytes does not apply. */
static void test_by_reference_tells_where_the_records_are(void)
{
    int fd = s_spool();
    struct stat st;
    TEST_CHECK(fstat(fd, &st) == 0);
    zp_buf_t b = {0};
    zp_fetch_source_t src = {.fd = fd, .flushed = 17, .path = "/spool/j.jsonl"};
    Zpipe__V1__ResultsChunk c = ZPIPE__V1__RESULTS_CHUNK__INIT;
    zp_fetch_chunk(&b, &src, 8, 1, true, &c);
    TEST_EQ_STR(c.spool_path, "/spool/j.jsonl");
    TEST_CHECK(c.spool_dev == (uint64_t)st.st_dev);
    TEST_CHECK(c.spool_ino == (uint64_t)st.st_ino);
    TEST_CHECK(c.cursor == 8 && c.next_cursor == 17);
    TEST_CHECK(c.records.len == 0 && !c.done);
    src.flushed = 27;
    src.done = true;
    c = (Zpipe__V1__ResultsChunk)ZPIPE__V1__RESULTS_CHUNK__INIT;
    zp_fetch_chunk(&b, &src, 0, 0, true, &c);
    TEST_CHECK(c.cursor == 0 && c.next_cursor == 27 && c.done);
    TEST_CHECK(c.records.len == 0 && c.spool_path);
    /* Nothing past the cursor: an empty answer of bytes, done. */
    c = (Zpipe__V1__ResultsChunk)ZPIPE__V1__RESULTS_CHUNK__INIT;
    zp_fetch_chunk(&b, &src, 27, 0, true, &c);
    TEST_CHECK(c.next_cursor == 27 && c.done && !c.records.len);
    TEST_CHECK(c.spool_path == NULL || !*c.spool_path);
    zp_buf_free(&b);
    close(fd);
}

/* The bytes instead when the sink cannot point: no path, or a visible
 * part that does not end a record, or a file shorter than it. */
static void test_by_reference_falls_back_to_bytes(void)
{
    int fd = s_spool();
    zp_buf_t b = {0};
    zp_fetch_source_t src = {.fd = fd, .flushed = 27};
    Zpipe__V1__ResultsChunk c = ZPIPE__V1__RESULTS_CHUNK__INIT;
    zp_fetch_chunk(&b, &src, 0, 0, true, &c); /* no path */
    TEST_CHECK(c.records.len == 27 && c.next_cursor == 27);
    TEST_CHECK(c.spool_path == NULL || !*c.spool_path);
    src.path = "/spool/j.jsonl";
    src.flushed = 20; /* inside the third record */
    c = (Zpipe__V1__ResultsChunk)ZPIPE__V1__RESULTS_CHUNK__INIT;
    zp_fetch_chunk(&b, &src, 0, 0, true, &c);
    TEST_CHECK(c.records.len == 17 && c.next_cursor == 17);
    TEST_CHECK(c.spool_path == NULL || !*c.spool_path);
    TEST_CHECK(ftruncate(fd, 17) == 0); /* cut below what is visible */
    src.flushed = 27;
    c = (Zpipe__V1__ResultsChunk)ZPIPE__V1__RESULTS_CHUNK__INIT;
    zp_fetch_chunk(&b, &src, 0, 0, true, &c);
    TEST_CHECK(c.spool_path == NULL || !*c.spool_path);
    zp_buf_free(&b);
    close(fd);
}

/* A parked request keeps asking by reference; asked again, as last said. */
static void test_parked_requests_keep_by_reference(void)
{
    int fd = s_spool();
    zp_fetch_t f = {0};
    zp_fetch_source_t src = {.fd = fd, .flushed = 17};
    const char *why = NULL;
    Zpipe__V1__ResultsRequest rq = s_req(17, true);
    rq.by_reference = true;
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "p", 1, &why), ZP_FETCH_PARKED);
    Zpipe__V1__ResultsRequest other = s_req(17, true);
    TEST_EQ_INT(zp_fetch_request(&f, &src, &other, "q", 1, &why),
                ZP_FETCH_PARKED);
    src.flushed = 27;
    zp_fetch_req_t out[ZP_FETCH_MAX_WAITERS];
    TEST_EQ_INT(zp_fetch_take_ready(&f, &src, out), 2);
    TEST_CHECK(out[0].by_reference && !out[1].by_reference);
    rq.by_reference = false; /* renewed without */
    src.flushed = 17;
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "p", 1, &why), ZP_FETCH_PARKED);
    rq.by_reference = true;
    TEST_EQ_INT(zp_fetch_request(&f, &src, &rq, "p", 1, &why), ZP_FETCH_PARKED);
    TEST_EQ_INT(f.n, 1);
    TEST_CHECK(f.req[0].by_reference);
    zp_fetch_fini(&f);
    close(fd);
}

static const test_case_t tests[] = {
    {"test_gone_records_are_refused", test_gone_records_are_refused},
    {"test_cursor_must_be_at_a_visible_boundary",
     test_cursor_must_be_at_a_visible_boundary},
    {"test_chunks_hold_whole_records", test_chunks_hold_whole_records},
    {"test_a_huge_max_bytes_is_capped", test_a_huge_max_bytes_is_capped},
    {"test_waiting_requests_park_until_records",
     test_waiting_requests_park_until_records},
    {"test_unreadable_spool_is_refused", test_unreadable_spool_is_refused},
    {"test_waiters_once_each_oldest_dropped",
     test_waiters_once_each_oldest_dropped},
    {"test_lists_grow_on_demand", test_lists_grow_on_demand},
    {"test_alloc_failures_in_lists", test_alloc_failures_in_lists},
    {"test_alloc_failures", test_alloc_failures},
    {"test_by_reference_tells_where_the_records_are",
     test_by_reference_tells_where_the_records_are},
    {"test_by_reference_falls_back_to_bytes",
     test_by_reference_falls_back_to_bytes},
    {"test_parked_requests_keep_by_reference",
     test_parked_requests_keep_by_reference},
    {NULL, NULL},
};

TEST_MAIN(tests)
