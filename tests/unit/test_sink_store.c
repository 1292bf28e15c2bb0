/* Tests for sink_store: the output, the journal's cut-back after a crash,
 * the spools and their restore, in a temporary directory. */
#include "failalloc.h"
#include "sink_store.h"
#include "test.h"
#include "zp_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_dir[64];
static char s_out[128], s_journal[128], s_spool[128];

static void s_paths(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/test_sink_store.XXXXXX");
    if (!mkdtemp(s_dir))
        abort();
    snprintf(s_out, sizeof s_out, "%s/out.jsonl", s_dir);
    snprintf(s_journal, sizeof s_journal, "%s/journal", s_dir);
    snprintf(s_spool, sizeof s_spool, "%s/spool", s_dir);
    if (mkdir(s_spool, 0755) != 0)
        abort();
}

/* Reads path whole into buf (NUL-terminated); returns its length. */
static long s_read(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    return (long)n;
}

/* Output, journal (synced, rewound on restart) and spools, in s_dir. */
static zp_store_config_t s_full_config(void)
{
    return (zp_store_config_t){.output = s_out,
                               .journal = s_journal,
                               .spool = s_spool,
                               .sync = true,
                               .rewind = true};
}

static void s_append(const char *path, const char *text)
{
    FILE *f = fopen(path, "ab");
    fputs(text, f);
    fclose(f);
}

/* The jobs a replay saw. */
typedef struct {
    int opens, closes, records;
    uint64_t total;
    uint64_t refuse_task; /* on_record says no to this one */
    char token[64];       /* the last open's */
} s_seen_t;

static void s_on_open(void *ctx, const char *job, uint32_t max_attempts,
                      const char *token)
{
    s_seen_t *seen = ctx;
    (void)job;
    (void)max_attempts;
    seen->opens++;
    snprintf(seen->token, sizeof seen->token, "%s", token);
}

static void s_on_close(void *ctx, const char *job, uint64_t total)
{
    s_seen_t *seen = ctx;
    (void)job;
    seen->closes++;
    seen->total = total;
}

static bool s_on_record(void *ctx, const char *job, uint64_t task, bool ok)
{
    s_seen_t *seen = ctx;
    (void)job;
    (void)ok;
    if (task == seen->refuse_task)
        return false;
    seen->records++;
    return true;
}

static const zp_store_replay_t s_replay = {
    .on_open = s_on_open, .on_close = s_on_close, .on_record = s_on_record};

static void s_cleanup(void)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", s_dir);
}

static void test_output_without_a_journal(void)
{
    s_paths();
    zp_store_config_t cfg = {.output = s_out};
    zp_store_t *st = zp_store_new(&cfg, &s_replay, NULL);
    TEST_CHECK(st);
    TEST_CHECK(!zp_store_journaled(st));
    zp_spool_t sp = {0};
    zp_store_emit(st, &sp, "j", 0, true, "a\n", 2, NULL, 0);
    zp_store_emit(st, &sp, "j", 1, false, "bb\n", 3, NULL, 0);
    TEST_CHECK(sp.file == NULL); /* no --spool */
    TEST_EQ_INT(zp_store_sync(st), 0);
    TEST_EQ_INT(zp_store_offset(st), 5);
    char buf[256];
    TEST_EQ_INT(s_read(s_out, buf, sizeof buf), 5);
    TEST_EQ_STR(buf, "a\nbb\n");
    TEST_EQ_INT(zp_store_finish(st), 0);
    zp_store_destroy(&st);
    TEST_CHECK(st == NULL);
    /* Reopened without a journal: truncated. */
    st = zp_store_new(&cfg, &s_replay, NULL);
    TEST_CHECK(st);
    zp_store_destroy(&st);
    TEST_EQ_INT(s_read(s_out, buf, sizeof buf), 0);
    s_cleanup();
}

/* Records written, made durable, then more written past what the journal
 * has (a crash before its sync): a restart cuts the output back to the
 * journal's last record and appends after it. */
