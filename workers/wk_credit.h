/* wk_credit: a worker's credit window under credit dispatch, as pure
 * policy: how many tasks it holds, and how much credit to grant so about
 * target_ms of work stays queued. The shell sends what it decides. */
#ifndef ZP_WK_CREDIT_H
#define ZP_WK_CREDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fewest tasks granted at once: one running, one crossing the wire. */
#define ZP_WK_MIN_CREDIT 2u

/* Owned by the worker shell, embedded; read its fields, change them only
 * through the functions below. Counters are in tasks; granted - completed
 * is what the ventilator may have sent and this worker not finished. */
typedef struct {
    uint64_t window;    /* most tasks held at once */
    uint64_t target_ms; /* work to keep queued */
    uint64_t target;    /* credit to keep outstanding, 1..window */
    uint64_t granted, received, completed;
    uint64_t max_held;   /* most tasks held at any time */
    uint64_t violations; /* arrivals beyond the window */
    double ewma_task_us, ewma_bytes;
} zp_wk_credit_t;

/* What an arrival did to the books. */
typedef struct {
    bool new_max;  /* max_held grew (publish it) */
    uint64_t over; /* tasks held beyond the window, 0 = none */
    uint64_t held; /* tasks held now */
} zp_wk_arrival_t;

/* Starts the books for a window and a target time: the target begins at
 * 8 tasks (never over the window, at least 1) until tasks are measured. */
void zp_wk_credit_init(zp_wk_credit_t *self, uint64_t window,
                       uint64_t target_ms);

/* Re-sizes the target from n finished tasks that took elapsed_us and
 * carried bytes of payload each: enough for target_ms of work, at least
 * ZP_WK_MIN_CREDIT, at most the window and about 64 MiB of payload. */
void zp_wk_credit_observe(zp_wk_credit_t *self, uint64_t elapsed_us,
                          size_t bytes, size_t n);

/* The part of elapsed_us (tasks' wall time) that was theirs, not other
 * processes' turn on the CPU: less waited_us (the executor's wait for a
 * CPU meanwhile), but never below a sixteenth of it (a wait counted from
 * before the tasks began must not make them look free). */
uint64_t zp_wk_credit_busy_us(uint64_t elapsed_us, uint64_t waited_us);

/* Counts n tasks finished. */
void zp_wk_credit_done(zp_wk_credit_t *self, uint64_t n);

/* Counts n tasks received; checked against the window only when
 * check_window (credit dispatch). */
zp_wk_arrival_t zp_wk_credit_received(zp_wk_credit_t *self, uint64_t n,
                                      bool check_window);

/* The credit to grant now, 0 for none: the deficit to the target once it
 * is a quarter of the target, or whenever nothing is outstanding. */
uint64_t zp_wk_credit_due(const zp_wk_credit_t *self);
/* Counts n tasks of credit sent. */
void zp_wk_credit_granted(zp_wk_credit_t *self, uint64_t n);

/* The credit a hello carries: the target less what is held. */
uint64_t zp_wk_credit_hello(const zp_wk_credit_t *self);
/* A hello carrying credit was sent: outstanding is what is held plus
 * that credit. */
void zp_wk_credit_hello_sent(zp_wk_credit_t *self, uint64_t credit);

/* Tasks received and not finished. */
uint64_t zp_wk_credit_held(const zp_wk_credit_t *self);

/* When the next heartbeat is due: heartbeat_ms after the last message
 * sent to the ventilator (last_sent_us), however often the worker wakes
 * in between. Once that moment has passed (the last heartbeat could not
 * be sent: no ventilator connected, or its queue full), half an interval
 * from now, to try again without spinning. Times in microseconds. */
uint64_t zp_wk_heartbeat_due_us(uint64_t last_sent_us, uint64_t heartbeat_ms,
                                uint64_t now);

#endif
