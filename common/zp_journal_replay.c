/* zp_journal_replay: reading the sink's journal back (the format and the
 * promises are in zp_journal.h): each line checked (version 3: its
 * chained checksum) and handed to the visitor; an incomplete last line
 * is a torn write (cut), a complete line that fails is damage (the open
 * stops, naming the file and offset). */
#define _GNU_SOURCE
#include "zp_journal_int.h"
#include "zp_log.h"
#include "zp_name.h"
#include "zp_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool zp_job_id_valid(const char *s)
{
    return s && zp_name_valid(s, strnlen(s, 129), 128, "_.:-");
}

/* Splits line (without newline) into up to max space-separated fields;
 * returns the count, or -1 when there are more. Modifies line. */
static int s_fields(char *line, char **out, int max)
{
    int n = 0;
    char *p = line;
    while (*p) {
        if (n == max)
            return -1;
        out[n++] = p;
        char *sp = strchr(p, ' ');
        if (!sp)
            break;
        *sp = '\0';
        p = sp + 1;
        if (!*p)
            return -1; /* trailing space */
    }
    return n;
}

static bool s_num(const char *s, uint64_t *v)
{
    return zp_parse_u64(s, 0, UINT64_MAX, v) == 0;
}

/* Exactly n lowercase hex digits at s. */
static bool s_hexn(const char *s, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        int c = s[i], d = c >= '0' && c <= '9'   ? c - '0'
                          : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                 : -1;
        if (d < 0)
            return false;
        x = x << 4 | (uint64_t)d;
    }
    *v = x;
    return true;
}

static bool s_hex64(const char *s, uint64_t *v)
{
    return strlen(s) == 16 && s_hexn(s, 16, v);
}

/* Parses n numbers from f into v; false if one is not a number. */
static bool s_nums(char **f, int n, uint64_t *v)
{
    for (int i = 0; i < n; i++)
        if (!s_num(f[i], &v[i]))
            return false;
    return true;
}

#define S_CALL(v, cb, ...)                                                     \
    do {                                                                       \
        if ((v) && (v)->cb)                                                    \
            (v)->cb(__VA_ARGS__);                                              \
    } while (0)

/* The snapshot's lines (a compacted journal); false if f is none. */
static bool s_snapshot_event(char **f, int n, const zp_journal_visitor_t *vis,
                             void *ctx)
{
    uint64_t v[8], v9[9];
    char c = f[0][0];
    if (f[0][1])
        return false;
    if (c == 'W' && n == 2 && s_num(f[1], &v[0])) {
        S_CALL(vis, on_offset, ctx, v[0]);
    } else if (c == 'F' && n == 7 && s_hex64(f[1], &v[0]) &&
               s_hex64(f[2], &v[1]) && s_nums(f + 3, 4, v + 2) &&
               v[5] <= UINT32_MAX) {
        zp_journal_forgotten_t fj = {v[0], v[1], v[2],
                                     v[3], v[4], (uint32_t)v[5]};
        S_CALL(vis, on_forgotten, ctx, &fj);
    } else if (c == 'D' && (n == 11 || n == 12) && zp_job_id_valid(f[1]) &&
               s_nums(f + 2, 9, v9) && v9[0] <= UINT32_MAX &&
               v9[8] <= UINT32_MAX && (n == 11 || zp_job_id_valid(f[11]))) {
        zp_journal_summary_t sm = {(uint32_t)v9[0], v9[1], v9[2],
                                   v9[3],           v9[4], v9[5],
                                   v9[6],           v9[7], (uint32_t)v9[8]};
        S_CALL(vis, on_done, ctx, f[1], n == 12 ? f[11] : "", &sm);
    } else if (c == 'S' && n == 6 && zp_job_id_valid(f[1]) &&
               s_nums(f + 2, 4, v)) {
        zp_journal_summary_t sm = {.succeeded = v[0],
                                   .failed = v[1],
                                   .duplicates = v[2],
                                   .retries = v[3]};
        S_CALL(vis, on_counts, ctx, f[1], &sm);
    } else if (c == 'P' && n == 4 && zp_job_id_valid(f[1]) &&
               s_num(f[2], &v[0]) && strlen(f[3]) == 8 &&
               s_hexn(f[3], 8, &v[1])) {
        S_CALL(vis, on_spool, ctx, f[1], v[0], (uint32_t)v[1]);
    } else if (c == 'H' && n == 4 && zp_job_id_valid(f[1]) &&
               s_nums(f + 2, 2, v) && v[1] > 0 && v[0] + v[1] > v[0]) {
        S_CALL(vis, on_have, ctx, f[1], v[0], v[1]);
    } else {
        return false;
    }
    return true;
}