static void test_restart_cuts_back_to_the_journal(void)
{
    s_paths();
    zp_store_config_t cfg = {
        .output = s_out, .journal = s_journal, .sync = true, .rewind = true};
    s_seen_t seen = {.refuse_task = UINT64_MAX};
    zp_store_t *st = zp_store_new(&cfg, &s_replay, &seen);
    TEST_CHECK(st);
    TEST_CHECK(zp_store_journaled(st));
    TEST_EQ_INT(seen.opens + seen.closes + seen.records, 0);
    zp_spool_t sp = {0};
    zp_store_job_opened(st, "j", 3, "tok-j");
    zp_store_emit(st, &sp, "j", 0, true, "r0\n", 3, NULL, 0);
    zp_store_emit(st, &sp, "j", 2, false, "r2\n", 3, NULL, 0);
    zp_store_job_closed(st, "j", 3);
    TEST_EQ_INT(zp_store_sync(st), 0);
    zp_store_destroy(&st);
    s_append(s_out, "torn record past the journal\n");

    st = zp_store_new(&cfg, &s_replay, &seen);
    TEST_CHECK(st);
    TEST_EQ_INT(seen.opens, 1);
    TEST_EQ_STR(seen.token, "tok-j");
    TEST_EQ_INT(seen.closes, 1);
    TEST_EQ_INT(seen.total, 3);
    TEST_EQ_INT(seen.records, 2);
    TEST_EQ_INT(zp_store_resumed(st), 2);
    TEST_EQ_INT(zp_store_offset(st), 6);
    char buf[256];
    TEST_EQ_INT(s_read(s_out, buf, sizeof buf), 6);
    TEST_EQ_STR(buf, "r0\nr2\n");
    zp_store_emit(st, &sp, "j", 1, true, "r1\n", 3, NULL, 0);
    TEST_EQ_INT(zp_store_sync(st), 0);
    zp_store_destroy(&st);
    TEST_EQ_INT(s_read(s_out, buf, sizeof buf), 9);
    TEST_EQ_STR(buf, "r0\nr2\nr1\n");

    /* A record the replay does not take does not extend the output. */
    seen = (s_seen_t){.refuse_task = 1};
    st = zp_store_new(&cfg, &s_replay, &seen);
    TEST_CHECK(st);
    TEST_EQ_INT(zp_store_resumed(st), 2);
    TEST_EQ_INT(zp_store_offset(st), 6);
    zp_store_destroy(&st);
    TEST_EQ_INT(s_read(s_out, buf, sizeof buf), 6);
    s_cleanup();
}

/* A journal with an output that cannot be cut back (a stream): replayed
 * all the same, the output appended to as it is. */
static void test_journal_with_a_stream_output(void)
{
    s_paths();
    zp_store_config_t cfg = {.output = "/dev/null", .journal = s_journal};
    s_seen_t seen = {.refuse_task = UINT64_MAX};
    zp_store_t *st = zp_store_new(&cfg, &s_replay, &seen);
    TEST_CHECK(st);
    zp_spool_t sp = {0};
    zp_store_job_opened(st, "j", 3, NULL);
    zp_store_emit(st, &sp, "j", 0, true, "r0\n", 3, NULL, 0);
    TEST_EQ_INT(zp_store_sync(st), 0);
    zp_store_destroy(&st);
    st = zp_store_new(&cfg, &s_replay, &seen);
    TEST_CHECK(st);
    TEST_EQ_INT(seen.records, 1);
    TEST_EQ_STR(seen.token, "");
    zp_store_destroy(&st);
    zp_store_config_t bad = {.output = s_out, .spool = "/nonexistent/dir"};
    TEST_CHECK(zp_store_new(&bad, &s_replay, NULL) == NULL);
    s_cleanup();
}

/* A journal whose records end past the output's end (the output lost
 * its tail, or the journal is damaged): the open fails and leaves the
 * output as it is (never extended with zeros, no record left out
 * silently); cutting the journal before the first such line resumes. */
