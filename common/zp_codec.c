/* zp_codec: protobuf-c behind an arena allocator. */
#include "zp_codec.h"
#include "zp_wire.h"

#include <stdlib.h>
#include <string.h>

#define S_BLOCK (64u * 1024u)

typedef struct s_block {
    struct s_block *next;
    size_t cap, used;
    max_align_t data[]; /* aligned storage */
} s_block_t;

struct zp_arena {
    s_block_t *head; /* current block, with older ones chained behind */
    size_t held;
    ProtobufCAllocator pb;
};

static void *s_alloc(void *ctx, size_t size)
{
    zp_arena_t *self = ctx;
    size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    s_block_t *b = self->head;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > S_BLOCK ? size : S_BLOCK;
        s_block_t *nb = malloc(sizeof *nb + cap);
        if (!nb)
            return NULL;
        nb->cap = cap;
        nb->used = 0;
        nb->next = b;
        self->head = nb;
        self->held += cap;
        b = nb;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    return p;
}

static void s_free(void *ctx, void *p)
{
    (void)ctx;
    (void)p; /* released all at once by zp_arena_reset */
}

zp_arena_t *zp_arena_new(void)
{
    zp_arena_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->pb.alloc = s_alloc;
    self->pb.free = s_free;
    self->pb.allocator_data = self;
    return self;
}

void zp_arena_reset(zp_arena_t *self)
{
    /* Keep the newest block if it is the standard size; free the rest. */
    s_block_t *keep = self->head;
    s_block_t *b = keep ? keep->next : NULL;
    if (keep && keep->cap != S_BLOCK) {
        b = keep;
        keep = NULL;
    }
    while (b) {
        s_block_t *next = b->next;
        free(b);
        b = next;
    }
    self->head = keep;
    self->held = keep ? keep->cap : 0;
    if (keep) {
        keep->used = 0;
        keep->next = NULL;
    }
}

void zp_arena_destroy(zp_arena_t **self_p)
{
    zp_arena_t *self = *self_p;
    if (!self)
        return;
    zp_arena_reset(self);
    free(self->head);
    free(self);
    *self_p = NULL;
}

size_t zp_arena_held(const zp_arena_t *self)
{
    return self->held;
}

zp_message_t *zp_decode(zp_arena_t *arena, const void *data, size_t len,
                        size_t max_len)
{
    if (len > max_len)
        return NULL;
    zp_message_t *msg =
        zpipe__v1__message__unpack(&arena->pb, len, (const uint8_t *)data);
    if (!msg)
        return NULL;
    if (msg->kind_case == ZPIPE__V1__MESSAGE__KIND__NOT_SET)
        return NULL;
    return msg;
}

int zp_encode(const zp_message_t *msg, zp_buf_t *out)
{
    /* The hot kinds have encoders of their own (same bytes). */
    if (msg->kind_case == ZPIPE__V1__MESSAGE__KIND_TASK_BATCH)
        return zp_encode_task_batch(msg->task_batch, out);
    if (msg->kind_case == ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH)
        return zp_encode_result_batch(msg->result_batch, out);
    out->len = 0;
    size_t n = zpipe__v1__message__get_packed_size(msg);
    if (zp_buf_reserve(out, n) < 0)
        return -1;
    out->len = zpipe__v1__message__pack(msg, (uint8_t *)out->data);
    return out->len == n ? 0 : -1;
}

const char *zp_kind_name(const zp_message_t *msg)
{
    switch (msg->kind_case) {
    case ZPIPE__V1__MESSAGE__KIND_TASK_BATCH:
        return "task_batch";
    case ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH:
        return "result_batch";
    case ZPIPE__V1__MESSAGE__KIND_HELLO:
        return "hello";
    case ZPIPE__V1__MESSAGE__KIND_CREDIT:
        return "credit";
    case ZPIPE__V1__MESSAGE__KIND_HEARTBEAT:
        return "heartbeat";
    case ZPIPE__V1__MESSAGE__KIND_BYE:
        return "bye";
    case ZPIPE__V1__MESSAGE__KIND_JOB_OPEN:
        return "job_open";
    case ZPIPE__V1__MESSAGE__KIND_JOB_CLOSE:
        return "job_close";
    case ZPIPE__V1__MESSAGE__KIND_ACK:
        return "ack";
    case ZPIPE__V1__MESSAGE__KIND_JOB_STATUS:
        return "job_status";
    case ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST:
        return "status_request";
    case ZPIPE__V1__MESSAGE__KIND_EVENT:
        return "event";
    case ZPIPE__V1__MESSAGE__KIND_COMMITTED:
        return "committed";
    case ZPIPE__V1__MESSAGE__KIND_RESULTS_REQUEST:
        return "results_request";
    case ZPIPE__V1__MESSAGE__KIND_RESULTS_CHUNK:
        return "results_chunk";
    case ZPIPE__V1__MESSAGE__KIND_CLUSTER_STATUS:
        return "cluster_status";
    default:
        return "unknown";
    }
}

