/* libFuzzer target: recovery of a damaged sink journal or spool. An input
 * whose first byte is odd damages a spool (below); else the journal. A
 * valid journal
 * is built once with the real writer (three jobs, records, a compaction's
 * snapshot, appends after it); each input is an edit script (byte flips,
 * inserts, deletes, copies of a range elsewhere, a truncation) applied to
 * a copy, which is then replayed. Aborts unless:
 *   - every event replayed is the original's event at the same index (no
 *     record invented, repeated, moved or altered);
 *   - every event whose line ends before the first damaged byte (the
 *     common prefix of the original and the copy) is replayed, error or
 *     not (nothing before the damage dropped);
 *   - when the replay reports no error, what it leaves out is one
 *     unterminated last line (a torn write), nothing else.
 * When the header itself was changed, only freedom from crashes is
 * checked: a version digit made 1 or 2 (one bit flip from 3) is caught
 * while the first line is whole, but with more damage it reads as an
 * older journal, whose lines carry no checksums to tell. A checksum can
 * also be forged by chance (2^-32 per line) or by the fuzzer learning
 * one: such a crash would be a limit of any checksum, not a bug in the
 * replay.
 * A spool: 40 JSON Lines records written by the real spool set, and the
 * length and CRC-32C the journal's P line has for them; the edited file
 * is restored (zp_spools_restore, as a restarted sink does). Aborts
 * unless it is refused, or it keeps exactly the records written (never
 * a changed, lost, repeated or added byte served). */
#include "sink_spool.h"
#include "zp_journal.h"
#include "zp_log.h"

#include <fcntl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_MAX_EVENTS 256
#define S_EVENT_LEN  320

/* The original journal and its events, each with its line's end. */
static char *s_orig;
static size_t s_orig_len;
static char s_events[S_MAX_EVENTS][S_EVENT_LEN];
static size_t s_event_end[S_MAX_EVENTS];
static size_t s_n_events;

/* A replay's events as they come: recorded (building the original) or
 * checked against the original's, index by index. */
typedef struct {
    bool check;
    bool header_changed; /* the copy's header differs: events unchecked */
    size_t n;
    size_t line_at;
} s_run_t;

static void s_event(s_run_t *r, const char *text)
{
    if (r->n >= S_MAX_EVENTS)
        abort();
    if (!r->check) {
        snprintf(s_events[r->n], S_EVENT_LEN, "%s", text);
        const char *nl =
            memchr(s_orig + r->line_at, '\n', s_orig_len - r->line_at);
        s_event_end[r->n] = (size_t)(nl - s_orig) + 1;
    } else if (r->header_changed) {
        return;
    } else if (r->n >= s_n_events || strcmp(s_events[r->n], text) != 0) {
        fprintf(stderr, "event %zu replayed as \"%s\", was \"%s\"\n", r->n,
                text, r->n < s_n_events ? s_events[r->n] : "(none)");
        abort(); /* invented, repeated, moved or altered */
    }
    r->n++;
}

static void s_open(void *ctx, const char *job, uint32_t m, const char *token)
{
    char t[S_EVENT_LEN];
    snprintf(t, sizeof t, "O %s %u %s", job, m, token);
    s_event(ctx, t);
}
static void s_close(void *ctx, const char *job, uint64_t total)
{
    char t[S_EVENT_LEN];
    snprintf(t, sizeof t, "C %s %llu", job, (unsigned long long)total);
    s_event(ctx, t);
}
static void s_record(void *ctx, const char *job, uint64_t task, bool ok,
                     uint64_t offset)
{
    char t[S_EVENT_LEN];
    snprintf(t, sizeof t, "R %s %llu %d %llu", job, (unsigned long long)task,
             ok, (unsigned long long)offset);
    s_event(ctx, t);
}
static void s_offset(void *ctx, uint64_t offset)
{
    char t[S_EVENT_LEN];
    snprintf(t, sizeof t, "W %llu", (unsigned long long)offset);
    s_event(ctx, t);
}
static void s_forgotten(void *ctx, const zp_journal_forgotten_t *f)
{
    char t[S_EVENT_LEN];
    snprintf(t, sizeof t, "F %llx %llx %llu %llu %llu %u",
             (unsigned long long)f->id_hash, (unsigned long long)f->token_hash,
             (unsigned long long)f->total, (unsigned long long)f->succeeded,
             (unsigned long long)f->spooled, f->flags);
    s_event(ctx, t);
}
static void s_summary(void *ctx, char c, const char *job, const char *token,
                      const zp_journal_summary_t *m)
{
    char t[S_EVENT_LEN];
    snprintf(t, sizeof t, "%c %s %s %u %llu %llu %llu %llu %llu %llu %llu %u",
             c, job, token, m->max_attempts, (unsigned long long)m->total,
             (unsigned long long)m->succeeded, (unsigned long long)m->failed,
             (unsigned long long)m->duplicates, (unsigned long long)m->retries,
             (unsigned long long)m->first_us, (unsigned long long)m->last_us,
             m->flags);
    s_event(ctx, t);
}
static void s_done(void *ctx, const char *job, const char *token,
                   const zp_journal_summary_t *m)
{
    s_summary(ctx, 'D', job, token, m);
}
static void s_counts(void *ctx, const char *job, const zp_journal_summary_t *m)
{
    s_summary(ctx, 'S', job, "", m);
}
static void s_have(void *ctx, const char *job, uint64_t first, uint64_t count)
{
    char t[S_EVENT_LEN];
    snprintf(t, sizeof t, "H %s %llu %llu", job, (unsigned long long)first,
             (unsigned long long)count);
    s_event(ctx, t);
}

