/* Tests for sink_spool: spool files opened on demand, at most max_open at
 * once, what is closed made durable first, reopened at their end, and
 * cut back to the journal after a restart; in a temporary directory. */
#include "failalloc.h"
#include "sink_spool.h"
#include "test.h"
#include "zp_crc32c.h"
#include "zp_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_dir[64];

static void s_mkdir(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/test_sink_spool.XXXXXX");
    if (!mkdtemp(s_dir))
        abort();
}

static void s_cleanup(void)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", s_dir);
}

/* The whole file of job's spool into buf; its length, -1 when missing. */
static long s_file(const char *job, char *buf, size_t cap)
{
    char path[200];
    snprintf(path, sizeof path, "%s/%s.jsonl", s_dir, job);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    return (long)n;
}

/* Open file descriptors of this process. */
static int s_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void s_add(zp_spools_t *set, zp_spool_t *sp, const char *job, int rec)
{
    char line[64];
    int n =
        snprintf(line, sizeof line, "{\"job\":\"%s\",\"r\":%d}\n", job, rec);
    if (zp_spools_append(set, sp, job, line, (size_t)n) != 0)
        abort();
}

static void s_count(void *ctx, zp_spool_t *spool)
{
    (void)spool;
    (*(int *)ctx)++;
}

/* Ten spools written in turns through a set of three open files: never
 * more than three open, every record in its file in order, and no file
 * descriptor left once the set is gone. */
static void test_at_most_max_open_files(void)
{
    s_mkdir();
    int fds = s_fds();
    zp_spools_t *set = zp_spools_new(s_dir, 3, true);
    TEST_CHECK(set);
    TEST_EQ_INT(zp_spools_max_open(set), 3);
    enum { N = 10, RECS = 4 };
    zp_spool_t sp[N] = {{0}};
    char ids[N][8];
    for (int r = 0; r < RECS; r++)
        for (int j = 0; j < N; j++) {
            snprintf(ids[j], sizeof ids[j], "job%d", j);
            s_add(set, &sp[j], ids[j], r);
            TEST_CHECK(zp_spools_open(set) <= 3);
            TEST_CHECK(s_fds() <= fds + 3);
        }
    TEST_EQ_INT(zp_spools_sync(set), 0);
    int grew = 0;
    zp_spools_publish(set, s_count, &grew);
    TEST_EQ_INT(grew, N);
    TEST_CHECK(!zp_spools_pending(set));
    for (int j = 0; j < N; j++) {
        char buf[512], want[512] = "";
        for (int r = 0; r < RECS; r++) {
            size_t l = strlen(want);
            snprintf(want + l, sizeof want - l, "{\"job\":\"%s\",\"r\":%d}\n",
                     ids[j], r);
        }
        TEST_EQ_INT(s_file(ids[j], buf, sizeof buf), (long)strlen(want));
        TEST_EQ_STR(buf, want);
        TEST_EQ_INT(sp[j].flushed, strlen(want));
    }
    zp_spools_destroy(&set);
    TEST_CHECK(set == NULL);
    TEST_EQ_INT(s_fds(), fds);
    s_cleanup();
}

/* The least recently used file is closed for a new one, its records
 * made durable first; written again, it is reopened at its end. */
static void test_closed_file_is_durable_and_reopened_at_its_end(void)
{
    s_mkdir();
    zp_spools_t *set = zp_spools_new(s_dir, 2, true);
    zp_spool_t a = {0}, b = {0}, c = {0};
    s_add(set, &a, "a", 0);
    s_add(set, &b, "b", 0);
    TEST_EQ_INT(a.synced, 0);
    s_add(set, &a, "a", 1); /* a is now the most recent: b goes next */
    s_add(set, &c, "c", 0);
    TEST_CHECK(b.file == NULL && a.file && c.file);
    TEST_EQ_INT(b.synced, b.len); /* closed only once durable */
    TEST_EQ_INT(b.flushed, 0);    /* but not visible before publish */
    char buf[256];
    TEST_EQ_INT(s_file("b", buf, sizeof buf), (long)b.len);
    s_add(set, &b, "b", 1); /* reopened at its end; a goes */
    TEST_CHECK(b.file && a.file == NULL);
    TEST_EQ_INT(zp_spools_sync(set), 0);
    zp_spools_publish(set, NULL, NULL);
    TEST_EQ_INT(s_file("b", buf, sizeof buf), (long)b.len);
    TEST_EQ_STR(buf, "{\"job\":\"b\",\"r\":0}\n{\"job\":\"b\",\"r\":1}\n");
    TEST_EQ_INT(b.flushed, b.len);
    zp_spools_destroy(&set);
    s_cleanup();
}

