/* Tests for vent_journal's writing side: what needs a sync, buffering,
 * refused appends, a failed write, the lock, compaction and its failure,
 * and allocation failures over open, append, sync and compact. */
#define _GNU_SOURCE
#include "failalloc.h"
#include "vjournal_fixture.h"

#include <signal.h>
#include <sys/resource.h>

static zp_vjournal_t *s_open_new(s_tmp_t *t)
{
    char err[256];
    s_tmp_new(t);
    return zp_vjournal_open(t->path, NULL, NULL, NULL, err, sizeof err);
}

/* n tasks of 16 bytes, ids first.., as one batch. */
static int s_batch(zp_vjournal_t *j, s_rec_t *exp, const char *job,
                   uint64_t seq, uint64_t first, size_t n)
{
    static uint8_t pay[1000][16];
    static const uint8_t *data[1000];
    static uint32_t lens[1000];
    for (size_t i = 0; i < n; i++) {
        for (size_t b = 0; b < 16; b++)
            pay[i][b] = (uint8_t)((first + i) * 31 + b);
        data[i] = pay[i];
        lens[i] = 16;
    }
    const char *why;
    if (exp)
        s_on_tasks(exp, job, seq, first, n, data, lens, &why);
    return zp_vjournal_tasks(j, job, seq, first, n, data, lens);
}

static void test_needs_sync_follows_what_must_be_durable(void)
{
    s_tmp_t t;
    zp_vjournal_t *j = s_open_new(&t);
    TEST_CHECK(j && !zp_vjournal_needs_sync(j));
    uint64_t id = 1;
    TEST_EQ_INT(zp_vjournal_committed(j, "a", &id, 1), 0);
    TEST_EQ_INT(zp_vjournal_finished(j, "a", "t", 1, 2), 0);
    TEST_CHECK(!zp_vjournal_needs_sync(j)); /* losing these costs little */
    zp_vjournal_job_t job = {"a", "t", "echo", "", 0, 0, 0, {0}};
    TEST_EQ_INT(zp_vjournal_job(j, &job), 0);
    TEST_CHECK(zp_vjournal_needs_sync(j));
    TEST_EQ_INT(zp_vjournal_flush(j), 0); /* written, not durable */
    TEST_CHECK(zp_vjournal_needs_sync(j));
    TEST_EQ_INT(s_fsize(t.path), zp_vjournal_size(j));
    TEST_EQ_INT(zp_vjournal_sync(j), 0);
    TEST_CHECK(!zp_vjournal_needs_sync(j));
    TEST_EQ_INT(s_batch(j, NULL, "a", 1, 0, 10), 0);
    TEST_CHECK(zp_vjournal_needs_sync(j));
    TEST_EQ_INT(zp_vjournal_sync(j), 0);
    zp_vjournal_seq_t seq = {1, 0, 10};
    TEST_EQ_INT(zp_vjournal_seqs(j, "a", &seq, 1), 0);
    TEST_CHECK(zp_vjournal_needs_sync(j));
    TEST_EQ_INT(zp_vjournal_sync(j), 0);
    TEST_EQ_INT(zp_vjournal_close(j, "a", 10), 0);
    TEST_CHECK(zp_vjournal_needs_sync(j));
    TEST_EQ_INT(zp_vjournal_sync(j), 0);
    TEST_EQ_INT(zp_vjournal_sync(j), 0); /* nothing new: no-op */
    zp_vjournal_destroy(&j);
    s_tmp_done(&t);
}

static void test_appends_are_written_past_4_mib_buffered(void)
{
    s_tmp_t t;
    zp_vjournal_t *j = s_open_new(&t);
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(s_batch(j, NULL, "a", 0, 0, 1000), 0);
    TEST_EQ_INT(s_fsize(t.path), ZP_VJ_HEADER_LEN); /* buffered */
    uint64_t id = 0;
    while (s_fsize(t.path) == ZP_VJ_HEADER_LEN && id < 1000000) {
        TEST_EQ_INT(s_batch(j, NULL, "a", 0, id += 1000, 1000), 0);
        TEST_CHECK(zp_vjournal_size(j) < (5u << 20));
    }
    TEST_CHECK(s_fsize(t.path) >= (4 << 20));
    TEST_CHECK(zp_vjournal_size(j) >= (uint64_t)s_fsize(t.path));
    zp_vjournal_destroy(&j); /* writes the rest, no sync */
    char err[256];
    zp_vjournal_info_t info;
    j = zp_vjournal_open(t.path, NULL, NULL, &info, err, sizeof err);
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(info.records, id / 1000 + 1);
    zp_vjournal_destroy(&j);
    s_tmp_done(&t);
}

