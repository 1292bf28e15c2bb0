/* vent_journal_replay: reading the ventilator's journal back. Records are
 * streamed through a window of the file (about a chunk, or the longest
 * record, in memory), each checked and handed to the visitor; a record
 * that fails is judged a torn tail (cut) or damage (the open stops). */
#define _GNU_SOURCE
#include "vent_journal_int.h"
#include "zp_crc32c.h"
#include "zp_journal.h"
#include "zp_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define S_CHUNK (1u << 20)

/* How a record's decoding ended. */
enum { S_OK = 0, S_BAD = -1, S_UNKNOWN = -2, S_REFUSED = -3, S_NOMEM = -4 };

static const char *const s_names[] = {
    [ZP_VJ_JOB] = "job",
    [ZP_VJ_TASKS] = "tasks",
    [ZP_VJ_SEQS] = "seqs",
    [ZP_VJ_CLOSE] = "close",
    [ZP_VJ_COMMITTED] = "committed",
    [ZP_VJ_FINISHED] = "finished",
};

static const zp_vjournal_visitor_t s_none;

typedef struct {
    int fd;
    const char *path;
    uint64_t size;
    zp_buf_t win; /* the file's bytes [win_off, win_off + win.len) */
    uint64_t win_off;
    zp_buf_t strs; /* the current record's strings, NUL-terminated */
    zp_buf_t arr;  /* the current record's arrays */
    const zp_vjournal_visitor_t *v;
    void *ctx;
    const char *why; /* the visitor's reason for refusing */
    zp_vjournal_info_t *info;
    char *err;
    size_t errlen;
} s_reader_t;

/* A record body being decoded; bad says why it is malformed. */
typedef struct {
    const uint8_t *p, *end;
    const char *bad;
} s_cur_t;

static uint32_t s_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* The file's bytes [off, off + need), need <= size - off, or NULL with
 * errno. The window only moves forward: bytes before off are dropped, and
 * it reads a chunk ahead so small records cost no system call each. */
static const uint8_t *s_at(s_reader_t *r, uint64_t off, size_t need)
{
    uint64_t have = r->win_off + r->win.len;
    if (off >= r->win_off && off + need <= have)
        return (const uint8_t *)r->win.data + (off - r->win_off);
    size_t keep = 0;
    if (off >= r->win_off && off < have) {
        keep = (size_t)(have - off);
        memmove(r->win.data, r->win.data + (off - r->win_off), keep);
    }
    r->win.len = keep;
    r->win_off = off;
    uint64_t want = need > S_CHUNK ? need : S_CHUNK;
    if (want > r->size - off)
        want = r->size - off;
    if (zp_buf_reserve(&r->win, (size_t)want - keep) < 0) {
        errno = ENOMEM;
        return NULL;
    }
    while (r->win.len < want) {
        ssize_t n = pread(r->fd, r->win.data + r->win.len,
                          (size_t)want - r->win.len, (off_t)(off + r->win.len));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* the file shrank under us */
            return NULL;
        }
        r->win.len += (size_t)n;
    }
    return (const uint8_t *)r->win.data;
}

/* ---- decoding one record -------------------------------------------- */

static uint32_t s_u32(s_cur_t *c)
{
    if (c->bad || c->end - c->p < 4) {
        if (!c->bad)
            c->bad = "it ends early";
        return 0;
    }
    uint32_t v = s_le32(c->p);
    c->p += 4;
    return v;
}

static uint64_t s_u64(s_cur_t *c)
{
    uint64_t lo = s_u32(c);
    return lo | (uint64_t)s_u32(c) << 32;
}

/* A string, copied NUL-terminated into r->strs (reserved to hold every
 * string of the record, so earlier ones stay put). */
static const char *s_str(s_reader_t *r, s_cur_t *c)
{
    uint32_t n = s_u32(c);
    if (c->bad)
        return "";
    if (n > (size_t)(c->end - c->p)) {
        c->bad = "a string runs past its end";
        return "";
    }
    if (memchr(c->p, 0, n)) {
        c->bad = "a NUL inside a string";
        return "";
    }
    char *s = r->strs.data + r->strs.len;
    memcpy(s, c->p, n);
    s[n] = '\0';
    r->strs.len += n + 1;
    c->p += n;
    return s;
}

static const char *s_job(s_reader_t *r, s_cur_t *c)
{
    const char *job = s_str(r, c);
    if (!c->bad && !zp_job_id_valid(job))
        c->bad = "an invalid job id";
    return job;
}

