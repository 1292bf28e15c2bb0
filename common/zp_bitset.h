/* zp_bitset: a growable set of task ids, one bit each (which tasks a job
 * has committed, which an earlier run did). */
#ifndef ZP_BITSET_H
#define ZP_BITSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Zero-initialise for an empty set; zp_bitset_free releases it. Ids are
 * bounded by the caller (a hostile id would size the set). */
typedef struct {
    uint64_t *words;
    size_t n_words;
    uint64_t count; /* ids set */
} zp_bitset_t;

/* Adds id; returns 1 if it was new, 0 if it was there, -1 when out of
 * memory (the set is unchanged). */
int zp_bitset_set(zp_bitset_t *self, uint64_t id);
bool zp_bitset_has(const zp_bitset_t *self, uint64_t id);
/* The first id at or after from that is in the set (in = true) or not
 * (in = false). UINT64_MAX when no id past from is in the set; every id
 * past the words is out of it. */
uint64_t zp_bitset_next(const zp_bitset_t *self, uint64_t from, bool in);
/* Frees the words; the set is empty and usable again. */
void zp_bitset_free(zp_bitset_t *self);

#endif
