/* zp_trace: the sink's trace log (task timelines) and its reader. */
#define _GNU_SOURCE
#include "zp_trace.h"
#include "zp_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A committed entry waiting for its commit time: its line up to the
 * value of commit_us, at off in the text buffer. */
typedef struct {
    size_t off, len;
    const void *job;
    uint64_t task;
} s_wait_t;

struct zp_trace_log {
    FILE *f;
    zp_buf_t text, line;
    s_wait_t *wait;
    size_t n_wait, cap_wait;
    bool dirty; /* written since the last flush */
    bool failed;
    uint64_t lost;
};

static const char *s_outcomes[] = {"committed", "duplicate", "retry"};

const char *zp_trace_outcome_name(zp_trace_outcome_t o)
{
    return (unsigned)o < 3 ? s_outcomes[o] : "committed";
}

zp_trace_log_t *zp_trace_log_new(const char *path, char *err, size_t errlen)
{
    zp_trace_log_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->f = fopen(path, "ae");
    if (!self->f) {
        snprintf(err, errlen, "cannot open trace %s: %s", path,
                 strerror(errno));
        free(self);
        return NULL;
    }
    setvbuf(self->f, NULL, _IOFBF, 1 << 20);
    return self;
}

/* Appends text then v in decimal (the sink writes a line per result:
 * printf's format walk would be most of tracing's cost there). */
static int s_num(zp_buf_t *b, const char *text, uint64_t v)
{
    char digits[20];
    size_t n = 0, tl = strlen(text);
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (zp_buf_reserve(b, tl + n) < 0)
        return -1;
    memcpy(b->data + b->len, text, tl);
    b->len += tl;
    while (n)
        b->data[b->len++] = digits[--n];
    return 0;
}

/* The line for e up to and including "commit_us": */
static int s_format(zp_buf_t *b, const zp_trace_entry_t *e)
{
    const char *job = e->job ? e->job : "",
               *worker = e->worker ? e->worker : "";
    int rc = zp_buf_append_str(b, "{\"job\":\"");
    rc |= zp_buf_append_json(b, job, strlen(job));
    rc |= s_num(b, "\",\"task\":", e->task);
    rc |= s_num(b, ",\"attempt\":", e->attempt);
    rc |= zp_buf_append_str(b, ",\"worker\":\"");
    rc |= zp_buf_append_json(b, worker, strlen(worker));
    rc |=
        zp_buf_append_str(b, e->ok ? "\",\"status\":\"ok\",\"outcome\":\""
                                   : "\",\"status\":\"failed\",\"outcome\":\"");
    rc |= zp_buf_append_str(b, zp_trace_outcome_name(e->outcome));
    rc |= s_num(b, "\",\"bytes\":", e->bytes);
    rc |= s_num(b, ",\"queued_us\":", e->queued_us);
    rc |= s_num(b, ",\"dispatch_us\":", e->dispatch_us);
    rc |= s_num(b, ",\"start_us\":", e->start_us);
    rc |= s_num(b, ",\"elapsed_us\":", e->elapsed_us);
    rc |= s_num(b, ",\"received_us\":", e->received_us);
    rc |= zp_buf_append_str(b, ",\"commit_us\":");
    return rc < 0 ? -1 : 0;
}

static void s_put(zp_trace_log_t *self, const char *prefix, size_t len,
                  uint64_t commit_us)
{
    char tail[24];
    size_t n = sizeof tail;
    tail[--n] = '\n';
    tail[--n] = '}';
    do {
        tail[--n] = (char)('0' + commit_us % 10);
        commit_us /= 10;
    } while (commit_us);
    if (fwrite(prefix, 1, len, self->f) != len ||
        fwrite(tail + n, 1, sizeof tail - n, self->f) != sizeof tail - n) {
        self->failed = true;
        self->lost++;
    }
    self->dirty = true;
}

int zp_trace_log_add(zp_trace_log_t *self, const zp_trace_entry_t *e,
                     const void *job_key)
{
    if (e->outcome != ZP_TRACE_COMMITTED) {
        self->line.len = 0;
        if (s_format(&self->line, e) < 0) {
            self->lost++;
            return -1;
        }
        s_put(self, self->line.data, self->line.len, 0);
        return 0;
    }
    if (self->n_wait == self->cap_wait) {
        size_t cap = self->cap_wait ? 2 * self->cap_wait : 1024;
        s_wait_t *w = realloc(self->wait, cap * sizeof *w);
        if (!w) {
            self->lost++;
            return -1;
        }
        self->wait = w;
        self->cap_wait = cap;
    }
    size_t off = self->text.len;
    if (s_format(&self->text, e) < 0) {
        self->text.len = off;
        self->lost++;
        return -1;
    }
    self->wait[self->n_wait++] =
        (s_wait_t){off, self->text.len - off, job_key, e->task};
    return 0;
}

void zp_trace_log_commit(zp_trace_log_t *self, uint64_t now_us,
                         zp_trace_written_fn *written, void *ctx)
{
    size_t kept = 0, text_end = 0;
    bool wrote = false;
    for (size_t i = 0; i < self->n_wait; i++) {
        s_wait_t w = self->wait[i];
        if (!written || written(ctx, w.job, w.task)) {
            s_put(self, self->text.data + w.off, w.len, now_us);
            wrote = true;
            continue;
        }
        /* Not written yet (held for order): keep it, compacted. */
        memmove(self->text.data + text_end, self->text.data + w.off, w.len);
        w.off = text_end;
        text_end += w.len;
        self->wait[kept++] = w;
    }
    self->n_wait = kept;
    self->text.len = text_end;
    if (!wrote && self->dirty) { /* idle: let readers see it */
        if (fflush(self->f) != 0) {
            self->failed = true;
        }
        self->dirty = false;
    }
}

