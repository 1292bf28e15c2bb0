/* zp_codec: protobuf-c behind an arena allocator. */
#include "zp_codec.h"

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

enum { S_VARINT = 0, S_I64 = 1, S_LEN = 2, S_I32 = 5, S_ANY = -1 };

static bool s_varint(s_rd_t *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned i = 0; i < 10 && r->p < r->end; i++) {
        uint8_t b = *r->p++;
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

/* Checks one field against the wire types of known fields (S_ANY for a
 * field number the message does not have); sets *value for varints. */
static bool s_take(s_rd_t *r, const int8_t wt_of[16], unsigned num, int wt,
                   uint64_t *value)
{
    int want = wt_of[num];
    if (want != S_ANY && want != wt)
        return false;
    if (wt == S_VARINT)
        return s_varint(r, value);
    return s_skip(r, wt);
}

/* Message{kind: batch}, where field sub of batch repeats a message of flat
 * fields: counts those, and sums varint field pick of each (0 = none). */
static int s_scan_batch(const void *data, size_t len, size_t max_len,
                        unsigned kind, const int8_t batch_wt[16], unsigned sub,
                        const int8_t sub_wt[16], unsigned pick, size_t *count,
                        uint64_t *sum)
{
    if (len > max_len)
        return -1;
    s_rd_t r = {data, (const uint8_t *)data + len}, b, item;
    unsigned num;
    int wt, f;
    if (s_field(&r, &num, &wt) != 1 || num != kind || wt != S_LEN ||
        !s_len(&r, &b) || r.p != r.end)
        return -1; /* exactly one field: the batch */
    size_t n = 0;
    uint64_t total = 0, v = 0;
    while ((f = s_field(&b, &num, &wt)) == 1) {
        if (num != sub) {
            if (!s_take(&b, batch_wt, num, wt, &v))
                return -1;
            continue;
        }
        if (wt != S_LEN || !s_len(&b, &item))
            return -1;
        uint64_t picked = 0;
        while ((f = s_field(&item, &num, &wt)) == 1) {
            if (!s_take(&item, sub_wt, num, wt, &v))
                return -1;
            if (pick && num == pick)
                picked = v; /* the last one wins, as in protobuf-c */
        }
        if (f < 0)
            return -1;
        n++;
        total += picked;
    }
    if (f < 0)
        return -1;
    *count = n;
    if (sum)
        *sum = total;
    return 0;
}

#define A S_ANY
static const int8_t s_task_wt[16] = {
    A, S_VARINT, S_LEN, S_VARINT, S_VARINT, A, A, A, A, A, A, A, A, A, A, A};
static const int8_t s_task_batch_wt[16] = {
    A, S_LEN, S_LEN, S_LEN, S_VARINT, A, A, A, A, A, A, A, A, A, A, A};
static const int8_t s_result_wt[16] = {
    A,        S_VARINT, S_VARINT, S_LEN, S_LEN, S_LEN, S_VARINT, S_VARINT,
    S_VARINT, S_VARINT, A,        A,     A,     A,     A,        A};
static const int8_t s_result_batch_wt[16] = {
    A, S_LEN, S_LEN, S_LEN, S_VARINT, S_VARINT, S_VARINT, A,
    A, A,     A,     A,     A,        A,        A,        A};
#undef A

int zp_scan_task_batch(const void *data, size_t len, size_t max_len,
                       size_t *n_tasks)
{
    return s_scan_batch(data, len, max_len, ZPIPE__V1__MESSAGE__KIND_TASK_BATCH,
                        s_task_batch_wt, 3, s_task_wt, 0, n_tasks, NULL);
}

int zp_scan_result_batch(const void *data, size_t len, size_t max_len,
                         size_t *n_results, uint64_t *elapsed_us)
{
    return s_scan_batch(
        data, len, max_len, ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH,
        s_result_batch_wt, 3, s_result_wt, 8, n_results, elapsed_us);
}