/* Records become visible only through publish, after a sync; a spool
 * written after the sync stays listed for the next one. */
static void test_visible_only_once_synced_and_published(void)
{
    s_mkdir();
    zp_spools_t *set = zp_spools_new(s_dir, 4, false);
    zp_spool_t a = {0};
    int grew = 0;
    TEST_CHECK(!zp_spools_pending(set));
    s_add(set, &a, "a", 0);
    TEST_CHECK(zp_spools_pending(set));
    zp_spools_publish(set, s_count, &grew); /* not synced: nothing shown */
    TEST_EQ_INT(grew, 0);
    TEST_EQ_INT(a.flushed, 0);
    TEST_CHECK(zp_spools_pending(set));
    TEST_EQ_INT(zp_spools_sync(set), 0);
    uint64_t synced = a.len;
    s_add(set, &a, "a", 1); /* after the sync */
    zp_spools_publish(set, s_count, &grew);
    TEST_EQ_INT(grew, 1);
    TEST_EQ_INT(a.flushed, synced);
    TEST_CHECK(zp_spools_pending(set));
    TEST_EQ_INT(zp_spools_sync(set), 0);
    zp_spools_publish(set, s_count, &grew);
    TEST_EQ_INT(grew, 2);
    TEST_EQ_INT(a.flushed, a.len);
    TEST_CHECK(!zp_spools_pending(set));
    zp_spools_destroy(&set);
    s_cleanup();
}

/* Reads open a closed spool (a finished job's) and count against the
 * limit like writes; a spool without a file has no descriptor. */
static void test_reads_open_on_demand(void)
{
    s_mkdir();
    zp_spools_t *set = zp_spools_new(s_dir, 1, true);
    zp_spool_t a = {0}, b = {0}, none = {0};
    TEST_EQ_INT(zp_spools_fd(set, &none, "none"), -1);
    s_add(set, &a, "a", 0);
    TEST_EQ_INT(zp_spools_sync(set), 0);
    zp_spools_publish(set, NULL, NULL);
    TEST_EQ_INT(zp_spools_close(set, &a), 0); /* the job finished */
    TEST_CHECK(a.file == NULL);
    TEST_EQ_INT(zp_spools_open(set), 0);
    s_add(set, &b, "b", 0);
    int fd = zp_spools_fd(set, &a, "a");
    TEST_CHECK(fd >= 0);
    TEST_CHECK(b.file == NULL); /* closed for a's read */
    TEST_EQ_INT(zp_spools_open(set), 1);
    char buf[64];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    TEST_EQ_INT(n, (long)a.flushed);
    buf[n] = 0;
    TEST_EQ_STR(buf, "{\"job\":\"a\",\"r\":0}\n");
    zp_spools_destroy(&set);
    s_cleanup();
}

/* A closed spool's file cut behind the sink's back is refused, not
 * written past a hole; a longer one is cut to what the sink wrote. */
static void test_reopen_checks_the_file(void)
{
    s_mkdir();
    zp_log_set_level("error");
    zp_spools_t *set = zp_spools_new(s_dir, 4, false);
    zp_spool_t a = {0}, b = {0};
    s_add(set, &a, "a", 0);
    s_add(set, &b, "b", 0);
    TEST_EQ_INT(zp_spools_close(set, &a), 0);
    TEST_EQ_INT(zp_spools_close(set, &b), 0);
    char path[200];
    snprintf(path, sizeof path, "%s/a.jsonl", s_dir);
    TEST_EQ_INT(truncate(path, 3), 0);
    TEST_EQ_INT(zp_spools_append(set, &a, "a", "x\n", 2), -1);
    snprintf(path, sizeof path, "%s/b.jsonl", s_dir);
    FILE *f = fopen(path, "ab");
    fputs("stray bytes\n", f);
    fclose(f);
    s_add(set, &b, "b", 1);
    TEST_EQ_INT(zp_spools_close(set, &b), 0);
    char buf[256];
    TEST_EQ_INT(s_file("b", buf, sizeof buf), (long)b.len);
    TEST_EQ_STR(buf, "{\"job\":\"b\",\"r\":0}\n{\"job\":\"b\",\"r\":1}\n");
    zp_spools_destroy(&set);
    zp_log_set_level("info");
    s_cleanup();
}

