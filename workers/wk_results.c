/* wk_results: pending results and their ResultBatch encoding (see
 * wk_results.h). */
#include "wk_results.h"
#include "zp_codec.h"
#include "zp_wire.h"

#include <zpipe/plugin.h>

#include <stdlib.h>
#include <string.h>

struct zp_wk_results {
    zp_wk_done_t *done; /* pending records, n of cap */
    size_t *sizes;      /* their Results' bytes (zp_wk_results_size), cap */
    size_t n, cap;
    size_t sized_n, body; /* records and body bytes the last size counted */
    char *job;            /* of the pending records (kept when none are) */
    uint64_t first_us;    /* when the first pending one was pushed */
    zp_buf_t out, err;    /* their output and error text (NUL after each) */
    /* Encoding space, reused: one Result per record. */
    Zpipe__V1__Result *pb;
    Zpipe__V1__Result **pb_ptrs;
    size_t cap_pb;
};

zp_wk_results_t *zp_wk_results_new(void)
{
    return calloc(1, sizeof(zp_wk_results_t));
}

void zp_wk_results_destroy(zp_wk_results_t **self_p)
{
    zp_wk_results_t *self = *self_p;
    if (!self)
        return;
    free(self->done);
    free(self->sizes);
    free(self->job);
    zp_buf_free(&self->out);
    zp_buf_free(&self->err);
    free(self->pb);
    free(self->pb_ptrs);
    free(self);
    *self_p = NULL;
}

zp_wk_done_t *zp_wk_results_push(zp_wk_results_t *self, const char *job,
                                 uint64_t now)
{
    if (!self->job || strcmp(self->job, job) != 0) {
        if (self->n)
            return NULL; /* caller flushes first */
        free(self->job);
        self->job = strdup(job);
        if (!self->job)
            return NULL;
    }
    if (self->n == self->cap) {
        size_t cap = self->cap ? 2 * self->cap : 256;
        zp_wk_done_t *d = realloc(self->done, cap * sizeof *d);
        if (!d)
            return NULL;
        self->done = d;
        size_t *sz = realloc(self->sizes, cap * sizeof *sz);
        if (!sz)
            return NULL;
        self->sizes = sz;
        self->cap = cap;
    }
    if (self->n == 0)
        self->first_us = now;
    zp_wk_done_t *d = &self->done[self->n++];
    memset(d, 0, sizeof *d);
    d->out_off = self->out.len;
    d->err_off = self->err.len;
    return d;
}

void zp_wk_results_finish(zp_wk_results_t *self, zp_wk_done_t *d)
{
    d->out_len = self->out.len - d->out_off;
    d->err_len = self->err.len - d->err_off;
    zp_buf_append(&self->err, "", 1); /* NUL between error texts */
}

zp_buf_t *zp_wk_results_out(zp_wk_results_t *self)
{
    return &self->out;
}

zp_buf_t *zp_wk_results_err(zp_wk_results_t *self)
{
    return &self->err;
}

size_t zp_wk_results_count(const zp_wk_results_t *self)
{
    return self->n;
}

const char *zp_wk_results_job(const zp_wk_results_t *self)
{
    return self->n ? self->job : NULL;
}

bool zp_wk_results_due(const zp_wk_results_t *self, uint64_t now,
                       uint64_t waited_us)
{
    uint64_t age = now - self->first_us;
    uint64_t ran = age > waited_us ? age - waited_us : 0;
    return self->out.len >= ZP_WK_FLUSH_BYTES || ran >= ZP_WK_FLUSH_US ||
           age >= ZP_WK_FLUSH_MAX_US;
}

static int s_reserve_pb(zp_wk_results_t *self)
{
    if (self->cap_pb >= self->n)
        return 0;
    free(self->pb);
    free(self->pb_ptrs);
    self->pb = malloc(self->n * sizeof *self->pb);
    self->pb_ptrs = malloc(self->n * sizeof *self->pb_ptrs);
    if (!self->pb || !self->pb_ptrs) {
        free(self->pb);
        free(self->pb_ptrs);
        self->pb = NULL;
        self->pb_ptrs = NULL;
        self->cap_pb = 0;
        return -1;
    }
    self->cap_pb = self->n;
    return 0;
}

int zp_wk_results_batch(zp_wk_results_t *self, const zp_wk_batch_info_t *info,
                        Zpipe__V1__ResultBatch *rb)
{
    if (s_reserve_pb(self) < 0)
        return -1;
    for (size_t i = 0; i < self->n; i++) {
        const zp_wk_done_t *d = &self->done[i];
        Zpipe__V1__Result *r = &self->pb[i];
        *r = (Zpipe__V1__Result)ZPIPE__V1__RESULT__INIT; /* inlined */
        r->task_id = d->task_id;
        r->attempt = d->attempt;
        r->status = d->status == ZPIPE_OK ? ZPIPE__V1__STATUS__STATUS_OK
                                          : ZPIPE__V1__STATUS__STATUS_FAILED;
        r->output.data = (uint8_t *)self->out.data + d->out_off;
        r->output.len = d->out_len;
        if (d->status != ZPIPE_OK) {
            r->error = self->err.data + d->err_off;
            r->cause = (char *)zp_cause_name(d->cause);
            r->retryable = d->retryable;
            r->quarantined = d->quarantined;
        }
        r->start_us = d->start_us;
        r->elapsed_us = d->elapsed_us;
        r->queued_us = d->queued_us;
        r->dispatch_us = d->dispatch_us;
        r->lease = d->lease;
        self->pb_ptrs[i] = r;
    }
    zpipe__v1__result_batch__init(rb);
    rb->job_id = self->job;
    rb->worker_id = (char *)info->worker_id;
    rb->results = self->pb_ptrs;
    rb->n_results = self->n;
    rb->window = info->window;
    rb->max_held = info->max_held;
    rb->tasks_done = info->tasks_done;
    return 0;
}

