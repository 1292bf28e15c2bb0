/* sink_records: renders the sink's records (see sink_records.h). */
#include "sink_records.h"

#include "zp_json.h"
#include "zp_log.h"

#include <string.h>

zp_records_format_t zp_records_format(const char *name)
{
    if (strcmp(name, "lines") == 0)
        return ZP_RECORDS_LINES;
    if (strcmp(name, "frames") == 0)
        return ZP_RECORDS_FRAMES;
    return ZP_RECORDS_JSONL;
}

/* Copies string literal l to p; evaluates to the end of the copy. */
#define S_LIT(p, l) ((char *)memcpy((p), (l), sizeof(l) - 1) + sizeof(l) - 1)

/* Room for the literals and numbers between two strings of a record. */
#define S_GAP 96

/* Appends len bytes at data. */
static int s_put(zp_buf_t *b, const char *data, size_t len)
{
    return zp_buf_append(b, data, len);
}

int zp_records_json_output(zp_buf_t *b, const void *data, size_t len)
{
    size_t start = b->len;
    int rc = s_put(b, "\"output\":\"", 10);
    if (rc == 0)
        rc = zp_json_utf8(b, data, len);
    if (rc == ZP_JSON_NOT_UTF8) {
        b->len = start;
        rc = s_put(b, "\"output_b64\":\"", 14) ||
             zp_buf_append_base64(b, data, len);
    }
    if (rc == 0)
        rc = s_put(b, "\"", 1);
    if (rc) {
        b->len = start;
        return -1;
    }
    return 0;
}

/* A failure's fields: cause (plugin_error when it has none), error text,
 * retryable. */
static int s_json_failure(zp_buf_t *b, const Zpipe__V1__Result *r)
{
    const char *cause = r->cause && *r->cause ? r->cause : "plugin_error";
    const char *err = r->error ? r->error : "";
    if (s_put(b, ",\"cause\":\"", 10) ||
        zp_json_text(b, cause, strlen(cause)) ||
        s_put(b, "\",\"error\":\"", 11) || zp_json_text(b, err, strlen(err)))
        return -1;
    return r->retryable ? s_put(b, "\",\"retryable\":true", 18)
                        : s_put(b, "\",\"retryable\":false", 19);
}

/* Replaces b's contents with id between the literals pre and post, id
 * escaped as text. */
static int s_part(zp_buf_t *b, const char *pre, const char *id,
                  const char *post)
{
    b->len = 0;
    if (zp_buf_append_str(b, pre) || zp_json_text(b, id, strlen(id)) ||
        zp_buf_append_str(b, post)) {
        b->len = 0;
        return -1;
    }
    return 0;
}

/* Replaces key's contents with s and its NUL (never empty once made). */
static int s_key(zp_buf_t *key, const char *s)
{
    key->len = 0;
    return zp_buf_append(key, s, strlen(s) + 1);
}

/* Whether key holds s (as s_key made it). */
static bool s_is_key(const zp_buf_t *key, const char *s)
{
    return key->len && strcmp(key->data, s) == 0;
}

int zp_records_jsonl_prepare(zp_records_jsonl_t *c, const char *job,
                             const char *worker)
{
    if (!s_is_key(&c->job, job) &&
        (s_key(&c->job, job) ||
         s_part(&c->head, "{\"job\":\"", job, "\",\"task\":")))
        goto fail;
    if (!s_is_key(&c->worker, worker) &&
        (s_key(&c->worker, worker) ||
         s_part(&c->tail, ",\"worker\":\"", worker, "\",\"elapsed_us\":")))
        goto fail;
    return 0;
fail:
    c->job.len = c->worker.len = 0; /* made again next time */
    return -1;
}

void zp_records_jsonl_free(zp_records_jsonl_t *c)
{
    zp_buf_free(&c->head);
    zp_buf_free(&c->tail);
    zp_buf_free(&c->job);
    zp_buf_free(&c->worker);
}

int zp_records_jsonl_append(const zp_records_jsonl_t *c, zp_buf_t *b,
                            const Zpipe__V1__Result *r)
{
    size_t start = b->len;
    bool ok = r->status == ZPIPE__V1__STATUS__STATUS_OK;
    /* Room for all but escapes: one check, and none in the parts below
     * but the output's. */
    size_t room = c->head.len + c->tail.len + r->output.len + 2 * S_GAP;
    if (room < r->output.len || zp_buf_reserve(b, room) < 0)
        return -1;
    char *p = b->data + b->len;
    memcpy(p, c->head.data, c->head.len);
    p = zp_json_u64(p + c->head.len, r->task_id);
    p = ok ? S_LIT(p, ",\"status\":\"ok\",")
           : S_LIT(p, ",\"status\":\"failed\",");
    b->len = (size_t)(p - b->data);
    if (zp_records_json_output(b, r->output.data, r->output.len) < 0 ||
        (!ok && s_json_failure(b, r) < 0) ||
        zp_buf_reserve(b, c->tail.len + S_GAP) < 0) {
        b->len = start;
        return -1;
    }
    p = S_LIT(b->data + b->len, ",\"attempts\":");
    p = zp_json_u64(p, r->attempt ? r->attempt : 1);
    memcpy(p, c->tail.data, c->tail.len);
    p = zp_json_u64(p + c->tail.len, r->elapsed_us);
    p = S_LIT(p, "}\n");
    b->len = (size_t)(p - b->data);
    return 0;
}

