/* vent_lines: a producer's lines taken and not yet tasks. */
#include "vent_lines.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct zp_vent_lines_block {
    zp_vent_lines_block_t *next, *prev;
    uint64_t id;        /* task id of the line at pos */
    uint64_t left;      /* lines from pos on */
    uint64_t queued_us; /* --trace stamp, or 0 */
    size_t pos, len;    /* the next line's start; the text's length */
    uint8_t text[];
};

int zp_vent_lines_push(zp_vent_lines_t *q, uint64_t first, const uint8_t *text,
                       size_t len, uint64_t n, uint64_t queued_us)
{
    if (n == 0)
        return 0;
    zp_vent_lines_block_t *b = malloc(sizeof *b + len);
    if (!b)
        return -1;
    memcpy(b->text, text, len);
    b->next = NULL;
    b->prev = q->tail;
    b->id = first;
    b->left = n;
    b->queued_us = queued_us;
    b->pos = 0;
    b->len = len;
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    q->n += n;
    q->bytes += len;
    return 0;
}

static void s_unlink(zp_vent_lines_t *q, zp_vent_lines_block_t *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        q->head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    else
        q->tail = b->prev;
    free(b);
}

void zp_vent_lines_drop_back(zp_vent_lines_t *q)
{
    zp_vent_lines_block_t *b = q->tail;
    if (!b)
        return;
    q->n -= b->left;
    q->bytes -= b->len - b->pos;
    s_unlink(q, b);
}

bool zp_vent_lines_peek(const zp_vent_lines_t *q, uint64_t *id,
                        const uint8_t **line, size_t *len, uint64_t *queued_us)
{
    const zp_vent_lines_block_t *b = q->head;
    if (!b)
        return false;
    const uint8_t *p = b->text + b->pos;
    const uint8_t *nl = memchr(p, '\n', b->len - b->pos);
    assert(nl);
    *id = b->id;
    *line = p;
    *len = (size_t)(nl - p);
    *queued_us = b->queued_us;
    return true;
}

void zp_vent_lines_pop(zp_vent_lines_t *q, size_t len)
{
    zp_vent_lines_block_t *b = q->head;
    if (!b)
        return;
    assert(b->pos + len < b->len && b->text[b->pos + len] == '\n');
    b->pos += len + 1;
    b->id++;
    q->n--;
    q->bytes -= len + 1;
    if (--b->left == 0)
        s_unlink(q, b);
}

bool zp_vent_lines_next(const zp_vent_lines_t *q, zp_vent_lines_cursor_t *c,
                        uint64_t *id, const uint8_t **line, size_t *len)
{
    if (!c->started) {
        c->started = true;
        c->b = q->head;
        if (c->b) {
            c->pos = c->b->pos;
            c->id = c->b->id;
        }
    }
    while (c->b && c->pos >= c->b->len) {
        c->b = c->b->next;
        if (c->b) {
            c->pos = c->b->pos;
            c->id = c->b->id;
        }
    }
    if (!c->b)
        return false;
    const uint8_t *p = c->b->text + c->pos;
    const uint8_t *nl = memchr(p, '\n', c->b->len - c->pos);
    *id = c->id++;
    *line = p;
    *len = (size_t)(nl - p);
    c->pos += *len + 1;
    return true;
}

void zp_vent_lines_free(zp_vent_lines_t *q)
{
    while (q->head)
        s_unlink(q, q->head);
    q->n = q->bytes = 0;
}