/* Ends decoding: every byte used, nothing malformed. */
static bool s_whole(s_cur_t *c)
{
    if (!c->bad && c->p != c->end)
        c->bad = "bytes left over";
    return !c->bad;
}

static int s_called(int rc)
{
    return rc == 0 ? S_OK : S_REFUSED;
}

static int s_job_rec(s_reader_t *r, s_cur_t *c)
{
    zp_vjournal_job_t job;
    job.id = s_job(r, c);
    job.token = s_str(r, c);
    job.plugin = s_str(r, c);
    job.config = s_str(r, c);
    job.deadline_ms = s_u64(c);
    job.max_attempts = s_u32(c);
    job.priority = s_u32(c);
    memset(job.key, 0, sizeof job.key);
    if (!c->bad && (size_t)(c->end - c->p) == sizeof job.key) {
        memcpy(job.key, c->p, sizeof job.key); /* absent before keys */
        c->p += sizeof job.key;
    }
    if (!s_whole(c))
        return S_BAD;
    return r->v->on_open ? s_called(r->v->on_open(r->ctx, &job, &r->why))
                         : S_OK;
}

static int s_tasks_rec(s_reader_t *r, s_cur_t *c)
{
    const char *job = s_job(r, c);
    uint64_t seq = s_u64(c);
    uint64_t first = s_u64(c);
    uint32_t n = s_u32(c);
    if (!c->bad && n > (size_t)(c->end - c->p) / 4)
        c->bad = "more tasks than bytes";
    if (c->bad)
        return S_BAD;
    const uint8_t **data;
    if (zp_buf_reserve(&r->arr, (size_t)n * (sizeof *data + 4) + 8) < 0)
        return S_NOMEM;
    data = (const uint8_t **)(void *)r->arr.data;
    uint32_t *lens = (uint32_t *)(void *)(r->arr.data + n * sizeof *data);
    for (uint32_t i = 0; i < n && !c->bad; i++) {
        lens[i] = s_u32(c);
        if (!c->bad && lens[i] > (size_t)(c->end - c->p))
            c->bad = "a task runs past its end";
        data[i] = c->p;
        c->p += c->bad ? 0 : lens[i];
    }
    if (!s_whole(c))
        return S_BAD;
    return r->v->on_tasks ? s_called(r->v->on_tasks(r->ctx, job, seq, first, n,
                                                    data, lens, &r->why))
                          : S_OK;
}

static int s_seqs_rec(s_reader_t *r, s_cur_t *c)
{
    const char *job = s_job(r, c);
    uint32_t n = s_u32(c);
    if (!c->bad && (uint64_t)n * 20 != (uint64_t)(c->end - c->p))
        c->bad = "its count does not match its length";
    if (c->bad)
        return S_BAD;
    zp_vjournal_seq_t *seqs;
    if (zp_buf_reserve(&r->arr, (size_t)n * sizeof *seqs + 8) < 0)
        return S_NOMEM;
    seqs = (zp_vjournal_seq_t *)(void *)r->arr.data;
    for (uint32_t i = 0; i < n; i++) {
        seqs[i].seq = s_u64(c);
        seqs[i].first = s_u64(c);
        seqs[i].n = s_u32(c);
    }
    if (!s_whole(c))
        return S_BAD;
    return r->v->on_seqs
               ? s_called(r->v->on_seqs(r->ctx, job, seqs, n, &r->why))
               : S_OK;
}

static int s_close_rec(s_reader_t *r, s_cur_t *c)
{
    const char *job = s_job(r, c);
    uint64_t total = s_u64(c);
    if (!s_whole(c))
        return S_BAD;
    return r->v->on_close
               ? s_called(r->v->on_close(r->ctx, job, total, &r->why))
               : S_OK;
}

static int s_committed_rec(s_reader_t *r, s_cur_t *c)
{
    const char *job = s_job(r, c);
    uint32_t n = s_u32(c);
    if (!c->bad && (uint64_t)n * 8 != (uint64_t)(c->end - c->p))
        c->bad = "its count does not match its length";
    if (c->bad)
        return S_BAD;
    uint64_t *ids;
    if (zp_buf_reserve(&r->arr, (size_t)n * sizeof *ids + 8) < 0)
        return S_NOMEM;
    ids = (uint64_t *)(void *)r->arr.data;
    for (uint32_t i = 0; i < n; i++)
        ids[i] = s_u64(c);
    if (!s_whole(c))
        return S_BAD;
    return r->v->on_committed
               ? s_called(r->v->on_committed(r->ctx, job, ids, n, &r->why))
               : S_OK;
}

