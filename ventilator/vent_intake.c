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

zp_vent_open_t zp_vent_intake_check_open(const Zpipe__V1__JobOpen *o,
                                         const zp_vent_job_t *existing,
                                         const zp_vent_finished_job_t *finished,
                                         const char *rid, size_t rid_len,
                                         const char **why, char *why_buf,
                                         size_t why_len, const char **reply_id)
{
    const char *given = o->job_id && *o->job_id ? o->job_id : NULL;
    const char *token = o->token ? o->token : "";
    *reply_id = given ? given : "";
    *why = NULL;
    if (!zp_plugin_name_valid(o->plugin))
        *why = "JobOpen needs a plugin name (1 to 64 of [A-Za-z0-9_.-])";
    else if (given && !zp_job_id_valid(given)) {
        *reply_id = "";
        *why = "job id must be 1 to 128 of [A-Za-z0-9_.:-]";
    } else if (*token && !zp_job_id_valid(token))
        *why = "job token must be 1 to 128 of [A-Za-z0-9_.:-]";
    if (*why)
        return ZP_VENT_OPEN_REFUSE;
    if (existing) {
        bool same = *token ? strcmp(existing->token, token) == 0
                           : existing->prid_len == rid_len &&
                                 memcmp(existing->prid, rid, rid_len) == 0;
        if (same && strcmp(existing->plugin, o->plugin) == 0)
            return ZP_VENT_OPEN_AGAIN;
        snprintf(why_buf, why_len,
                 "job id %s is in use by another job (another token or "
                 "connection); job ids are never reused",
                 given);
        *why = why_buf;
        return ZP_VENT_OPEN_REFUSE;
    }
    if (finished) {
        if (*token && strcmp(finished->token, token) == 0)
            return ZP_VENT_OPEN_FINISHED;
        snprintf(why_buf, why_len,
                 "job id %s was already used by a job that finished; job ids "
                 "are never reused",
                 given);
        *why = why_buf;
        return ZP_VENT_OPEN_REFUSE;
    }
    return ZP_VENT_OPEN_NEW;
}

/* A numbered batch: AGAIN when taken, REFUSE past the next, else NEW. */
static zp_vent_batch_verdict_t s_check_seq(const zp_vent_job_t *j, uint64_t seq,
                                           const char **why, char *why_buf,
                                           size_t len, zp_vent_batch_t *again,
                                           uint64_t *expected)
{
    const zp_vent_batch_t *taken = zp_vent_job_batch(j, seq);
    if (taken) {
        *again = *taken;
        return ZP_VENT_BATCH_AGAIN;
    }
    *expected = j->n_batches + 1;
    if (seq != *expected) {
        snprintf(why_buf, len,
                 "batch %llu of job %s came before batch %llu; send again "
                 "from batch %llu",
                 (unsigned long long)seq, j->id, (unsigned long long)*expected,
                 (unsigned long long)*expected);
        *why = why_buf;
        return ZP_VENT_BATCH_REFUSE;
    }
    return ZP_VENT_BATCH_NEW;
}

uint64_t zp_vent_intake_frame_cap(uint64_t max_task_bytes)
{
    uint64_t framed = max_task_bytes + ZP_VENT_INTAKE_FRAMING;
    return framed > ZP_VENT_INTAKE_FRAME ? framed : ZP_VENT_INTAKE_FRAME;
}

/* How many '\n' the n bytes at p hold (a loop the compiler vectorises). */
static uint64_t s_newlines(const uint8_t *p, size_t n)
{
    uint64_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += p[i] == '\n';
    return c;
}

/* Why b's lines cannot be taken (NULL: they can), with *n their count;
 * first: the index in the batch of the first line's task. */