/* Whether s is a dispatch key: 32 lowercase hex digits. */
static bool s_key_hex(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");
    return n == 32 && s[n] == '\0';
}

/* One line's event, passed to the visitor; false if it is malformed. */
static bool s_event(char **f, int n, const zp_journal_visitor_t *vis, void *ctx)
{
    uint64_t a, b;
    if (n < 2 || !f[0][0])
        return false;
    if ((n == 3 || n == 4) && !strcmp(f[0], "O") && zp_job_id_valid(f[1]) &&
        s_num(f[2], &a) && a <= UINT32_MAX &&
        (n == 3 || zp_job_id_valid(f[3]))) {
        S_CALL(vis, on_open, ctx, f[1], (uint32_t)a, n == 4 ? f[3] : "");
    } else if (n == 3 && !strcmp(f[0], "K") && zp_job_id_valid(f[1]) &&
               s_key_hex(f[2])) {
        S_CALL(vis, on_key, ctx, f[1], f[2]);
    } else if (n == 3 && !strcmp(f[0], "C") && zp_job_id_valid(f[1]) &&
               s_num(f[2], &a)) {
        S_CALL(vis, on_close, ctx, f[1], a);
    } else if (n == 5 && !strcmp(f[0], "R") && zp_job_id_valid(f[1]) &&
               s_num(f[2], &a) &&
               (!strcmp(f[3], "ok") || !strcmp(f[3], "failed")) &&
               s_num(f[4], &b)) {
        S_CALL(vis, on_record, ctx, f[1], a, f[3][0] == 'o', b);
    } else {
        return s_snapshot_event(f, n, vis, ctx);
    }
    return true;
}

/* The decimal number at *s, up to a byte not a digit (at least one
 * digit, no overflow); *s is moved past it. */
static bool s_digits(const char **s, uint64_t *v)
{
    const char *p = *s;
    uint64_t x = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    if (p == *s)
        return false;
    *s = p;
    *v = x;
    return true;
}

/* One record of an M line. */
typedef struct {
    uint64_t task, offset;
    bool ok;
} s_rec_t;

/* An M line (version 4): a job's records, the first as an R line has it,
 * each after it <task delta>:<offset delta>[f] from the one before it
 * (the task's delta signed, 'f' for failed). Every record is read and
 * checked before any is passed on. Returns how many, or -1 when the line
 * is malformed. */
static long s_run(char *line, const zp_journal_visitor_t *vis, void *ctx)
{
    char *f[ZP_JOURNAL_LINE_MAX / 2];
    static _Thread_local s_rec_t recs[ZP_JOURNAL_LINE_MAX / 2];
    int n = s_fields(line, f, (int)(sizeof f / sizeof *f));
    if (n < 5 || strcmp(f[0], "M") != 0 || !zp_job_id_valid(f[1]) ||
        !s_num(f[2], &recs[0].task) ||
        (strcmp(f[3], "ok") != 0 && strcmp(f[3], "failed") != 0) ||
        !s_num(f[4], &recs[0].offset))
        return -1;
    recs[0].ok = f[3][0] == 'o';
    size_t k = 1;
    for (int i = 5; i < n; i++, k++) {
        const char *p = f[i];
        bool back = *p == '-';
        uint64_t dt, doff;
        p += back;
        if (!s_digits(&p, &dt) || *p++ != ':' || !s_digits(&p, &doff))
            return -1;
        recs[k].ok = *p != 'f';
        p += !recs[k].ok;
        const s_rec_t *prev = &recs[k - 1];
        if (*p || (back ? dt > prev->task : dt > UINT64_MAX - prev->task) ||
            doff > UINT64_MAX - prev->offset)
            return -1;
        recs[k].task = back ? prev->task - dt : prev->task + dt;
        recs[k].offset = prev->offset + doff;
    }
    for (size_t i = 0; i < k; i++)
        S_CALL(vis, on_record, ctx, f[1], recs[i].task, recs[i].ok,
               recs[i].offset);
    return (long)k;
}

