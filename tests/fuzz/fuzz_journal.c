/* libFuzzer target: any bytes as a sink journal. Replay must never crash
 * and must report a valid prefix no longer than the input. */
#include "zp_journal.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_open(void *ctx, const char *job, uint32_t max_attempts,
                   const char *token)
{
    (void)ctx;
    (void)max_attempts;
    if (!zp_job_id_valid(job) || (*token && !zp_job_id_valid(token)))
        abort();
}
static void s_close(void *ctx, const char *job, uint64_t total)
{
    (void)ctx;
    (void)total;
    if (!zp_job_id_valid(job))
        abort();
}
static void s_record(void *ctx, const char *job, uint64_t task, bool ok,
                     uint64_t offset)
{
    (void)ctx;
    (void)task;
    (void)ok;
    (void)offset;
    if (!zp_job_id_valid(job))
        abort();
}

static void s_done(void *ctx, const char *job, const char *token,
                   const zp_journal_summary_t *m)
{
    (void)ctx;
    (void)m;
    if (!zp_job_id_valid(job) || (*token && !zp_job_id_valid(token)))
        abort();
}
static void s_counts(void *ctx, const char *job, const zp_journal_summary_t *m)
{
    (void)ctx;
    (void)m;
    if (!zp_job_id_valid(job))
        abort();
}
static void s_have(void *ctx, const char *job, uint64_t first, uint64_t count)
{
    (void)ctx;
    if (!zp_job_id_valid(job) || count == 0 || first + count < first)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const zp_journal_visitor_t v = {.on_open = s_open,
                                           .on_close = s_close,
                                           .on_record = s_record,
                                           .on_done = s_done,
                                           .on_counts = s_counts,
                                           .on_have = s_have};
    size_t valid = 0;
    zp_journal_replay((const char *)data, size, &v, NULL, &valid);
    if (valid > size)
        abort();
    return 0;
}
