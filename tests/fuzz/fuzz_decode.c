/* libFuzzer target: any bytes as a zpipe.v1.Message frame. Decoding must
 * never crash, leak or read out of bounds; whatever decodes must encode
 * again; and the worker's wire scans must never accept what the decoder
 * rejects, nor count differently. */
#include "zp_codec.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static zp_arena_t *arena;
    if (!arena)
        arena = zp_arena_new();
    zp_arena_reset(arena);
    zp_message_t *m = zp_decode(arena, data, size, 1u << 20);
    size_t n = 0;
    uint64_t sum = 0;
    if (zp_scan_task_batch(data, size, 1u << 20, &n) == 0 &&
        (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_TASK_BATCH ||
         m->task_batch->n_tasks != n))
        abort();
    if (zp_scan_result_batch(data, size, 1u << 20, &n, &sum) == 0) {
        if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH ||
            m->result_batch->n_results != n)
            abort();
        uint64_t want = 0;
        for (size_t i = 0; i < n; i++)
            want += m->result_batch->results[i]->elapsed_us;
        if (want != sum)
            abort();
    }
    if (m) {
        zp_buf_t out = {0};
        if (zp_encode(m, &out) != 0)
            abort();
        (void)zp_kind_name(m);
        zp_buf_free(&out);
    }
    return 0;
}
