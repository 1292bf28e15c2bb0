/* Tests for zp_journal: replay, torn tails, corrupt lines, reopen. */
#include "failalloc.h"
#include "test.h"
#include "zp_journal.h"
#include "zp_journal_int.h" /* the headers' chain values */

#include <fcntl.h>
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
static const zp_journal_visitor_t s_visitor = {
    .on_open = s_open, .on_close = s_close, .on_record = s_record};

/* What a snapshot's lines said. */
typedef struct {
    uint64_t offset, forgotten, fhash[2], fspooled, dones, counts, have_ids;
    zp_journal_summary_t last_done, last_counts;
    char done_job[160], done_token[160];
    s_seen_t seen;
} s_snap_t;

static void s_sopen(void *ctx, const char *job, uint32_t m, const char *t)
{
    s_open(&((s_snap_t *)ctx)->seen, job, m, t);
}
static void s_sclose(void *ctx, const char *job, uint64_t total)
{
    s_close(&((s_snap_t *)ctx)->seen, job, total);
}
static void s_srecord(void *ctx, const char *job, uint64_t task, bool ok,
                      uint64_t offset)
{
    s_record(&((s_snap_t *)ctx)->seen, job, task, ok, offset);
}
static void s_offset(void *ctx, uint64_t offset)
{
    ((s_snap_t *)ctx)->offset = offset;
}
static void s_forgotten(void *ctx, const zp_journal_forgotten_t *f)
{
    s_snap_t *s = ctx;
    s->forgotten++;
    s->fhash[0] = f->id_hash;
    s->fhash[1] = f->token_hash;
    s->fspooled = f->spooled;
}
static void s_done(void *ctx, const char *job, const char *token,
                   const zp_journal_summary_t *m)
{
    s_snap_t *s = ctx;
    s->dones++;
    s->last_done = *m;
    snprintf(s->done_job, sizeof s->done_job, "%s", job);
    snprintf(s->done_token, sizeof s->done_token, "%s", token);
}
static void s_counts(void *ctx, const char *job, const zp_journal_summary_t *m)
{
    s_snap_t *s = ctx;
    (void)job;
    s->counts++;
    s->last_counts = *m;
}
static void s_have(void *ctx, const char *job, uint64_t first, uint64_t count)
{
    s_snap_t *s = ctx;
    (void)job;
    (void)first;
    s->have_ids += count;
}
static const zp_journal_visitor_t s_snap_visitor = {.on_open = s_sopen,
                                                    .on_close = s_sclose,
                                                    .on_record = s_srecord,
                                                    .on_offset = s_offset,
                                                    .on_forgotten = s_forgotten,
                                                    .on_done = s_done,
                                                    .on_counts = s_counts,
                                                    .on_have = s_have};

/* A dump: one of each snapshot line. */
static int s_dump(void *ctx, zp_journal_t *out)
{
    (void)ctx;
    zp_journal_summary_t done = {5, 10, 9, 1, 2, 3, 111, 222, 1};
    zp_journal_summary_t live = {.succeeded = 4, .failed = 1, .retries = 7};
    zp_journal_forgotten_t f1 = {0x0123456789abcdefull, 0, 3, 3, 10, 0};
    zp_journal_forgotten_t f2 = {1, UINT64_MAX, 5, 4, 777, 1};
    bool ok = zp_journal_put_offset(out, 12345) == 0 &&
              zp_journal_put_forgotten(out, &f1) == 0 &&
              zp_journal_put_forgotten(out, &f2) == 0 &&
              zp_journal_put_done(out, "old-1", "tok-1", &done) == 0 &&
              zp_journal_put_done(out, "old-2", NULL, &done) == 0 &&
              zp_journal_open_job(out, "live", 3, "tok-l") == 0 &&
              zp_journal_close_job(out, "live", 100) == 0 &&
              zp_journal_put_counts(out, "live", &live) == 0 &&
              zp_journal_put_have(out, "live", 0, 3) == 0 &&
              zp_journal_put_have(out, "live", 50, 2) == 0;
    return ok ? 0 : -1;
}

static int s_dump_fails(void *ctx, zp_journal_t *out)
{
    (void)ctx;
    zp_journal_put_offset(out, 1);
    return -1;
}

static size_t s_slurped; /* the bytes s_slurp read last */

