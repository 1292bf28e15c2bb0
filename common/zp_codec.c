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
