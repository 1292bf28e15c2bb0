/* wk_shm: shared regions between a worker and its executor (see
 * wk_shm.h). */
#define _GNU_SOURCE
#include "wk_shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- where frames go --------------------------------------------------- */

#define S_ALIGN ((size_t)64)

void zp_wk_slots_init(zp_wk_slots_t *self, size_t cap)
{
    memset(self, 0, sizeof *self);
    self->cap = cap;
}

static size_t s_end(const zp_wk_slot_t *s)
{
    return (s->off + s->len + S_ALIGN - 1) & ~(S_ALIGN - 1);
}

int zp_wk_slots_alloc(zp_wk_slots_t *self, size_t len, size_t *off,
                      uint64_t *seq)
{
    if (self->n == ZP_WK_SLOTS_MAX || len == 0 || len > self->cap)
        return -1;
    /* First fit from offset 0: the gap before each frame, then the end.
     * A frame trimmed (written in place) may start before the previous
     * one's end rounded up: then there is no gap before it. */
    size_t at = 0, i = 0;
    for (; i < self->n; i++) {
        if (self->live[i].off >= at && self->live[i].off - at >= len)
            break;
        size_t end = s_end(&self->live[i]);
        if (end > at)
            at = end;
    }
    if (i == self->n && (at > self->cap || self->cap - at < len))
        return -1;
    memmove(&self->live[i + 1], &self->live[i],
            (self->n - i) * sizeof self->live[0]);
    self->live[i] = (zp_wk_slot_t){++self->last_seq, at, len};
    self->n++;
    *off = at;
    *seq = self->last_seq;
    return 0;
}

void zp_wk_slots_trim(zp_wk_slots_t *self, uint64_t seq, size_t off, size_t len)
{
    for (size_t i = 0; i < self->n; i++) {
        zp_wk_slot_t *s = &self->live[i];
        if (s->seq == seq && off >= s->off && len <= s->len - (off - s->off)) {
            s->off = off; /* inside: the order by offset holds */
            s->len = len;
            return;
        }
    }
}

void zp_wk_slots_release(zp_wk_slots_t *self, uint64_t seq)
{
    for (size_t i = 0; i < self->n; i++)
        if (self->live[i].seq == seq) {
            memmove(&self->live[i], &self->live[i + 1],
                    (self->n - i - 1) * sizeof self->live[0]);
            self->n--;
            return;
        }
}

void zp_wk_slots_release_to(zp_wk_slots_t *self, uint64_t seq)
{
    size_t k = 0;
    for (size_t i = 0; i < self->n; i++)
        if (self->live[i].seq > seq)
            self->live[k++] = self->live[i];
    self->n = k;
}

size_t zp_wk_slots_live(const zp_wk_slots_t *self)
{
    return self->n;
}

/* ---- the reference frame ------------------------------------------------ */

static void s_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t s_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Layout: 0, kind, six zero bytes, then seq, off, len (little-endian). */
void zp_wk_ref_write(const zp_wk_ref_t *ref, uint8_t out[ZP_WK_REF_LEN])
{
    memset(out, 0, ZP_WK_REF_LEN);
    out[1] = ref->kind;
    s_put64(out + 8, ref->seq);
    s_put64(out + 16, ref->off);
    s_put64(out + 24, ref->len);
}

bool zp_wk_ref_is(const void *frame, size_t len)
{
    return len > 0 && ((const uint8_t *)frame)[0] == 0;
}

bool zp_wk_ref_parse(const void *frame, size_t len, uint8_t kind, size_t size,
                     zp_wk_ref_t *ref)
{
    const uint8_t *p = frame;
    if (len != ZP_WK_REF_LEN || p[0] != 0 || p[1] != kind)
        return false;
    for (int i = 2; i < 8; i++)
        if (p[i])
            return false;
    ref->kind = kind;
    ref->seq = s_get64(p + 8);
    ref->off = s_get64(p + 16);
    ref->len = s_get64(p + 24);
    return ref->len > 0 && ref->off <= size && ref->len <= size - ref->off;
}

/* ---- the worker's side of a region ------------------------------------- */

struct zp_wk_region {
    atomic_uint refs; /* the holder's, and one per frame in libzmq */
    int fd;
    uint8_t *base;
    size_t size;
    /* Results: frames received up to `received`, freed in any order
     * (flags by seq), published in order up to `released`. */
    uint64_t received, released;
    atomic_uchar done[ZP_WK_SLOTS_MAX];
};