/* The snapshot a compaction writes: one line of each kind. */
static int s_dump(void *ctx, zp_journal_t *out)
{
    (void)ctx;
    zp_journal_forgotten_t f = {0x0123456789abcdefull, 42, 7, 7, 700, 0};
    zp_journal_summary_t done = {3, 5, 4, 1, 0, 2, 1000, 2000, 1};
    zp_journal_summary_t live = {.succeeded = 20, .failed = 2};
    int rc = zp_journal_put_offset(out, 4096);
    rc |= zp_journal_put_forgotten(out, &f);
    rc |= zp_journal_put_done(out, "old", "tok-old", &done);
    rc |= zp_journal_open_job(out, "alpha", 3, "tok-a");
    rc |= zp_journal_put_counts(out, "alpha", &live);
    rc |= zp_journal_put_have(out, "alpha", 0, 18);
    rc |= zp_journal_put_have(out, "alpha", 19, 4);
    return rc;
}

/* Builds the original journal with the real writer, once. */
static void s_build(void)
{
    char path[] = "/tmp/zpipe-fuzz-recovery-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    close(fd);
    unlink(path);
    char err[512];
    zp_journal_t *j = zp_journal_open(path, NULL, NULL, err, sizeof err);
    if (!j)
        abort();
    uint64_t off = 0;
    zp_journal_open_job(j, "alpha", 3, "tok-a");
    for (uint64_t t = 0; t < 23; t++)
        if (t != 18)
            zp_journal_record(j, "alpha", t, t % 9 != 4, off += 100 + t);
    if (zp_journal_compact(j, s_dump, NULL) < 0)
        abort();
    zp_journal_open_job(j, "beta", 5, NULL);
    for (uint64_t t = 0; t < 12; t++) {
        zp_journal_record(j, "beta", t, true, off += 90);
        if (t % 4 == 0)
            zp_journal_record(j, "alpha", 23 + t, t != 8, off += 77);
    }
    zp_journal_close_job(j, "beta", 12);
    zp_journal_open_job(j, "gamma.1:x_y", 1, "t-g");
    zp_journal_record(j, "gamma.1:x_y", 0, false, off);
    zp_journal_close_job(j, "alpha", 40);
    zp_journal_destroy(&j);
    FILE *f = fopen(path, "rb");
    if (!f)
        abort();
    s_orig = malloc(1 << 16);
    s_orig_len = fread(s_orig, 1, 1 << 16, f);
    fclose(f);
    unlink(path);
    s_run_t r = {.check = false};
    zp_journal_visitor_t v = {
        .on_open = s_open,
        .on_close = s_close,
        .on_record = s_record,
        .on_offset = s_offset,
        .on_forgotten = s_forgotten,
        .on_done = s_done,
        .on_counts = s_counts,
        .on_have = s_have,
        .line_at = &r.line_at,
    };
    size_t valid;
    long n = zp_journal_replay(s_orig, s_orig_len, &v, &r, &valid);
    if (n < 25 || valid != s_orig_len || (size_t)n != r.n)
        abort();
    s_n_events = r.n;
}

static uint16_t s_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* Applies the edit script to buf (len bytes, room for cap). Each edit is
 * 6 bytes: op, position (2), argument, source (2). */
static size_t s_edit(char *buf, size_t len, size_t cap, const uint8_t *d,
                     size_t n)
{
    for (int e = 0; e < 12 && n >= 6; e++, d += 6, n -= 6) {
        size_t pos = s_u16(d + 1) % (len + 1), src = s_u16(d + 4) % (len + 1);
        size_t k = (size_t)d[3] % 64 + 1;
        switch (d[0] % 6) {
        case 0: /* flip some bits of a byte */
            if (pos < len)
                buf[pos] ^= (char)(d[3] ? d[3] : 1);
            break;
        case 1: /* set a byte */
            if (pos < len)
                buf[pos] = (char)d[3];
            break;
        case 2: /* delete k bytes */
            k = k > len - pos ? len - pos : k;
            memmove(buf + pos, buf + pos + k, len - pos - k);
            len -= k;
            break;
        case 3: /* insert a copy of k bytes from src */
            k = k > len - src ? len - src : k;
            if (len + k > cap)
                break;
            {
                char tmp[64];
                memcpy(tmp, buf + src, k);
                memmove(buf + pos + k, buf + pos, len - pos);
                memcpy(buf + pos, tmp, k);
                len += k;
            }
            break;
        case 4: /* insert the byte d[3] */
            if (len + 1 > cap)
                break;
            memmove(buf + pos + 1, buf + pos, len - pos);
            buf[pos] = (char)d[3];
            len++;
            break;
        default: /* a crash's torn tail */
            len = pos;
            break;
        }
    }
    return len;
}

