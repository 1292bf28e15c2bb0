/* Tests for sink_promise: which journal the sink keeps with its flags and
 * what it says a crash or a power loss may cost. */
#include "sink_promise.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static zp_promise_flags_t s_flags(const char *output, zp_output_kind_t kind)
{
    return (zp_promise_flags_t){
        .output = output, .output_kind = kind, .journal_sync = true};
}

static void test_output_kinds(void)
{
    TEST_EQ_INT(zp_promise_output_kind("-"), ZP_OUTPUT_STREAM);
    TEST_EQ_INT(zp_promise_output_kind("none"), ZP_OUTPUT_NONE);
    TEST_EQ_INT(zp_promise_output_kind("./none"), ZP_OUTPUT_FILE);
    TEST_EQ_INT(zp_promise_output_kind("/dev/null"), ZP_OUTPUT_STREAM);
    TEST_EQ_INT(zp_promise_output_kind("/tmp"), ZP_OUTPUT_STREAM);
    TEST_EQ_INT(zp_promise_output_kind("/nonexistent/out.jsonl"),
                ZP_OUTPUT_FILE);
    char path[] = "/tmp/zpipe-promise-XXXXXX";
    int fd = mkstemp(path);
    TEST_CHECK(fd >= 0);
    close(fd);
    TEST_EQ_INT(zp_promise_output_kind(path), ZP_OUTPUT_FILE);
    unlink(path);
}

static void test_journal_given_is_synced(void)
{
    zp_promise_flags_t f = s_flags("out.jsonl", ZP_OUTPUT_FILE);
    f.journal = "j.log";
    zp_promise_t p;
    char err[256], text[1024];
    TEST_EQ_INT(zp_promise_decide(&f, &p, err, sizeof err), 0);
    TEST_EQ_INT(p.level, ZP_PROMISE_SYNCED);
    TEST_EQ_STR(p.journal, "j.log");
    TEST_CHECK(p.sync && p.rewind && !p.implicit);
    zp_promise_describe(&p, &f, text, sizeof text);
    TEST_CONTAINS(text, "synced before every acknowledgement");
    TEST_CHECK(!strstr(text, "twice"));
    /* --journal-sync no: what a power loss may cost is said. */
    f.journal_sync = false;
    TEST_EQ_INT(zp_promise_decide(&f, &p, err, sizeof err), 0);
    TEST_EQ_INT(p.level, ZP_PROMISE_CRASH);
    TEST_CHECK(!p.sync && !p.implicit);
    zp_promise_describe(&p, &f, text, sizeof text);
    TEST_CONTAINS(text, "a power loss may lose");
}

static void test_implicit_journal_beside_a_file_output(void)
{
    zp_promise_flags_t f = s_flags("/data/out.jsonl", ZP_OUTPUT_FILE);
    zp_promise_t p;
    char err[256], text[1024];
    TEST_EQ_INT(zp_promise_decide(&f, &p, err, sizeof err), 0);
    TEST_EQ_INT(p.level, ZP_PROMISE_CRASH);
    TEST_EQ_STR(p.journal, "/data/out.jsonl.journal");
    TEST_CHECK(p.implicit && !p.sync && p.rewind);
    zp_promise_describe(&p, &f, text, sizeof text);
    TEST_CONTAINS(text, "a crash of the sink loses no acknowledged record");
    TEST_CONTAINS(text, "kept while a job is unfinished");
}

static void test_implicit_journal_in_the_spool(void)
{
    /* The spool is preferred, whatever the output. */
    zp_promise_flags_t f = s_flags("-", ZP_OUTPUT_STREAM);
    f.spool = "/var/spool";
    zp_promise_t p;
    char err[256], text[1024];
    TEST_EQ_INT(zp_promise_decide(&f, &p, err, sizeof err), 0);
    TEST_EQ_INT(p.level, ZP_PROMISE_CRASH);
    TEST_EQ_STR(p.journal, "/var/spool/" ZP_PROMISE_SPOOL_JOURNAL);
    TEST_CHECK(p.implicit && !p.rewind);
    zp_promise_describe(&p, &f, text, sizeof text);
    TEST_CONTAINS(text, "stdout cannot be cut back");
    TEST_CONTAINS(text, "the journal and the spools stay exact");
    f = s_flags("o.jsonl", ZP_OUTPUT_FILE);
    f.spool = "sp";
    TEST_EQ_INT(zp_promise_decide(&f, &p, err, sizeof err), 0);
    TEST_EQ_STR(p.journal, "sp/" ZP_PROMISE_SPOOL_JOURNAL);
    TEST_CHECK(p.rewind);
}

/* A service sink without --output: its spools are its output, and its
 * journal is in the spool directory. */