/* After a replay: the journal's records kept, the rest cut, the file
 * left closed; a missing file is an empty spool, created when written. */
static void test_restore_cuts_and_leaves_closed(void)
{
    s_mkdir();
    zp_log_set_level("error");
    char path[200], buf[256];
    snprintf(path, sizeof path, "%s/j.jsonl", s_dir);
    FILE *f = fopen(path, "wb");
    fputs("{\"t\":0}\n{\"t\":1}\n{\"t\":2}\n{\"torn", f);
    fclose(f);
    zp_spools_t *set = zp_spools_new(s_dir, 4, true);
    zp_spool_t sp = {0}, none = {0};
    zp_spools_restore(set, &sp, "j", 2, NULL);
    TEST_CHECK(sp.file == NULL && sp.created);
    TEST_EQ_INT(sp.len, 16);
    TEST_EQ_INT(sp.synced, 16);
    TEST_EQ_INT(sp.flushed, 16);
    TEST_EQ_INT(s_file("j", buf, sizeof buf), 16);
    TEST_EQ_INT(zp_spools_open(set), 0);
    s_add(set, &sp, "j", 9);
    TEST_EQ_INT(zp_spools_close(set, &sp), 0);
    TEST_EQ_INT(s_file("j", buf, sizeof buf), (long)sp.len);
    TEST_EQ_STR(buf, "{\"t\":0}\n{\"t\":1}\n{\"job\":\"j\",\"r\":9}\n");
    /* No records owed: an existing file is emptied. */
    zp_spool_t zero = {0};
    zp_spools_restore(set, &zero, "j", 0, NULL);
    TEST_EQ_INT(zero.len, 0);
    TEST_EQ_INT(s_file("j", buf, sizeof buf), 0);
    /* Records owed and no file: gone (taken or deleted), counted, not an
     * empty spool that would answer "done, no records". */
    TEST_EQ_INT(zp_spools_gone(set), 0);
    zp_spools_restore(set, &none, "none", 3, NULL);
    TEST_CHECK(!none.created && none.len == 0 && none.gone);
    TEST_EQ_INT(zp_spools_gone(set), 1);
    zp_spool_t owed_none = {0};
    zp_spools_restore(set, &owed_none, "nothing", 0, NULL);
    TEST_CHECK(!owed_none.gone);
    TEST_EQ_INT(zp_spools_gone(set), 1);
    s_add(set, &none, "none", 0);
    TEST_CHECK(s_file("none", buf, sizeof buf) >= 0);
    zp_spools_destroy(&set);
    zp_log_set_level("info");
    s_cleanup();
}

/* A spool's checksum as the journal had it: a spool as written restores
 * (its CRC carried on for the next P line); a byte changed, a newline
 * lost, or the file cut is damage (-1, the file left as it is). */
static void test_restore_checks_the_journaled_checksum(void)
{
    s_mkdir();
    zp_log_set_level("error");
    zp_spools_t *set = zp_spools_new(s_dir, 4, true);
    zp_spool_t w = {0};
    for (uint64_t r = 0; r < 3; r++)
        s_add(set, &w, "j", (int)r);
    TEST_EQ_INT(zp_spools_close(set, &w), 0);
    zp_spool_check_t at2 = {w.len, w.crc}; /* a P line after 3 records */
    s_add(set, &w, "j", 3);                /* not journaled yet */
    TEST_EQ_INT(zp_spools_close(set, &w), 0);
    char path[200], buf[256], orig[256];
    snprintf(path, sizeof path, "%s/j.jsonl", s_dir);
    long n = s_file("j", orig, sizeof orig);
    zp_spool_t sp = {0};
    TEST_EQ_INT(zp_spools_restore(set, &sp, "j", 4, &at2), 0);
    TEST_EQ_INT(sp.len, (uint64_t)n);
    TEST_EQ_INT(sp.crc, w.crc);
    /* Damage, each in the first at2.len bytes. */
    for (int k = 0; k < 3; k++) {
        memcpy(buf, orig, (size_t)n);
        long len = n;
        if (k == 0)
            buf[5] ^= 1;
        else if (k == 1)
            buf[at2.len / 3 - 1] = ' '; /* two records made one */
        else
            len = (long)at2.len - 4;
        FILE *f = fopen(path, "wb");
        fwrite(buf, 1, (size_t)len, f);
        fclose(f);
        zp_spool_t d = {0};
        TEST_EQ_INT(zp_spools_restore(set, &d, "j", 4, &at2), -1);
        TEST_CHECK(!d.created);
        char now[256];
        TEST_EQ_INT(s_file("j", now, sizeof now), len);
        TEST_CHECK(memcmp(now, buf, (size_t)len) == 0);
    }
    zp_spools_destroy(&set);
    zp_log_set_level("info");
    s_cleanup();
}

