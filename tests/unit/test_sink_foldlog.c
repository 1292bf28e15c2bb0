/* Tests for sink_foldlog: a reduced job's folded results written at the
 * barrier, read back in order after a restart with a torn tail cut, the
 * plugin's name kept, retired logs removed only at the next collect; in a
 * temporary directory. */
#include "failalloc.h"
#include "sink_foldlog.h"
#include "test.h"
#include "zp_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_base[64], s_dir[96];

static void s_mkdir(void)
{
    snprintf(s_base, sizeof s_base, "/tmp/test_sink_foldlog.XXXXXX");
    if (!mkdtemp(s_base))
        abort();
    snprintf(s_dir, sizeof s_dir, "%s/j.fold", s_base);
}

static void s_cleanup(void)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_base);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", s_base);
}

static long s_size(const char *job)
{
    char path[200];
    snprintf(path, sizeof path, "%s/%s.fold", s_dir, job);
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* What a replay saw. */
typedef struct {
    char plugin[64];
    bool decline;
    bool cut; /* cut at cut_at (not acknowledged) */
    uint64_t cut_at;
    int n;
    uint64_t task[16];
    char data[16][32];
} s_seen_t;

static bool s_on_plugin(void *ctx, const char *plugin)
{
    s_seen_t *v = ctx;
    snprintf(v->plugin, sizeof v->plugin, "%s", plugin);
    return !v->decline;
}

static bool s_on_entry(void *ctx, uint64_t task, const void *data, size_t len)
{
    s_seen_t *v = ctx;
    if (v->cut && task == v->cut_at)
        return false; /* not acknowledged: the log ends here */
    if (v->n == 16 || len >= 32)
        return true;
    v->task[v->n] = task;
    memcpy(v->data[v->n], data, len);
    v->data[v->n][len] = '\0';
    v->n++;
    return true;
}

static const zp_foldlog_visitor_t s_visitor = {s_on_plugin, s_on_entry};

static void s_job_name(void *ctx, const char *job)
{
    char *names = ctx;
    strcat(names, job);
    strcat(names, ";");
}

static void test_written_at_the_barrier_and_read_back(void)
{
    s_mkdir();
    zp_foldlogs_t *f = zp_foldlogs_new(s_dir, true);
    TEST_CHECK(f != NULL);
    zp_foldlog_t *log = zp_foldlogs_create(f, "job-1", "wordcount");
    TEST_CHECK(log != NULL);
    TEST_EQ_INT(zp_foldlogs_append(f, log, 3, "abc", 3), 0);
    TEST_EQ_INT(zp_foldlogs_append(f, log, 0, "", 0), 0);
    TEST_EQ_INT(zp_foldlogs_append(f, log, 7, "hello", 5), 0);
    TEST_CHECK(zp_foldlogs_pending(f) > 0);
    TEST_EQ_INT(s_size("job-1"), -1); /* nothing before the barrier */
    TEST_EQ_INT(zp_foldlogs_write(f), 0);
    TEST_EQ_INT(zp_foldlogs_pending(f), 0);
    long size = s_size("job-1");
    TEST_CHECK(size > 0);
    TEST_EQ_INT(zp_foldlogs_append(f, log, 3, "again", 5), 0);
    TEST_EQ_INT(zp_foldlogs_write(f), 0);
    TEST_CHECK(s_size("job-1") > size); /* appended, not rewritten */
    zp_foldlogs_destroy(&f);

    /* A restart: the entries in the file's order, duplicates included. */
    f = zp_foldlogs_new(s_dir, true);
    char names[256] = "";
    TEST_EQ_INT(zp_foldlogs_scan(f, s_job_name, names), 1);
    TEST_EQ_STR(names, "job-1;");
    s_seen_t v = {0};
    uint64_t torn = 99;
    log = zp_foldlogs_resume(f, "job-1", &s_visitor, &v, &torn);
    TEST_CHECK(log != NULL);
    TEST_EQ_STR(v.plugin, "wordcount");
    TEST_EQ_INT(torn, 0);
    TEST_EQ_INT(v.n, 4);
    TEST_EQ_INT(v.task[0], 3);
    TEST_EQ_STR(v.data[0], "abc");
    TEST_EQ_INT(v.task[1], 0);
    TEST_EQ_STR(v.data[1], "");
    TEST_EQ_INT(v.task[2], 7);
    TEST_EQ_STR(v.data[2], "hello");
    TEST_EQ_STR(v.data[3], "again");
    /* Resumed logs take appends at their end. */
    TEST_EQ_INT(zp_foldlogs_append(f, log, 9, "more", 4), 0);
    TEST_EQ_INT(zp_foldlogs_write(f), 0);
    zp_foldlogs_destroy(&f);
    f = zp_foldlogs_new(s_dir, false);
    memset(&v, 0, sizeof v);
    TEST_CHECK(zp_foldlogs_resume(f, "job-1", &s_visitor, &v, NULL) != NULL);
    TEST_EQ_INT(v.n, 5);
    TEST_EQ_INT(v.task[4], 9);
    TEST_EQ_STR(v.data[4], "more");
    /* None for a job without a file. */
    TEST_CHECK(zp_foldlogs_resume(f, "job-2", &s_visitor, &v, NULL) == NULL);
    zp_foldlogs_destroy(&f);
    /* A record the journal does not have: the log is cut there (what
     * follows was not acknowledged either), so a later restart never
     * folds it; appends go on after the cut. */
    f = zp_foldlogs_new(s_dir, true);
    memset(&v, 0, sizeof v);
    v.cut = true;
    v.cut_at = 7;
    log = zp_foldlogs_resume(f, "job-1", &s_visitor, &v, &torn);
    TEST_CHECK(log != NULL);
    TEST_EQ_INT(v.n, 2); /* 3 and 0 */
    TEST_CHECK(torn > 0);
    TEST_EQ_INT(zp_foldlogs_append(f, log, 7, "new", 3), 0);
    TEST_EQ_INT(zp_foldlogs_write(f), 0);
    zp_foldlogs_destroy(&f);
    f = zp_foldlogs_new(s_dir, false);
    memset(&v, 0, sizeof v);
    TEST_CHECK(zp_foldlogs_resume(f, "job-1", &s_visitor, &v, NULL) != NULL);
    TEST_EQ_INT(v.n, 3);
    TEST_EQ_INT(v.task[2], 7);
    TEST_EQ_STR(v.data[2], "new");
    zp_foldlogs_destroy(&f);
    s_cleanup();
}

/* Cuts the file of job to len bytes, or flips its byte at -len. */
static void s_damage(const char *job, long len, bool flip)
{
    char path[200];
    snprintf(path, sizeof path, "%s/%s.fold", s_dir, job);
    if (!flip) {
        if (truncate(path, len) != 0)
            abort();
        return;
    }
    FILE *fp = fopen(path, "r+b");
    if (!fp || fseek(fp, len, SEEK_SET) != 0)
        abort();
    int c = fgetc(fp);
    fseek(fp, len, SEEK_SET);
    fputc(c ^ 0x20, fp);
    fclose(fp);
}

static void test_torn_or_corrupt_tail_is_cut(void)
{
    s_mkdir();
    zp_foldlogs_t *f = zp_foldlogs_new(s_dir, false);
    zp_foldlog_t *log = zp_foldlogs_create(f, "j", "p");
    zp_foldlogs_append(f, log, 1, "one", 3);
    TEST_EQ_INT(zp_foldlogs_write(f), 0);
    long whole = s_size("j");
    zp_foldlogs_append(f, log, 2, "two", 3);
    zp_foldlogs_append(f, log, 3, "three", 5);
    TEST_EQ_INT(zp_foldlogs_write(f), 0);
    long two = whole + 16 + 3;
    zp_foldlogs_destroy(&f);

    /* Torn inside the third record: two kept, the rest cut. */
    s_damage("j", s_size("j") - 2, false);
    f = zp_foldlogs_new(s_dir, false);
    s_seen_t v = {0};
    uint64_t torn = 0;
    log = zp_foldlogs_resume(f, "j", &s_visitor, &v, &torn);
    TEST_CHECK(log != NULL);
    TEST_EQ_INT(v.n, 2);
    TEST_EQ_INT(torn, 16 + 5 - 2);
    TEST_EQ_INT(s_size("j"), two);
    zp_foldlogs_destroy(&f);

    /* A flipped byte in the second record's bytes: its check fails. */
    s_damage("j", two - 1, true);
    f = zp_foldlogs_new(s_dir, false);
    memset(&v, 0, sizeof v);
    log = zp_foldlogs_resume(f, "j", &s_visitor, &v, &torn);
    TEST_CHECK(log != NULL);
    TEST_EQ_INT(v.n, 1);
    TEST_EQ_STR(v.data[0], "one");
    TEST_EQ_INT(s_size("j"), whole);
    zp_foldlogs_destroy(&f);

    /* A torn header: the open was never acknowledged; the file goes. */
    s_damage("j", 12, false);
    f = zp_foldlogs_new(s_dir, false);
    memset(&v, 0, sizeof v);
    TEST_CHECK(zp_foldlogs_resume(f, "j", &s_visitor, &v, NULL) == NULL);
    TEST_EQ_INT(v.n, 0);
    TEST_EQ_INT(s_size("j"), -1);
    zp_foldlogs_destroy(&f);
    s_cleanup();
}

static void test_declined_plugin_leaves_the_file(void)
{
    s_mkdir();
    zp_foldlogs_t *f = zp_foldlogs_new(s_dir, false);
    zp_foldlog_t *log = zp_foldlogs_create(f, "j", "other");
    zp_foldlogs_append(f, log, 1, "one", 3);
    TEST_EQ_INT(zp_foldlogs_write(f), 0);
    long size = s_size("j");
    zp_foldlogs_destroy(&f);
    f = zp_foldlogs_new(s_dir, false);
    s_seen_t v = {.decline = true};
    TEST_CHECK(zp_foldlogs_resume(f, "j", &s_visitor, &v, NULL) == NULL);
    TEST_EQ_STR(v.plugin, "other");
    TEST_EQ_INT(v.n, 0);
    TEST_EQ_INT(s_size("j"), size);
    zp_foldlogs_destroy(&f);
    s_cleanup();
}

/* A new log of a job whose file is there (a stale one) empties it. */
static void test_create_empties_a_stale_file(void)
{
    s_mkdir();
    zp_foldlogs_t *f = zp_foldlogs_new(s_dir, false);
    zp_foldlog_t *log = zp_foldlogs_create(f, "j", "p");
    zp_foldlogs_append(f, log, 1, "stale", 5);
    TEST_EQ_INT(zp_foldlogs_write(f), 0);
    zp_foldlogs_destroy(&f);
    f = zp_foldlogs_new(s_dir, false);
    log = zp_foldlogs_create(f, "j", "p");
    TEST_EQ_INT(zp_foldlogs_write(f), 0);
    zp_foldlogs_destroy(&f);
    f = zp_foldlogs_new(s_dir, false);
    s_seen_t v = {0};
    TEST_CHECK(zp_foldlogs_resume(f, "j", &s_visitor, &v, NULL) != NULL);
    TEST_EQ_INT(v.n, 0);
    zp_foldlogs_destroy(&f);
    s_cleanup();
}

static void test_retired_removed_at_collect(void)
{
    s_mkdir();
    zp_foldlogs_t *f = zp_foldlogs_new(s_dir, false);
    zp_foldlog_t *a = zp_foldlogs_create(f, "a", "p");
    zp_foldlog_t *b = zp_foldlogs_create(f, "b", "p");
    zp_foldlogs_append(f, a, 1, "x", 1);
    zp_foldlogs_append(f, b, 1, "y", 1);
    TEST_EQ_INT(zp_foldlogs_write(f), 0);
    zp_foldlogs_append(f, a, 2, "unwritten", 9);
    zp_foldlogs_retire(f, &a);
    TEST_CHECK(a == NULL);
    TEST_EQ_INT(zp_foldlogs_pending(f), 0); /* its buffer dropped */
    TEST_CHECK(s_size("a") > 0);            /* until the barrier */
    TEST_EQ_INT(zp_foldlogs_write(f), 0);
    TEST_EQ_INT(zp_foldlogs_collect(f), 0);
    TEST_EQ_INT(s_size("a"), -1);
    TEST_CHECK(s_size("b") > 0);
    /* Stale ones are removed by name; a drop needs an empty directory. */
    TEST_EQ_INT(zp_foldlogs_drop(f), -1);
    TEST_EQ_INT(zp_foldlogs_remove(f, "b"), 0);
    zp_foldlogs_retire(f, &b);
    TEST_EQ_INT(zp_foldlogs_drop(f), 0);
    struct stat st;
    TEST_CHECK(stat(s_dir, &st) != 0);
    zp_foldlogs_destroy(&f);
    s_cleanup();
}

static void test_bad_names_refused(void)
{
    s_mkdir();
    zp_foldlogs_t *f = zp_foldlogs_new(s_dir, false);
    TEST_CHECK(zp_foldlogs_create(f, "a/b", "p") == NULL);
    TEST_CHECK(zp_foldlogs_create(f, "", "p") == NULL);
    char longname[300];
    memset(longname, 'p', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    TEST_CHECK(zp_foldlogs_create(f, "j", longname) == NULL);
    s_seen_t v = {0};
    TEST_CHECK(zp_foldlogs_resume(f, "../x", &s_visitor, &v, NULL) == NULL);
    zp_foldlogs_destroy(&f);
    /* A directory that cannot be made. */
    TEST_CHECK(zp_foldlogs_new("/nonexistent/dir/x.fold", false) == NULL);
    s_cleanup();
}

/* Every allocation failing in turn: nothing leaks, nothing crashes. */
static void s_scenario(void *arg)
{
    (void)arg;
    zp_foldlogs_t *f = zp_foldlogs_new(s_dir, false);
    if (!f)
        return;
    zp_foldlog_t *a = zp_foldlogs_create(f, "a", "p");
    zp_foldlog_t *b = zp_foldlogs_create(f, "b", "p");
    if (a)
        zp_foldlogs_append(f, a, 1, "x", 1);
    if (b)
        zp_foldlogs_append(f, b, 1, "y", 1);
    zp_foldlogs_write(f);
    zp_foldlogs_retire(f, &a);
    zp_foldlogs_collect(f);
    s_seen_t v = {0};
    zp_foldlogs_resume(f, "b", &s_visitor, &v, NULL);
    zp_foldlogs_destroy(&f);
}

static void test_alloc_failures(void)
{
    s_mkdir();
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 1);
    s_cleanup();
}

static const test_case_t tests[] = {
    {"test_written_at_the_barrier_and_read_back",
     test_written_at_the_barrier_and_read_back},
    {"test_torn_or_corrupt_tail_is_cut", test_torn_or_corrupt_tail_is_cut},
    {"test_declined_plugin_leaves_the_file",
     test_declined_plugin_leaves_the_file},
    {"test_create_empties_a_stale_file", test_create_empties_a_stale_file},
    {"test_retired_removed_at_collect", test_retired_removed_at_collect},
    {"test_bad_names_refused", test_bad_names_refused},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
