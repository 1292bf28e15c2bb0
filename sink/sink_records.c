/* sink_records: renders the sink's records (see sink_records.h). */
#include "sink_records.h"

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

void zp_records_json_output(zp_buf_t *b, const void *data, size_t len)
{
    if (zp_utf8_valid(data, len)) {
        zp_buf_append_str(b, "\"output\":\"");
        zp_buf_append_json_utf8(b, data, len);
    } else {
        zp_buf_append_str(b, "\"output_b64\":\"");
        zp_buf_append_base64(b, data, len);
    }
    zp_buf_append_str(b, "\"");
}

void zp_records_json(zp_buf_t *b, const char *job, const char *worker,
                     const Zpipe__V1__Result *r)
{
    b->len = 0;
    bool ok = r->status == ZPIPE__V1__STATUS__STATUS_OK;
    zp_buf_append_str(b, "{\"job\":\"");
    zp_buf_append_json(b, job, strlen(job));
    zp_buf_printf(b, "\",\"task\":%llu,\"status\":\"%s\",",
                  (unsigned long long)r->task_id, ok ? "ok" : "failed");
    zp_records_json_output(b, r->output.data, r->output.len);
    zp_buf_append_str(b, ",");
    if (!ok) {
        const char *cause = r->cause && *r->cause ? r->cause : "plugin_error";
        const char *err = r->error ? r->error : "";
        zp_buf_append_str(b, "\"cause\":\"");
        zp_buf_append_json(b, cause, strlen(cause));
        zp_buf_append_str(b, "\",\"error\":\"");
        zp_buf_append_json(b, err, strlen(err));
        zp_buf_printf(b, "\",\"retryable\":%s,",
                      r->retryable ? "true" : "false");
    }
    zp_buf_printf(b, "\"attempts\":%u,\"worker\":\"",
                  r->attempt ? r->attempt : 1);
    zp_buf_append_json(b, worker, strlen(worker));
    zp_buf_printf(b, "\",\"elapsed_us\":%llu}\n",
                  (unsigned long long)r->elapsed_us);
}

void zp_records_line(zp_buf_t *b, const void *data, size_t len)
{
    b->len = 0;
    if (len && ((const char *)data)[len - 1] == '\n')
        len--;
    zp_buf_append(b, data, len);
    zp_buf_append(b, "\n", 1);
}

void zp_records_reduced_json(zp_buf_t *b, const zp_records_reduced_t *r)
{
    b->len = 0;
    zp_buf_append_str(b, "{\"job\":\"");
    zp_buf_append_json(b, r->job, strlen(r->job));
    zp_buf_printf(
        b,
        "\",\"reduced\":true,\"plugin\":\"%s\",\"status\":\"%s\","
        "\"tasks\":%llu,\"succeeded\":%llu,\"failed\":%llu,",
        r->plugin, r->ok ? "ok" : "failed", (unsigned long long)r->tasks,
        (unsigned long long)r->succeeded, (unsigned long long)r->failed);
    if (!r->ok) {
        const char *e = r->error ? r->error : "failed";
        zp_buf_append_str(b, "\"error\":\"");
        zp_buf_append_json(b, e, strlen(e));
        zp_buf_append_str(b, "\",");
    }
    zp_records_json_output(b, r->data, r->len);
    zp_buf_append_str(b, "}\n");
}

/* Writes v big-endian into the n bytes at p. */
static void s_put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

/* Replaces b's contents with a frame record. Lengths beyond a u32 (no
 * message carries them) are cut. */
static void s_frame(zp_buf_t *b, uint64_t task, unsigned flags,
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
    b->len = 0;
    /* All or nothing: a header whose lengths the body does not fill would
     * misalign every later record for the reader. */
    if (zp_buf_reserve(b, sizeof h + out_len + c + e) < 0) {
        zp_error("out of memory rendering task %llu's record (%zu bytes): "
                 "it is not written",
                 (unsigned long long)task, sizeof h + out_len + c + e);
        return;
    }
    zp_buf_append(b, h, sizeof h);
    zp_buf_append(b, out, out_len);
    zp_buf_append(b, cause, c);
    zp_buf_append(b, error, e);
}

void zp_records_frame(zp_buf_t *b, const Zpipe__V1__Result *r)
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
    s_frame(b, r->task_id, flags, r->attempt ? r->attempt : 1, r->output.data,
            r->output.len, cause, err);
}

void zp_records_reduced_frame(zp_buf_t *b, const zp_records_reduced_t *r)
{
    unsigned flags = ZP_RECORDS_FRAME_REDUCED;
    if (!r->ok)
        flags |= ZP_RECORDS_FRAME_FAILED;
    s_frame(b, ZP_RECORDS_FRAME_REDUCED_ID, flags, 1, r->data, r->len, NULL,
            r->ok      ? NULL
            : r->error ? r->error
                       : "failed");
}