/* The header's length, -1 if data has none, ZP_JOURNAL_NEWER for a
 * version past this build's. */
static long s_header(const char *data, size_t len)
{
    static const char magic[] = "zpipe-journal ";
    size_t ml = sizeof magic - 1;
    if (len < ml + 2 || memcmp(data, magic, ml) != 0)
        return -1;
    const char *nl = memchr(data + ml, '\n', len - ml < 12 ? len - ml : 12);
    if (!nl || nl == data + ml)
        return -1;
    char num[12] = {0};
    memcpy(num, data + ml, (size_t)(nl - data) - ml);
    uint64_t version;
    if (!s_num(num, &version) || version == 0)
        return -1;
    if (version > ZP_JOURNAL_VERSION)
        return ZP_JOURNAL_NEWER;
    return nl - data + 1;
}

/* A version 3 line's body length, or -1 when its trailer is not the
 * checksum of its body chained from *chain (which it then becomes). */
static long s_checked(const char *line, size_t ll, uint32_t *chain)
{
    uint64_t want;
    if (ll <= ZP_JOURNAL_TRAILER || line[ll - ZP_JOURNAL_TRAILER] != ' ' ||
        !s_hexn(line + ll - 8, 8, &want))
        return -1;
    uint32_t crc = zp_crc32c(*chain, line, ll - ZP_JOURNAL_TRAILER);
    if (crc != (uint32_t)want)
        return -1;
    *chain = crc;
    return (long)(ll - ZP_JOURNAL_TRAILER);
}

/* Whether an unterminated last line (n bytes at p) holds a whole line
 * checksummed from chain with bytes after it: a line that lost its
 * newline in place (merged with what followed), not one torn by a crash
 * (which leaves a prefix of a line, or a whole line short of its
 * newline only). */
static bool s_lost_newline(const char *p, size_t n, uint32_t chain)
{
    uint32_t crc = chain;
    size_t done = 0;
    for (size_t k = 1; k + ZP_JOURNAL_TRAILER < n; k++) {
        uint64_t want;
        if (p[k] != ' ' || !s_hexn(p + k + 1, 8, &want))
            continue;
        crc = zp_crc32c(crc, p + done, k - done);
        done = k;
        if (crc == (uint32_t)want)
            return true;
    }
    return false;
}

/* Whether the first line after an older version's header (n bytes at p)
 * carries a version 3 or 4 checksum: the header's version was changed. */
static bool s_checked_header(const char *p, size_t n)
{
    const char *nl = memchr(p, '\n', n);
    uint32_t v3 = ZP_JOURNAL_CHAIN0_V3, v4 = ZP_JOURNAL_CHAIN0;
    return nl && (size_t)(nl - p) < ZP_JOURNAL_LINE_MAX &&
           (s_checked(p, (size_t)(nl - p), &v3) >= 0 ||
            s_checked(p, (size_t)(nl - p), &v4) >= 0);
}

/* What a replay found besides its events. */
typedef struct {
    size_t valid;     /* the whole, valid lines' length (header included) */
    uint32_t chain;   /* the last valid line's checksum (version 3 on) */
    unsigned version; /* its header's */
    const char *why;  /* a damaged line at `valid`: what is wrong with it */
} s_replayed_t;

/* One complete line (ll bytes, no newline) at pos: its events handed on
 * (*events: how many), or the reason it is damaged. */
static const char *s_line(const char *data, size_t ll, uint64_t version,
                          const zp_journal_visitor_t *visitor, void *ctx,
                          uint32_t *chain, long *events)
{
    char line[ZP_JOURNAL_LINE_MAX];
    if (ll == 0)
        return "an empty line";
    if (ll >= sizeof line)
        return "a line too long";
    memcpy(line, data, ll);
    line[ll] = '\0';
    if (memchr(line, '\0', ll))
        return "NUL bytes in a line";
    if (version >= 3) {
        long bl = s_checked(line, ll, chain);
        if (bl < 0)
            return "its checksum does not match";
        line[bl] = '\0';
    }
    *events = 1;
    if (version >= 4 && line[0] == 'M') {
        *events = s_run(line, visitor, ctx);
        return *events < 0 ? "a malformed line" : NULL;
    }
    char *f[12];
    int n = s_fields(line, f, 12);
    if (!s_event(f, n, visitor, ctx))
        return "a malformed line";
    return NULL;
}

