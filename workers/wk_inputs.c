/* wk_inputs: the executor's read-only input region (see wk_inputs.h). */
#define _GNU_SOURCE
#include "wk_inputs.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct zp_wk_inputs {
    uint8_t *base; /* cap bytes, then one PROT_NONE guard page; or NULL */
    size_t cap;    /* a multiple of the page size */
    size_t page;   /* the page size */
    bool sealed;   /* read-only now */
};

/* The smallest region mapped: most batches of small tasks fit. */
#define S_MIN_CAP ((size_t)64 << 10)

zp_wk_inputs_t *zp_wk_inputs_new(void)
{
    zp_wk_inputs_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    long page = sysconf(_SC_PAGESIZE);
    self->page = page > 0 ? (size_t)page : 4096;
    return self;
}

static void s_unmap(zp_wk_inputs_t *self)
{
    if (self->base)
        munmap(self->base, self->cap + self->page);
    self->base = NULL;
    self->cap = 0;
    self->sealed = false;
}

void zp_wk_inputs_destroy(zp_wk_inputs_t **self_p)
{
    zp_wk_inputs_t *self = *self_p;
    if (!self)
        return;
    s_unmap(self);
    free(self);
    *self_p = NULL;
}

/* Maps a region of at least len bytes (doubling, so a growing batch size
 * remaps a few times, not every batch). 0 or -1. */
static int s_grow(zp_wk_inputs_t *self, size_t len)
{
    size_t cap = self->cap ? self->cap : S_MIN_CAP;
    while (cap < len) {
        if (cap > SIZE_MAX / 2 - self->page)
            return -1;
        cap *= 2;
    }
    s_unmap(self);
    void *p = mmap(NULL, cap + self->page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    /* The guard page: a write running off the last input faults too. */
    if (mprotect((uint8_t *)p + cap, self->page, PROT_NONE) != 0) {
        munmap(p, cap + self->page);
        return -1;
    }
    self->base = p;
    self->cap = cap;
    return 0;
}

int zp_wk_inputs_load(zp_wk_inputs_t *self, const void *data, size_t len,
                      const uint8_t **copy)
{
    if (self->sealed && zp_wk_inputs_unseal(self) < 0) {
        s_unmap(self);
        return -1;
    }
    if ((len > self->cap || !self->base) && s_grow(self, len) < 0)
        return -1;
    if (len)
        memcpy(self->base, data, len);
    *copy = self->base;
    return 0;
}

int zp_wk_inputs_seal(zp_wk_inputs_t *self)
{
    if (!self->base || self->sealed)
        return 0;
    if (mprotect(self->base, self->cap, PROT_READ) != 0)
        return -1;
    self->sealed = true;
    return 0;
}

int zp_wk_inputs_unseal(zp_wk_inputs_t *self)
{
    if (!self->base || !self->sealed)
        return 0;
    if (mprotect(self->base, self->cap, PROT_READ | PROT_WRITE) != 0)
        return -1;
    self->sealed = false;
    return 0;
}

bool zp_wk_inputs_sealed_at(const zp_wk_inputs_t *self, const void *addr)
{
    const uint8_t *a = addr;
    return self && self->base && self->sealed && a >= self->base &&
           a < self->base + self->cap + self->page;
}
