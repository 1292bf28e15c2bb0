/* vent_acks: the intake's answers waiting for the journal. With --journal
 * a producer hears "taken" only once what it sent is on disk: the shell
 * queues each Ack here and sends the queue after one sync covers them
 * all (group commit). An answer dropped for want of memory costs nothing
 * but a resend: everything a producer sends may be sent again. */
#ifndef ZP_VENT_ACKS_H
#define ZP_VENT_ACKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One Ack to a producer's connection. */
typedef struct {
    char rid[256];
    size_t rid_len;
    char *job, *error; /* owned; error NULL when ok */
    bool ok;
    bool finished; /* Ack.finished: the job had already finished */
    uint64_t first, accepted, seq;
} zp_vent_ack_item_t;

/* Zero-initialise; zp_vent_acks_free releases it. */
typedef struct {
    zp_vent_ack_item_t *items;
    size_t n, cap;
} zp_vent_acks_t;

/* Queues an Ack (strings copied; rid at most 256 bytes; finished false,
 * which the caller may set on the last item). Returns 0, or -1 when out
 * of memory (nothing queued: the producer will send again). */
int zp_vent_acks_push(zp_vent_acks_t *q, const char *rid, size_t rid_len,
                      const char *job, bool ok, const char *error,
                      uint64_t first, uint64_t accepted, uint64_t seq);
/* Forgets every queued Ack (after they were sent). */
void zp_vent_acks_clear(zp_vent_acks_t *q);
/* Forgets them and frees the queue (zero again). */
void zp_vent_acks_free(zp_vent_acks_t *q);

#endif