/* The CRC-32C of job's spool file as it is on disk. */
static uint32_t s_file_crc(const char *job, uint64_t *len)
{
    static char buf[1 << 21];
    long n = s_file(job, buf, sizeof buf);
    *len = n < 0 ? 0 : (uint64_t)n;
    return n < 0 ? 0 : zp_crc32c(0, buf, (size_t)n);
}

/* The checksum is summed a stretch at a time, not a record at a time:
 * whenever the spool is made durable (a barrier, or closed for another
 * one's file) it covers every byte, and it is the file's. Records are
 * appended both ways (copied in, and rendered into the buffer). */
static void test_the_checksum_covers_every_byte_when_durable(void)
{
    s_mkdir();
    zp_spools_t *set = zp_spools_new(s_dir, 1, false);
    zp_spool_t a = {0}, b = {0};
    char line[300];
    uint64_t len;
    for (int r = 0; r < 6000; r++) {
        zp_spool_t *sp = r % 97 == 0 ? &b : &a; /* b's turn closes a */
        const char *job = sp == &a ? "a" : "b";
        int n = snprintf(line, sizeof line, "{\"r\":%d,\"pad\":\"%.*s\"}\n", r,
                         r % 200,
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        if (r % 2) {
            TEST_EQ_INT(zp_spools_append(set, sp, job, line, (size_t)n), 0);
        } else {
            zp_buf_t *buf = zp_spools_buf(set, sp, job);
            TEST_CHECK(buf != NULL);
            size_t from = buf->len;
            TEST_EQ_INT(zp_buf_append(buf, line, (size_t)n), 0);
            zp_spools_appended(set, sp, from);
        }
        if (r % 1000 == 999) { /* a barrier */
            TEST_EQ_INT(zp_spools_sync(set), 0);
            TEST_EQ_INT(a.crc_len, a.len);
            TEST_EQ_INT(a.crc, s_file_crc("a", &len));
            TEST_EQ_INT(len, a.len);
        }
    }
    TEST_EQ_INT(zp_spools_close(set, &a), 0);
    TEST_EQ_INT(zp_spools_close(set, &b), 0);
    TEST_CHECK(a.len > 4 * 65536);
    TEST_EQ_INT(a.crc_len, a.len);
    TEST_EQ_INT(b.crc_len, b.len);
    TEST_EQ_INT(a.crc, s_file_crc("a", &len));
    TEST_EQ_INT(len, a.len);
    TEST_EQ_INT(b.crc, s_file_crc("b", &len));
    TEST_EQ_INT(len, b.len);
    zp_spools_destroy(&set);
    s_cleanup();
}

/* With no number given, the limit follows RLIMIT_NOFILE: a quarter of it,
 * within [ZP_SPOOL_MIN_OPEN, ZP_SPOOL_MAX_OPEN]. */
static void test_default_limit_follows_the_fd_limit(void)
{
    struct rlimit was;
    TEST_EQ_INT(getrlimit(RLIMIT_NOFILE, &was), 0);
    struct rlimit rl = was;
    const struct {
        rlim_t fds;
        size_t want;
    } cases[] = {{40, 10}, {8, ZP_SPOOL_MIN_OPEN}, {256, 64}, {1024, 64}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].fds > was.rlim_max)
            continue;
        rl.rlim_cur = cases[i].fds;
        TEST_EQ_INT(setrlimit(RLIMIT_NOFILE, &rl), 0);
        zp_spools_t *set = zp_spools_new("/tmp", 0, false);
        size_t got = set ? zp_spools_max_open(set) : 0;
        zp_spools_destroy(&set);
        TEST_EQ_INT(setrlimit(RLIMIT_NOFILE, &was), 0);
        TEST_EQ_INT(got, cases[i].want);
    }
}

static void s_scenario(void *arg)
{
    (void)arg;
    zp_spools_t *set = zp_spools_new(s_dir, 2, true);
    if (!set)
        return;
    zp_spool_t sp[3] = {{0}};
    const char *ids[3] = {"x", "y", "z"};
    /* An append fails (out of memory) without harm: the set still closes
     * cleanly. */
    for (int r = 0; r < 3; r++)
        for (int j = 0; j < 3; j++)
            if (zp_spools_append(set, &sp[j], ids[j], "{}\n", 3) != 0)
                goto out;
    if (zp_spools_sync(set) == 0)
        zp_spools_publish(set, NULL, NULL);
out:
    zp_spools_destroy(&set);
}

