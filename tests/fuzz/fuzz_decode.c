/* libFuzzer target: any bytes as a zpipe.v1.Message frame. Decoding must
 * never crash, leak or read out of bounds; whatever decodes must encode
 * again, to protobuf-c's bytes; and the worker's wire scans and views must
 * never accept what the decoder rejects, nor see anything different. */
#include "zp_codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int s_streq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static int s_bineq(ProtobufCBinaryData a, ProtobufCBinaryData b)
{
    return a.len == b.len && (!a.len || memcmp(a.data, b.data, a.len) == 0);
}

static int s_has_unknown(const zp_message_t *m)
{
    if (m->base.n_unknown_fields)
        return 1;
    if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_TASK_BATCH) {
        const Zpipe__V1__TaskBatch *b = m->task_batch;
        if (b->base.n_unknown_fields)
            return 1;
        for (size_t i = 0; i < b->n_tasks; i++)
            if (b->tasks[i]->base.n_unknown_fields)
                return 1;
    }
    if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH) {
        const Zpipe__V1__ResultBatch *b = m->result_batch;
        if (b->base.n_unknown_fields)
            return 1;
        for (size_t i = 0; i < b->n_results; i++)
            if (b->results[i]->base.n_unknown_fields)
                return 1;
    }
    return 0;
}

/* The zero-copy views must see exactly what the decoder sees. */
/* The first S_SEEN_MAX elapsed_us values a result scan passed on, and how
 * many it passed. */
#define S_SEEN_MAX 64
typedef struct {
    size_t n;
    uint64_t v[S_SEEN_MAX];
} s_elapsed_seen_t;

static void s_elapsed_seen(void *arg, uint64_t elapsed_us)
{
    s_elapsed_seen_t *s = arg;
    if (s->n < S_SEEN_MAX)
        s->v[s->n] = elapsed_us;
    s->n++;
}

static void s_check_views(const uint8_t *data, size_t size, zp_message_t *m)
{
    static zp_task_view_t tv;
    static zp_result_view_t rv;
    if (zp_view_task_batch(&tv, data, size, 1u << 20) == 0) {
        if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_TASK_BATCH)
            abort();
        const Zpipe__V1__TaskBatch *a = &tv.batch, *b = m->task_batch;
        if (!s_streq(a->job_id, b->job_id) || !s_streq(a->plugin, b->plugin) ||
            !s_streq(a->config, b->config) || !s_streq(a->token, b->token) ||
            a->dispatch_us != b->dispatch_us || a->seq != b->seq ||
            a->n_tasks != b->n_tasks || a->lines.len != b->lines.len ||
            (a->lines.len &&
             memcmp(a->lines.data, b->lines.data, a->lines.len) != 0))
            abort();
        for (size_t i = 0; i < a->n_tasks; i++) {
            const Zpipe__V1__Task *x = a->tasks[i], *y = b->tasks[i];
            if (x->task_id != y->task_id || x->attempt != y->attempt ||
                x->deadline_ms != y->deadline_ms ||
                x->queued_us != y->queued_us || x->lease != y->lease ||
                x->payload_frame != y->payload_frame ||
                !s_bineq(x->payload, y->payload))
                abort();
        }
    }
    if (zp_view_result_batch(&rv, data, size, 1u << 20) == 0) {
        if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH)
            abort();
        const Zpipe__V1__ResultBatch *a = &rv.batch, *b = m->result_batch;
        if (!s_streq(a->job_id, b->job_id) ||
            !s_streq(a->worker_id, b->worker_id) || a->window != b->window ||
            a->max_held != b->max_held || a->tasks_done != b->tasks_done ||
            a->n_results != b->n_results)
            abort();
        for (size_t i = 0; i < a->n_results; i++) {
            const Zpipe__V1__Result *x = a->results[i], *y = b->results[i];
            if (x->task_id != y->task_id || x->status != y->status ||
                !s_bineq(x->output, y->output) ||
                !s_streq(x->error, y->error) || !s_streq(x->cause, y->cause) ||
                x->attempt != y->attempt || x->start_us != y->start_us ||
                x->elapsed_us != y->elapsed_us ||
                x->queued_us != y->queued_us ||
                x->dispatch_us != y->dispatch_us || x->lease != y->lease ||
                !x->retryable != !y->retryable ||
                !x->quarantined != !y->quarantined)
                abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static zp_arena_t *arena;
    if (!arena)
        arena = zp_arena_new();
    zp_arena_reset(arena);
    zp_message_t *m = zp_decode(arena, data, size, 1u << 20);
    size_t n = 0;
    uint64_t sum = 0;
    uint64_t min_ms = 0;
    bool without = false;
    if (zp_scan_task_batch(data, size, 1u << 20, &n, &min_ms, &without) == 0) {
        if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_TASK_BATCH ||
            m->task_batch->n_tasks != n)
            abort();
        /* The one-pass deadlines are what decode's tasks say. */
        uint64_t want_min = 0;
        bool want_without = false;
        for (size_t i = 0; i < n; i++) {
            uint64_t d = m->task_batch->tasks[i]->deadline_ms;
            if (!d)
                want_without = true;
            else if (!want_min || d < want_min)
                want_min = d;
        }
        if (want_min != min_ms || want_without != without)
            abort();
    }
    s_elapsed_seen_t seen = {0};
    if (zp_scan_result_batch(data, size, 1u << 20, &n, &sum, s_elapsed_seen,
                             &seen) == 0) {
        if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH ||
            m->result_batch->n_results != n || seen.n != n)
            abort();
        uint64_t want = 0;
        for (size_t i = 0; i < n; i++) {
            want += m->result_batch->results[i]->elapsed_us;
            if (i < S_SEEN_MAX &&
                m->result_batch->results[i]->elapsed_us != seen.v[i])
                abort();
        }
        if (want != sum)
            abort();
    }
    s_check_views(data, size, m);
    if (m) {
        zp_buf_t out = {0};
        if (zp_encode(m, &out) != 0)
            abort();
        /* zp_encode's own batch encoders write protobuf-c's bytes (for
         * what we build: protobuf-c also writes back unknown fields). */
        if (!s_has_unknown(m)) {
            size_t want = zpipe__v1__message__get_packed_size(m);
            uint8_t *ref = malloc(want ? want : 1);
            if (!ref || zpipe__v1__message__pack(m, ref) != want ||
                out.len != want || memcmp(out.data, ref, want) != 0)
                abort();
            free(ref);
        }
        (void)zp_kind_name(m);
        zp_buf_free(&out);
    }
    return 0;
}