uint64_t zp_trace_log_lost(const zp_trace_log_t *self)
{
    return self->lost;
}

int zp_trace_log_destroy(zp_trace_log_t **self_p)
{
    zp_trace_log_t *self = *self_p;
    if (!self)
        return 0;
    for (size_t i = 0; i < self->n_wait; i++)
        s_put(self, self->text.data + self->wait[i].off, self->wait[i].len, 0);
    if (fclose(self->f) != 0)
        self->failed = true;
    int rc = self->failed ? -1 : 0;
    zp_buf_free(&self->text);
    zp_buf_free(&self->line);
    free(self->wait);
    free(self);
    *self_p = NULL;
    return rc;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct {
    const char *p, *end;
} s_rd_t;

static void s_ws(s_rd_t *r)
{
    while (r->p < r->end &&
           (*r->p == ' ' || *r->p == '\t' || *r->p == '\r' || *r->p == '\n'))
        r->p++;
}

static bool s_char(s_rd_t *r, char c)
{
    s_ws(r);
    if (r->p < r->end && *r->p == c) {
        r->p++;
        return true;
    }
    return false;
}

/* A JSON string into buf (truncated to cap - 1, NUL-terminated); \u
 * escapes beyond ASCII become '?'. */
static bool s_string(s_rd_t *r, char *buf, size_t cap)
{
    size_t n = 0;
    if (!s_char(r, '"'))
        return false;
    while (r->p < r->end && *r->p != '"') {
        char c = *r->p++;
        if (c == '\\') {
            if (r->p >= r->end)
                return false;
            char e = *r->p++;
            switch (e) {
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case 'r':
                c = '\r';
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'u': {
                unsigned v = 0;
                for (int i = 0; i < 4; i++) {
                    if (r->p >= r->end)
                        return false;
                    char h = *r->p++;
                    v = v * 16 +
                        (unsigned)(h >= '0' && h <= '9'   ? h - '0'
                                   : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                   : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                          : 0);
                }
                c = v < 0x80 ? (char)v : '?';
                break;
            }
            default:
                c = e; /* \" \\ \/ */
            }
        }
        if (n + 1 < cap)
            buf[n++] = c;
    }
    if (cap)
        buf[n] = '\0';
    return s_char(r, '"');
}

/* A value: an unsigned number into *num, a string into buf, or
 * true/false (1/0 in *num). */
static bool s_value(s_rd_t *r, uint64_t *num, char *buf, size_t cap)
{
    s_ws(r);
    *num = 0;
    if (cap)
        buf[0] = '\0';
    if (r->p < r->end && *r->p == '"')
        return s_string(r, buf, cap);
    if (r->end - r->p >= 4 && memcmp(r->p, "true", 4) == 0) {
        r->p += 4;
        *num = 1;
        return true;
    }
    if (r->end - r->p >= 5 && memcmp(r->p, "false", 5) == 0) {
        r->p += 5;
        return true;
    }
    const char *start = r->p;
    uint64_t v = 0;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        uint64_t d = (uint64_t)(*r->p++ - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *num = v;
    return r->p > start;
}

int zp_trace_parse(const char *line, size_t len, zp_trace_entry_t *e,
                   char *job_buf, size_t job_cap, char *worker_buf,
                   size_t worker_cap)
{
    s_rd_t r = {line, line + len};
    memset(e, 0, sizeof *e);
    bool has_task = false, has_worker = false;
    if (job_cap)
        job_buf[0] = '\0';
    if (worker_cap)
        worker_buf[0] = '\0';
    e->job = job_buf;
    e->worker = worker_buf;
    e->ok = true;
    if (!s_char(&r, '{'))
        return -1;
    if (s_char(&r, '}'))
        return -1;
    do {
        char key[32], sval[32];
        uint64_t v;
        if (!s_string(&r, key, sizeof key) || !s_char(&r, ':'))
            return -1;
        bool ok;
        if (strcmp(key, "job") == 0)
            ok = s_value(&r, &v, job_buf, job_cap);
        else if (strcmp(key, "worker") == 0) {
            ok = s_value(&r, &v, worker_buf, worker_cap);
            has_worker = true;
        } else
            ok = s_value(&r, &v, sval, sizeof sval);
        if (!ok)
            return -1;
        if (strcmp(key, "task") == 0) {
            e->task = v;
            has_task = true;
        } else if (strcmp(key, "attempt") == 0)
            e->attempt = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
        else if (strcmp(key, "status") == 0)
            e->ok = strcmp(sval, "ok") == 0;
        else if (strcmp(key, "outcome") == 0)
            e->outcome = strcmp(sval, "duplicate") == 0 ? ZP_TRACE_DUPLICATE
                         : strcmp(sval, "retry") == 0   ? ZP_TRACE_RETRY
                                                        : ZP_TRACE_COMMITTED;
        else if (strcmp(key, "bytes") == 0)
            e->bytes = v;
        else if (strcmp(key, "queued_us") == 0)
            e->queued_us = v;
        else if (strcmp(key, "dispatch_us") == 0)
            e->dispatch_us = v;
        else if (strcmp(key, "start_us") == 0)
            e->start_us = v;
        else if (strcmp(key, "elapsed_us") == 0)
            e->elapsed_us = v;
        else if (strcmp(key, "received_us") == 0)
            e->received_us = v;
        else if (strcmp(key, "commit_us") == 0)
            e->commit_us = v;
    } while (s_char(&r, ','));
    if (!s_char(&r, '}'))
        return -1;
    return has_task && has_worker ? 0 : -1;
}
