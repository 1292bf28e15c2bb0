/* submit_window: the messages zpipe submit sent and has no answer for, in
 * order, and what each Ack, reconnect and restart means for them. */
#define _GNU_SOURCE
#include "submit_window.h"
#include "zp_util.h"

#include <stdlib.h>
#include <string.h>

/* Refusals naming a batch after the last answered, in a row (no progress
 * on one connection to one ventilator instance), before they count as
 * final. A batch out of order is refused with the seq expected; any other
 * refusal of a batch ("unknown job", a task too big) names the batch's
 * own seq, and the two look alike. The first kind comes only from
 * batches a dropped connection delivered late, at most a window of them,
 * and sending again from the seq named cures it; the second comes back
 * each time and ends the run after a few rounds. */
#define S_MAX_REFUSALS(cap) ((cap) + 2)

typedef struct {
    char *frame; /* the encoded Message, owned */
    size_t len;
    zp_submit_kind_t kind;
    uint64_t seq, tasks; /* batches */
    bool sent_once;      /* for the count of messages sent again */
} s_entry_t;

struct zp_submit_window_t {
    s_entry_t *ring; /* cap entries; count from head, oldest first */
    size_t cap, head, count;
    size_t sent; /* entries from the head sent since the last rewind */
    bool nudged; /* the head goes again before anything else */
    uint64_t next_seq, acked_seq; /* batches: next to push, last answered */
    uint64_t total;               /* tasks in the batches pushed */
    bool pushed_open, open_acked, pushed_close, close_acked;
    bool connected, dropped; /* the connection, as the monitor said */
    bool rewound_since_ack;  /* a reconnect already sent everything again */
    bool instance_known;     /* the ventilator instance heard last: */
    uint64_t instance;       /* its hash */
    uint64_t waiting_since;  /* an answer awaited since (0: none awaited) */
    uint64_t nudge_at;       /* the backstop's clock: last heard or nudge */
    unsigned refusals;       /* out-of-order refusals since progress */
    zp_submit_stats_t st;
};

zp_submit_window_t *zp_submit_window_new(size_t max_batches)
{
    zp_submit_window_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cap = max_batches ? max_batches : 1;
    self->ring = calloc(self->cap, sizeof *self->ring);
    if (!self->ring) {
        free(self);
        return NULL;
    }
    self->next_seq = 1;
    self->connected = true; /* until the monitor says otherwise */
    return self;
}

static s_entry_t *s_at(const zp_submit_window_t *self, size_t i)
{
    return &self->ring[(self->head + i) % self->cap];
}

static void s_pop(zp_submit_window_t *self)
{
    s_entry_t *e = s_at(self, 0);
    if (e->kind == ZP_SUBMIT_BATCH)
        self->st.tasks_acked += e->tasks;
    free(e->frame);
    *e = (s_entry_t){0};
    self->head = (self->head + 1) % self->cap;
    self->count--;
    if (self->sent)
        self->sent--;
    self->nudged = false;
}

void zp_submit_window_destroy(zp_submit_window_t **self_p)
{
    zp_submit_window_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    while (self->count)
        s_pop(self);
    free(self->ring);
    free(self);
    *self_p = NULL;
}

bool zp_submit_window_wants(const zp_submit_window_t *self,
                            zp_submit_kind_t kind)
{
    switch (kind) {
    case ZP_SUBMIT_OPEN:
        return !self->pushed_open;
    case ZP_SUBMIT_BATCH:
        return self->open_acked && !self->pushed_close &&
               self->count < self->cap;
    case ZP_SUBMIT_CLOSE:
        return self->open_acked && !self->pushed_close && !self->count;
    }
    return false;
}

uint64_t zp_submit_window_next_seq(const zp_submit_window_t *self)
{
    return self->next_seq;
}

uint64_t zp_submit_window_total(const zp_submit_window_t *self)
{
    return self->total;
}

int zp_submit_window_push(zp_submit_window_t *self, zp_submit_kind_t kind,
                          uint64_t tasks, char **frame_p, size_t len,
                          uint64_t now)
{
    if (!zp_submit_window_wants(self, kind)) {
        free(*frame_p);
        *frame_p = NULL;
        return -1;
    }
    s_entry_t *e = s_at(self, self->count++);
    *e = (s_entry_t){.frame = *frame_p, .len = len, .kind = kind};
    *frame_p = NULL;
    if (!self->waiting_since)
        self->waiting_since = self->nudge_at = now ? now : 1;
    if (kind == ZP_SUBMIT_OPEN)
        self->pushed_open = true;
    else if (kind == ZP_SUBMIT_CLOSE)
        self->pushed_close = true;
    else {
        e->seq = self->next_seq++;
        e->tasks = tasks;
        self->total += tasks;
    }
    return 0;
}

bool zp_submit_window_next(const zp_submit_window_t *self, const char **data,
                           size_t *len)
{
    if (!self->connected || !self->count ||
        (!self->nudged && self->sent == self->count))
        return false;
    const s_entry_t *e = s_at(self, self->nudged ? 0 : self->sent);
    *data = e->frame;
    *len = e->len;
    return true;
}

