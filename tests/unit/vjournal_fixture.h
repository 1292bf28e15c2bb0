/* vjournal_fixture.h: what the vent_journal test programs share: temporary
 * journals, a visitor that writes down every record it sees, and a sample
 * of every record type with what a replay of it should show. */
#ifndef ZP_VJOURNAL_FIXTURE_H
#define ZP_VJOURNAL_FIXTURE_H

#include "test.h"
#include "vent_journal.h"
#include "vent_journal_int.h"
#include "zp_crc32c.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- files ---------------------------------------------------------- */

typedef struct {
    char dir[64], path[96], tmp[112];
} s_tmp_t;

static inline void s_tmp_new(s_tmp_t *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/zp-vjournal-XXXXXX");
    if (!mkdtemp(t->dir))
        abort();
    snprintf(t->path, sizeof t->path, "%s/journal", t->dir);
    snprintf(t->tmp, sizeof t->tmp, "%s.compact", t->path);
}

static inline void s_tmp_done(s_tmp_t *t)
{
    unlink(t->path);
    unlink(t->tmp);
    rmdir(t->tmp);
    rmdir(t->dir);
}

static inline long s_fsize(const char *path)
{
    struct stat st;
    return stat(path, &st) < 0 ? -1 : (long)st.st_size;
}

static uint8_t s_file[1 << 16];

/* Reads a small file into s_file; returns its length. */
static inline size_t s_slurp(const char *path)
{
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, s_file, sizeof s_file);
    if (fd >= 0)
        close(fd);
    return n < 0 ? 0 : (size_t)n;
}

static inline void s_spit(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len)
        abort();
    close(fd);
}

/* ---- a visitor that writes down what it sees ------------------------- */

typedef struct {
    char log[1 << 15];
    size_t len;
    int refuse; /* records of this type are refused (0: none) */
    uint64_t seen;
} s_rec_t;

static inline void s_logf(s_rec_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->log + r->len, sizeof r->log - r->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        r->len += (size_t)n < sizeof r->log - r->len ? (size_t)n : 0;
}

static inline void s_loghex(s_rec_t *r, const void *data, size_t n)
{
    const uint8_t *d = data;
    s_logf(r, "[");
    for (size_t i = 0; i < n; i++)
        s_logf(r, "%02x", d[i]);
    s_logf(r, "]");
}

static inline int s_ret(s_rec_t *r, int type, const char **why)
{
    r->seen++;
    if (r->refuse != type)
        return 0;
    static char reason[32];
    snprintf(reason, sizeof reason, "refusing type %d", type);
    *why = reason;
    return -1;
}

static inline int s_on_open(void *ctx, const zp_vjournal_job_t *job,
                            const char **why)
{
    s_rec_t *r = ctx;
    s_logf(r, "open %s %s %s ", job->id, job->token, job->plugin);
    s_loghex(r, job->config, strlen(job->config));
    s_logf(r, " %llu %u %u\n", (unsigned long long)job->deadline_ms,
           job->max_attempts, job->priority);
    return s_ret(r, ZP_VJ_JOB, why);
}

static inline int s_on_tasks(void *ctx, const char *job, uint64_t seq,
                             uint64_t first, size_t n,
                             const uint8_t *const *data, const uint32_t *lens,
                             const char **why)
{
    s_rec_t *r = ctx;
    s_logf(r, "tasks %s %llu %llu %zu", job, (unsigned long long)seq,
           (unsigned long long)first, n);
    for (size_t i = 0; i < n; i++)
        s_loghex(r, data[i], lens[i]);
    s_logf(r, "\n");
    return s_ret(r, ZP_VJ_TASKS, why);
}

static inline int s_on_seqs(void *ctx, const char *job,
                            const zp_vjournal_seq_t *seqs, size_t n,
                            const char **why)
{
    s_rec_t *r = ctx;
    s_logf(r, "seqs %s %zu", job, n);
    for (size_t i = 0; i < n; i++)
        s_logf(r, " %llu/%llu/%u", (unsigned long long)seqs[i].seq,
               (unsigned long long)seqs[i].first, seqs[i].n);
    s_logf(r, "\n");
    return s_ret(r, ZP_VJ_SEQS, why);
}

static inline int s_on_close(void *ctx, const char *job, uint64_t total,
                             const char **why)
{
    s_rec_t *r = ctx;
    s_logf(r, "close %s %llu\n", job, (unsigned long long)total);
    return s_ret(r, ZP_VJ_CLOSE, why);
}

static inline int s_on_committed(void *ctx, const char *job,
                                 const uint64_t *ids, size_t n,
                                 const char **why)
{
    s_rec_t *r = ctx;
    s_logf(r, "committed %s %zu", job, n);
    for (size_t i = 0; i < n; i++)
        s_logf(r, " %llu", (unsigned long long)ids[i]);
    s_logf(r, "\n");
    return s_ret(r, ZP_VJ_COMMITTED, why);
}