static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    static char buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    s_slurped = n;
    return buf;
}

/* A new journal at a fresh path (path: a mkstemp template, filled in);
 * NULL when either fails (err says why for the journal). */
static zp_journal_t *s_new_journal(char *path, char *err, size_t errlen)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    close(fd);
    unlink(path);
    return zp_journal_open(path, &s_visitor, NULL, err, errlen);
}

/* A compaction replaces the journal with the dump; appends go on after
 * it; a reopen replays both; a failed dump leaves the old one in use. */
static void test_compact_replaces_the_journal_with_the_snapshot(void)
{
    char path[] = "/tmp/zpipe-journal-test-XXXXXX";
    char err[256];
    zp_journal_t *j = s_new_journal(path, err, sizeof err);
    TEST_CHECK(j != NULL);
    TEST_CONTAINS(s_slurp(path), "zpipe-journal 4\n");
    zp_journal_open_job(j, "gone", 3, NULL);
    for (uint64_t i = 0; i < 5000; i++)
        zp_journal_record(j, "gone", i, true, i * 10);
    TEST_EQ_INT(zp_journal_sync(j), 0);
    uint64_t before = zp_journal_size(j);
    TEST_CHECK(before > 5000 * 4); /* M lines: about 5 bytes a record */
    TEST_EQ_INT(zp_journal_compact(j, s_dump_fails, NULL), -1);
    TEST_EQ_INT(zp_journal_size(j), before);
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s.compact", path);
    TEST_CHECK(access(tmp, F_OK) != 0); /* removed */
    TEST_EQ_INT(zp_journal_compact(j, s_dump, NULL), 0);
    TEST_CHECK(zp_journal_size(j) < 400);
    TEST_CHECK(access(tmp, F_OK) != 0);
    zp_journal_record(j, "live", 60, false, 13000);
    zp_journal_destroy(&j);
    TEST_CHECK(strstr(s_slurp(path), "gone") == NULL);
    s_snap_t s = {0};
    j = zp_journal_open(path, &s_snap_visitor, &s, err, sizeof err);
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(s.offset, 12345);
    TEST_EQ_INT(s.forgotten, 2);
    TEST_EQ_INT(s.fhash[0], 1);
    TEST_EQ_INT(s.fhash[1], UINT64_MAX);
    TEST_EQ_INT(s.fspooled, 777);
    TEST_EQ_INT(s.dones, 2);
    TEST_EQ_STR(s.done_job, "old-2");
    TEST_EQ_STR(s.done_token, "");
    TEST_EQ_INT(s.last_done.max_attempts, 5);
    TEST_EQ_INT(s.last_done.total, 10);
    TEST_EQ_INT(s.last_done.succeeded, 9);
    TEST_EQ_INT(s.last_done.failed, 1);
    TEST_EQ_INT(s.last_done.duplicates, 2);
    TEST_EQ_INT(s.last_done.retries, 3);
    TEST_EQ_INT(s.last_done.first_us, 111);
    TEST_EQ_INT(s.last_done.last_us, 222);
    TEST_EQ_INT(s.last_done.flags, ZP_JOURNAL_REDUCE_FAILED);
    TEST_EQ_INT(s.counts, 1);
    TEST_EQ_INT(s.last_counts.succeeded, 4);
    TEST_EQ_INT(s.last_counts.retries, 7);
    TEST_EQ_INT(s.have_ids, 5);
    TEST_EQ_INT(s.seen.opens, 1);
    TEST_EQ_STR(s.seen.last_token, "tok-l");
    TEST_EQ_INT(s.seen.closes, 1);
    TEST_EQ_INT(s.seen.records, 1);
    TEST_EQ_INT(s.seen.last_offset, 13000);
    zp_journal_destroy(&j);
    unlink(path);
}

/* Version 1 is read as before; a newer version is refused by name, not
 * cut as a torn tail; malformed snapshot lines are damage. */
