/* libFuzzer target: any bytes as a zpipe.v1.Message frame. Decoding must
 * never crash, leak or read out of bounds; whatever decodes must encode
 * again. */
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
    if (m) {
        zp_buf_t out = {0};
        if (zp_encode(m, &out) != 0)
            abort();
        (void)zp_kind_name(m);
        zp_buf_free(&out);
    }
    return 0;
}