static void test_records_past_the_output_are_refused(void)
{
    s_paths();
    zp_store_config_t cfg = {
        .output = s_out, .journal = s_journal, .rewind = true};
    s_seen_t seen = {.refuse_task = UINT64_MAX};
    zp_store_t *st = zp_store_new(&cfg, &s_replay, &seen);
    TEST_CHECK(st);
    zp_spool_t sp = {0};
    for (uint64_t t = 0; t < 4; t++) { /* a line each: synced apart */
        zp_store_emit(st, &sp, "j", t, true, "rec\n", 4, NULL, 0);
        TEST_EQ_INT(zp_store_sync(st), 0);
    }
    zp_store_destroy(&st);
    TEST_CHECK(truncate(s_out, 9) == 0); /* two records and a torn one */
    TEST_CHECK(zp_store_new(&cfg, &s_replay, &seen) == NULL);
    char buf[64];
    TEST_EQ_INT(s_read(s_out, buf, sizeof buf), 9);
    /* Cut before the third record: the header and two M lines. */
    FILE *f = fopen(s_journal, "r");
    char line[256];
    long cut = 0;
    for (int i = 0; i < 3 && fgets(line, sizeof line, f); i++)
        cut += (long)strlen(line);
    fclose(f);
    TEST_CHECK(truncate(s_journal, cut) == 0);
    seen = (s_seen_t){.refuse_task = UINT64_MAX};
    st = zp_store_new(&cfg, &s_replay, &seen);
    TEST_CHECK(st);
    TEST_EQ_INT(seen.records, 2);
    TEST_EQ_INT(zp_store_offset(st), 8);
    zp_store_destroy(&st);
    TEST_EQ_INT(s_read(s_out, buf, sizeof buf), 8);
    /* A clean stop with nothing to resume removes the journal. */
    st = zp_store_new(&cfg, &s_replay, &seen);
    TEST_CHECK(st);
    TEST_EQ_INT(zp_store_drop_journal(st), 0);
    TEST_CHECK(access(s_journal, F_OK) != 0);
    TEST_EQ_INT(zp_store_drop_journal(st), 0); /* none left: nothing to do */
    zp_store_destroy(&st);
    s_cleanup();
}

static void s_count_published(void *ctx, zp_spool_t *spool)
{
    (void)spool;
    (*(int *)ctx)++;
}

/* Spooled records become visible only after the barrier. */
static void test_spool_visible_after_sync(void)
{
    s_paths();
    zp_store_config_t cfg = s_full_config();
    zp_store_t *st = zp_store_new(&cfg, &s_replay, &(s_seen_t){0});
    TEST_CHECK(st);
    zp_spool_t sp = {0};
    int published = 0;
    TEST_EQ_INT(zp_store_spool_fd(st, &sp, "j"), -1);
    zp_store_publish(st, s_count_published, &published);
    TEST_EQ_INT(published, 0);
    TEST_CHECK(!zp_store_unsynced(st));
    zp_store_emit(st, &sp, "j", 0, true, "line\n", 5, "{\"a\":1}\n", 8);
    TEST_CHECK(zp_store_unsynced(st));
    TEST_CHECK(sp.file != NULL);
    TEST_EQ_INT(zp_store_spools_open(st), 1);
    TEST_EQ_INT(sp.len, 8);
    TEST_EQ_INT(sp.flushed, 0);
    TEST_EQ_INT(zp_store_sync(st), 0);
    TEST_EQ_INT(sp.flushed, 0); /* durable, not yet visible */
    zp_store_publish(st, s_count_published, &published);
    TEST_EQ_INT(published, 1);
    TEST_EQ_INT(sp.flushed, 8);
    TEST_CHECK(!zp_store_unsynced(st));
    zp_store_publish(st, s_count_published, &published);
    TEST_EQ_INT(published, 1);
    TEST_CHECK(zp_store_spool_fd(st, &sp, "j") >= 0);
    zp_store_emit_final(st, &sp, "j", 1, true, "final\n", 6, NULL, 0);
    TEST_EQ_INT(sp.len, 14);
    char path[200], buf[256];
    snprintf(path, sizeof path, "%s/j.jsonl", s_spool);
    zp_store_spool_close(st, &sp); /* a finished job */
    TEST_CHECK(sp.file == NULL);
    TEST_EQ_INT(zp_store_spools_open(st), 0);
    TEST_EQ_INT(s_read(path, buf, sizeof buf), 14);
    TEST_EQ_STR(buf, "{\"a\":1}\nfinal\n");
    TEST_EQ_INT(s_read(s_out, buf, sizeof buf), 11);
    TEST_EQ_STR(buf, "line\nfinal\n");
    /* Closed, the final record still becomes visible at the barrier. */
    TEST_EQ_INT(zp_store_sync(st), 0);
    zp_store_publish(st, s_count_published, &published);
    TEST_EQ_INT(sp.flushed, 14);
    TEST_EQ_INT(zp_store_finish(st), 0);
    zp_store_destroy(&st);
    s_cleanup();
}