/* ---- the spool ---- */

static char s_dir[] = "/tmp/zpipe-fuzz-spool-XXXXXX";
static char s_spool_path[64];
static char s_spool[8192];
static size_t s_spool_len;
static zp_spool_check_t s_check;
static int s_devnull = -1, s_stderr = -1;

static void s_build_spool(void)
{
    if (!mkdtemp(s_dir))
        abort();
    snprintf(s_spool_path, sizeof s_spool_path, "%s/j.jsonl", s_dir);
    zp_spools_t *set = zp_spools_new(s_dir, 4, false);
    zp_spool_t sp = {0};
    for (int r = 0; r < 40; r++) {
        char rec[128];
        int n = snprintf(rec, sizeof rec,
                         "{\"job\":\"j\",\"task\":%d,\"status\":\"ok\","
                         "\"output\":\"v%d\"}\n",
                         r, r * 7);
        if (zp_spools_append(set, &sp, "j", rec, (size_t)n) < 0)
            abort();
    }
    if (zp_spools_close(set, &sp) < 0)
        abort();
    s_check = (zp_spool_check_t){sp.len, sp.crc};
    zp_spools_destroy(&set);
    FILE *f = fopen(s_spool_path, "rb");
    s_spool_len = fread(s_spool, 1, sizeof s_spool, f);
    fclose(f);
    if (s_spool_len != s_check.len)
        abort();
    s_devnull = open("/dev/null", O_WRONLY);
    s_stderr = dup(2);
}

static size_t s_edit(char *buf, size_t len, size_t cap, const uint8_t *d,
                     size_t n);

static void s_fuzz_spool(const uint8_t *data, size_t size)
{
    if (s_devnull < 0)
        s_build_spool();
    char buf[sizeof s_spool + 1024];
    memcpy(buf, s_spool, s_spool_len);
    size_t len = s_edit(buf, s_spool_len, sizeof buf, data, size);
    int fd = open(s_spool_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
        abort();
    close(fd);
    zp_spools_t *set = zp_spools_new(s_dir, 4, false);
    zp_spool_t sp = {0};
    dup2(s_devnull, 2); /* its error lines, once per input */
    int rc = zp_spools_restore(set, &sp, "j", 40, &s_check);
    dup2(s_stderr, 2);
    zp_spools_destroy(&set);
    if (rc < 0)
        return; /* refused: nothing served */
    char now[sizeof buf];
    FILE *f = fopen(s_spool_path, "rb");
    size_t got = fread(now, 1, sizeof now, f);
    fclose(f);
    if (got != s_spool_len || sp.len != s_spool_len ||
        memcmp(now, s_spool, s_spool_len) != 0) {
        fprintf(stderr, "spool restored to %zu bytes, not the %zu written\n",
                got, s_spool_len);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size && (data[0] & 1)) {
        s_fuzz_spool(data + 1, size - 1);
        return 0;
    }
    if (!s_orig)
        s_build();
    size_t cap = s_orig_len + 1024;
    char *buf = malloc(cap);
    memcpy(buf, s_orig, s_orig_len);
    size_t len = s_edit(buf, s_orig_len, cap, data, size);
    size_t same = 0; /* the first damaged byte */
    while (same < len && same < s_orig_len && buf[same] == s_orig[same])
        same++;
    s_run_t r = {.check = true, .header_changed = same < 16};
    zp_journal_visitor_t v = {
        .on_open = s_open,
        .on_close = s_close,
        .on_record = s_record,
        .on_offset = s_offset,
        .on_forgotten = s_forgotten,
        .on_done = s_done,
        .on_counts = s_counts,
        .on_have = s_have,
        .line_at = &r.line_at,
    };
    size_t valid = 0;
    long rc = zp_journal_replay(buf, len, &v, &r, &valid);
    size_t before = 0; /* events whose lines end before the damage */
    while (before < s_n_events && s_event_end[before] <= same)
        before++;
    if (r.n < before) {
        fprintf(stderr,
                "%zu events before the damage at %zu, %zu replayed "
                "(rc %ld)\n",
                before, same, r.n, rc);
        abort();
    }
    if (r.header_changed) {
        free(buf);
        return 0;
    }
    if (rc >= 0 && (valid > len || memchr(buf + valid, '\n', len - valid))) {
        fprintf(stderr,
                "no error, yet bytes from %zu with a newline are "
                "left out\n",
                valid);
        abort();
    }
    free(buf);
    return 0;
}