/* ---- wire scans ------------------------------------------------------------
 * Mirrors what protobuf-c 1.4 accepts, erring towards -1: one-byte tags
 * only (every zpipe field number is below 16), a known field must have its
 * wire type, unknown fields must be skippable (no groups). */

typedef struct {
    const uint8_t *p, *end;
} s_rd_t;

enum {
    S_VARINT = ZP_WIRE_VARINT,
    S_I64 = ZP_WIRE_I64,
    S_LEN = ZP_WIRE_LEN,
    S_I32 = ZP_WIRE_I32,
    S_ANY = -1
};

/* A fixed64 field's 8 bytes at p, little-endian. */
static uint64_t s_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static bool s_varint(s_rd_t *r, uint64_t *v)
{
    if (r->p < r->end && !(*r->p & 0x80)) { /* one byte: most of them */
        *v = *r->p++;
        return true;
    }
    uint64_t x = 0;
    for (unsigned i = 0; i < 10 && r->p < r->end; i++) {
        uint8_t b = *r->p++;
        if (i == 9 && b > 1)
            return false; /* bits past 64: not worth mirroring */
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* A length prefix (at most 5 bytes, at most INT_MAX) and its data. */
static bool s_len(s_rd_t *r, s_rd_t *sub)
{
    size_t val = 0;
    unsigned i = 0;
    for (;; i++) {
        if (i == 5 || r->p + i >= r->end)
            return false;
        val |= (size_t)(r->p[i] & 0x7f) << (7 * i);
        if (!(r->p[i] & 0x80))
            break;
    }
    r->p += i + 1;
    if (val > INT32_MAX || (size_t)(r->end - r->p) < val)
        return false;
    sub->p = r->p;
    sub->end = r->p + val;
    r->p += val;
    return true;
}

/* The next field's number and wire type: 1, or 0 at the end, -1 for a tag
 * this scan does not take. */
static int s_field(s_rd_t *r, unsigned *num, int *wt)
{
    if (r->p == r->end)
        return 0;
    uint8_t b = *r->p;
    if ((b & 0x80) || (b >> 3) == 0)
        return -1;
    r->p++;
    *num = b >> 3;
    *wt = b & 7;
    return 1;
}

static bool s_skip(s_rd_t *r, int wt)
{
    uint64_t v;
    s_rd_t sub;
    size_t n = wt == S_I64 ? 8 : 4;
    switch (wt) {
    case S_VARINT:
        return s_varint(r, &v);
    case S_LEN:
        return s_len(r, &sub);
    case S_I64:
    case S_I32:
        if ((size_t)(r->end - r->p) < n)
            return false;
        r->p += n;
        return true;
    default:
        return false;
    }
}

/* Moves past a varint without its value: with 8 bytes left, one load
 * finds the byte that ends it (the first without its top bit); a longer
 * one, or one near the end, goes through s_varint and its checks. */
static inline bool s_skip_varint(s_rd_t *r)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (r->end - r->p >= 8) {
        uint64_t w;
        memcpy(&w, r->p, 8);
        uint64_t stop = ~w & 0x8080808080808080ull; /* little-endian */
        if (stop) {
            r->p += ((unsigned)__builtin_ctzll(stop) >> 3) + 1;
            return true;
        }
    }
#endif
    uint64_t v;
    return s_varint(r, &v);
}

/* Checks one field against the wire types of known fields (S_ANY for a
 * field number the message does not have); sets *value for varints when
 * value is not NULL. */
static bool s_take(s_rd_t *r, const int8_t wt_of[16], unsigned num, int wt,
                   uint64_t *value, size_t *bytes)
{
    int want = wt_of[num];
    if (want != S_ANY && want != wt)
        return false;
    if (wt == S_VARINT)
        return value ? s_varint(r, value) : s_skip_varint(r);
    const uint8_t *p = r->p;
    if (!s_skip(r, wt))
        return false;
    *bytes += (size_t)(r->p - p) + 1;
    return true;
}

/* Message{kind: batch}, where field sub of batch repeats a message of flat
 * fields: counts those, and sums varint field pick of each (0 = none),
 * calling each (when given) with it, 0 for an item without it, in order
 * as the items are checked: on -1 it may have seen some. */
static int s_scan_batch(const void *data, size_t len, size_t max_len,
                        unsigned kind, const int8_t batch_wt[16], unsigned sub,
                        const int8_t sub_wt[16], unsigned pick, size_t *count,
                        uint64_t *sum, size_t *bytes,
                        void (*each)(void *arg, uint64_t v), void *arg)
{
    size_t nbytes = 0;
    if (len > max_len)
        return -1;
    s_rd_t r = {data, (const uint8_t *)data + len}, b = {NULL, NULL},
           item = {NULL, NULL};
    unsigned num;
    int wt, f;
    if (s_field(&r, &num, &wt) != 1 || num != kind || wt != S_LEN ||
        !s_len(&r, &b) || r.p != r.end)
        return -1; /* exactly one field: the batch */
    size_t n = 0;
    uint64_t total = 0, v = 0;
    while ((f = s_field(&b, &num, &wt)) == 1) {
        if (num != sub) {
            if (!s_take(&b, batch_wt, num, wt, &v, &nbytes))
                return -1;
            continue;
        }
        if (wt != S_LEN || !s_len(&b, &item))
            return -1;
        uint64_t picked = 0;
        while ((f = s_field(&item, &num, &wt)) == 1) {
            if (!s_take(&item, sub_wt, num, wt, pick == num ? &v : NULL,
                        &nbytes))
                return -1;
            if (pick && num == pick)
                picked = v; /* the last one wins, as in protobuf-c */
        }
        if (f < 0)
            return -1;
        n++;
        total += picked;
        if (each)
            each(arg, picked);
    }
    if (f < 0)
        return -1;
    *count = n;
    if (sum)
        *sum = total;
    if (bytes)
        *bytes = nbytes;
    return 0;
}

#define A S_ANY
static const int8_t s_task_wt[16] = {
    A, S_VARINT, S_LEN, S_VARINT, S_VARINT, S_VARINT, S_I64, S_VARINT,
    A, A,        A,     A,        A,        A,        A,     A};
static const int8_t s_task_batch_wt[16] = {
    A,     S_LEN, S_LEN, S_LEN, S_VARINT, S_LEN, S_VARINT, S_LEN,
    S_LEN, A,     A,     A,     A,        A,     A,        A};
static const int8_t s_result_wt[16] = {
    A,        S_VARINT, S_VARINT, S_LEN,    S_LEN,    S_LEN, S_VARINT, S_VARINT,
    S_VARINT, S_VARINT, S_VARINT, S_VARINT, S_VARINT, S_I64, A,        A};
static const int8_t s_result_batch_wt[16] = {
    A, S_LEN, S_LEN, S_LEN, S_VARINT, S_VARINT, S_VARINT, A,
    A, A,     A,     A,     A,        A,        A,        A};
#undef A

typedef struct {
    uint64_t min_ms;
    bool some_without;
} s_deadlines_t;

static void s_note_deadline(void *arg, uint64_t deadline)
{
    s_deadlines_t *d = arg;
    if (!deadline)
        d->some_without = true;
    else if (!d->min_ms || deadline < d->min_ms)
        d->min_ms = deadline;
}

int zp_scan_task_batch(const void *data, size_t len, size_t max_len,
                       size_t *n_tasks, uint64_t *min_ms, bool *some_without)
{
    s_deadlines_t d = {0, false};
    bool want = min_ms && some_without;
    if (s_scan_batch(data, len, max_len, ZPIPE__V1__MESSAGE__KIND_TASK_BATCH,
                     s_task_batch_wt, 3, s_task_wt, want ? 4 : 0, n_tasks, NULL,
                     NULL, want ? s_note_deadline : NULL, &d) < 0)
        return -1; /* deadline_ms: field 4 */
    if (want) {
        *min_ms = d.min_ms;
        *some_without = d.some_without;
    }
    return 0;
}

int zp_scan_result_batch(const void *data, size_t len, size_t max_len,
                         size_t *n_results, uint64_t *elapsed_us,
                         void (*each)(void *arg, uint64_t elapsed_us),
                         void *arg)
{
    return s_scan_batch(data, len, max_len,
                        ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH,
                        s_result_batch_wt, 3, s_result_wt, 8, n_results,
                        elapsed_us, NULL, each, arg); /* elapsed_us: 8 */
}

/* Calls fn with varint field pick of each item (field 3) of the batch in
 * a frame a scan accepted, 0 when the item has none; the last one wins,
 * as in protobuf-c. */
static void s_each_item_varint(const void *data, size_t len, unsigned pick,
                               void (*fn)(void *arg, uint64_t v), void *arg)
{
    s_rd_t r = {data, (const uint8_t *)data + len}, b = {NULL, NULL},
           item = {NULL, NULL};
    unsigned num;
    int wt;
    if (s_field(&r, &num, &wt) != 1 || !s_len(&r, &b))
        return;
    while (s_field(&b, &num, &wt) == 1) {
        if (num != 3 || wt != S_LEN) {
            s_skip(&b, wt);
            continue;
        }
        s_len(&b, &item);
        uint64_t picked = 0, v = 0;
        while (s_field(&item, &num, &wt) == 1) {
            if (wt == S_VARINT) {
                s_varint(&item, &v);
                if (num == pick)
                    picked = v;
            } else
                s_skip(&item, wt);
        }
        fn(arg, picked);
    }
}

void zp_task_batch_deadlines(const void *data, size_t len, uint64_t *min_ms,
                             bool *some_without)
{
    s_deadlines_t d = {0, false};
    s_each_item_varint(data, len, 4, s_note_deadline, &d); /* deadline_ms */
    *min_ms = d.min_ms;
    *some_without = d.some_without;
}

/* ---- zero-copy views ------------------------------------------------------
 * One walk over the frame that checks what the scans check (so a view is
 * refused exactly where decode refuses) and fills the view as it goes. */

typedef struct {
    unsigned num;
    int wt;
    uint64_t v;
    const uint8_t *p; /* S_LEN data */
    size_t len;
} s_val_t;

/* The next field of r, checked against wt_of: 1 with it in *x, 0 at the
 * end, -1 for what the scans refuse. */
static inline __attribute__((always_inline)) int
s_next_checked(s_rd_t *r, const int8_t wt_of[16], s_val_t *x)
{
    int f = s_field(r, &x->num, &x->wt);
    if (f != 1)
        return f;
    int want = wt_of[x->num];
    if (want != S_ANY && want != x->wt)
        return -1;
    s_rd_t sub;
    x->v = 0;
    x->p = NULL;
    x->len = 0;
    switch (x->wt) {
    case S_VARINT:
        return s_varint(r, &x->v) ? 1 : -1;
    case S_LEN:
        if (!s_len(r, &sub))
            return -1;
        x->p = sub.p;
        x->len = (size_t)(sub.end - sub.p);
        return 1;
    case S_I64:
        if (r->end - r->p < 8)
            return -1;
        x->v = s_le64(r->p);
        r->p += 8;
        return 1;
    default:
        return s_skip(r, x->wt) ? 1 : -1;
    }
}

/* A NUL-terminated copy in the view's string space, reserved for the
 * whole frame: a string's bytes and NUL never take more room than its
 * tag, length and bytes did on the wire. */
static char *s_str(zp_buf_t *strings, const s_val_t *x)
{
    char *p = strings->data + strings->len;
    memcpy(p, x->p, x->len);
    p[x->len] = '\0';
    strings->len += x->len + 1;
    return p;
}

/* Room for item n (0-based) in the view's array of items: grows it (and
 * its array of pointers) by doubling, kept from call to call. */
static int s_view_room(void **items, void **ptrs, size_t *cap, size_t item_size,
                       size_t n)
{
    if (n < *cap)
        return 0;
    size_t want = *cap ? 2 * *cap : 64;
    void *a = realloc(*items, want * item_size);
    if (!a)
        return -1;
    *items = a;
    void *b = realloc(*ptrs, want * sizeof(void *));
    if (!b)
        return -1;
    *ptrs = b;
    *cap = want;
    return 0;
}

/* The batch inside a Message{kind} frame of at most max_len bytes, with
 * the view's string space reserved: false when it is not that. */
static bool s_view_open(const void *data, size_t len, size_t max_len,
                        unsigned kind, zp_buf_t *strings, s_rd_t *b)
{
    s_rd_t r = {data, (const uint8_t *)data + len};
    unsigned num;
    int wt;
    if (len > max_len || s_field(&r, &num, &wt) != 1 || num != kind ||
        wt != S_LEN || !s_len(&r, b) || r.p != r.end)
        return false; /* exactly one field: the batch */
    strings->len = 0;
    return zp_buf_reserve(strings, len + 1) == 0;
}

/* One Task from its bytes into t. */
static int s_view_task(Zpipe__V1__Task *t, const s_val_t *x)
{
    *t = (Zpipe__V1__Task)ZPIPE__V1__TASK__INIT; /* inlined: per task */
    s_rd_t item = {x->p, x->p + x->len};
    s_val_t y;
    int f;
    while ((f = s_next_checked(&item, s_task_wt, &y)) == 1) {
        switch (y.num) {
        case 1:
            t->task_id = y.v;
            break;
        case 2:
            t->payload.data = (uint8_t *)y.p;
            t->payload.len = y.len;
            break;
        case 3:
            t->attempt = (uint32_t)y.v;
            break;
        case 4:
            t->deadline_ms = y.v;
            break;
        case 5:
            t->queued_us = y.v;
            break;
        case 6:
            t->lease = y.v;
            break;
        case 7:
            t->payload_frame = (uint32_t)y.v;
            break;
        default:
            break; /* unknown: skipped, as protobuf-c keeps it aside */
        }
    }
    return f;
}

int zp_view_task_batch(zp_task_view_t *v, const void *data, size_t len,
                       size_t max_len)
{
    s_rd_t r;
    if (!s_view_open(data, len, max_len, ZPIPE__V1__MESSAGE__KIND_TASK_BATCH,
                     &v->strings, &r))
        return -1;
    Zpipe__V1__TaskBatch *b = &v->batch;
    zpipe__v1__task_batch__init(b);
    s_val_t x;
    size_t n = 0;
    int f;
    while ((f = s_next_checked(&r, s_task_batch_wt, &x)) == 1) {
        switch (x.num) {
        case 1:
            b->job_id = s_str(&v->strings, &x);
            break;
        case 2:
            b->plugin = s_str(&v->strings, &x);
            break;
        case 3:
            if (s_view_room((void **)&v->tasks, (void **)&v->ptrs, &v->cap,
                            sizeof *v->tasks, n) < 0 ||
                s_view_task(&v->tasks[n], &x) < 0)
                return -1;
            n++;
            break;
        case 4:
            b->dispatch_us = x.v;
            break;
        case 5:
            b->config = s_str(&v->strings, &x);
            break;
        case 6:
            b->seq = x.v;
            break;
        case 7:
            b->token = s_str(&v->strings, &x);
            break;
        case 8:
            b->lines.data = (uint8_t *)x.p;
            b->lines.len = x.len;
            break;
        default:
            break;
        }
    }
    if (f < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        v->ptrs[i] = &v->tasks[i];
    b->tasks = v->ptrs;
    b->n_tasks = n;
    return 0;
}

/* One Result from its bytes into t, its strings in the view's space. */
static int s_view_result(Zpipe__V1__Result *t, const s_val_t *x,
                         zp_buf_t *strings)
{
    *t = (Zpipe__V1__Result)ZPIPE__V1__RESULT__INIT;
    s_rd_t item = {x->p, x->p + x->len};
    /* The fields a worker's results carry, by their tags (one byte each,
     * with the wire type the field must have), without the general walk;
     * from the first other byte on, the general walk takes the rest. */
    for (;;) {
        s_rd_t sub;
        uint64_t v;
        if (item.p == item.end)
            return 0;
        unsigned tag = *item.p;
        if (tag == (3 << 3 | S_LEN)) { /* output */
            item.p++;
            if (!s_len(&item, &sub))
                return -1;
            t->output.data = (uint8_t *)sub.p;
            t->output.len = (size_t)(sub.end - sub.p);
            continue;
        }
        if (tag == (13 << 3 | S_I64)) { /* lease */
            if (item.end - item.p < 9)
                return -1;
            t->lease = s_le64(item.p + 1);
            item.p += 9;
            continue;
        }
        if (tag != (1 << 3 | S_VARINT) && tag != (2 << 3 | S_VARINT) &&
            tag != (6 << 3 | S_VARINT) && tag != (8 << 3 | S_VARINT))
            break;
        item.p++;
        if (!s_varint(&item, &v))
            return -1;
        switch (tag >> 3) {
        case 1:
            t->task_id = v;
            break;
        case 2:
            t->status = (Zpipe__V1__Status)(int32_t)(uint32_t)v;
            break;
        case 6:
            t->attempt = (uint32_t)v;
            break;
        default: /* 8 */
            t->elapsed_us = v;
            break;
        }
    }
    s_val_t y;
    int f;
    while ((f = s_next_checked(&item, s_result_wt, &y)) == 1) {
        switch (y.num) {
        case 1:
            t->task_id = y.v;
            break;
        case 2:
            t->status = (Zpipe__V1__Status)(int32_t)(uint32_t)y.v;
            break;
        case 3:
            t->output.data = (uint8_t *)y.p;
            t->output.len = y.len;
            break;
        case 4:
            t->error = s_str(strings, &y);
            break;
        case 5:
            t->cause = s_str(strings, &y);
            break;
        case 6:
            t->attempt = (uint32_t)y.v;
            break;
        case 7:
            t->start_us = y.v;
            break;
        case 8:
            t->elapsed_us = y.v;
            break;
        case 9:
            t->retryable = y.v != 0;
            break;
        case 10:
            t->queued_us = y.v;
            break;
        case 11:
            t->dispatch_us = y.v;
            break;
        case 12:
            t->quarantined = y.v != 0;
            break;
        case 13:
            t->lease = y.v;
            break;
        default:
            break;
        }
    }
    return f;
}

int zp_view_result_batch(zp_result_view_t *v, const void *data, size_t len,
                         size_t max_len)
{
    s_rd_t r;
    if (!s_view_open(data, len, max_len, ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH,
                     &v->strings, &r))
        return -1;
    Zpipe__V1__ResultBatch *b = &v->batch;
    zpipe__v1__result_batch__init(b);
    s_val_t x;
    size_t n = 0;
    int f;
    while ((f = s_next_checked(&r, s_result_batch_wt, &x)) == 1) {
        switch (x.num) {
        case 1:
            b->job_id = s_str(&v->strings, &x);
            break;
        case 2:
            b->worker_id = s_str(&v->strings, &x);
            break;
        case 3:
            if (s_view_room((void **)&v->results, (void **)&v->ptrs, &v->cap,
                            sizeof *v->results, n) < 0 ||
                s_view_result(&v->results[n], &x, &v->strings) < 0)
                return -1;
            n++;
            break;
        case 4:
            b->window = (uint32_t)x.v;
            break;
        case 5:
            b->max_held = (uint32_t)x.v;
            break;
        case 6:
            b->tasks_done = x.v;
            break;
        default:
            break;
        }
    }
    if (f < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        v->ptrs[i] = &v->results[i];
    b->results = v->ptrs;
    b->n_results = n;
    return 0;
}

void zp_task_view_free(zp_task_view_t *v)
{
    free(v->tasks);
    free(v->ptrs);
    zp_buf_free(&v->strings);
    memset(v, 0, sizeof *v);
}

void zp_result_view_free(zp_result_view_t *v)
{
    free(v->results);
    free(v->ptrs);
    zp_buf_free(&v->strings);
    memset(v, 0, sizeof *v);
}

/* ---- batch encoders ---------------------------------------------------------
 * The same bytes protobuf-c writes (fields in number order, proto3 defaults
 * left out), without its descriptor walk and its second pass for sizes.
 * The unit tests compare the two byte for byte. */

static size_t s_task_size(const Zpipe__V1__Task *t)
{
    return zp_wire_opt_varint_size(t->task_id) +
           (t->payload.len ? zp_wire_len_field_size(t->payload.len) : 0) +
           zp_wire_opt_varint_size((uint64_t)t->attempt) +
           zp_wire_opt_varint_size(t->deadline_ms) +
           zp_wire_opt_varint_size(t->queued_us) + (t->lease ? 9 : 0) +
           zp_wire_opt_varint_size((uint64_t)t->payload_frame);
}

/* int32 (the Status enum): negative values take ten bytes, as in
 * protobuf-c. */
static uint64_t s_int32_wire(int32_t v)
{
    return (uint64_t)(int64_t)v;
}

static size_t s_result_size(const Zpipe__V1__Result *r)
{
    size_t el = zp_wire_str_len(r->error), cl = zp_wire_str_len(r->cause);
    return zp_wire_opt_varint_size(r->task_id) +
           zp_wire_opt_varint_size(s_int32_wire((int32_t)r->status)) +
           (r->output.len ? zp_wire_len_field_size(r->output.len) : 0) +
           (el ? zp_wire_len_field_size(el) : 0) +
           (cl ? zp_wire_len_field_size(cl) : 0) +
           zp_wire_opt_varint_size((uint64_t)r->attempt) +
           zp_wire_opt_varint_size(r->start_us) +
           zp_wire_opt_varint_size(r->elapsed_us) + (r->retryable ? 2 : 0) +
           zp_wire_opt_varint_size(r->queued_us) +
           zp_wire_opt_varint_size(r->dispatch_us) + (r->quarantined ? 2 : 0) +
           (r->lease ? 9 : 0);
}

/* The body of a TaskBatch (its fields, without the Message around it). */
static size_t s_task_batch_body(const Zpipe__V1__TaskBatch *b)
{
    size_t jl = zp_wire_str_len(b->job_id), pl = zp_wire_str_len(b->plugin);
    size_t cl = zp_wire_str_len(b->config), tl = zp_wire_str_len(b->token);
    size_t body = (jl ? zp_wire_len_field_size(jl) : 0) +
                  (pl ? zp_wire_len_field_size(pl) : 0) +
                  zp_wire_opt_varint_size(b->dispatch_us) +
                  (cl ? zp_wire_len_field_size(cl) : 0) +
                  zp_wire_opt_varint_size(b->seq) +
                  (tl ? zp_wire_len_field_size(tl) : 0) +
                  (b->lines.len ? zp_wire_len_field_size(b->lines.len) : 0);
    for (size_t i = 0; i < b->n_tasks; i++)
        body += zp_wire_len_field_size(s_task_size(b->tasks[i]));
    return body;
}

size_t zp_task_batch_size(const Zpipe__V1__TaskBatch *b)
{
    return zp_wire_len_field_size(s_task_batch_body(b));
}

size_t zp_task_batch_write(const Zpipe__V1__TaskBatch *b, void *dst,
                           size_t size)
{
    size_t jl = zp_wire_str_len(b->job_id), pl = zp_wire_str_len(b->plugin);
    size_t cl = zp_wire_str_len(b->config), tl = zp_wire_str_len(b->token);
    uint8_t *p = dst;
    *p++ = (uint8_t)(ZPIPE__V1__MESSAGE__KIND_TASK_BATCH << 3 | S_LEN);
    p = zp_wire_put_varint(p, zp_wire_body_of(size));
    if (jl)
        p = zp_wire_put_len_field(p, 1, b->job_id, jl);
    if (pl)
        p = zp_wire_put_len_field(p, 2, b->plugin, pl);
    for (size_t i = 0; i < b->n_tasks; i++) {
        const Zpipe__V1__Task *t = b->tasks[i];
        *p++ = (uint8_t)(3 << 3 | S_LEN);
        p = zp_wire_put_varint(p, s_task_size(t));
        p = zp_wire_put_opt_varint(p, 1, t->task_id);
        if (t->payload.len)
            p = zp_wire_put_len_field(p, 2, t->payload.data, t->payload.len);
        p = zp_wire_put_opt_varint(p, 3, (uint64_t)t->attempt);
        p = zp_wire_put_opt_varint(p, 4, t->deadline_ms);
        p = zp_wire_put_opt_varint(p, 5, t->queued_us);
        if (t->lease)
            p = zp_wire_put_fixed64(p, 6, t->lease);
        p = zp_wire_put_opt_varint(p, 7, (uint64_t)t->payload_frame);
    }
    p = zp_wire_put_opt_varint(p, 4, b->dispatch_us);
    if (cl)
        p = zp_wire_put_len_field(p, 5, b->config, cl);
    p = zp_wire_put_opt_varint(p, 6, b->seq);
    if (tl)
        p = zp_wire_put_len_field(p, 7, b->token, tl);
    if (b->lines.len)
        p = zp_wire_put_len_field(p, 8, b->lines.data, b->lines.len);
    return (size_t)(p - (uint8_t *)dst);
}

int zp_encode_task_batch(const Zpipe__V1__TaskBatch *b, zp_buf_t *out)
{
    size_t n = zp_task_batch_size(b);
    out->len = 0;
    if (zp_buf_reserve(out, n) < 0)
        return -1;
    out->len = zp_task_batch_write(b, out->data, n);
    return out->len == n ? 0 : -1;
}

/* The body of a ResultBatch (its fields, without the Message around
 * it). */
size_t zp_result_batch_fields_size(const char *job, const char *worker,
                                   uint64_t window, uint64_t max_held,
                                   uint64_t tasks_done)
{
    size_t jl = zp_wire_str_len(job), wl = zp_wire_str_len(worker);
    return (jl ? zp_wire_len_field_size(jl) : 0) +
           (wl ? zp_wire_len_field_size(wl) : 0) +
           zp_wire_opt_varint_size(window) + zp_wire_opt_varint_size(max_held) +
           zp_wire_opt_varint_size(tasks_done);
}

static size_t s_result_batch_body(const Zpipe__V1__ResultBatch *b)
{
    size_t body = zp_result_batch_fields_size(
        b->job_id, b->worker_id, (uint64_t)b->window, (uint64_t)b->max_held,
        b->tasks_done);
    for (size_t i = 0; i < b->n_results; i++)
        body += zp_wire_len_field_size(s_result_size(b->results[i]));
    return body;
}

size_t zp_result_batch_size(const Zpipe__V1__ResultBatch *b)
{
    return zp_wire_len_field_size(s_result_batch_body(b));
}

/* A result up to its output's bytes: its field header, task_id, status,
 * and the output's tag and length. */
static uint8_t *s_put_result_head(uint8_t *p, const Zpipe__V1__Result *r)
{
    *p++ = (uint8_t)(3 << 3 | S_LEN);
    p = zp_wire_put_varint(p, s_result_size(r));
    p = zp_wire_put_opt_varint(p, 1, r->task_id);
    p = zp_wire_put_opt_varint(p, 2, s_int32_wire((int32_t)r->status));
    if (r->output.len) {
        *p++ = (uint8_t)(3 << 3 | S_LEN);
        p = zp_wire_put_varint(p, r->output.len);
    }
    return p;
}

/* A result's fields after its output. */
static uint8_t *s_put_result_tail(uint8_t *p, const Zpipe__V1__Result *r)
{
    size_t el = zp_wire_str_len(r->error), cl = zp_wire_str_len(r->cause);
    if (el)
        p = zp_wire_put_len_field(p, 4, r->error, el);
    if (cl)
        p = zp_wire_put_len_field(p, 5, r->cause, cl);
    p = zp_wire_put_opt_varint(p, 6, (uint64_t)r->attempt);
    p = zp_wire_put_opt_varint(p, 7, r->start_us);
    p = zp_wire_put_opt_varint(p, 8, r->elapsed_us);
    p = zp_wire_put_opt_bool(p, 9, r->retryable);
    p = zp_wire_put_opt_varint(p, 10, r->queued_us);
    p = zp_wire_put_opt_varint(p, 11, r->dispatch_us);
    p = zp_wire_put_opt_bool(p, 12, r->quarantined);
    if (r->lease)
        p = zp_wire_put_fixed64(p, 13, r->lease);
    return p;
}

/* The batch's fields before its results (its body body bytes). */
uint8_t *zp_result_batch_put_head(uint8_t *p, const char *job,
                                  const char *worker, size_t body)
{
    size_t jl = zp_wire_str_len(job), wl = zp_wire_str_len(worker);
    *p++ = (uint8_t)(ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH << 3 | S_LEN);
    p = zp_wire_put_varint(p, body);
    if (jl)
        p = zp_wire_put_len_field(p, 1, job, jl);
    if (wl)
        p = zp_wire_put_len_field(p, 2, worker, wl);
    return p;
}

uint8_t *zp_result_batch_put_tail(uint8_t *p, uint64_t window,
                                  uint64_t max_held, uint64_t tasks_done)
{
    p = zp_wire_put_opt_varint(p, 4, window);
    p = zp_wire_put_opt_varint(p, 5, max_held);
    return zp_wire_put_opt_varint(p, 6, tasks_done);
}

size_t zp_result_batch_write(const Zpipe__V1__ResultBatch *b, void *dst,
                             size_t size)
{
    uint8_t *p = zp_result_batch_put_head(dst, b->job_id, b->worker_id,
                                          zp_wire_body_of(size));
    for (size_t i = 0; i < b->n_results; i++) {
        const Zpipe__V1__Result *r = b->results[i];
        p = s_put_result_head(p, r);
        if (r->output.len)
            memcpy(p, r->output.data, r->output.len);
        p = s_put_result_tail(p + r->output.len, r);
    }
    p = zp_result_batch_put_tail(p, b->window, b->max_held, b->tasks_done);
    return (size_t)(p - (uint8_t *)dst);
}

/* Bytes of the batch of one result before its output's bytes. */
size_t zp_result_batch_head_size(const Zpipe__V1__ResultBatch *b)
{
    uint8_t scratch[64];
    const Zpipe__V1__Result *r = b->results[0];
    size_t jl = zp_wire_str_len(b->job_id), wl = zp_wire_str_len(b->worker_id);
    return 1 + zp_wire_vsize(s_result_batch_body(b)) +
           (jl ? zp_wire_len_field_size(jl) : 0) +
           (wl ? zp_wire_len_field_size(wl) : 0) +
           (size_t)(s_put_result_head(scratch, r) - scratch);
}

size_t zp_result_batch_write_around(const Zpipe__V1__ResultBatch *b,
                                    uint8_t **start)
{
    const Zpipe__V1__Result *r = b->results[0];
    uint8_t *out = r->output.data;
    uint8_t *p = out - zp_result_batch_head_size(b);
    *start = p;
    p = s_put_result_head(zp_result_batch_put_head(p, b->job_id, b->worker_id,
                                                   s_result_batch_body(b)),
                          r);
    p = s_put_result_tail(p + r->output.len, r);
    p = zp_result_batch_put_tail(p, b->window, b->max_held, b->tasks_done);
    return (size_t)(p - *start);
}

int zp_encode_result_batch(const Zpipe__V1__ResultBatch *b, zp_buf_t *out)
{
    size_t n = zp_result_batch_size(b);
    out->len = 0;
    if (zp_buf_reserve(out, n) < 0)
        return -1;
    out->len = zp_result_batch_write(b, out->data, n);
    return out->len == n ? 0 : -1;
}

size_t zp_encoded_size(const zp_message_t *msg)
{
    if (msg->kind_case == ZPIPE__V1__MESSAGE__KIND_TASK_BATCH)
        return zp_task_batch_size(msg->task_batch);
    if (msg->kind_case == ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH)
        return zp_result_batch_size(msg->result_batch);
    return zpipe__v1__message__get_packed_size(msg);
}

size_t zp_encode_to(const zp_message_t *msg, void *dst, size_t size)
{
    if (msg->kind_case == ZPIPE__V1__MESSAGE__KIND_TASK_BATCH)
        return zp_task_batch_write(msg->task_batch, dst, size);
    if (msg->kind_case == ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH)
        return zp_result_batch_write(msg->result_batch, dst, size);
    return zpipe__v1__message__pack(msg, dst);
}