static void test_versions_and_bad_snapshot_lines(void)
{
    size_t valid;
    s_snap_t s = {0};
    const char v1[] = "zpipe-journal 1\nO a 3\nR a 0 ok 5\n";
    TEST_EQ_INT(
        zp_journal_replay(v1, sizeof v1 - 1, &s_snap_visitor, &s, &valid), 2);
    const char v5[] = "zpipe-journal 5\nO a 3\n";
    TEST_EQ_INT(
        zp_journal_replay(v5, sizeof v5 - 1, &s_snap_visitor, &s, &valid),
        ZP_JOURNAL_NEWER);
    TEST_EQ_INT(
        zp_journal_replay("zpipe-journal x\n", 16, &s_snap_visitor, &s, &valid),
        -1);
    const char *bad[] = {
        "zpipe-journal 2\nW\n",
        "zpipe-journal 2\nW -1\n",
        "zpipe-journal 2\nF 0123 0 1 1 0 0\n",
        "zpipe-journal 2\nF 0123456789abcdeg 0000000000000000 1 1 0 0\n",
        "zpipe-journal 2\nF 0123456789ABCDEF 0000000000000000 1 1 0 0\n",
        "zpipe-journal 2\nF 0123456789abcdef 0000000000000000 1 1 0\n",
        "zpipe-journal 2\nF 0123456789abcdef 0000000000000000\n",
        "zpipe-journal 2\nD a 3 10 9 1 0 0 0 0\n",
        "zpipe-journal 2\nD a 3 10 9 1 0 0 0 0 0 bad/token\n",
        "zpipe-journal 2\nD a 3 10 9 1 0 0 0 0 4294967296\n",
        "zpipe-journal 2\nS a 1 2 3\n",
        "zpipe-journal 2\nH a 5 0\n",
        "zpipe-journal 2\nH a 18446744073709551615 2\n",
        "zpipe-journal 2\nWW 5\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s_snap_t z = {0};
        TEST_EQ_INT(zp_journal_replay(bad[i], strlen(bad[i]), &s_snap_visitor,
                                      &z, &valid),
                    ZP_JOURNAL_DAMAGED);
        TEST_EQ_INT(valid, strlen("zpipe-journal 2\n"));
    }
    /* Counts past the total (a stray id counted while the job was open)
     * are what the dump wrote: replayed, not cut as a torn tail. */
    const char stray[] = "zpipe-journal 2\nD a 3 10 9 2 0 0 0 0 0\n"
                         "F 0123456789abcdef 0000000000000000 1 2 0 1\nO b 3\n";
    s_snap_t st = {0};
    TEST_EQ_INT(zp_journal_replay(stray, sizeof stray - 1, &s_snap_visitor, &st,
                                  &valid),
                3);
    TEST_EQ_INT(st.last_done.succeeded + st.last_done.failed, 11);
    /* A visitor without the snapshot's callbacks skips its lines. */
    const char v2[] = "zpipe-journal 2\nW 5\nD a 3 1 1 0 0 0 0 0 0\nO b 3\n";
    s_seen_t old = {0};
    TEST_EQ_INT(zp_journal_replay(v2, sizeof v2 - 1, &s_visitor, &old, &valid),
                3);
    TEST_EQ_INT(old.opens, 1);
}

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
    TEST_EQ_INT(zp_journal_replay(j, sizeof j - 1, &s_visitor, &s, &valid),
                ZP_JOURNAL_DAMAGED);
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
        zp_journal_replay(five, sizeof five - 1, &s_visitor, &s2, &valid),
        ZP_JOURNAL_DAMAGED);
}

static void test_write_without_sync_replays_the_same(void)
{
    char path[] = "/tmp/zpipe-journal-test-XXXXXX";
    char err[256];
    zp_journal_t *j = s_new_journal(path, err, sizeof err);
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

/* A complete line that is malformed was changed in place: the replay
 * stops there, with an error rather than a cut. */
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
            ZP_JOURNAL_DAMAGED);
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
    char err[256];
    zp_journal_t *j = s_new_journal(path, err, sizeof err);
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

/* ---- versions 3 and 4: checksummed lines ---- */

/* A journal of job "j": opened, 20 records (task i ends at 10 * (i + 1)),
 * each written on its own (so each is an M line of one record, as an R
 * line has it but for its letter), closed; returns its bytes (static)
 * and length, path set. */
static const char *s_written(char *path, size_t *len)
{
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    char err[256];
    zp_journal_t *j = zp_journal_open(path, NULL, NULL, err, sizeof err);
    zp_journal_open_job(j, "j", 3, "tok");
    for (uint64_t i = 0; i < 20; i++) {
        zp_journal_record(j, "j", i, true, 10 * (i + 1));
        zp_journal_write(j);
    }
    zp_journal_close_job(j, "j", 20);
    zp_journal_destroy(&j);
    const char *data = s_slurp(path);
    *len = strlen(data);
    return data;
}