static int s_refs_given_back;

static void s_give_back(void *hint)
{
    (void)hint;
    s_refs_given_back++;
}

/* Records by reference (zp_store_emit_ref) among copied ones: the output
 * has them in order, the journal their offsets (a restart resumes after
 * them), the spool its JSON; given back once committed. Refused, with
 * nothing written, where only a copy will do: no output, spools without
 * the JSON. */
static void test_records_by_reference(void)
{
    s_paths();
    zp_store_config_t cfg = s_full_config();
    zp_store_t *st = zp_store_new(&cfg, &s_replay, &(s_seen_t){0});
    TEST_CHECK(st);
    zp_spool_t sp = {0};
    s_refs_given_back = 0;
    zp_store_job_opened(st, "j", 3, "tok-j");
    zp_store_emit(st, &sp, "j", 0, true, "a\n", 2, "{\"t\":0}\n", 8);
    TEST_EQ_INT(zp_store_emit_ref(st, &sp, "j", 1, true, "by-ref", 6, "\n", 1,
                                  "{\"t\":1}\n", 8, s_give_back, NULL),
                0);
    /* Spools but no JSON for them: not taken, nothing written. */
    TEST_EQ_INT(zp_store_emit_ref(st, &sp, "j", 2, true, "x", 1, "\n", 1, NULL,
                                  0, s_give_back, NULL),
                -1);
    TEST_EQ_INT(zp_store_offset(st), 9);
    zp_store_emit(st, &sp, "j", 2, false, "c\n", 2, "{\"t\":2}\n", 8);
    TEST_EQ_INT(s_refs_given_back, 0);
    TEST_EQ_INT(zp_store_sync(st), 0);
    TEST_EQ_INT(s_refs_given_back, 1);
    char buf[256], path[200];
    TEST_EQ_INT(s_read(s_out, buf, sizeof buf), 11);
    TEST_EQ_STR(buf, "a\nby-ref\nc\n");
    zp_store_job_closed(st, "j", 3);
    TEST_EQ_INT(zp_store_sync(st), 0);
    zp_store_destroy(&st);
    snprintf(path, sizeof path, "%s/j.jsonl", s_spool);
    TEST_EQ_INT(s_read(path, buf, sizeof buf), 24);
    TEST_EQ_STR(buf, "{\"t\":0}\n{\"t\":1}\n{\"t\":2}\n");
    s_append(s_out, "torn");
    s_seen_t seen = {.refuse_task = UINT64_MAX};
    st = zp_store_new(&cfg, &s_replay, &seen);
    TEST_EQ_INT(seen.records, 3);
    TEST_EQ_INT(zp_store_offset(st), 11);
    zp_store_destroy(&st);
    TEST_EQ_INT(s_read(s_out, buf, sizeof buf), 11);
    s_cleanup();

    /* No output (the spool is it): not taken. */
    s_paths();
    zp_store_config_t spool_only = {.output = ZP_STORE_NO_OUTPUT,
                                    .spool = s_spool};
    st = zp_store_new(&spool_only, &s_replay, NULL);
    TEST_CHECK(st);
    zp_spool_t sp2 = {0};
    TEST_EQ_INT(zp_store_emit_ref(st, &sp2, "k", 0, true, "x", 1, "\n", 1,
                                  "{}\n", 3, s_give_back, NULL),
                -1);
    TEST_EQ_INT(zp_store_offset(st), 0);
    zp_store_destroy(&st);
    TEST_EQ_INT(s_refs_given_back, 1);
    s_cleanup();
}

/* After a replay, a spool keeps the records the journal has, and its
 * file stays closed until a record needs it. */
