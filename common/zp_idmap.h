/* zp_idmap: a hash map from 64-bit ids to pointers, and a double-ended
 * queue of ids. The ventilator keeps its in-flight tasks in them. */
#ifndef ZP_IDMAP_H
#define ZP_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct zp_idmap zp_idmap_t;

/* Caller owns the result; NULL on allocation failure. */
zp_idmap_t *zp_idmap_new(void);
/* Frees the map (not the values); nulls the caller's pointer. */
void zp_idmap_destroy(zp_idmap_t **self_p);
/* Inserts or replaces; returns 0 or -1 on allocation failure. */
int zp_idmap_put(zp_idmap_t *self, uint64_t id, void *value);
/* The value for id, or NULL. */
void *zp_idmap_get(const zp_idmap_t *self, uint64_t id);
/* Removes id; returns its value or NULL. */
void *zp_idmap_remove(zp_idmap_t *self, uint64_t id);
size_t zp_idmap_size(const zp_idmap_t *self);
/* The farthest any member sits from its home slot: what the longest get
 * may walk (O(capacity); for tests). */
size_t zp_idmap_longest_probe(const zp_idmap_t *self);
/* The farthest any member sits from its home slot: what the longest get
 * may walk (O(capacity); for tests). */
size_t zp_idmap_longest_probe(const zp_idmap_t *self);
/* Iteration: start with *cursor = 0; returns false when done. Neither
 * insert nor remove while iterating: a removal shifts the next entry back
 * into a slot the cursor has passed, so it would be skipped. Collect the
 * ids and remove them afterwards. */
bool zp_idmap_next(const zp_idmap_t *self, size_t *cursor, uint64_t *id,
                   void **value);

typedef struct {
    uint64_t *items;
    size_t cap, head, len;
} zp_iddeque_t;

int zp_iddeque_push_back(zp_iddeque_t *q, uint64_t id);
int zp_iddeque_push_front(zp_iddeque_t *q, uint64_t id);
/* Returns false when empty. */
bool zp_iddeque_pop_front(zp_iddeque_t *q, uint64_t *id);
/* The newest id (pushed last at the back); false when empty. */
bool zp_iddeque_pop_back(zp_iddeque_t *q, uint64_t *id);
void zp_iddeque_free(zp_iddeque_t *q);

#endif