static void s_put(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    TEST_CHECK(write(fd, data, len) == (ssize_t)len);
    close(fd);
}

/* The byte offset of the line that starts with prefix (0: none). */
static size_t s_line_at(const char *data, const char *prefix)
{
    const char *p = strstr(data, prefix);
    return p ? (size_t)(p - data) : 0;
}

/* Opening path fails naming it and the offset; the file is unchanged. */
static void s_refused_at(const char *path, size_t at, const char *data,
                         size_t len)
{
    char err[512], want[64];
    s_seen_t s = {0};
    TEST_CHECK(zp_journal_open(path, &s_visitor, &s, err, sizeof err) == NULL);
    TEST_CONTAINS(err, path);
    snprintf(want, sizeof want, "damaged record at byte offset %zu", at);
    TEST_CONTAINS(err, want);
    TEST_CHECK(memcmp(s_slurp(path), data, len) == 0);
    TEST_EQ_INT(s_slurped, len);
}

/* Every line ends with its checksum; the file replays whole. */
static void test_v3_round_trip(void)
{
    char path[] = "/tmp/zpipe-journal-v3-XXXXXX";
    size_t len;
    const char *data = s_written(path, &len);
    TEST_CHECK(strncmp(data, "zpipe-journal 4\n", 16) == 0);
    TEST_CONTAINS(data, "\nM j 7 ok 80 ");
    size_t lines = 0;
    for (const char *p = data + 16; *p; p = strchr(p, '\n') + 1, lines++) {
        const char *nl = strchr(p, '\n');
        TEST_CHECK(nl - p > 9 && nl[-9] == ' ');
        TEST_EQ_INT(strspn(nl - 8, "0123456789abcdef"), 8);
    }
    TEST_EQ_INT(lines, 22);
    s_seen_t s = {0};
    size_t valid;
    TEST_EQ_INT(zp_journal_replay(data, len, &s_visitor, &s, &valid), 22);
    TEST_EQ_INT(valid, len);
    TEST_EQ_INT(s.records, 20);
    TEST_EQ_INT(s.last_offset, 200);
    TEST_EQ_STR(s.last_token, "tok");
    unlink(path);
}

/* A digit of a task id or an offset changed in a middle record, a
 * record removed, repeated or swapped, a newline removed or added: the
 * open stops at the first line that fails, naming file and offset, and
 * leaves the file alone. */
static void test_damage_in_the_middle_is_refused_with_its_offset(void)
{
    char path[] = "/tmp/zpipe-journal-v3-XXXXXX";
    size_t len;
    char data[8192];
    snprintf(data, sizeof data, "%s", s_written(path, &len));
    size_t r5 = s_line_at(data, "M j 5 "), r6 = s_line_at(data, "M j 6 ");
    size_t r7 = s_line_at(data, "M j 7 ");
    TEST_CHECK(r5 && r6 && r7);
    char bad[8192];

    memcpy(bad, data, len); /* task 5 -> 8 */
    bad[r5 + 4] = '8';
    s_put(path, bad, len);
    s_refused_at(path, r5, bad, len);

    memcpy(bad, data, len); /* offset 60 -> 90 */
    bad[r5 + 9] = '9';
    s_put(path, bad, len);
    s_refused_at(path, r5, bad, len);

    memcpy(bad, data, len); /* one bit of the checksum */
    bad[r6 - 2] ^= 1;
    s_put(path, bad, len);
    s_refused_at(path, r5, bad, len);

    /* Line 5 removed: line 6 no longer follows its chain. */
    memcpy(bad, data, r5);
    memcpy(bad + r5, data + r6, len - r6);
    s_put(path, bad, len - (r6 - r5));
    s_refused_at(path, r5, bad, len - (r6 - r5));

    /* Line 5 twice. */
    memcpy(bad, data, r6);
    memcpy(bad + r6, data + r5, len - r5);
    s_put(path, bad, len + (r6 - r5));
    s_refused_at(path, r6, bad, len + (r6 - r5));

    /* Lines 5 and 6 swapped (same length). */
    memcpy(bad, data, len);
    memcpy(bad + r5, data + r6, r7 - r6);
    memcpy(bad + r5 + (r7 - r6), data + r5, r6 - r5);
    s_put(path, bad, len);
    s_refused_at(path, r5, bad, len);

    memcpy(bad, data, len); /* two lines made one */
    bad[r6 - 1] = ' ';
    s_put(path, bad, len);
    s_refused_at(path, r5, bad, len);

    memcpy(bad, data, len); /* one line made two */
    bad[r5 + 3] = '\n';
    s_put(path, bad, len);
    s_refused_at(path, r5, bad, len);

    memcpy(bad, data, len); /* zeros in the middle */
    memset(bad + r5, 0, r6 - r5 - 1);
    s_put(path, bad, len);
    s_refused_at(path, r5, bad, len);

    /* The last whole line damaged is damage too (a crash leaves only an
     * incomplete one), and the header's version changed. */
    size_t last = s_line_at(data, "C j 20 ");
    memcpy(bad, data, len);
    bad[last + 4] = '1';
    s_put(path, bad, len);
    s_refused_at(path, last, bad, len);
    memcpy(bad, data, len);
    bad[14] = '2';
    s_put(path, bad, len);
    s_refused_at(path, 0, bad, len);
    /* The last newline changed (not removed): a whole line with a byte
     * after it is no torn write. Two last lines merged likewise. */
    memcpy(bad, data, len);
    bad[len - 1] = 'x';
    s_put(path, bad, len);
    s_refused_at(path, last, bad, len);
    memcpy(bad, data, len);
    bad[last - 1] = ' ';
    s_put(path, bad, len - 1);
    s_refused_at(path, s_line_at(data, "M j 19 "), bad, len - 1);
    unlink(path);
}