static void test_spool_restore_cuts_to_the_journal(void)
{
    s_paths();
    char path[200], buf[256];
    snprintf(path, sizeof path, "%s/j.jsonl", s_spool);
    s_append(path, "{\"t\":0}\n{\"t\":1}\n{\"t\":2}\n{\"torn");
    zp_store_config_t cfg = s_full_config();
    zp_store_t *st = zp_store_new(&cfg, &s_replay, &(s_seen_t){0});
    TEST_CHECK(st);
    zp_spool_t sp = {0};
    zp_store_spool_restore(st, &sp, "j", 2);
    TEST_EQ_INT(sp.len, 16);
    TEST_EQ_INT(sp.flushed, 16);
    TEST_CHECK(sp.file == NULL);
    TEST_EQ_INT(s_read(path, buf, sizeof buf), 16); /* cut now */
    zp_store_emit(st, &sp, "j", 2, true, "x\n", 2, "{\"t\":9}\n", 8);
    zp_store_spool_close(st, &sp);
    TEST_EQ_INT(s_read(path, buf, sizeof buf), 24);
    TEST_EQ_STR(buf, "{\"t\":0}\n{\"t\":1}\n{\"t\":9}\n");
    /* Fewer records than the journal says: all kept (and a warning). */
    zp_spool_t sp2 = {0};
    zp_store_spool_restore(st, &sp2, "j", 10);
    TEST_EQ_INT(sp2.len, 24);
    TEST_CHECK(sp2.file == NULL);
    /* No spool at all: nothing to restore. */
    zp_spool_t sp3 = {0};
    zp_store_spool_restore(st, &sp3, "other", 1);
    TEST_CHECK(sp3.file == NULL && !sp3.created);
    zp_store_destroy(&st);
    s_cleanup();
}

/* --output none with a spool: each record is rendered straight into its
 * job's spool, written once; a restart resumes from the journal and cuts
 * the spool to it. */
static void test_spool_is_the_output(void)
{
    s_paths();
    zp_store_config_t cfg = {
        .output = ZP_STORE_NO_OUTPUT, .journal = s_journal, .spool = s_spool};
    s_seen_t seen = {.refuse_task = UINT64_MAX};
    zp_store_t *st = zp_store_new(&cfg, &s_replay, &seen);
    TEST_CHECK(st);
    TEST_CHECK(!zp_store_has_output(st));
    zp_store_job_opened(st, "j", 3, NULL);
    zp_spool_t sp = {0};
    for (int t = 0; t < 3; t++) {
        zp_buf_t *b = zp_store_record_buf(st, &sp, "j");
        TEST_CHECK(b != NULL && sp.file != NULL);
        size_t from = b->len;
        char rec[32];
        int n = snprintf(rec, sizeof rec, "{\"t\":%d}\n", t);
        TEST_CHECK(zp_buf_append(b, rec, (size_t)n) == 0);
        zp_store_emit_rendered(st, &sp, "j", (uint64_t)t, true, from, NULL, 0);
    }
    /* A record given in another format: the spool keeps its JSON. */
    zp_store_emit(st, &sp, "j", 3, false, "line\n", 5, "{\"t\":3}\n", 8);
    TEST_EQ_INT(sp.len, 32);
    TEST_EQ_INT(zp_store_offset(st), 0); /* no output */
    TEST_EQ_INT(zp_store_sync(st), 0);
    zp_store_publish(st, NULL, NULL);
    TEST_EQ_INT(sp.flushed, 32);
    char path[200], buf[256];
    snprintf(path, sizeof path, "%s/j.jsonl", s_spool);
    TEST_EQ_INT(s_read(path, buf, sizeof buf), 32);
    TEST_EQ_STR(buf, "{\"t\":0}\n{\"t\":1}\n{\"t\":2}\n{\"t\":3}\n");
    /* A record written, not journaled (a crash before the barrier). */
    zp_store_spool_close(st, &sp);
    s_append(path, "{\"t\":4}\n");
    TEST_EQ_INT(zp_store_finish(st), 0);
    zp_store_destroy(&st);
    seen = (s_seen_t){.refuse_task = UINT64_MAX};
    st = zp_store_new(&cfg, &s_replay, &seen);
    TEST_CHECK(st);
    TEST_EQ_INT(seen.records, 4);
    zp_spool_t again = {0};
    zp_store_spool_restore(st, &again, "j", 4);
    TEST_EQ_INT(again.len, 32);
    TEST_EQ_INT(s_read(path, buf, sizeof buf), 32); /* the 5th is cut */
    zp_store_destroy(&st);
    /* No output and no spool: records go nowhere, and the journal has
     * them. */
    zp_store_config_t none = {.output = ZP_STORE_NO_OUTPUT,
                              .journal = s_journal};
    seen = (s_seen_t){.refuse_task = UINT64_MAX};
    st = zp_store_new(&none, &s_replay, &seen);
    TEST_CHECK(st);
    zp_spool_t sp2 = {0};
    zp_store_emit(st, &sp2, "k", 0, true, "x\n", 2, NULL, 0);
    TEST_CHECK(sp2.file == NULL);
    TEST_EQ_INT(zp_store_sync(st), 0);
    zp_store_destroy(&st);
    s_cleanup();
}

