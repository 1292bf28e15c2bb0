/* wk_inputs: the executor's input region: a batch's frame copied into
 * pages of its own, followed by a guard page, and sealed read-only while
 * plugins run, so a plugin that writes to its input (or past its end,
 * into its neighbours') dies of SIGSEGV in its own task instead of
 * changing other tasks' inputs. */
#ifndef ZP_WK_INPUTS_H
#define ZP_WK_INPUTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct zp_wk_inputs zp_wk_inputs_t;

/* An empty region (nothing mapped until the first load). Caller owns the
 * result; NULL on allocation failure. */
zp_wk_inputs_t *zp_wk_inputs_new(void);
/* Unmaps and frees; nulls the caller's pointer. */
void zp_wk_inputs_destroy(zp_wk_inputs_t **self_p);

/* Copies len bytes of data into the region (unsealing it first, growing
 * it when needed; the previous copy is gone) and sets *copy to the copy,
 * borrowed until the next load or destroy. Returns 0, or -1 when it
 * cannot be mapped (the region is then empty). */
int zp_wk_inputs_load(zp_wk_inputs_t *self, const void *data, size_t len,
                      const uint8_t **copy);
/* Makes the whole region read-only (zp_wk_inputs_seal) or writable again
 * (zp_wk_inputs_unseal): one mprotect each. Returns 0 or -1 (errno). */
int zp_wk_inputs_seal(zp_wk_inputs_t *self);
int zp_wk_inputs_unseal(zp_wk_inputs_t *self);

/* Whether addr lies in the region or its guard page while it is sealed:
 * a fault there was a write to the inputs. Async-signal-safe. */
bool zp_wk_inputs_sealed_at(const zp_wk_inputs_t *self, const void *addr);

#endif