/* An incomplete last line (a crash mid-write, or zeros a power loss left)
 * is cut; appends after the cut follow on its chain. */
static void test_torn_last_line_is_cut_and_appends_follow(void)
{
    char path[] = "/tmp/zpipe-journal-v3-XXXXXX";
    size_t len;
    char data[8192];
    snprintf(data, sizeof data, "%s", s_written(path, &len));
    /* The close line short of its newline only: cut. */
    size_t last = s_line_at(data, "C j 20 ");
    s_put(path, data, len - 1);
    char err[512];
    s_seen_t sc = {0};
    zp_journal_t *jc = zp_journal_open(path, &s_visitor, &sc, err, sizeof err);
    TEST_CHECK(jc != NULL);
    TEST_EQ_INT(sc.closes, 0);
    TEST_EQ_INT(zp_journal_size(jc), last);
    zp_journal_destroy(&jc);
    const char *tails[] = {"M j 20 ok 2", "M j 20 ok 210 0123abc", "\0\0\0\0",
                           "M"};
    size_t tail_len[] = {11, 21, 4, 1};
    for (size_t i = 0; i < 4; i++) {
        char torn[8192];
        memcpy(torn, data, len);
        memcpy(torn + len, tails[i], tail_len[i]);
        s_put(path, torn, len + tail_len[i]);
        s_seen_t s = {0};
        zp_journal_t *j =
            zp_journal_open(path, &s_visitor, &s, err, sizeof err);
        TEST_CHECK(j != NULL);
        TEST_EQ_INT(s.records, 20);
        TEST_EQ_INT(zp_journal_size(j), len);
        zp_journal_record(j, "j", 20, false, 210);
        zp_journal_destroy(&j);
        s_seen_t again = {0};
        j = zp_journal_open(path, &s_visitor, &again, err, sizeof err);
        TEST_CHECK(j != NULL);
        TEST_EQ_INT(again.records, 21);
        TEST_EQ_INT(again.oks, 20);
        zp_journal_destroy(&j);
    }
    unlink(path);
}

/* A version 2 journal (no checksums) is read as it is, appended to in
 * its own format, and rewritten as version 4 by a compaction. */
