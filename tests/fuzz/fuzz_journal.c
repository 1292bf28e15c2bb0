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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const zp_journal_visitor_t v = {s_open, s_close, s_record};
    size_t valid = 0;
    zp_journal_replay((const char *)data, size, &v, NULL, &valid);
    if (valid > size)
        abort();
    return 0;
}