/* Many jobs' spools through a store that keeps two files open: each
 * file has its job's records, in order, and at most two are open. */
static void test_spools_under_a_small_open_limit(void)
{
    s_paths();
    zp_store_config_t cfg = s_full_config();
    cfg.spool_files = 2;
    zp_store_t *st = zp_store_new(&cfg, &s_replay, &(s_seen_t){0});
    TEST_CHECK(st);
    enum { JOBS = 7, RECS = 5 };
    zp_spool_t sp[JOBS] = {{0}};
    char ids[JOBS][8];
    for (int r = 0; r < RECS; r++)
        for (int j = 0; j < JOBS; j++) {
            snprintf(ids[j], sizeof ids[j], "j%d", j);
            char rec[32];
            int n = snprintf(rec, sizeof rec, "{\"j\":%d,\"r\":%d}\n", j, r);
            zp_store_emit(st, &sp[j], ids[j], (uint64_t)r, true, rec, (size_t)n,
                          NULL, 0);
            TEST_CHECK(zp_store_spools_open(st) <= 2);
        }
    TEST_EQ_INT(zp_store_sync(st), 0);
    int published = 0;
    zp_store_publish(st, s_count_published, &published);
    TEST_EQ_INT(published, JOBS);
    for (int j = 0; j < JOBS; j++) {
        char path[200], buf[256], want[256] = "";
        snprintf(path, sizeof path, "%s/j%d.jsonl", s_spool, j);
        for (int r = 0; r < RECS; r++) {
            size_t l = strlen(want);
            snprintf(want + l, sizeof want - l, "{\"j\":%d,\"r\":%d}\n", j, r);
        }
        TEST_EQ_INT(sp[j].flushed, strlen(want));
        int fd = zp_store_spool_fd(st, &sp[j], ids[j]);
        TEST_CHECK(fd >= 0);
        ssize_t got = pread(fd, buf, sizeof buf - 1, 0);
        TEST_EQ_INT(got, (long)strlen(want));
        buf[got] = 0;
        TEST_EQ_STR(buf, want);
        TEST_CHECK(s_read(path, buf, sizeof buf) == (long)strlen(want));
    }
    TEST_CHECK(zp_store_spools_open(st) <= 2);
    zp_store_destroy(&st);
    s_cleanup();
}

static void s_scenario(void *arg)
{
    (void)arg;
    zp_store_config_t cfg = s_full_config();
    zp_store_t *st = zp_store_new(&cfg, &s_replay, &(s_seen_t){0});
    if (!st)
        return;
    zp_spool_t sp = {0};
    zp_store_job_opened(st, "j", 3, "t");
    for (uint64_t t = 0; t < 50; t++)
        zp_store_emit(st, &sp, "j", t, true, "rec\n", 4, NULL, 0);
    zp_store_job_closed(st, "j", 50);
    if (zp_store_sync(st) == 0)
        zp_store_publish(st, NULL, NULL);
    zp_store_spool_close(st, &sp);
    zp_store_destroy(&st);
}

static void test_alloc_failures(void)
{
    s_paths();
    zp_log_set_level("error");
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 2);
    zp_log_set_level("info");
    s_cleanup();
}

static const test_case_t tests[] = {
    {"test_output_without_a_journal", test_output_without_a_journal},
    {"test_restart_cuts_back_to_the_journal",
     test_restart_cuts_back_to_the_journal},
    {"test_journal_with_a_stream_output", test_journal_with_a_stream_output},
    {"test_records_past_the_output_are_refused",
     test_records_past_the_output_are_refused},
    {"test_records_by_reference", test_records_by_reference},
    {"test_spool_visible_after_sync", test_spool_visible_after_sync},
    {"test_spool_restore_cuts_to_the_journal",
     test_spool_restore_cuts_to_the_journal},
    {"test_spools_under_a_small_open_limit",
     test_spools_under_a_small_open_limit},
    {"test_spool_is_the_output", test_spool_is_the_output},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