static void test_v2_journal_is_read_appended_and_upgraded(void)
{
    char path[] = "/tmp/zpipe-journal-v2-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    const char v2[] = "zpipe-journal 2\nO a 3 tok\nR a 0 ok 5\nR a 1 ok 9\n";
    s_put(path, v2, sizeof v2 - 1);
    char err[512];
    s_seen_t s = {0};
    zp_journal_t *j = zp_journal_open(path, &s_visitor, &s, err, sizeof err);
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(s.records, 2);
    zp_journal_record(j, "a", 2, true, 12);
    TEST_EQ_INT(zp_journal_sync(j), 0);
    TEST_CONTAINS(s_slurp(path), "R a 1 ok 9\nR a 2 ok 12\n");
    TEST_EQ_INT(zp_journal_compact(j, s_dump, NULL), 0);
    zp_journal_record(j, "live", 60, false, 13000);
    zp_journal_destroy(&j);
    TEST_CHECK(strncmp(s_slurp(path), "zpipe-journal 4\n", 16) == 0);
    s_snap_t sn = {0};
    j = zp_journal_open(path, &s_snap_visitor, &sn, err, sizeof err);
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(sn.seen.records, 1);
    TEST_EQ_INT(sn.offset, 12345);
    zp_journal_destroy(&j);
    unlink(path);
}

/* Closed without a sync (--journal-sync no), the buffered lines are still
 * written: a restart replays every one. */
static void test_destroy_unsynced_writes_every_line(void)
{
    char path[] = "/tmp/zpipe-journal-test-XXXXXX";
    char err[256];
    zp_journal_t *j = s_new_journal(path, err, sizeof err);
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(zp_journal_open_job(j, "job-u", 0, NULL), 0);
    for (uint64_t t = 0; t < 1000; t++)
        TEST_EQ_INT(zp_journal_record(j, "job-u", t, true, t * 10), 0);
    TEST_CHECK(zp_journal_pending(j) > 0);
    zp_journal_destroy_unsynced(&j);
    TEST_CHECK(j == NULL);
    s_seen_t s = {0};
    zp_journal_t *k = zp_journal_open(path, &s_visitor, &s, err, sizeof err);
    TEST_CHECK(k != NULL);
    TEST_EQ_INT(s.opens, 1);
    TEST_EQ_INT(s.records, 1000);
    TEST_EQ_INT(s.last_offset, 9990);
    zp_journal_destroy_unsynced(&k);
    zp_journal_destroy_unsynced(&k); /* NULL: nothing */
    unlink(path);
}

/* ---- version 4: M lines ---- */

/* Every record replayed, in order. */
typedef struct {
    size_t n;
    char job_end[8192]; /* the last letter of its job's id */
    uint64_t task[8192], offset[8192];
    bool ok[8192];
} s_recs_t;

static void s_rec_all(void *ctx, const char *job, uint64_t task, bool ok,
                      uint64_t offset)
{
    s_recs_t *r = ctx;
    if (r->n < 8192) {
        r->job_end[r->n] = job[strlen(job) - 1];
        r->task[r->n] = task;
        r->ok[r->n] = ok;
        r->offset[r->n] = offset;
    }
    r->n++;
}

/* A job's records between barriers share M lines, each record after the
 * first as deltas: any order of tasks, failed ones, offsets that stay
 * (a reduced job) or go back (a new line), two jobs in turn, and lines
 * kept under the length a replay reads. All replay as written. */