static inline int s_on_finished(void *ctx, const char *job, const char *token,
                                uint64_t total, uint64_t when_us,
                                const char **why)
{
    s_rec_t *r = ctx;
    s_logf(r, "finished %s %s %llu %llu\n", job, token,
           (unsigned long long)total, (unsigned long long)when_us);
    return s_ret(r, ZP_VJ_FINISHED, why);
}

static const zp_vjournal_visitor_t s_visitor = {
    s_on_open, s_on_tasks, s_on_seqs, s_on_close, s_on_committed, s_on_finished,
};

/* ---- the sample: every record type, written and expected ------------- */

typedef struct {
    uint64_t bounds[32]; /* the file's size after each record */
    size_t logs[32];     /* the expected log's length after each record */
    size_t n;
} s_marks_t;

static inline void s_mark(zp_vjournal_t *j, s_rec_t *exp, s_marks_t *m)
{
    m->bounds[m->n] = zp_vjournal_size(j);
    m->logs[m->n++] = exp->len;
}

/* Appends the sample to j, and what a replay should see to exp. */
static inline int s_sample(zp_vjournal_t *j, s_rec_t *exp, s_marks_t *m,
                           size_t big_len)
{
    static char longid[129];
    memset(longid, 'x', 128);
    const char *why;
    zp_vjournal_job_t a = {"job-1", "tok-A", "echo", "K=V\nX=Y",
                           12345,   3,       7,      {0}};
    zp_vjournal_job_t b = {longid, "", "", "", 0, 0, 0, {0}};
    uint8_t big[256];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(255 - i);
    const uint8_t *data[] = {(const uint8_t *)"a\0b", (const uint8_t *)"\n\n",
                             (const uint8_t *)"", big};
    const uint32_t lens[] = {3, 2, 0, (uint32_t)big_len};
    const zp_vjournal_seq_t seqs[] = {{1, 0, 4}, {2, 4, 0}};
    const uint64_t ids[] = {0, 1, UINT64_MAX};
    int rc = 0;
    rc |= zp_vjournal_job(j, &a) | s_on_open(exp, &a, &why);
    s_mark(j, exp, m);
    rc |= zp_vjournal_job(j, &b) | s_on_open(exp, &b, &why);
    s_mark(j, exp, m);
    rc |= zp_vjournal_tasks(j, "job-1", 1, 0, 4, data, lens) |
          s_on_tasks(exp, "job-1", 1, 0, 4, data, lens, &why);
    s_mark(j, exp, m);
    rc |= zp_vjournal_tasks(j, "job-1", 0, 4, 0, NULL, NULL) |
          s_on_tasks(exp, "job-1", 0, 4, 0, NULL, NULL, &why);
    s_mark(j, exp, m);
    rc |= zp_vjournal_seqs(j, "job-1", seqs, 2) |
          s_on_seqs(exp, "job-1", seqs, 2, &why);
    s_mark(j, exp, m);
    rc |= zp_vjournal_seqs(j, longid, NULL, 0) |
          s_on_seqs(exp, longid, NULL, 0, &why);
    s_mark(j, exp, m);
    rc |= zp_vjournal_close(j, "job-1", 4) | s_on_close(exp, "job-1", 4, &why);
    s_mark(j, exp, m);
    rc |= zp_vjournal_committed(j, "job-1", ids, 3) |
          s_on_committed(exp, "job-1", ids, 3, &why);
    s_mark(j, exp, m);
    rc |= zp_vjournal_committed(j, "job-1", NULL, 0) |
          s_on_committed(exp, "job-1", NULL, 0, &why);
    s_mark(j, exp, m);
    rc |= zp_vjournal_finished(j, "job-1", "tok-A", 4, 1700000000000000u) |
          s_on_finished(exp, "job-1", "tok-A", 4, 1700000000000000u, &why);
    s_mark(j, exp, m);
    return rc;
}

/* A journal at t->path holding the sample, synced and closed. */
static inline int s_sample_file(s_tmp_t *t, s_rec_t *exp, s_marks_t *m,
                                size_t big_len)
{
    char err[256];
    zp_vjournal_t *j =
        zp_vjournal_open(t->path, NULL, NULL, NULL, err, sizeof err);
    if (!j)
        return -1;
    int rc = s_sample(j, exp, m, big_len) | zp_vjournal_sync(j);
    zp_vjournal_destroy(&j);
    return rc;
}

/* Opens path and closes it again; the records replayed, or -1 (err). */
static inline long s_replay(const char *path, s_rec_t *rec,
                            zp_vjournal_info_t *info, char *err, size_t errlen)
{
    zp_vjournal_t *j =
        zp_vjournal_open(path, &s_visitor, rec, info, err, errlen);
    if (!j)
        return -1;
    zp_vjournal_destroy(&j);
    return (long)info->records;
}

#endif
