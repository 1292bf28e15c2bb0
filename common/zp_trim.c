/* zp_trim: memory given back once idle after a burst (see zp_trim.h). */
#include "zp_trim.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

bool zp_trim_due(zp_trim_t *self, uint64_t now_us, bool busy, uint64_t idle_us)
{
    if (busy) {
        self->busy_us = now_us;
        self->pending = true;
        return false;
    }
    if (!self->pending || now_us - self->busy_us < idle_us)
        return false;
    self->pending = false;
    return true;
}

int zp_trim_release(void)
{
#ifdef __GLIBC__
    return malloc_trim(0);
#else
    return 0;
#endif
}