/* The direct encoder: the bytes zp_result_batch_write writes for the
 * batch zp_wk_results_batch fills, from the records themselves (filling
 * protobuf-c's structs and sizing each Result twice was a tenth of an
 * executor's time on empty tasks). A failed task's fields (status
 * FAILED, error, cause, retryable, quarantined) only for a failed one. */

static const char *s_error(const zp_wk_results_t *self, const zp_wk_done_t *d)
{
    return self->err.data + d->err_off;
}

/* d's Result: its fields' bytes, without its own tag and length. */
static size_t s_result_size(const zp_wk_results_t *self, const zp_wk_done_t *d)
{
    size_t n = zp_wire_opt_varint_size(d->task_id) +
               (d->out_len ? zp_wire_len_field_size(d->out_len) : 0) +
               zp_wire_opt_varint_size(d->attempt) +
               zp_wire_opt_varint_size(d->start_us) +
               zp_wire_opt_varint_size(d->elapsed_us) +
               zp_wire_opt_varint_size(d->queued_us) +
               zp_wire_opt_varint_size(d->dispatch_us) + (d->lease ? 9 : 0);
    if (d->status != ZPIPE_OK) {
        size_t el = zp_wire_str_len(s_error(self, d));
        size_t cl = zp_wire_str_len(zp_cause_name(d->cause));
        n += 2 + (el ? zp_wire_len_field_size(el) : 0) +
             (cl ? zp_wire_len_field_size(cl) : 0) + (d->retryable ? 2 : 0) +
             (d->quarantined ? 2 : 0);
    }
    return n;
}

static uint8_t *s_put_result(uint8_t *p, const zp_wk_results_t *self,
                             const zp_wk_done_t *d, size_t size)
{
    bool failed = d->status != ZPIPE_OK;
    *p++ = (uint8_t)(3 << 3 | ZP_WIRE_LEN);
    p = zp_wire_put_varint(p, size);
    p = zp_wire_put_opt_varint(p, 1, d->task_id);
    p = zp_wire_put_opt_varint(p, 2,
                               failed ? ZPIPE__V1__STATUS__STATUS_FAILED : 0);
    if (d->out_len)
        p = zp_wire_put_len_field(p, 3, self->out.data + d->out_off,
                                  d->out_len);
    if (failed) {
        const char *e = s_error(self, d), *c = zp_cause_name(d->cause);
        size_t el = zp_wire_str_len(e), cl = zp_wire_str_len(c);
        if (el)
            p = zp_wire_put_len_field(p, 4, e, el);
        if (cl)
            p = zp_wire_put_len_field(p, 5, c, cl);
    }
    p = zp_wire_put_opt_varint(p, 6, d->attempt);
    p = zp_wire_put_opt_varint(p, 7, d->start_us);
    p = zp_wire_put_opt_varint(p, 8, d->elapsed_us);
    p = zp_wire_put_opt_bool(p, 9, failed && d->retryable);
    p = zp_wire_put_opt_varint(p, 10, d->queued_us);
    p = zp_wire_put_opt_varint(p, 11, d->dispatch_us);
    p = zp_wire_put_opt_bool(p, 12, failed && d->quarantined);
    if (d->lease)
        p = zp_wire_put_fixed64(p, 13, d->lease);
    return p;
}

size_t zp_wk_results_size(zp_wk_results_t *self, const zp_wk_batch_info_t *info)
{
    size_t body =
        zp_result_batch_fields_size(self->job, info->worker_id, info->window,
                                    info->max_held, info->tasks_done);
    for (size_t i = 0; i < self->n; i++) {
        self->sizes[i] = s_result_size(self, &self->done[i]);
        body += zp_wire_len_field_size(self->sizes[i]);
    }
    self->sized_n = self->n;
    self->body = body;
    return zp_wire_len_field_size(body);
}

size_t zp_wk_results_write(const zp_wk_results_t *self,
                           const zp_wk_batch_info_t *info, void *dst)
{
    if (self->sized_n != self->n)
        return 0;
    uint8_t *p =
        zp_result_batch_put_head(dst, self->job, info->worker_id, self->body);
    for (size_t i = 0; i < self->n; i++)
        p = s_put_result(p, self, &self->done[i], self->sizes[i]);
    p = zp_result_batch_put_tail(p, info->window, info->max_held,
                                 info->tasks_done);
    return (size_t)(p - (uint8_t *)dst);
}

int zp_wk_results_encode(zp_wk_results_t *self, const zp_wk_batch_info_t *info,
                         zp_buf_t *out)
{
    size_t n = zp_wk_results_size(self, info);
    out->len = 0;
    if (zp_buf_reserve(out, n) < 0)
        return -1;
    out->len = zp_wk_results_write(self, info, out->data);
    return out->len == n ? 0 : -1;
}

void zp_wk_results_clear(zp_wk_results_t *self)
{
    self->n = 0;
    self->sized_n = 0;
    self->out.len = 0;
    self->err.len = 0;
}