static void test_alloc_failures(void)
{
    s_mkdir();
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 1);
    s_cleanup();
}

/* A job id used again gets a new file, not the old one cut: a consumer
 * still copying the old job's records by reference (it holds the old
 * file open) reads what it was told is there. The path is absolute. */
static void test_a_reused_id_gets_a_new_file(void)
{
    s_mkdir();
    zp_spools_t *set = zp_spools_new(s_dir, 4, true);
    zp_spool_t old = {0};
    s_add(set, &old, "j", 0);
    TEST_EQ_INT(zp_spools_sync(set), 0);
    zp_spools_publish(set, NULL, NULL);
    char path[4200];
    TEST_CHECK(zp_spools_path(set, "j", path, sizeof path));
    TEST_CHECK(path[0] == '/' && strstr(path, "/j.jsonl") != NULL);
    int reader = open(path, O_RDONLY);
    TEST_CHECK(reader >= 0);
    struct stat a, b;
    TEST_CHECK(fstat(reader, &a) == 0);
    TEST_EQ_INT(zp_spools_close(set, &old), 0); /* finished, forgotten */
    zp_spool_t again = {0};
    s_add(set, &again, "j", 1);
    TEST_EQ_INT(zp_spools_sync(set), 0);
    TEST_CHECK(stat(path, &b) == 0);
    TEST_CHECK(a.st_ino != b.st_ino);
    char buf[64];
    ssize_t n = pread(reader, buf, sizeof buf - 1, 0);
    TEST_CHECK(n > 0);
    buf[n > 0 ? n : 0] = 0;
    TEST_EQ_STR(buf, "{\"job\":\"j\",\"r\":0}\n");
    close(reader);
    zp_spools_destroy(&set);
    s_cleanup();
}

/* A done job's records taken (ResultsRequest.take): its file closed and
 * deleted, the spool gone; again, or with the file renamed away by the
 * consumer, no error; a forgotten job's file by name; a file that cannot
 * be deleted leaves the spool as it was (-1, errno). */
static void test_a_taken_spool_is_removed(void)
{
    s_mkdir();
    zp_spools_t *set = zp_spools_new(s_dir, 4, true);
    zp_spool_t sp = {0}, old = {0}, renamed = {0}, stuck = {0};
    char buf[256], path[200], to[200];
    s_add(set, &sp, "j", 0);
    s_add(set, &old, "old", 0);
    s_add(set, &renamed, "r", 0);
    TEST_EQ_INT(zp_spools_sync(set), 0);
    zp_spools_publish(set, NULL, NULL);
    TEST_EQ_INT(zp_spools_open(set), 3);
    TEST_EQ_INT(zp_spools_remove(set, &sp, "j"), 0);
    TEST_CHECK(sp.gone && sp.file == NULL);
    TEST_EQ_INT(s_file("j", buf, sizeof buf), -1);
    TEST_EQ_INT(zp_spools_open(set), 2);
    TEST_EQ_INT(zp_spools_remove(set, &sp, "j"), 0);
    /* Renamed away by the consumer (its own name now): nothing to delete,
     * and what it renamed is left alone. */
    snprintf(path, sizeof path, "%s/r.jsonl", s_dir);
    snprintf(to, sizeof to, "%s/mine.jsonl", s_dir);
    TEST_EQ_INT(rename(path, to), 0);
    TEST_EQ_INT(zp_spools_remove(set, &renamed, "r"), 0);
    TEST_CHECK(renamed.gone);
    TEST_EQ_INT(s_file("mine", buf, sizeof buf), (long)renamed.len);
    /* A forgotten job's: by name, its spool long closed. */
    TEST_EQ_INT(zp_spools_close(set, &old), 0);
    TEST_EQ_INT(zp_spools_remove(set, NULL, "old"), 0);
    TEST_EQ_INT(s_file("old", buf, sizeof buf), -1);
    TEST_EQ_INT(zp_spools_open(set), 0);
    /* Not deletable (a directory in its place): refused, not gone. */
    snprintf(path, sizeof path, "%s/stuck.jsonl", s_dir);
    TEST_EQ_INT(mkdir(path, 0700), 0);
    errno = 0;
    TEST_EQ_INT(zp_spools_remove(set, &stuck, "stuck"), -1);
    TEST_CHECK(errno == EISDIR || errno == EPERM);
    TEST_CHECK(!stuck.gone);
    rmdir(path);
    zp_spools_destroy(&set);
    s_cleanup();
}

