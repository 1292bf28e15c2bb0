/* zp_bitset: a growable set of task ids, one bit each. */
#include "zp_bitset.h"

#include <stdlib.h>
#include <string.h>

/* Words the set starts with: 1,024 ids (128 bytes), so a small job's set
 * is small (a sink restarted from its journal holds every job replayed
 * at once); a large one doubles its way up, a few dozen times at most. */
#define S_FIRST_WORDS 16

int zp_bitset_set(zp_bitset_t *self, uint64_t id)
{
    uint64_t word = id / 64;
    if (word >= self->n_words) {
        size_t n = self->n_words ? self->n_words : S_FIRST_WORDS;
        while (n <= word) {
            if (n > SIZE_MAX / 2 / sizeof *self->words)
                return -1;
            n *= 2;
        }
        uint64_t *words = realloc(self->words, n * sizeof *words);
        if (!words)
            return -1;
        memset(words + self->n_words, 0, (n - self->n_words) * sizeof *words);
        self->words = words;
        self->n_words = n;
    }
    uint64_t mask = 1ull << (id % 64);
    if (self->words[word] & mask)
        return 0;
    self->words[word] |= mask;
    self->count++;
    return 1;
}

bool zp_bitset_has(const zp_bitset_t *self, uint64_t id)
{
    uint64_t word = id / 64;
    return word < self->n_words && (self->words[word] >> (id % 64)) & 1;
}

uint64_t zp_bitset_next(const zp_bitset_t *self, uint64_t from, bool in)
{
    uint64_t word = from / 64;
    if (word >= self->n_words)
        return in ? UINT64_MAX : from;
    uint64_t flip = in ? 0 : ~0ull;
    uint64_t w = (self->words[word] ^ flip) & (~0ull << (from % 64));
    while (!w) {
        if (++word == self->n_words)
            return in ? UINT64_MAX : word * 64;
        w = self->words[word] ^ flip;
    }
    return word * 64 + (uint64_t)__builtin_ctzll(w);
}

void zp_bitset_free(zp_bitset_t *self)
{
    free(self->words);
    self->words = NULL;
    self->n_words = 0;
    self->count = 0;
}
