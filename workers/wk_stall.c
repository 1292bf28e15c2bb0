/* wk_stall: the stall limit from recent call times (see wk_stall.h). */
#include "wk_stall.h"

#include <string.h>

void zp_wk_stall_init(zp_wk_stall_t *self, uint64_t floor_ms)
{
    memset(self, 0, sizeof *self);
    self->floor_us = floor_ms * 1000;
}

void zp_wk_stall_observe(zp_wk_stall_t *self, uint64_t elapsed_us)
{
    self->samples[self->next] = elapsed_us;
    self->next = (self->next + 1) % ZP_WK_STALL_SAMPLES;
    if (self->n < ZP_WK_STALL_SAMPLES)
        self->n++;
}

uint64_t zp_wk_stall_limit_us(const zp_wk_stall_t *self)
{
    if (!self->floor_us)
        return 0;
    /* The p99: the (n/100 + 1)-th largest sample; found by selection
     * over a copy, as this runs only for a call already past the floor. */
    uint64_t top[ZP_WK_STALL_SAMPLES / 100 + 1];
    size_t k = self->n / 100 + 1, have = 0;
    for (size_t i = 0; i < self->n; i++) {
        uint64_t v = self->samples[i];
        size_t j = have < k ? have++ : k;
        if (j == k && v <= top[k - 1])
            continue;
        if (j == k)
            j = k - 1;
        while (j > 0 && top[j - 1] < v) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = v;
    }
    uint64_t p99 = have ? top[have - 1] : 0;
    uint64_t limit = p99 * ZP_WK_STALL_FACTOR;
    return limit > self->floor_us ? limit : self->floor_us;
}

bool zp_wk_stall_overdue(const zp_wk_stall_t *self, uint64_t started_us,
                         uint64_t now)
{
    if (!self->floor_us || now < started_us ||
        now - started_us <= self->floor_us)
        return false;
    return now - started_us > zp_wk_stall_limit_us(self);
}