/* A done job's file checked before a read: still at its path, open or
 * not, it stays; moved away while open (an interrupted take), deleted
 * while closed, or replaced, the spool is closed and gone. Restored short
 * of the records owed: gone too (refused, not served short). */
static void test_a_file_no_longer_at_its_path_is_gone(void)
{
    s_mkdir();
    zp_log_set_level("error");
    zp_spools_t *set = zp_spools_new(s_dir, 4, true);
    zp_spool_t kept = {0}, moved = {0}, deleted = {0}, replaced = {0};
    char path[200], to[200], buf[256];
    s_add(set, &kept, "k", 0);
    s_add(set, &moved, "m", 0);
    s_add(set, &deleted, "d", 0);
    s_add(set, &replaced, "r", 0);
    TEST_EQ_INT(zp_spools_sync(set), 0);
    zp_spools_publish(set, NULL, NULL);
    TEST_CHECK(!zp_spools_recheck(set, &kept, "k"));
    TEST_EQ_INT(zp_spools_close(set, &kept), 0);
    TEST_CHECK(!zp_spools_recheck(set, &kept, "k") && !kept.gone);
    snprintf(path, sizeof path, "%s/m.jsonl", s_dir);
    snprintf(to, sizeof to, "%s/mine.jsonl", s_dir);
    TEST_EQ_INT(rename(path, to), 0);
    TEST_CHECK(zp_spools_recheck(set, &moved, "m"));
    TEST_CHECK(moved.gone && moved.file == NULL);
    TEST_EQ_INT(s_file("mine", buf, sizeof buf), (long)moved.len);
    TEST_EQ_INT(zp_spools_close(set, &deleted), 0);
    snprintf(path, sizeof path, "%s/d.jsonl", s_dir);
    TEST_EQ_INT(unlink(path), 0);
    TEST_CHECK(zp_spools_recheck(set, &deleted, "d") && deleted.gone);
    snprintf(path, sizeof path, "%s/r.jsonl", s_dir);
    TEST_EQ_INT(unlink(path), 0);
    FILE *f = fopen(path, "wb");
    fputs("{\"other\":1}\n", f);
    fclose(f);
    TEST_CHECK(zp_spools_recheck(set, &replaced, "r") && replaced.gone);
    TEST_EQ_INT(zp_spools_open(set), 0);
    /* Restored with fewer records than owed. */
    zp_spool_t short_one = {0};
    snprintf(path, sizeof path, "%s/s.jsonl", s_dir);
    f = fopen(path, "wb");
    fputs("{\"t\":0}\n", f);
    fclose(f);
    zp_spools_restore(set, &short_one, "s", 2, NULL);
    TEST_CHECK(short_one.gone);
    zp_spools_destroy(&set);
    zp_log_set_level("info");
    s_cleanup();
}

static const test_case_t tests[] = {
    {"test_a_taken_spool_is_removed", test_a_taken_spool_is_removed},
    {"test_a_file_no_longer_at_its_path_is_gone",
     test_a_file_no_longer_at_its_path_is_gone},
    {"test_a_reused_id_gets_a_new_file", test_a_reused_id_gets_a_new_file},
    {"test_at_most_max_open_files", test_at_most_max_open_files},
    {"test_closed_file_is_durable_and_reopened_at_its_end",
     test_closed_file_is_durable_and_reopened_at_its_end},
    {"test_visible_only_once_synced_and_published",
     test_visible_only_once_synced_and_published},
    {"test_reads_open_on_demand", test_reads_open_on_demand},
    {"test_reopen_checks_the_file", test_reopen_checks_the_file},
    {"test_restore_cuts_and_leaves_closed",
     test_restore_cuts_and_leaves_closed},
    {"test_restore_checks_the_journaled_checksum",
     test_restore_checks_the_journaled_checksum},
    {"test_default_limit_follows_the_fd_limit",
     test_default_limit_follows_the_fd_limit},
    {"test_alloc_failures", test_alloc_failures},
    {"test_the_checksum_covers_every_byte_when_durable",
     test_the_checksum_covers_every_byte_when_durable},
    {NULL, NULL},
};

TEST_MAIN(tests)