static void test_bad_appends_are_refused_and_append_nothing(void)
{
    s_tmp_t t;
    zp_vjournal_t *j = s_open_new(&t);
    TEST_CHECK(j != NULL);
    zp_vjournal_job_t job = {"bad/id", "", "", "", 0, 0, 0, {0}};
    errno = 0;
    TEST_EQ_INT(zp_vjournal_job(j, &job), -1);
    TEST_EQ_INT(errno, EINVAL);
    TEST_EQ_INT(zp_vjournal_close(j, "", 1), -1);
    TEST_EQ_INT(zp_vjournal_finished(j, "a b", "", 1, 1), -1);
    /* Over the 1 GiB record limit: refused before a byte is read. */
    uint8_t one = 0;
    const uint8_t *data[] = {&one, &one};
    const uint32_t lens[] = {0x20000000u, 0x20000000u};
    TEST_EQ_INT(zp_vjournal_tasks(j, "a", 1, 0, 2, data, lens), -1);
    TEST_EQ_INT(errno, EFBIG);
    TEST_EQ_INT(zp_vjournal_size(j), ZP_VJ_HEADER_LEN);
    TEST_CHECK(!zp_vjournal_needs_sync(j));
    zp_vjournal_destroy(&j);
    s_tmp_done(&t);
}

static void test_a_second_open_of_the_same_file_is_refused(void)
{
    s_tmp_t t;
    zp_vjournal_t *j = s_open_new(&t);
    TEST_CHECK(j != NULL);
    char err[256];
    zp_vjournal_t *k =
        zp_vjournal_open(t.path, NULL, NULL, NULL, err, sizeof err);
    TEST_CHECK(k == NULL);
    TEST_CONTAINS(err, "in use by another process");
    zp_vjournal_destroy(&j);
    k = zp_vjournal_open(t.path, NULL, NULL, NULL, err, sizeof err);
    TEST_CHECK(k != NULL);
    zp_vjournal_destroy(&k);
    s_tmp_done(&t);
}

/* A file size limit makes the write stop part way: the rest stays
 * buffered, needs_sync stays true, and the next sync writes it. */
static void test_a_failed_write_keeps_the_records_for_the_next_sync(void)
{
    s_tmp_t t;
    zp_vjournal_t *j = s_open_new(&t);
    TEST_CHECK(j != NULL);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 1000;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    TEST_EQ_INT(s_batch(j, NULL, "a", 1, 0, 100), 0); /* about 2 KB */
    setrlimit(RLIMIT_FSIZE, &lim);
    int rc = zp_vjournal_sync(j);
    int e = errno;
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    TEST_EQ_INT(rc, -1);
    TEST_EQ_INT(e, EFBIG);
    TEST_EQ_INT(s_fsize(t.path), 1000); /* a torn record, for now */
    TEST_CHECK(zp_vjournal_needs_sync(j));
    TEST_EQ_INT(zp_vjournal_sync(j), 0);
    TEST_EQ_INT(s_fsize(t.path), zp_vjournal_size(j));
    zp_vjournal_destroy(&j);
    static s_rec_t got;
    zp_vjournal_info_t info;
    char err[256];
    TEST_EQ_INT(s_replay(t.path, &got, &info, err, sizeof err), 1);
    s_tmp_done(&t);
}

/* The live state of the compaction tests: job-a with tasks 950..999
 * held out of ten batches of 100, job-b finished. */
static int s_dump(void *ctx, zp_vjournal_t *j)
{
    s_rec_t *exp = ctx;
    const char *why;
    zp_vjournal_job_t a = {"job-a", "tok", "echo", "N=1", 0, 5, 1, {0}};
    zp_vjournal_seq_t seqs[10];
    for (int i = 0; i < 10; i++)
        seqs[i] = (zp_vjournal_seq_t){(uint64_t)i + 1, (uint64_t)i * 100, 100};
    int rc = zp_vjournal_job(j, &a) | s_on_open(exp, &a, &why);
    rc |= zp_vjournal_seqs(j, "job-a", seqs, 10) |
          s_on_seqs(exp, "job-a", seqs, 10, &why);
    rc |= s_batch(j, exp, "job-a", 0, 950, 50);
    rc |= zp_vjournal_finished(j, "job-b", "", 7, 99) |
          s_on_finished(exp, "job-b", "", 7, 99, &why);
    return rc;
}

