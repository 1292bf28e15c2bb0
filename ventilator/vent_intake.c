/* vent_intake: the producers' protocol rules. */
#include "vent_intake.h"
#include "zp_journal.h"
#include "zp_name.h"
#include "zp_util.h"

#include <stdio.h>
#include <string.h>

int zp_vent_settings_text(char *const *pairs,
                          const Zpipe__V1__Setting *const *kv, size_t n,
                          char **out, const char **why)
{
    zp_buf_t b = {0};
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *key = pairs ? pairs[i] : kv[i]->key;
        const char *eq = pairs ? strchr(pairs[i], '=') : NULL;
        size_t kl =
            pairs ? (eq ? (size_t)(eq - key) : 0) : strlen(key ? key : "");
        const char *val =
            pairs ? (eq ? eq + 1 : "") : (kv[i]->value ? kv[i]->value : "");
        if (!zp_name_valid(key, kl, ZP_SETTING_KEY_MAX, ZP_SETTING_KEY_EXTRA) ||
            strchr(val, '\n') || strlen(val) > 65536) {
            *why = "a setting needs a key of 1 to 64 of [A-Za-z0-9_.-] and a "
                   "value of at most 64 KiB without a newline";
            zp_buf_free(&b);
            return -1;
        }
        if (zp_buf_printf(&b, "%s%.*s=%s", i ? "\n" : "", (int)kl, key, val) <
            0) {
            *why = "out of memory";
            zp_buf_free(&b);
            return -1;
        }
    }
    if (b.len) {
        if (zp_buf_append(&b, "", 1) < 0) {
            *why = "out of memory";
            zp_buf_free(&b);
            return -1;
        }
        *out = b.data; /* the buffer's bytes, NUL-terminated */
    }
    return 0;
}

const char *zp_vent_intake_check_open(const Zpipe__V1__JobOpen *o,
                                      const zp_vent_job_t *existing,
                                      bool finished, const char *rid,
                                      size_t rid_len, bool *resend,
                                      const char **reply_id)
{
    const char *given = o->job_id && *o->job_id ? o->job_id : NULL;
    *resend = false;
    *reply_id = given;
    if (!zp_plugin_name_valid(o->plugin))
        return "JobOpen needs a plugin name (1 to 64 of [A-Za-z0-9_.-])";
    if (given && !zp_job_id_valid(given)) {
        *reply_id = "";
        return "job id must be 1 to 128 of [A-Za-z0-9_.:-]";
    }
    if (given && finished)
        return "job id already used by a finished job";
    if (existing) {
        /* Opening again is fine for its producer (a resent JobOpen). */
        if (existing->prid_len != rid_len ||
            memcmp(existing->prid, rid, rid_len) != 0 ||
            strcmp(existing->plugin, o->plugin) != 0)
            return "job id already in use";
        *resend = true;
    }
    return NULL;
}

const char *zp_vent_intake_check_tasks(const Zpipe__V1__TaskBatch *b,
                                       const zp_vent_job_t *j,
                                       uint64_t max_task_bytes, char *why,
                                       size_t len)
{
    if (!j || j->has_input)
        return "unknown job";
    if (j->input_closed || zp_vent_job_finished(j))
        return "job already closed";
    for (size_t i = 0; i < b->n_tasks; i++)
        if (b->tasks[i]->payload.len > max_task_bytes) {
            snprintf(why, len,
                     "task %zu of the batch is %zu bytes, over the limit of "
                     "%llu; nothing of the batch was taken",
                     i, b->tasks[i]->payload.len,
                     (unsigned long long)max_task_bytes);
            return why;
        }
    if (j->next_task_id + b->n_tasks >= ZP_VENT_MAX_TASK_ID)
        return "too many tasks in one job";
    return NULL;
}

const char *zp_vent_intake_check_close(const Zpipe__V1__JobClose *c,
                                       const zp_vent_job_t *j, char *why,
                                       size_t len)
{
    if (!j || j->has_input)
        return "unknown job";
    if (c->total && c->total != j->next_task_id) {
        snprintf(why, len, "total %llu does not match the %llu tasks received",
                 (unsigned long long)c->total,
                 (unsigned long long)j->next_task_id);
        return why;
    }
    return NULL;
}

uint32_t zp_vent_intake_attempts(uint32_t asked, uint32_t fallback)
{
    if (!asked)
        return fallback;
    return asked < 100 ? asked : 100;
}