void zp_submit_window_sent(zp_submit_window_t *self)
{
    if (!self->count)
        return;
    s_entry_t *e = s_at(self, self->nudged ? 0 : self->sent);
    if (self->nudged)
        self->nudged = false;
    else if (self->sent < self->count)
        self->sent++;
    self->st.resent += e->sent_once;
    e->sent_once = true;
}

/* Everything unanswered goes again, oldest first. */
static void s_rewind(zp_submit_window_t *self)
{
    self->sent = 0;
    self->nudged = false;
}

/* Whether the Ack comes from another ventilator instance than the last. */
static bool s_instance_changed(zp_submit_window_t *self, const char *inst)
{
    if (!inst || !*inst)
        return false;
    uint64_t h = zp_hash_str(inst); /* compared, never shown */
    bool changed = self->instance_known && h != self->instance;
    self->instance = h;
    self->instance_known = true;
    return changed;
}

static zp_submit_outcome_t s_verdict(zp_submit_verdict_t v,
                                     zp_submit_kind_t kind, const char *why)
{
    return (zp_submit_outcome_t){.verdict = v, .kind = kind, .why = why};
}

/* The answer to the JobOpen or the JobClose at the head. Both have seq 0;
 * the close's names the job's total (Ack.accepted), which tells it from
 * the open's answered again (an open sent twice, from a dropped
 * connection and again): in an empty job only, the two look alike. */
static zp_submit_outcome_t s_ack_open_close(zp_submit_window_t *self,
                                            const zp_submit_ack_t *a)
{
    zp_submit_kind_t kind = s_at(self, 0)->kind;
    if (a->seq) /* about a batch: answered already */
        return s_verdict(ZP_SUBMIT_STALE, kind, NULL);
    if (a->ok && kind == ZP_SUBMIT_CLOSE && a->accepted != self->total)
        return s_verdict(ZP_SUBMIT_STALE, kind, NULL);
    if (!a->ok)
        return s_verdict(ZP_SUBMIT_REFUSED, kind, NULL);
    s_pop(self);
    if (kind == ZP_SUBMIT_OPEN && a->finished) {
        /* Its batches are gone from the ventilator: send none. */
        self->open_acked = self->pushed_close = self->close_acked = true;
        return s_verdict(ZP_SUBMIT_FINISHED, kind, NULL);
    }
    if (kind == ZP_SUBMIT_OPEN)
        self->open_acked = true;
    else
        self->close_acked = true;
    return s_verdict(ZP_SUBMIT_PROGRESS, kind, NULL);
}

/* Batches up to seq (all known to the ventilator) leave the window. */
static void s_ack_through(zp_submit_window_t *self, uint64_t seq)
{
    while (self->count && s_at(self, 0)->kind == ZP_SUBMIT_BATCH &&
           s_at(self, 0)->seq <= seq)
        s_pop(self);
    if (seq > self->acked_seq)
        self->acked_seq = seq;
}

/* A refusal naming the batch the ventilator expects next: it has every
 * one before it; send again from there. */
static zp_submit_outcome_t s_refused_batch(zp_submit_window_t *self,
                                           const zp_submit_ack_t *a)
{
    const zp_submit_kind_t b = ZP_SUBMIT_BATCH;
    if (a->seq <= self->acked_seq)
        return s_verdict(ZP_SUBMIT_REFUSED, b,
                         "the ventilator lost batches it had acknowledged "
                         "(restarted without its --journal?)");
    if (a->seq >= self->next_seq)
        return s_verdict(ZP_SUBMIT_REFUSED, b, NULL);
    s_ack_through(self, a->seq - 1);
    if (++self->refusals > S_MAX_REFUSALS(self->cap))
        return s_verdict(ZP_SUBMIT_REFUSED, b, NULL);
    s_rewind(self);
    return s_verdict(ZP_SUBMIT_RESEND, b, NULL);
}

/* The answer to a batch; the head is a batch. Answers come in order on a
 * connection, and the ventilator takes batch n only after n - 1, so an
 * answer for n also answers every batch before it. */
static zp_submit_outcome_t s_ack_batch(zp_submit_window_t *self,
                                       const zp_submit_ack_t *a)
{
    const zp_submit_kind_t b = ZP_SUBMIT_BATCH;
    const s_entry_t *head = s_at(self, 0);
    zp_submit_ack_t legacy;
    if (!a->seq && a->ok && a->accepted && a->accepted == head->tasks) {
        /* A ventilator older than TaskBatch.seq: it answers in order. */
        legacy = *a;
        legacy.seq = head->seq;
        a = &legacy;
    }
    if (!a->seq) /* the open's again, or a refusal of the batch as such */
        return s_verdict(a->ok ? ZP_SUBMIT_STALE : ZP_SUBMIT_REFUSED, b, NULL);
    if (!a->ok)
        return s_refused_batch(self, a);
    if (a->seq <= self->acked_seq)
        return s_verdict(ZP_SUBMIT_STALE, b, NULL);
    if (a->seq >= self->next_seq)
        return s_verdict(ZP_SUBMIT_REFUSED, b,
                         "the ventilator answered a batch never sent");
    const s_entry_t *e = s_at(self, (size_t)(a->seq - head->seq));
    if (a->accepted != e->tasks)
        return s_verdict(ZP_SUBMIT_REFUSED, b,
                         "the ventilator holds this batch with another "
                         "number of tasks (run again with another --batch "
                         "or input?)");
    s_ack_through(self, a->seq);
    self->refusals = 0;
    return s_verdict(ZP_SUBMIT_PROGRESS, b, NULL);
}