typedef struct {
    zp_wk_region_t *region;
    uint64_t seq;
} s_hold_t;

/* Seals every region has: its size is fixed (a process that shrank it
 * would make the other's reads fault), and its seals too. */
#define S_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

zp_wk_region_t *zp_wk_region_new(const char *name, size_t size, bool readonly)
{
    zp_wk_region_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    atomic_init(&self->refs, 1);
    self->fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (self->fd < 0 || ftruncate(self->fd, (off_t)size) != 0)
        goto fail;
    self->base =
        mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 0);
    if (self->base == MAP_FAILED)
        goto fail;
    self->size = size;
    /* Read-only for every later mapping and write (the executor's),
     * where the kernel can say so (Linux 5.1); this mapping keeps its
     * writes. */
    if (readonly)
        fcntl(self->fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE);
    if (fcntl(self->fd, F_ADD_SEALS, S_SEALS | F_SEAL_SEAL) != 0) {
        munmap(self->base, size);
        goto fail;
    }
    return self;

fail:
    if (self->fd >= 0)
        close(self->fd);
    free(self);
    return NULL;
}

static void s_unref(zp_wk_region_t *self)
{
    if (atomic_fetch_sub(&self->refs, 1) != 1)
        return;
    munmap(self->base, self->size);
    close(self->fd);
    free(self);
}

void zp_wk_region_unref(zp_wk_region_t **self_p)
{
    if (*self_p)
        s_unref(*self_p);
    *self_p = NULL;
}

int zp_wk_region_fd(const zp_wk_region_t *self)
{
    return self->fd;
}

uint8_t *zp_wk_region_base(const zp_wk_region_t *self)
{
    return self->base;
}

size_t zp_wk_region_size(const zp_wk_region_t *self)
{
    return self->size;
}

void zp_wk_region_received(zp_wk_region_t *self, uint64_t seq)
{
    self->received = seq;
}

void *zp_wk_region_hold(zp_wk_region_t *self, uint64_t seq)
{
    s_hold_t *h = malloc(sizeof *h);
    if (!h)
        return NULL;
    atomic_fetch_add(&self->refs, 1);
    h->region = self;
    h->seq = seq;
    return h;
}

void zp_wk_region_release(zp_wk_region_t *self, uint64_t seq)
{
    atomic_store(&self->done[seq % ZP_WK_SLOTS_MAX], 1);
}

/* libzmq's I/O thread (or the worker's, for a message never sent). */
void zp_wk_region_free(void *data, void *hint)
{
    (void)data;
    s_hold_t *h = hint;
    zp_wk_region_release(h->region, h->seq);
    s_unref(h->region);
    free(h);
}

uint64_t zp_wk_region_released(zp_wk_region_t *self)
{
    /* A frame's flag is cleared before the executor can place another
     * frame with the same flag (ZP_WK_SLOTS_MAX frames apart). */
    while (self->released < self->received &&
           atomic_load(&self->done[(self->released + 1) % ZP_WK_SLOTS_MAX])) {
        atomic_store(&self->done[(self->released + 1) % ZP_WK_SLOTS_MAX], 0);
        self->released++;
    }
    return self->released;
}

/* ---- the executor's side ----------------------------------------------- */

/* The guard's size, the page size (read once, outside signal handlers). */
static size_t s_page = 4096;

uint8_t *zp_wk_region_map(int fd, bool writable, size_t *size)
{
    *size = 0;
    /* Only a region has these seals (any other fd left open on this
     * number, a file of the user's, is not one). */
    int seals = fcntl(fd, F_GET_SEALS);
    struct stat st;
    if (seals < 0 || (seals & S_SEALS) != S_SEALS || fstat(fd, &st) != 0 ||
        st.st_size <= 0)
        return NULL;
    size_t len = (size_t)st.st_size;
    long pg = sysconf(_SC_PAGESIZE);
    size_t page = s_page = pg > 0 ? (size_t)pg : 4096;
    /* The whole range inaccessible, then the region over its start: the
     * page after it stays a guard. */
    uint8_t *p =
        mmap(NULL, len + page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    if (mmap(p, len, prot, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
        munmap(p, len + page);
        return NULL;
    }
    *size = len;
    return p;
}

bool zp_wk_region_holds(const uint8_t *base, size_t size, const void *addr)
{
    const uint8_t *a = addr;
    return base && a >= base && (size_t)(a - base) < size + s_page;
}
