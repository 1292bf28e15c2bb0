/* sink_records: renders the sink's records (see sink_records.h). */
#include "sink_records.h"

#include <string.h>

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