static void test_spools_are_the_output(void)
{
    zp_promise_flags_t f = s_flags("none", ZP_OUTPUT_NONE);
    f.spool = "/var/spool";
    zp_promise_t p;
    char err[256], text[1024];
    TEST_EQ_INT(zp_promise_decide(&f, &p, err, sizeof err), 0);
    TEST_EQ_INT(p.level, ZP_PROMISE_CRASH);
    TEST_EQ_STR(p.journal, "/var/spool/" ZP_PROMISE_SPOOL_JOURNAL);
    TEST_CHECK(p.implicit && !p.rewind);
    zp_promise_describe(&p, &f, text, sizeof text);
    TEST_CONTAINS(text, "written once, to its job's spool");
    TEST_CHECK(!strstr(text, "twice"));
    /* No output and no spool: nowhere for records or a journal. */
    f.spool = NULL;
    TEST_EQ_INT(zp_promise_decide(&f, &p, err, sizeof err), 0);
    TEST_EQ_INT(p.level, ZP_PROMISE_NONE);
    zp_promise_describe(&p, &f, text, sizeof text);
    TEST_CONTAINS(text, "the output is none");
}

static void test_nowhere_to_keep_a_journal(void)
{
    zp_promise_flags_t f = s_flags("-", ZP_OUTPUT_STREAM);
    zp_promise_t p;
    char err[256], text[1024];
    TEST_EQ_INT(zp_promise_decide(&f, &p, err, sizeof err), 0);
    TEST_EQ_INT(p.level, ZP_PROMISE_NONE);
    TEST_EQ_STR(p.journal, "");
    TEST_CHECK(!p.implicit && !p.rewind);
    zp_promise_describe(&p, &f, text, sizeof text);
    TEST_CONTAINS(text, "the output is stdout");
    TEST_CONTAINS(text, "cannot complete");
    TEST_EQ_STR(p.folds, "");
    /* A stream with --reduce has nowhere to keep a journal either. */
    f.reduce = true;
    TEST_EQ_INT(zp_promise_decide(&f, &p, err, sizeof err), 0);
    TEST_EQ_INT(p.level, ZP_PROMISE_NONE);
    TEST_EQ_STR(p.folds, "");
}

/* A sink that reduces keeps its implicit journal like any other, and its
 * fold logs beside it. */
static void test_reducing_sink_keeps_a_journal(void)
{
    zp_promise_flags_t f = s_flags("out", ZP_OUTPUT_FILE);
    f.reduce = true;
    f.spool = "sp";
    zp_promise_t p;
    char err[256], text[1024];
    TEST_EQ_INT(zp_promise_decide(&f, &p, err, sizeof err), 0);
    TEST_EQ_INT(p.level, ZP_PROMISE_CRASH);
    TEST_EQ_STR(p.journal, "sp/" ZP_PROMISE_SPOOL_JOURNAL);
    TEST_EQ_STR(p.folds, "sp/" ZP_PROMISE_SPOOL_JOURNAL ".fold");
    TEST_CHECK(p.implicit && p.rewind);
    zp_promise_describe(&p, &f, text, sizeof text);
    TEST_CONTAINS(text, "sp/zpipe-sink.journal.fold");
    /* --journal given: synced, the fold logs beside it. */
    f.spool = NULL;
    f.journal = "j.log";
    TEST_EQ_INT(zp_promise_decide(&f, &p, err, sizeof err), 0);
    TEST_EQ_INT(p.level, ZP_PROMISE_SYNCED);
    TEST_EQ_STR(p.folds, "j.log.fold");
    /* Without --reduce: none. */
    f.reduce = false;
    TEST_EQ_INT(zp_promise_decide(&f, &p, err, sizeof err), 0);
    TEST_EQ_STR(p.folds, "");
}

static void test_paths_too_long_are_refused(void)
{
    char longp[5000];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    zp_promise_flags_t f = s_flags(longp, ZP_OUTPUT_FILE);
    zp_promise_t p;
    char err[256];
    TEST_EQ_INT(zp_promise_decide(&f, &p, err, sizeof err), -1);
    TEST_CONTAINS(err, "too long");
    f.journal = longp;
    TEST_EQ_INT(zp_promise_decide(&f, &p, err, sizeof err), -1);
    TEST_CONTAINS(err, "--journal");
}

static const test_case_t tests[] = {
    {"test_output_kinds", test_output_kinds},
    {"test_journal_given_is_synced", test_journal_given_is_synced},
    {"test_implicit_journal_beside_a_file_output",
     test_implicit_journal_beside_a_file_output},
    {"test_implicit_journal_in_the_spool", test_implicit_journal_in_the_spool},
    {"test_spools_are_the_output", test_spools_are_the_output},
    {"test_nowhere_to_keep_a_journal", test_nowhere_to_keep_a_journal},
    {"test_reducing_sink_keeps_a_journal", test_reducing_sink_keeps_a_journal},
    {"test_paths_too_long_are_refused", test_paths_too_long_are_refused},
    {NULL, NULL},
};

TEST_MAIN(tests)