static int s_finished_rec(s_reader_t *r, s_cur_t *c)
{
    const char *job = s_job(r, c);
    const char *token = s_str(r, c);
    uint64_t total = s_u64(c);
    uint64_t when_us = s_u64(c);
    if (!s_whole(c))
        return S_BAD;
    return r->v->on_finished ? s_called(r->v->on_finished(
                                   r->ctx, job, token, total, when_us, &r->why))
                             : S_OK;
}

/* Decodes the body (its checksum already good) and hands it on. */
static int s_record(s_reader_t *r, const uint8_t *body, uint32_t len,
                    s_cur_t *c)
{
    *c = (s_cur_t){body + 1, body + len, NULL};
    r->strs.len = 0;
    if (zp_buf_reserve(&r->strs, (size_t)len + 1) < 0)
        return S_NOMEM;
    r->why = NULL;
    switch (body[0]) {
    case ZP_VJ_JOB:
        return s_job_rec(r, c);
    case ZP_VJ_TASKS:
        return s_tasks_rec(r, c);
    case ZP_VJ_SEQS:
        return s_seqs_rec(r, c);
    case ZP_VJ_CLOSE:
        return s_close_rec(r, c);
    case ZP_VJ_COMMITTED:
        return s_committed_rec(r, c);
    case ZP_VJ_FINISHED:
        return s_finished_rec(r, c);
    default:
        return S_UNKNOWN;
    }
}

/* ---- verdicts ------------------------------------------------------- */

static int s_io(s_reader_t *r)
{
    snprintf(r->err, r->errlen, "%s: %s", r->path,
             errno == ENOMEM ? "out of memory" : strerror(errno));
    return -1;
}

static int s_damaged(s_reader_t *r, uint64_t off, const char *reason)
{
    snprintf(r->err, r->errlen, "%s: damaged record at offset %llu (%s)",
             r->path, (unsigned long long)off, reason);
    return -1;
}

/* The file is whole up to off; the rest is a torn tail to cut. */
static int s_torn(s_reader_t *r, uint64_t off, uint64_t *end)
{
    r->info->torn = r->size - off;
    *end = off;
    return ZP_VJ_RECORDS;
}

/* 1 if the file's bytes from on are all zero (or there are none). */
static int s_all_zero(s_reader_t *r, uint64_t from)
{
    while (from < r->size) {
        size_t n =
            r->size - from < S_CHUNK ? (size_t)(r->size - from) : S_CHUNK;
        const uint8_t *p = s_at(r, from, n);
        if (!p)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (p[i])
                return 0;
        from += n;
    }
    return 1;
}

/* A record at off failed (reason) and its bytes end at upto. A power loss
 * can leave zeros where unsynced appends were meant to be: when only
 * zeros follow, it is a torn tail; anything else after it is damage. */
static int s_unless_zeros(s_reader_t *r, uint64_t off, uint64_t upto,
                          const char *reason, uint64_t *end)
{
    int zero = s_all_zero(r, upto);
    if (zero < 0)
        return s_io(r);
    return zero ? s_torn(r, off, end) : s_damaged(r, off, reason);
}

/* Where a whole, valid record starts after from: 1 and *at, 0 if none,
 * -1 on a read error. A record's length is outside its checksum, so a
 * length that runs past the end of the file is a torn write only when
 * no valid record follows; otherwise it was damaged in place. */
static int s_resync(s_reader_t *r, uint64_t from, uint64_t *at)
{
    for (uint64_t p = from; p + 9 <= r->size; p++) {
        const uint8_t *h = s_at(r, p, 9);
        if (!h)
            return -1;
        uint32_t len = s_le32(h);
        if (len == 0 || len > r->size - p - 8 || h[8] < ZP_VJ_JOB ||
            h[8] > ZP_VJ_FINISHED)
            continue;
        uint32_t crc = s_le32(h + 4);
        const uint8_t *b = s_at(r, p, 8 + (size_t)len);
        if (!b)
            return -1;
        if (zp_crc32c(0, b + 8, len) == crc) {
            *at = p;
            return 1;
        }
    }
    return 0;
}