static const char *s_check_lines(const ProtobufCBinaryData *lines,
                                 uint64_t max_task_bytes, size_t first,
                                 uint64_t *n, char *why_buf, size_t len)
{
    *n = 0;
    if (!lines->len)
        return NULL;
    if (lines->data[lines->len - 1] != '\n')
        return "the batch's lines do not end with a newline; nothing of the "
               "batch was taken";
    *n = s_newlines(lines->data, lines->len);
    if (lines->len <= max_task_bytes)
        return NULL; /* no line can be longer */
    const uint8_t *p = lines->data, *end = p + lines->len;
    size_t n_line;
    for (size_t i = first; zp_vent_line_next(&p, end, &n_line); i++)
        if (n_line > max_task_bytes) {
            snprintf(why_buf, len,
                     "task %zu of the batch (a line) is %zu bytes, over the "
                     "limit of %llu; nothing of the batch was taken",
                     i, n_line, (unsigned long long)max_task_bytes);
            return why_buf;
        }
    return NULL;
}

zp_vent_batch_verdict_t zp_vent_intake_check_tasks(
    const Zpipe__V1__TaskBatch *b, const zp_vent_job_t *j,
    uint64_t max_task_bytes, const char **why, char *why_buf, size_t len,
    zp_vent_batch_t *again, uint64_t *expected, uint64_t *count)
{
    *expected = 0;
    *why = NULL;
    *count = 0;
    if (!j || j->has_input) {
        *why = "unknown job";
        return ZP_VENT_BATCH_REFUSE;
    }
    if (b->seq) {
        zp_vent_batch_verdict_t v =
            s_check_seq(j, b->seq, why, why_buf, len, again, expected);
        if (v != ZP_VENT_BATCH_NEW)
            return v;
    }
    if (j->input_closed || zp_vent_job_finished(j))
        *why = "job already closed";
    for (size_t i = 0; !*why && i < b->n_tasks; i++)
        if (b->tasks[i]->payload.len > max_task_bytes) {
            snprintf(why_buf, len,
                     "task %zu of the batch is %zu bytes, over the limit of "
                     "%llu; nothing of the batch was taken",
                     i, b->tasks[i]->payload.len,
                     (unsigned long long)max_task_bytes);
            *why = why_buf;
        }
    uint64_t n_lines = 0;
    if (!*why)
        *why = s_check_lines(&b->lines, max_task_bytes, b->n_tasks, &n_lines,
                             why_buf, len);
    uint64_t n = b->n_tasks + n_lines;
    if (!*why && j->next_task_id + n >= ZP_VENT_MAX_TASK_ID)
        *why = "too many tasks in one job";
    if (!*why && n > UINT32_MAX)
        *why = "too many tasks in one batch";
    if (*why)
        return ZP_VENT_BATCH_REFUSE;
    *count = n;
    return ZP_VENT_BATCH_NEW;
}

const char *zp_vent_intake_check_close(const Zpipe__V1__JobClose *c,
                                       const zp_vent_job_t *j,
                                       const zp_vent_finished_job_t *finished,
                                       char *why, size_t len)
{
    if ((!j || j->has_input) && !finished)
        return "unknown job";
    uint64_t have = j && !j->has_input ? j->next_task_id : finished->total;
    if (c->total && c->total != have) {
        snprintf(why, len, "total %llu does not match the %llu tasks received",
                 (unsigned long long)c->total, (unsigned long long)have);
        return why;
    }
    return NULL;
}

const char *zp_vent_intake_check_owner(const zp_vent_job_t *j,
                                       const char *token, const char *rid,
                                       size_t rid_len, bool *adopt,
                                       char *why_buf, size_t len)
{
    *adopt = false;
    if (token && *token) {
        if (strcmp(j->token, token) == 0) {
            *adopt = !zp_vent_job_owned_by(j, rid, rid_len);
            return NULL;
        }
        snprintf(why_buf, len,
                 "job %s belongs to another producer (its token is not "
                 "this one)",
                 j->id);
        return why_buf;
    }
    /* No connection has come back for it since a restart: any may (its
     * producer may resend on a connection it never reopened on). */
    if (!j->n_owners || zp_vent_job_owned_by(j, rid, rid_len))
        return NULL;
    snprintf(why_buf, len,
             "job %s belongs to another connection: send its JobOpen with "
             "its token on this one first, or the token in every batch and "
             "close",
             j->id);
    return why_buf;
}

uint32_t zp_vent_intake_attempts(uint32_t asked, uint32_t fallback)
{
    if (!asked)
        return fallback;
    return asked < 100 ? asked : 100;
}