zp_submit_outcome_t zp_submit_window_ack(zp_submit_window_t *self,
                                         const zp_submit_ack_t *a, uint64_t now)
{
    bool restarted = s_instance_changed(self, a->ventilator_instance);
    if (restarted) {
        self->refusals = 0;
        if (!self->rewound_since_ack) {
            s_rewind(self);
            self->st.reconnects++;
        }
    }
    self->rewound_since_ack = false;
    self->nudge_at = now;
    if (self->waiting_since)
        self->waiting_since = now;
    zp_submit_outcome_t out =
        !self->count ? s_verdict(ZP_SUBMIT_STALE, ZP_SUBMIT_CLOSE, NULL)
        : s_at(self, 0)->kind == ZP_SUBMIT_BATCH ? s_ack_batch(self, a)
                                                 : s_ack_open_close(self, a);
    self->st.stale += out.verdict == ZP_SUBMIT_STALE;
    if (!self->count)
        self->waiting_since = 0;
    out.restarted = restarted;
    return out;
}

void zp_submit_window_disconnected(zp_submit_window_t *self)
{
    self->connected = false;
    self->dropped = true;
}

void zp_submit_window_connected(zp_submit_window_t *self, uint64_t now)
{
    if (self->dropped) {
        s_rewind(self);
        self->refusals = 0;
        self->rewound_since_ack = true;
        self->st.reconnects++;
        self->nudge_at = now;
    }
    self->dropped = false;
    self->connected = true;
}

bool zp_submit_window_nudge(zp_submit_window_t *self, uint64_t now)
{
    if (!self->connected || !self->sent || self->nudged ||
        now - self->nudge_at < ZP_SUBMIT_NUDGE_US)
        return false;
    self->nudged = true;
    self->nudge_at = now;
    return true;
}

uint64_t zp_submit_window_silent_us(const zp_submit_window_t *self,
                                    uint64_t now)
{
    return self->waiting_since && now > self->waiting_since
               ? now - self->waiting_since
               : 0;
}

bool zp_submit_window_done(const zp_submit_window_t *self)
{
    return self->close_acked;
}

void zp_submit_window_stats(const zp_submit_window_t *self,
                            zp_submit_stats_t *out)
{
    *out = self->st;
}

bool zp_submit_batch_takes(size_t n, size_t bytes, size_t len, size_t max_tasks,
                           size_t max_bytes)
{
    return n == 0 ||
           (n < max_tasks && bytes <= max_bytes && len <= max_bytes - bytes);
}

/* How many '\n' the S_SPAN bytes at p hold (a loop the compiler
 * vectorises). */
#define S_SPAN 256
static size_t s_newlines(const char *p)
{
    size_t c = 0;
    for (size_t i = 0; i < S_SPAN; i++)
        c += p[i] == '\n';
    return c;
}

size_t zp_submit_batch_cut(const char *text, size_t len, size_t *n,
                           size_t *bytes, size_t max_tasks, size_t max_bytes)
{
    size_t took = 0; /* bytes of the lines taken */
    const char *nl;
    if (!*n) { /* the first line always joins */
        if (!(nl = memchr(text, '\n', len)))
            return 0;
        took = (size_t)(nl - text) + 1;
        *n = 1;
        *bytes += took - 1;
    }
    /* Whole spans: every line that ends in the spans joins when their
     * bytes less their newlines (no fewer than the lines' bytes) still
     * leave both limits held. */
    size_t at = 0, seen = 0; /* bytes spanned after took, their newlines */
    while (len - took - at >= S_SPAN) {
        size_t c = s_newlines(text + took + at);
        if (*n + seen + c > max_tasks || *bytes > max_bytes ||
            at + S_SPAN - seen - c > max_bytes - *bytes)
            break;
        at += S_SPAN;
        seen += c;
    }
    if (seen) {
        nl = memrchr(text + took, '\n', at);
        size_t span = (size_t)(nl - (text + took)) + 1;
        *n += seen;
        *bytes += span - seen;
        took += span;
    }
    /* Then line by line, by the rule itself. */
    while ((nl = memchr(text + took, '\n', len - took))) {
        size_t line = (size_t)(nl - text) - took;
        if (!zp_submit_batch_takes(*n, *bytes, line, max_tasks, max_bytes))
            break;
        ++*n;
        *bytes += line;
        took += line + 1;
    }
    return took;
}
