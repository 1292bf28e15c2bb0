/* sink_fetch: ResultsRequest decisions and spool reads (see sink_fetch.h). */
#define _GNU_SOURCE
#include "sink_fetch.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Room for one more of n items of size bytes in *arr (capacity *cap,
 * doubled up to ZP_FETCH_MAX_WAITERS). Returns 0, or -1 when out of
 * memory (nothing changes). */
static int s_room(void **arr, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? 2 * *cap : 1;
    if (c > ZP_FETCH_MAX_WAITERS)
        c = ZP_FETCH_MAX_WAITERS;
    void *a = realloc(*arr, c * size);
    if (!a)
        return -1;
    *arr = a;
    *cap = c;
    return 0;
}

static void s_peer_set(zp_peer_t *p, const char *rid, size_t rid_len)
{
    if (rid_len > sizeof p->rid)
        rid_len = sizeof p->rid;
    memcpy(p->rid, rid, rid_len);
    p->rid_len = rid_len;
}

zp_fetch_action_t zp_fetch_request(zp_fetch_t *self,
                                   const zp_fetch_source_t *src,
                                   const Zpipe__V1__ResultsRequest *rq,
                                   const char *rid, size_t rid_len,
                                   const char **why)
{
    char before = '\n';
    if (src->gone) {
        *why = ZP_FETCH_GONE;
        return ZP_FETCH_REFUSED;
    }
    if (src->flushed && src->fd < 0) {
        *why = "the job's records cannot be read now (its spool file did not "
               "open; the sink logged why)";
        return ZP_FETCH_REFUSED;
    }
    if (rq->cursor > src->flushed ||
        (rq->cursor > 0 &&
         (pread(src->fd, &before, 1, (off_t)rq->cursor - 1) != 1 ||
          before != '\n'))) {
        *why = "cursor is not at a record boundary";
        return ZP_FETCH_REFUSED;
    }
    bool park = rq->wait && !src->done && rq->cursor == src->flushed;
    /* A peer asks again while its request waits (zpipe results does every
     * 2 s, in case a restarted sink forgot it): the request it has parked
     * is the one it waits on, renewed, not one more (they piled up, each
     * answered in turn, 64 waiters full after 2 minutes). */
    for (size_t i = 0; park && i < self->n; i++) {
        zp_fetch_req_t *f = &self->req[i];
        if (f->peer.rid_len ==
                (rid_len < sizeof f->peer.rid ? rid_len : sizeof f->peer.rid) &&
            memcmp(f->peer.rid, rid, f->peer.rid_len) == 0) {
            f->cursor = rq->cursor;
            f->max_bytes = rq->max_bytes;
            f->by_reference = rq->by_reference;
            return ZP_FETCH_PARKED;
        }
    }
    if (park && self->n < ZP_FETCH_MAX_WAITERS &&
        s_room((void **)&self->req, self->n, &self->cap, sizeof *self->req) ==
            0) {
        zp_fetch_req_t *f = &self->req[self->n++];
        s_peer_set(&f->peer, rid, rid_len);
        f->cursor = rq->cursor;
        f->max_bytes = rq->max_bytes;
        f->by_reference = rq->by_reference;
        return ZP_FETCH_PARKED;
    }
    return ZP_FETCH_ANSWER;
}

/* By reference: every visible record past cursor, told by where it is.
 * Only when the visible part ends a record (it always does: records are
 * made visible whole; checked, as the bytes path finds its own end). */
static bool s_by_reference(const zp_fetch_source_t *src, uint64_t cursor,
                           Zpipe__V1__ResultsChunk *c)
{
    struct stat st;
    char last = 0;
    if (!src->path || src->fd < 0 || cursor >= src->flushed ||
        pread(src->fd, &last, 1, (off_t)src->flushed - 1) != 1 ||
        last != '\n' || fstat(src->fd, &st) != 0 ||
        (uint64_t)st.st_size < src->flushed)
        return false;
    c->cursor = cursor;
    c->next_cursor = src->flushed;
    c->records.len = 0;
    c->done = src->done;
    c->spool_path = (char *)src->path;
    c->spool_dev = (uint64_t)st.st_dev;
    c->spool_ino = (uint64_t)st.st_ino;
    return true;
}

