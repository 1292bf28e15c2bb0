/* wordcount: map-reduce word counts.
 *
 * Map (process, in the workers): the words of one task, as lines "WORD
 * COUNT", one per distinct word. A word is a run of bytes that are not
 * ASCII whitespace (what `wc -w` and Python's bytes.split() count); case is
 * kept.
 * Reduce (at the sink, `zpipe run --plugin wordcount --reduce`): the counts
 * of every task merged; the final value is the top N words as "WORD COUNT"
 * lines, most frequent first, ties in byte order of the word.
 *
 * Settings: top  how many words the final value lists; 0 = all. Default
 *                20. */
#define _POSIX_C_SOURCE 200809L
#include <zpipe/plugin.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *word; /* NUL-terminated; NULL = empty slot */
    size_t len;
    uint64_t count;
    uint64_t hash;
} wc_entry_t;

typedef struct {
    wc_entry_t *slots;
    size_t cap, used; /* cap is a power of two */
    uint64_t top;
} wc_table_t;

static bool wc_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

static uint64_t wc_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int wc_grow(wc_table_t *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    wc_entry_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].word)
            continue;
        size_t k = t->slots[i].hash & (cap - 1);
        while (slots[k].word)
            k = (k + 1) & (cap - 1);
        slots[k] = t->slots[i];
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

static int wc_add(wc_table_t *t, const uint8_t *w, size_t n, uint64_t count)
{
    if ((t->used + 1) * 4 > t->cap * 3 && wc_grow(t) < 0)
        return -1;
    uint64_t h = wc_hash(w, n);
    size_t k = h & (t->cap - 1);
    for (; t->slots[k].word; k = (k + 1) & (t->cap - 1)) {
        wc_entry_t *e = &t->slots[k];
        if (e->hash == h && e->len == n && memcmp(e->word, w, n) == 0) {
            e->count += count;
            return 0;
        }
    }
    char *copy = malloc(n + 1);
    if (!copy)
        return -1;
    memcpy(copy, w, n);
    copy[n] = '\0';
    t->slots[k] = (wc_entry_t){copy, n, count, h};
    t->used++;
    return 0;
}

static void wc_free(void *p)
{
    wc_table_t *t = p;
    if (!t)
        return;
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].word);
    free(t->slots);
    free(t);
}

/* The output: "WORD COUNT" lines, most frequent first, ties by word. */
static int wc_by_count(const void *a, const void *b)
{
    const wc_entry_t *x = *(wc_entry_t *const *)a, *y = *(wc_entry_t *const *)b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->word, y->word, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int wc_emit(wc_table_t *t, zpipe_call_t *call, uint64_t top)
{
    wc_entry_t **order = malloc((t->used ? t->used : 1) * sizeof *order);
    if (!order)
        return zpipe_fail(call, ZPIPE_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].word)
            order[n++] = &t->slots[i];
    qsort(order, n, sizeof *order, wc_by_count);
    if (top && top < n)
        n = top;
    int rc = ZPIPE_OK;
    char num[32];
    for (size_t i = 0; i < n && rc == ZPIPE_OK; i++) {
        int len = snprintf(num, sizeof num, " %llu\n",
                           (unsigned long long)order[i]->count);
        if (zpipe_append(call, order[i]->word, order[i]->len) < 0 ||
            zpipe_append(call, num, (size_t)len) < 0)
            rc = zpipe_fail(call, ZPIPE_ERROR, "output too large");
    }
    free(order);
    return rc;
}

static int wc_process(void *state, zpipe_call_t *call)
{
    (void)state;
    wc_table_t t = {0};
    const uint8_t *p = call->input, *end = p + call->input_len;
    int rc = ZPIPE_OK;
    while (p < end && rc == ZPIPE_OK) {
        while (p < end && wc_space(*p))
            p++;
        const uint8_t *w = p;
        while (p < end && !wc_space(*p))
            p++;
        if (p > w && wc_add(&t, w, (size_t)(p - w), 1) < 0)
            rc = zpipe_fail(call, ZPIPE_NOMEM, "out of memory");
    }
    /* The map's output is read by the reducer: every word, any order. */
    if (rc == ZPIPE_OK)
        rc = wc_emit(&t, call, 0);
    for (size_t i = 0; i < t.cap; i++)
        free(t.slots[i].word);
    free(t.slots);
    return rc;
}

static int wc_reduce_init(const zpipe_host_t *host, void **acc)
{
    wc_table_t *t = calloc(1, sizeof *t);
    if (!t)
        return ZPIPE_NOMEM;
    t->top = 20;
    const char *v = zpipe_config(host, "top");
    if (v) {
        char *end;
        unsigned long long n = strtoull(v, &end, 10);
        if (!*v || *end || v[0] == '-') {
            free(t);
            return zpipe_init_fail(host, "setting top: expected a number of "
                                         "words, 0 for all");
        }
        t->top = n;
    }
    *acc = t;
    return ZPIPE_OK;
}

/* Folds one map output: "WORD COUNT" lines. */
static int wc_reduce(void *acc, const uint8_t *out, size_t len)
{
    wc_table_t *t = acc;
    const uint8_t *p = out, *end = out + len;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *line_end = nl ? nl : end;
        const uint8_t *sp = line_end;
        while (sp > p && sp[-1] != ' ')
            sp--;
        if (sp <= p + 1)
            return ZPIPE_INVALID; /* not "WORD COUNT" */
        uint64_t count = 0;
        for (const uint8_t *d = sp; d < line_end; d++) {
            if (*d < '0' || *d > '9')
                return ZPIPE_INVALID;
            count = count * 10 + (uint64_t)(*d - '0');
        }
        if (wc_add(t, p, (size_t)(sp - 1 - p), count) < 0)
            return ZPIPE_NOMEM;
        p = line_end + 1;
    }
    return ZPIPE_OK;
}

static int wc_reduce_final(void *acc, zpipe_call_t *call)
{
    wc_table_t *t = acc;
    return wc_emit(t, call, t->top);
}

static const zpipe_plugin_t wordcount_plugin = {
    ZPIPE_PLUGIN_HEADER,
    .name = "wordcount",
    .version = "1.0",
    .description = "word counts per task; with --reduce, the top words of "
                   "the job (--config top=N)",
    .process = wc_process,
    .reduce_init = wc_reduce_init,
    .reduce = wc_reduce,
    .reduce_final = wc_reduce_final,
    .reduce_fini = wc_free,
};

ZPIPE_PLUGIN_EXPORT(wordcount_plugin)
