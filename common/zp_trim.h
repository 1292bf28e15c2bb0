/* zp_trim: a daemon gives back memory it freed after a burst. A sink that
 * held thousands of live jobs during a backlog keeps the pages of their
 * freed structures (malloc keeps what it freed inside its heap), so its
 * RSS would show the largest backlog of its life, not its live work.
 * Once the daemon has been idle for a while after being busy, it asks the
 * allocator to return free pages (glibc's malloc_trim; a no-op
 * elsewhere): once per idle period, never on a busy turn. */
#ifndef ZP_TRIM_H
#define ZP_TRIM_H

#include <stdbool.h>
#include <stdint.h>

/* Idle time after the last busy turn before memory is given back. */
#define ZP_TRIM_IDLE_US 1000000u

/* Zero-initialise. */
typedef struct {
    uint64_t busy_us; /* the last busy turn (monotonic µs) */
    bool pending;     /* busy since the last trim */
} zp_trim_t;

/* One turn of the loop at now_us: busy says it had work. Returns true
 * when memory should be given back now: idle for idle_us after a busy
 * turn, once per idle period. */
bool zp_trim_due(zp_trim_t *self, uint64_t now_us, bool busy, uint64_t idle_us);
/* Gives free memory back to the system; returns 1 when some was, 0 when
 * none was or the allocator cannot. */
int zp_trim_release(void);

#endif
