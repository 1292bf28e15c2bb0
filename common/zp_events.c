/* zp_events: a daemon's event PUB stream; see zp_events.h. */
#include "zp_events.h"

#include "zp_log.h"
#include "zp_net.h"
#include "zp_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct zp_events {
    void *pub;
    const char *source; /* borrowed, a string literal */
    char *instance;     /* source-RANDOM, this process's */
    uint64_t seq;
    zp_buf_t scratch;
};

static const char *s_topics[] = {
    [ZPIPE__V1__EVENT_KIND__EVENT_WORKER_JOINED] = "worker_joined",
    [ZPIPE__V1__EVENT_KIND__EVENT_WORKER_LEFT] = "worker_left",
    [ZPIPE__V1__EVENT_KIND__EVENT_WORKER_DEAD] = "worker_dead",
    [ZPIPE__V1__EVENT_KIND__EVENT_JOB_OPENED] = "job_opened",
    [ZPIPE__V1__EVENT_KIND__EVENT_JOB_CLOSED] = "job_closed",
    [ZPIPE__V1__EVENT_KIND__EVENT_JOB_DONE] = "job_done",
    [ZPIPE__V1__EVENT_KIND__EVENT_TASK_FAILED] = "task_failed",
    [ZPIPE__V1__EVENT_KIND__EVENT_TASK_RETRIED] = "task_retried",
    [ZPIPE__V1__EVENT_KIND__EVENT_TASK_QUARANTINED] = "task_quarantined",
};

const char *zp_event_topic(Zpipe__V1__EventKind kind)
{
    if ((unsigned)kind < sizeof s_topics / sizeof *s_topics && s_topics[kind])
        return s_topics[kind];
    return "unknown";
}

zp_events_t *zp_events_new(void *ctx, const char *endpoint, const char *source,
                           zp_curve_t *curve)
{
    zp_events_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->source = source;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s-", source);
    self->instance = zp_random_id(prefix, 6);
    if (!self->instance)
        goto fail_alloc;
    self->pub = zp_socket(ctx, ZMQ_PUB, endpoint, true, 0, curve, NULL);
    if (!self->pub)
        goto fail_alloc;
    int hwm = ZP_EVENTS_HWM;
    zmq_setsockopt(self->pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (zp_curve_watch(curve, self->pub, "events") < 0)
        goto fail_socket;
    zp_info("events published on %s", endpoint);
    return self;
fail_socket:
    zmq_close(self->pub);
fail_alloc:
    free(self->instance);
    free(self);
    return NULL;
}

void zp_events_destroy(zp_events_t **self_p)
{
    zp_events_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    zmq_close(self->pub);
    zp_buf_free(&self->scratch);
    free(self->instance);
    free(self);
    *self_p = NULL;
}

/* A proto3 string must be UTF-8 or other languages' decoders refuse the
 * whole event; error texts come from plugins. Replaces *field, when it is
 * not UTF-8, by a copy with every non-ASCII byte as '?', which the caller
 * frees (in *copy). */
static void s_clean(char **field, char **copy)
{
    *copy = NULL;
    if (!*field || zp_utf8_valid(*field, strlen(*field)))
        return;
    *copy = strdup(*field);
    if (*copy)
        for (char *c = *copy; *c; c++)
            if ((unsigned char)*c >= 0x80)
                *c = '?';
    *field = *copy ? *copy : "";
}

void zp_events_emit(zp_events_t *self, Zpipe__V1__Event *ev)
{
    if (!self)
        return;
    char *copies[6];
    char **fields[6] = {&ev->worker_id, &ev->job_id, &ev->cause,
                        &ev->detail,    &ev->plugin, &ev->host};
    for (int i = 0; i < 6; i++)
        s_clean(fields[i], &copies[i]);
    ev->time_us = zp_now_us();
    ev->source = (char *)self->source;
    ev->instance = self->instance;
    ev->seq = ++self->seq;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_EVENT;
    m.event = ev;
    const char *topic = zp_event_topic(ev->kind);
    if (zp_encode(&m, &self->scratch) < 0)
        zp_warn("events: cannot encode a %s event", topic);
    /* A PUB socket drops rather than block; a drop shows as a seq gap. */
    else if (zmq_send(self->pub, topic, strlen(topic),
                      ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(self->pub, self->scratch.data, self->scratch.len,
                 ZMQ_DONTWAIT);
    for (int i = 0; i < 6; i++)
        free(copies[i]);
}

uint64_t zp_events_sent(const zp_events_t *self)
{
    return self ? self->seq : 0;
}