static int s_past_end(s_reader_t *r, uint64_t off, uint32_t len, uint64_t *end)
{
    uint64_t at;
    int found = s_resync(r, off + 1, &at);
    if (found < 0)
        return s_io(r);
    if (!found)
        return s_torn(r, off, end);
    char reason[128];
    snprintf(reason, sizeof reason,
             "length %u runs past the end of the file, yet a whole record "
             "follows at offset %llu",
             len, (unsigned long long)at);
    return s_damaged(r, off, reason);
}

/* A record whose checksum holds and which is still refused. */
static int s_refused(s_reader_t *r, uint64_t off, int rc, unsigned type,
                     const s_cur_t *c)
{
    char reason[160];
    switch (rc) {
    case S_NOMEM:
        errno = ENOMEM;
        return s_io(r);
    case S_REFUSED:
        snprintf(r->err, r->errlen, "%s: replay stopped at offset %llu: %s",
                 r->path, (unsigned long long)off,
                 r->why ? r->why : "refused by the caller");
        return -1;
    case S_UNKNOWN:
        snprintf(reason, sizeof reason, "unknown record type %u", type);
        return s_damaged(r, off, reason);
    default:
        snprintf(reason, sizeof reason, "malformed %s record: %s",
                 s_names[type], c->bad);
        return s_damaged(r, off, reason);
    }
}

/* Replays every record after the header; see zp_vj_replay. */
static int s_records(s_reader_t *r, uint64_t *end)
{
    uint64_t off = ZP_VJ_HEADER_LEN;
    while (off < r->size) {
        uint64_t rest = r->size - off;
        if (rest < 8)
            return s_torn(r, off, end);
        const uint8_t *h = s_at(r, off, 8);
        if (!h)
            return s_io(r);
        uint32_t len = s_le32(h), crc = s_le32(h + 4);
        if (len == 0)
            return s_unless_zeros(r, off, off, "length 0", end);
        if (8 + (uint64_t)len > rest)
            return s_past_end(r, off, len, end);
        if (len > ZP_VJ_MAX_RECORD)
            return s_damaged(r, off, "length over the 1 GiB limit");
        const uint8_t *b = s_at(r, off, 8 + (size_t)len);
        if (!b)
            return s_io(r);
        if (zp_crc32c(0, b + 8, len) != crc)
            return s_unless_zeros(r, off, off + 8 + len, "checksum mismatch",
                                  end);
        s_cur_t c;
        int rc = s_record(r, b + 8, len, &c);
        if (rc != S_OK)
            return s_refused(r, off, rc, b[8], &c);
        r->info->records++;
        off += 8 + (uint64_t)len;
    }
    *end = off;
    return ZP_VJ_RECORDS;
}

/* The header, or a torn one (a crash while the file was being created:
 * a prefix of it and nothing else). */
static int s_header(s_reader_t *r)
{
    size_t n = r->size < ZP_VJ_HEADER_LEN ? (size_t)r->size : ZP_VJ_HEADER_LEN;
    const uint8_t *h = s_at(r, 0, n);
    if (!h)
        return s_io(r);
    if (memcmp(h, ZP_VJ_HEADER, n) != 0) {
        snprintf(r->err, r->errlen,
                 "%s: not a zpipe ventilator journal (it does not start "
                 "with \"zpipe-vjournal 1\")",
                 r->path);
        return -1;
    }
    if (n < ZP_VJ_HEADER_LEN) {
        r->info->torn = n;
        return ZP_VJ_EMPTY;
    }
    return ZP_VJ_RECORDS;
}

int zp_vj_replay(int fd, const char *path, uint64_t size,
                 const zp_vjournal_visitor_t *visitor, void *ctx,
                 zp_vjournal_info_t *info, uint64_t *end, char *err,
                 size_t errlen)
{
    if (size == 0)
        return ZP_VJ_EMPTY;
    s_reader_t r = {.fd = fd,
                    .path = path,
                    .size = size,
                    .v = visitor ? visitor : &s_none,
                    .ctx = ctx,
                    .info = info,
                    .err = err,
                    .errlen = errlen};
    int rc = s_header(&r);
    if (rc == ZP_VJ_RECORDS)
        rc = s_records(&r, end);
    zp_buf_free(&r.win);
    zp_buf_free(&r.strs);
    zp_buf_free(&r.arr);
    return rc;
}