void zp_fetch_chunk(zp_buf_t *b, const zp_fetch_source_t *src, uint64_t cursor,
                    uint32_t max, bool by_reference, Zpipe__V1__ResultsChunk *c)
{
    if (by_reference && s_by_reference(src, cursor, c))
        return;
    uint64_t end = src->flushed;
    size_t want = !max                       ? ZP_FETCH_DEFAULT_BYTES
                  : max > ZP_FETCH_MAX_BYTES ? ZP_FETCH_MAX_BYTES
                                             : max;
    b->len = 0;
    size_t keep = 0; /* bytes of b up to the last whole record */
    while (src->fd >= 0 && cursor + b->len < end) {
        size_t n = (size_t)(end - cursor - b->len);
        size_t room = want > b->len ? want - b->len : 65536;
        if (n > room)
            n = room;
        if (zp_buf_reserve(b, n) < 0)
            break;
        ssize_t got =
            pread(src->fd, b->data + b->len, n, (off_t)(cursor + b->len));
        if (got <= 0)
            break;
        b->len += (size_t)got;
        /* The whole records within want; when even the first is longer,
         * that one record, whole and alone (ResultsRequest.max_bytes). */
        const char *nl = memrchr(b->data, '\n', b->len < want ? b->len : want);
        if (!nl)
            nl = memchr(b->data, '\n', b->len);
        keep = nl ? (size_t)(nl - b->data) + 1 : 0;
        if (keep && b->len >= want)
            break; /* enough, and at least one whole record */
    }
    c->cursor = cursor;
    c->next_cursor = cursor + keep;
    c->records.data = (uint8_t *)b->data;
    c->records.len = keep;
    c->done = src->done && c->next_cursor == src->flushed;
}

size_t zp_fetch_take_ready(zp_fetch_t *self, const zp_fetch_source_t *src,
                           zp_fetch_req_t *out)
{
    size_t k = 0, n = 0;
    for (size_t i = 0; i < self->n; i++) {
        const zp_fetch_req_t *f = &self->req[i];
        if (f->cursor < src->flushed || src->done)
            out[n++] = *f;
        else
            self->req[k++] = *f;
    }
    self->n = k;
    return n;
}

void zp_fetch_fini(zp_fetch_t *self)
{
    free(self->req);
    *self = (zp_fetch_t){0};
}

int zp_waiters_add(zp_waiters_t *self, const char *rid, size_t rid_len)
{
    for (size_t i = 0; i < self->n; i++)
        if (self->peer[i].rid_len == rid_len &&
            memcmp(self->peer[i].rid, rid, rid_len) == 0)
            return 0;
    char *copy = malloc(rid_len ? rid_len : 1);
    if (!copy)
        return -1;
    memcpy(copy, rid, rid_len);
    int dropped = 0;
    if (self->n == ZP_FETCH_MAX_WAITERS) {
        free(self->peer[0].rid);
        memmove(self->peer, self->peer + 1,
                (ZP_FETCH_MAX_WAITERS - 1) * sizeof self->peer[0]);
        self->n--;
        dropped = 1;
    } else if (s_room((void **)&self->peer, self->n, &self->cap,
                      sizeof *self->peer) < 0) {
        free(copy);
        return -1;
    }
    self->peer[self->n++] = (zp_waiter_t){copy, rid_len};
    return dropped;
}

void zp_waiters_clear(zp_waiters_t *self)
{
    for (size_t i = 0; i < self->n; i++)
        free(self->peer[i].rid);
    self->n = 0;
}

void zp_waiters_fini(zp_waiters_t *self)
{
    zp_waiters_clear(self);
    free(self->peer);
    *self = (zp_waiters_t){0};
}