static void test_records_share_m_lines_and_replay_as_written(void)
{
    char path[] = "/tmp/zpipe-journal-m-XXXXXX";
    char err[256];
    zp_journal_t *j = s_new_journal(path, err, sizeof err);
    TEST_CHECK(j != NULL);
    static s_recs_t want;
    memset(&want, 0, sizeof want);
    uint64_t off = 1000, seed = 7;
    for (size_t i = 0; i < 6000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t x = seed >> 20;
        /* mostly the next task, some far back or ahead or huge */
        uint64_t task = x % 7 == 0    ? x % 50
                        : x % 11 == 0 ? UINT64_MAX - x % 3
                                      : 100 + i;
        bool ok = x % 5 != 0;
        if (x % 13 == 0)
            off -= x % 500; /* behind the last: a new line */
        else if (x % 3)
            off += x % 200; /* else it stays */
        const char *job = i / 1000 % 2 ? "job-b" : "job-a";
        TEST_EQ_INT(zp_journal_record(j, job, task, ok, off), 0);
        want.task[i] = task;
        want.ok[i] = ok;
        want.offset[i] = off;
        if (i % 2500 == 2499)
            TEST_EQ_INT(zp_journal_write(j), 0); /* a barrier */
    }
    TEST_EQ_INT(zp_journal_close_job(j, "job-a", 6000), 0);
    uint64_t size = zp_journal_size(j);
    zp_journal_destroy(&j);
    size_t len;
    const char *data = s_slurp(path);
    len = strlen(data);
    TEST_EQ_INT(len, size);
    TEST_CHECK(len < 6000 * 12); /* R lines took about 30 bytes each */
    size_t lines = 0, longest = 0;
    for (const char *p = data; *p; lines++) {
        const char *nl = strchr(p, '\n');
        if ((size_t)(nl - p) > longest)
            longest = (size_t)(nl - p);
        p = nl + 1;
    }
    TEST_CHECK(longest < 1024);
    TEST_CHECK(lines > 20 && lines < 600);
    static s_recs_t got;
    memset(&got, 0, sizeof got);
    zp_journal_visitor_t vis = {.on_record = s_rec_all};
    size_t valid;
    long events = zp_journal_replay(data, len, &vis, &got, &valid);
    TEST_EQ_INT(events, 6000 + 1);
    TEST_EQ_INT(valid, len);
    TEST_EQ_INT(got.n, 6000);
    size_t same = 0;
    for (size_t i = 0; i < 6000; i++)
        same += got.task[i] == want.task[i] && got.ok[i] == want.ok[i] &&
                got.offset[i] == want.offset[i] &&
                got.job_end[i] == (i / 1000 % 2 ? 'b' : 'a');
    TEST_EQ_INT(same, 6000);
    unlink(path);
}

/* A version 4 journal of the given lines, each with its chained
 * checksum (chain0: the header's), into out. */
static size_t s_checked_journal(char *out, size_t cap, const char *header,
                                uint32_t chain, const char *const *lines,
                                size_t n)
{
    size_t len = (size_t)snprintf(out, cap, "%s", header);
    for (size_t i = 0; i < n; i++) {
        chain = zp_crc32c(chain, lines[i], strlen(lines[i]));
        len += (size_t)snprintf(out + len, cap - len, "%s %08x\n", lines[i],
                                chain);
    }
    return len;
}

/* An M line with any malformed item is damage, refused at its offset with
 * none of its records passed on; an M line in a version 3 journal is
 * malformed there. */
static void test_malformed_m_lines_are_damage(void)
{
    const char *items[] = {"x:1",
                           "1:",
                           ":1",
                           "1:1g",
                           "1:1ff",
                           "--1:1",
                           "-5:0",
                           "1",
                           "1:-1",
                           "1 :1",
                           "1:1 ",
                           "99999999999999999999:0",
                           "1:18446744073709550000"};
    char line[256], data[1024];
    for (size_t i = 0; i < sizeof items / sizeof *items; i++) {
        snprintf(line, sizeof line, "M j 3 ok 2000 1:5 %s 2:7", items[i]);
        const char *lines[] = {"O j 3", line};
        size_t len = s_checked_journal(data, sizeof data, ZP_JOURNAL_HEADER,
                                       ZP_JOURNAL_CHAIN0, lines, 2);
        static s_recs_t got;
        memset(&got, 0, sizeof got);
        zp_journal_visitor_t vis = {.on_record = s_rec_all};
        size_t valid;
        TEST_EQ_INT(zp_journal_replay(data, len, &vis, &got, &valid),
                    ZP_JOURNAL_DAMAGED);
        TEST_EQ_INT(got.n, 0);
        TEST_EQ_INT(valid, strstr(data, "\nM j") + 1 - data);
    }
    /* The same line well-formed: four records (task 3, 4, 1, 3). */
    const char *good[] = {"O j 3", "M j 3 ok 2000 1:5 -3:0f 2:7"};
    size_t len = s_checked_journal(data, sizeof data, ZP_JOURNAL_HEADER,
                                   ZP_JOURNAL_CHAIN0, good, 2);
    static s_recs_t got;
    memset(&got, 0, sizeof got);
    zp_journal_visitor_t vis = {.on_record = s_rec_all};
    size_t valid;
    TEST_EQ_INT(zp_journal_replay(data, len, &vis, &got, &valid), 5);
    TEST_EQ_INT(got.n, 4);
    TEST_EQ_INT(got.task[2], 1);
    TEST_CHECK(!got.ok[2] && got.ok[3]);
    TEST_EQ_INT(got.offset[2], 2005);
    TEST_EQ_INT(got.offset[3], 2012);
    TEST_EQ_INT(got.task[3], 3);
    /* In a version 3 journal, an M line is no line at all. */
    len = s_checked_journal(data, sizeof data, ZP_JOURNAL_HEADER_V3,
                            ZP_JOURNAL_CHAIN0_V3, good, 2);
    TEST_EQ_INT(zp_journal_replay(data, len, &vis, &got, &valid),
                ZP_JOURNAL_DAMAGED);
    /* A version 3 journal's lines checked from its own header. */
    const char *v3[] = {"O j 3", "R j 3 ok 2000", "C j 1"};
    len = s_checked_journal(data, sizeof data, ZP_JOURNAL_HEADER_V3,
                            ZP_JOURNAL_CHAIN0_V3, v3, 3);
    TEST_EQ_INT(zp_journal_replay(data, len, &vis, &got, &valid), 3);
    TEST_EQ_INT(valid, len);
}