static int s_history(zp_vjournal_t *j)
{
    zp_vjournal_job_t a = {"job-a", "tok", "echo", "N=1", 0, 5, 1, {0}};
    zp_vjournal_job_t b = {"job-b", "", "echo", "", 0, 0, 0, {0}};
    int rc = zp_vjournal_job(j, &a) | zp_vjournal_job(j, &b);
    uint64_t ids[50];
    for (uint64_t s = 0; s < 10; s++)
        rc |= s_batch(j, NULL, "job-a", s + 1, s * 100, 100);
    for (uint64_t c = 0; c < 950; c += 50) {
        for (uint64_t i = 0; i < 50; i++)
            ids[i] = c + i;
        rc |= zp_vjournal_committed(j, "job-a", ids, 50);
    }
    rc |= zp_vjournal_close(j, "job-b", 7);
    return rc | zp_vjournal_finished(j, "job-b", "", 7, 99);
}

static void test_compaction_keeps_the_live_state_and_shrinks(void)
{
    s_tmp_t t;
    zp_vjournal_t *j = s_open_new(&t);
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(s_history(j), 0);
    TEST_EQ_INT(zp_vjournal_sync(j), 0);
    TEST_EQ_INT(zp_vjournal_committed(j, "job-a", NULL, 0), 0); /* buffered */
    uint64_t before = zp_vjournal_size(j);
    TEST_CHECK(zp_vjournal_compact_due(j, 2000, 4096));
    static s_rec_t exp, got;
    memset(&exp, 0, sizeof exp);
    memset(&got, 0, sizeof got);
    char err[256];
    TEST_EQ_INT(zp_vjournal_compact(j, s_dump, &exp, err, sizeof err), 0);
    TEST_CHECK(zp_vjournal_size(j) * 10 < before);
    TEST_EQ_INT(s_fsize(t.path), zp_vjournal_size(j));
    TEST_EQ_INT(s_fsize(t.tmp), -1);
    TEST_CHECK(!zp_vjournal_needs_sync(j));
    TEST_CHECK(!zp_vjournal_compact_due(j, 2000, 4096));
    uint64_t ids[] = {950, 951};
    const char *why;
    TEST_EQ_INT(zp_vjournal_committed(j, "job-a", ids, 2), 0);
    s_on_committed(&exp, "job-a", ids, 2, &why);
    TEST_EQ_INT(zp_vjournal_close(j, "job-a", 1000), 0);
    s_on_close(&exp, "job-a", 1000, &why);
    TEST_EQ_INT(zp_vjournal_sync(j), 0);
    zp_vjournal_destroy(&j);
    zp_vjournal_info_t info;
    TEST_EQ_INT(s_replay(t.path, &got, &info, err, sizeof err), 6);
    TEST_EQ_STR(got.log, exp.log);
    s_tmp_done(&t);
}

static int s_dump_fails(void *ctx, zp_vjournal_t *j)
{
    (void)ctx;
    zp_vjournal_job_t a = {"job-a", "", "", "", 0, 0, 0, {0}};
    zp_vjournal_job(j, &a);
    return -1;
}

static void test_a_failed_compaction_keeps_the_old_file(void)
{
    s_tmp_t t;
    zp_vjournal_t *j = s_open_new(&t);
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(s_history(j), 0);
    TEST_EQ_INT(zp_vjournal_sync(j), 0);
    TEST_EQ_INT(s_batch(j, NULL, "job-a", 11, 1000, 10), 0); /* buffered */
    long synced = s_fsize(t.path);
    char err[256];
    TEST_EQ_INT(zp_vjournal_compact(j, s_dump_fails, NULL, err, sizeof err),
                -1);
    TEST_CONTAINS(err, "the dump failed");
    TEST_EQ_INT(s_fsize(t.tmp), -1);
    TEST_CHECK(s_fsize(t.path) > synced);  /* the buffered batch written */
    TEST_CHECK(zp_vjournal_needs_sync(j)); /* and still owed a sync */
    /* PATH.compact cannot be created: refused the same way. */
    TEST_EQ_INT(mkdir(t.tmp, 0755), 0);
    TEST_EQ_INT(zp_vjournal_compact(j, s_dump, NULL, err, sizeof err), -1);
    TEST_CONTAINS(err, t.tmp);
    TEST_EQ_INT(zp_vjournal_close(j, "job-a", 1010), 0);
    TEST_EQ_INT(zp_vjournal_sync(j), 0);
    zp_vjournal_destroy(&j);
    static s_rec_t got;
    zp_vjournal_info_t info;
    TEST_EQ_INT(s_replay(t.path, &got, &info, err, sizeof err), 35);
    s_tmp_done(&t);
}