void zp_records_json(zp_buf_t *b, const char *job, const char *worker,
                     const Zpipe__V1__Result *r)
{
    zp_records_jsonl_t c = {0};
    b->len = 0;
    if (zp_records_jsonl_prepare(&c, job, worker) < 0 ||
        zp_records_jsonl_append(&c, b, r) < 0)
        zp_error("out of memory rendering task %llu's record: it is not "
                 "written",
                 (unsigned long long)r->task_id);
    zp_records_jsonl_free(&c);
}

int zp_records_line_append(zp_buf_t *b, const void *data, size_t len)
{
    if (len && ((const char *)data)[len - 1] == '\n')
        len--;
    if (len == SIZE_MAX || zp_buf_reserve(b, len + 1) < 0)
        return -1;
    zp_buf_append(b, data, len);
    zp_buf_append(b, "\n", 1);
    return 0;
}

void zp_records_line(zp_buf_t *b, const void *data, size_t len)
{
    b->len = 0;
    zp_records_line_append(b, data, len);
}

/* Appends ,"NAME":V for each of the reduced record's counts. */
static int s_json_counts(zp_buf_t *b, const zp_records_reduced_t *r)
{
    if (zp_buf_reserve(b, S_GAP) < 0)
        return -1;
    char *p = S_LIT(b->data + b->len, ",\"tasks\":");
    p = zp_json_u64(p, r->tasks);
    p = S_LIT(p, ",\"succeeded\":");
    p = zp_json_u64(p, r->succeeded);
    p = S_LIT(p, ",\"failed\":");
    p = zp_json_u64(p, r->failed);
    *p++ = ',';
    b->len = (size_t)(p - b->data);
    return 0;
}

void zp_records_reduced_json(zp_buf_t *b, const zp_records_reduced_t *r)
{
    b->len = 0;
    /* The plugin's name is a validated name, written as it is. */
    int rc = s_put(b, "{\"job\":\"", 8) ||
             zp_json_text(b, r->job, strlen(r->job)) ||
             s_put(b, "\",\"reduced\":true,\"plugin\":\"", 27) ||
             zp_buf_append_str(b, r->plugin) ||
             (r->ok ? s_put(b, "\",\"status\":\"ok\"", 15)
                    : s_put(b, "\",\"status\":\"failed\"", 19)) ||
             s_json_counts(b, r);
    if (rc == 0 && !r->ok) {
        const char *e = r->error ? r->error : "failed";
        rc = s_put(b, "\"error\":\"", 9) || zp_json_text(b, e, strlen(e)) ||
             s_put(b, "\",", 2);
    }
    if (rc || zp_records_json_output(b, r->data, r->len) < 0 ||
        s_put(b, "}\n", 2)) {
        b->len = 0;
        zp_error("out of memory rendering job %s's reduced record: it is "
                 "not written",
                 r->job);
    }
}

/* Writes v big-endian into the n bytes at p. */
static void s_put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

/* Appends a frame record. Lengths beyond a u32 (no message carries them)
 * are cut. */
static int s_frame(zp_buf_t *b, uint64_t task, unsigned flags,
                   uint32_t attempts, const void *out, size_t out_len,
                   const char *cause, const char *error)
{
    size_t c = cause ? strlen(cause) : 0;
    size_t e = error ? strlen(error) : 0;
    if (c > UINT8_MAX)
        c = UINT8_MAX;
    if (out_len > UINT32_MAX)
        out_len = UINT32_MAX;
    if (e > UINT32_MAX)
        e = UINT32_MAX;
    unsigned char h[ZP_RECORDS_FRAME_HEADER] = {0};
    s_put_be(h, task, 8);
    h[8] = (unsigned char)flags;
    h[9] = (unsigned char)c;
    s_put_be(h + 12, out_len, 4);
    s_put_be(h + 16, e, 4);
    s_put_be(h + 20, attempts, 4);
    /* All or nothing: a header whose lengths the body does not fill would
     * misalign every later record for the reader. */
    if (zp_buf_reserve(b, sizeof h + out_len + c + e) < 0) {
        zp_error("out of memory rendering task %llu's record (%zu bytes): "
                 "it is not written",
                 (unsigned long long)task, sizeof h + out_len + c + e);
        return -1;
    }
    zp_buf_append(b, h, sizeof h);
    zp_buf_append(b, out, out_len);
    zp_buf_append(b, cause, c);
    zp_buf_append(b, error, e);
    return 0;
}

int zp_records_frame_append(zp_buf_t *b, const Zpipe__V1__Result *r)
{
    bool ok = r->status == ZPIPE__V1__STATUS__STATUS_OK;
    unsigned flags = 0;
    const char *cause = NULL, *err = NULL;
    if (!ok) {
        flags |= ZP_RECORDS_FRAME_FAILED;
        if (r->retryable)
            flags |= ZP_RECORDS_FRAME_RETRY;
        cause = r->cause && *r->cause ? r->cause : "plugin_error";
        err = r->error;
    }
    return s_frame(b, r->task_id, flags, r->attempt ? r->attempt : 1,
                   r->output.data, r->output.len, cause, err);
}

void zp_records_frame(zp_buf_t *b, const Zpipe__V1__Result *r)
{
    b->len = 0;
    zp_records_frame_append(b, r);
}

void zp_records_reduced_frame(zp_buf_t *b, const zp_records_reduced_t *r)
{
    unsigned flags = ZP_RECORDS_FRAME_REDUCED;
    if (!r->ok)
        flags |= ZP_RECORDS_FRAME_FAILED;
    b->len = 0;
    s_frame(b, ZP_RECORDS_FRAME_REDUCED_ID, flags, 1, r->data, r->len, NULL,
            r->ok      ? NULL
            : r->error ? r->error
                       : "failed");
}