/* Replays the lines after the header (hl bytes) until the end, a torn
 * last line (no newline: cut) or a damaged one (complete, and malformed
 * or failing its checksum: a crash never leaves one, as lines are
 * appended in order, so it was changed in place). */
static long s_replay(const char *data, size_t len, long hl,
                     const zp_journal_visitor_t *visitor, void *ctx,
                     s_replayed_t *res)
{
    *res = (s_replayed_t){.chain = ZP_JOURNAL_CHAIN0};
    uint64_t version = 0;
    for (const char *p = data + 14; *p != '\n'; p++) {
        if (*p < '0' || *p > '9')
            return -1; /* a NUL or sign s_header's parse let through */
        version = version * 10 + (uint64_t)(*p - '0');
    }
    res->valid = (size_t)hl;
    res->version = (unsigned)version;
    const char *canon = version == 3 ? ZP_JOURNAL_HEADER_V3 : ZP_JOURNAL_HEADER;
    if (version >= 3 && memcmp(data, canon, strlen(canon)) != 0)
        return -1; /* "zpipe-journal 03" */
    if (version == 3)
        res->chain = ZP_JOURNAL_CHAIN0_V3;
    size_t pos = (size_t)hl;
    if (version < 3 && s_checked_header(data + pos, len - pos)) {
        res->valid = 0;
        res->why = "its header says an older version, its lines carry "
                   "checksums";
        return 0;
    }
    long events = 0;
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        if (!nl) {
            if (version >= 3 &&
                s_lost_newline(data + pos, len - pos, res->chain))
                res->why = "a whole line without its newline, with more "
                           "after it";
            break; /* else a torn last line */
        }
        size_t ll = (size_t)(nl - (data + pos));
        if (visitor && visitor->line_at)
            *visitor->line_at = pos;
        long got = 0;
        res->why =
            s_line(data + pos, ll, version, visitor, ctx, &res->chain, &got);
        if (res->why)
            break;
        events += got;
        pos += ll + 1;
        res->valid = pos;
    }
    return events;
}

long zp_journal_replay(const char *data, size_t len,
                       const zp_journal_visitor_t *visitor, void *ctx,
                       size_t *valid_len)
{
    *valid_len = 0;
    long hl = s_header(data, len);
    if (hl < 0)
        return hl;
    s_replayed_t res;
    long events = s_replay(data, len, hl, visitor, ctx, &res);
    *valid_len = res.valid;
    return res.why ? ZP_JOURNAL_DAMAGED : events;
}

long zp_journal_read_file(int fd, const char *path, size_t size,
                          const zp_journal_visitor_t *visitor, void *ctx,
                          uint32_t *chain, unsigned *version, char *err,
                          size_t errlen)
{
    zp_buf_t old = {0};
    if (zp_buf_reserve(&old, size) < 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    ssize_t got = pread(fd, old.data, size, 0);
    if (got != (ssize_t)size) {
        snprintf(err, errlen, "%s: short read", path);
        zp_buf_free(&old);
        return -1;
    }
    old.len = size;
    long events = s_header(old.data, old.len);
    s_replayed_t res = {0};
    if (events >= 0)
        events = s_replay(old.data, old.len, events, visitor, ctx, &res);
    zp_buf_free(&old);
    if (events == ZP_JOURNAL_NEWER) {
        snprintf(err, errlen,
                 "%s: written by a newer zpipe (journal version > %d); "
                 "upgrade this sink",
                 path, ZP_JOURNAL_VERSION);
        return -1;
    }
    if (events < 0) {
        snprintf(err, errlen, "%s: not a zpipe journal (bad header)", path);
        errno = EBADMSG;
        return -1;
    }
    if (res.why) {
        errno = EBADMSG;
        snprintf(err, errlen,
                 "%s: damaged record at byte offset %zu (%s); nothing "
                 "was resumed. The records before it are "
                 "intact: to resume from them alone (the tasks after it run "
                 "again), cut the journal there: truncate -s %zu %s",
                 path, res.valid, res.why, res.valid, path);
        return -1;
    }
    if (res.valid < size) {
        zp_warn("journal %s: discarding a torn last record of %zu bytes at "
                "byte offset %zu",
                path, size - res.valid, res.valid);
        if (ftruncate(fd, (off_t)res.valid) < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
    }
    *chain = res.chain;
    *version = res.version;
    return (long)res.valid;
}