/* A version 3 journal is appended to with R lines (an older sink can
 * still read it) until a compaction rewrites it as version 4. */
static void test_v3_journal_is_appended_as_v3_until_compacted(void)
{
    char path[] = "/tmp/zpipe-journal-v3a-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char data[1024];
    const char *v3[] = {"O a 3", "R a 0 ok 5"};
    size_t len = s_checked_journal(data, sizeof data, ZP_JOURNAL_HEADER_V3,
                                   ZP_JOURNAL_CHAIN0_V3, v3, 2);
    s_put(path, data, len);
    char err[512];
    s_seen_t s = {0};
    zp_journal_t *j = zp_journal_open(path, &s_visitor, &s, err, sizeof err);
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(s.records, 1);
    zp_journal_record(j, "a", 1, true, 9);
    zp_journal_record(j, "a", 2, false, 9);
    TEST_EQ_INT(zp_journal_sync(j), 0);
    const char *now = s_slurp(path);
    TEST_CHECK(strncmp(now, "zpipe-journal 3\n", 16) == 0);
    TEST_CONTAINS(now, "\nR a 1 ok 9 ");
    TEST_CONTAINS(now, "\nR a 2 failed 9 ");
    TEST_CHECK(strstr(now, "\nM ") == NULL);
    zp_journal_destroy(&j);
    s_seen_t again = {0};
    j = zp_journal_open(path, &s_visitor, &again, err, sizeof err);
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(again.records, 3);
    TEST_EQ_INT(zp_journal_compact(j, s_dump, NULL), 0);
    zp_journal_record(j, "live", 61, true, 13001);
    zp_journal_record(j, "live", 62, true, 13002);
    zp_journal_destroy(&j);
    now = s_slurp(path);
    TEST_CHECK(strncmp(now, "zpipe-journal 4\n", 16) == 0);
    TEST_CONTAINS(now, "\nM live 61 ok 13001 1:1 ");
    s_snap_t sn = {0};
    j = zp_journal_open(path, &s_snap_visitor, &sn, err, sizeof err);
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(sn.seen.records, 2);
    TEST_EQ_INT(sn.seen.last_offset, 13002);
    zp_journal_destroy(&j);
    unlink(path);
}

static const test_case_t tests[] = {
    {"test_records_share_m_lines_and_replay_as_written",
     test_records_share_m_lines_and_replay_as_written},
    {"test_malformed_m_lines_are_damage", test_malformed_m_lines_are_damage},
    {"test_v3_journal_is_appended_as_v3_until_compacted",
     test_v3_journal_is_appended_as_v3_until_compacted},
    {"test_destroy_unsynced_writes_every_line",
     test_destroy_unsynced_writes_every_line},
    {"test_v3_round_trip", test_v3_round_trip},
    {"test_damage_in_the_middle_is_refused_with_its_offset",
     test_damage_in_the_middle_is_refused_with_its_offset},
    {"test_torn_last_line_is_cut_and_appends_follow",
     test_torn_last_line_is_cut_and_appends_follow},
    {"test_v2_journal_is_read_appended_and_upgraded",
     test_v2_journal_is_read_appended_and_upgraded},
    {"test_compact_replaces_the_journal_with_the_snapshot",
     test_compact_replaces_the_journal_with_the_snapshot},
    {"test_versions_and_bad_snapshot_lines",
     test_versions_and_bad_snapshot_lines},
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
