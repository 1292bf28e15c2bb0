/* zp_events: the event stream a daemon publishes on its --events PUB
 * socket (proto/zpipe.proto, Event): workers joining and dying, jobs
 * opening and finishing, tasks failing, retried or quarantined.
 *
 * Each event is a topic frame (the kind's name, "worker_joined", ...) and
 * one encoded Message. Sends never block the daemon: a subscriber that
 * falls more than ZP_EVENTS_HWM events behind loses the newest, which it
 * sees as a gap in seq. Main thread only. */
#ifndef ZP_EVENTS_H
#define ZP_EVENTS_H

#include "zp_codec.h"
#include "zp_curve.h"

#include <stdint.h>

typedef struct zp_events zp_events_t;

#define ZP_EVENTS_HWM 100000

/* Binds a PUB socket at endpoint in ctx (a CURVE server on tcp:// when
 * curve is enabled; curve may be NULL); source names the publisher in
 * every event ("ventilator", "sink"). Logs and returns NULL on failure,
 * naming the endpoint. Caller owns the result. */
zp_events_t *zp_events_new(void *ctx, const char *endpoint, const char *source,
                           zp_curve_t *curve);
/* Closes the socket and frees; nulls the caller's pointer. NULL-safe. */
void zp_events_destroy(zp_events_t **self_p);

/* Publishes ev (borrowed) after setting its time, source, instance and
 * seq. kind must be set. NULL-safe: without a stream it does nothing, so
 * callers on a hot path test the pointer before building an event. */
void zp_events_emit(zp_events_t *self, Zpipe__V1__Event *ev);

/* Events published so far. */
uint64_t zp_events_sent(const zp_events_t *self);

/* The topic of kind: "worker_joined", ...; "unknown" for others. */
const char *zp_event_topic(Zpipe__V1__EventKind kind);

/* The --events option of the ventilator and the sink. */
#define ZP_EVENTS_OPTION(target)                                               \
    {                                                                          \
        "events", 0, ZP_OPT_STR, "ZPIPE_EVENTS", "ENDPOINT",                   \
            "publish cluster events (workers, jobs, failed tasks) on a PUB "   \
            "socket bound here; default off",                                  \
            &(target), 0, 0, NULL                                              \
    }

#endif