static void test_compact_due(void)
{
    s_tmp_t t;
    zp_vjournal_t *j = s_open_new(&t);
    TEST_CHECK(j != NULL);
    uint64_t size = zp_vjournal_size(j);
    TEST_CHECK(zp_vjournal_compact_due(j, 0, 0));
    TEST_CHECK(!zp_vjournal_compact_due(j, 0, size)); /* not over min */
    TEST_CHECK(zp_vjournal_compact_due(j, size / 2 - 1, 0));
    TEST_CHECK(!zp_vjournal_compact_due(j, size / 2 + 1, 0));
    TEST_CHECK(!zp_vjournal_compact_due(j, UINT64_MAX, 0));
    zp_vjournal_destroy(&j);
    s_tmp_done(&t);
}

/* ---- allocation failures -------------------------------------------- */

typedef struct {
    s_tmp_t t;
    size_t fixture_len;
    uint64_t fixture_records;
    int bad;
    long compacted; /* runs in which the compaction went through */
} s_sweep_t;

static uint8_t s_fixture[1 << 16];

static bool s_oom(const char *err)
{
    return strstr(err, "out of memory") || strstr(err, "the dump failed");
}

/* Open (replaying every record type), append the sample again, sync,
 * compact, append, sync; then whatever failed, the file must open again
 * with exactly the records that were appended. */
static void s_scenario(void *arg)
{
    s_sweep_t *s = arg;
    s_spit(s->t.path, s_fixture, s->fixture_len);
    static s_rec_t rec, scratch;
    memset(&rec, 0, sizeof rec);
    memset(&scratch, 0, sizeof scratch);
    char err[256];
    zp_vjournal_info_t info;
    zp_vjournal_t *j =
        zp_vjournal_open(s->t.path, &s_visitor, &rec, &info, err, sizeof err);
    if (!j) {
        s->bad |= !s_oom(err);
        return;
    }
    uint64_t expect = s->fixture_records;
    s_marks_t m = {0};
    s_mark(j, &scratch, &m);
    s_sample(j, &scratch, &m, 40);
    for (size_t i = 1; i < m.n; i++)
        expect += m.bounds[i] != m.bounds[i - 1];
    s->bad |= zp_vjournal_sync(j) != 0;
    if (zp_vjournal_compact(j, s_dump, &scratch, err, sizeof err) == 0) {
        expect = 4;
        s->compacted++;
    } else
        s->bad |= !s_oom(err);
    expect += zp_vjournal_close(j, "job-z", 1) == 0;
    s->bad |= zp_vjournal_sync(j) != 0;
    zp_vjournal_destroy(&j);
    j = zp_vjournal_open(s->t.path, NULL, NULL, &info, err, sizeof err);
    if (j)
        s->bad |= info.records != expect || info.torn != 0;
    else
        s->bad |= !s_oom(err);
    zp_vjournal_destroy(&j);
    s->bad |= s_fsize(s->t.tmp) != -1;
}

static void test_allocation_failures_leave_a_journal_that_opens(void)
{
    static s_sweep_t s;
    memset(&s, 0, sizeof s);
    static s_rec_t exp;
    memset(&exp, 0, sizeof exp);
    s_marks_t m = {0};
    s_tmp_new(&s.t);
    TEST_EQ_INT(s_sample_file(&s.t, &exp, &m, 40), 0);
    s.fixture_len = s_slurp(s.t.path);
    memcpy(s_fixture, s_file, s.fixture_len);
    s.fixture_records = m.n;
    long runs = failalloc_sweep(s_scenario, &s);
    TEST_EQ_INT(s.bad, 0);
    TEST_CHECK(runs >= 10);
    TEST_CHECK(s.compacted >= 2); /* without failures, and after some */
    printf("  %ld allocation failures injected\n", runs);
    s_tmp_done(&s.t);
}

static const test_case_t tests[] = {
    {"test_needs_sync_follows_what_must_be_durable",
     test_needs_sync_follows_what_must_be_durable},
    {"test_appends_are_written_past_4_mib_buffered",
     test_appends_are_written_past_4_mib_buffered},
    {"test_bad_appends_are_refused_and_append_nothing",
     test_bad_appends_are_refused_and_append_nothing},
    {"test_a_second_open_of_the_same_file_is_refused",
     test_a_second_open_of_the_same_file_is_refused},
    {"test_a_failed_write_keeps_the_records_for_the_next_sync",
     test_a_failed_write_keeps_the_records_for_the_next_sync},
    {"test_compaction_keeps_the_live_state_and_shrinks",
     test_compaction_keeps_the_live_state_and_shrinks},
    {"test_a_failed_compaction_keeps_the_old_file",
     test_a_failed_compaction_keeps_the_old_file},
    {"test_compact_due", test_compact_due},
    {"test_allocation_failures_leave_a_journal_that_opens",
     test_allocation_failures_leave_a_journal_that_opens},
    {NULL, NULL},
};
TEST_MAIN(tests)
