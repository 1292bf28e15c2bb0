/* vent_link: the sink conversation's decisions. */
#define _GNU_SOURCE
#include "vent_link.h"

#include <stdlib.h>
#include <string.h>

unsigned zp_vent_link_due(const zp_vent_job_t *j, uint64_t now, bool keepalive)
{
    unsigned what = 0;
    switch (j->state) {
    case ZP_VENT_JOB_OPENING:
        if (now - j->last_open_us >= ZP_VENT_RESEND_US)
            what |= ZP_VENT_SEND_OPEN;
        return what;
    case ZP_VENT_JOB_OPEN:
    case ZP_VENT_JOB_CLOSING:
    case ZP_VENT_JOB_CLOSED:
        if (j->reopen ||
            (keepalive && now - j->last_open_us >= ZP_VENT_KEEPALIVE_US))
            what |= ZP_VENT_SEND_OPEN; /* idempotent */
        break;
    default:
        return 0;
    }
    if (j->state != ZP_VENT_JOB_CLOSED && zp_vent_job_input_done(j) &&
        now - j->last_close_us >= ZP_VENT_RESEND_US) {
        what |= ZP_VENT_SEND_CLOSE;
        if (j->state == ZP_VENT_JOB_OPEN && j->has_input)
            what |= ZP_VENT_SAY_CLOSING;
    }
    if (j->state == ZP_VENT_JOB_CLOSED &&
        now - j->last_status_us >= ZP_VENT_KEEPALIVE_US)
        what |= ZP_VENT_SEND_STATUS;
    return what;
}

void zp_vent_link_sent(zp_vent_job_t *j, unsigned what, uint64_t now)
{
    if (what & ZP_VENT_SEND_OPEN) {
        j->last_open_us = now;
        j->reopen = false;
    }
    if (what & ZP_VENT_SEND_CLOSE) {
        j->last_close_us = now;
        if (j->state == ZP_VENT_JOB_OPEN)
            zp_vent_job_to(j, ZP_VENT_JOB_CLOSING);
    }
    if (what & ZP_VENT_SEND_STATUS)
        j->last_status_us = now;
}

zp_vent_ack_t zp_vent_link_on_ack(zp_vent_job_t *j, bool ok, uint64_t now)
{
    if (!ok)
        return zp_vent_job_to(j, ZP_VENT_JOB_REFUSED) == 0
                   ? ZP_VENT_ACK_REFUSED
                   : ZP_VENT_ACK_NOTHING;
    switch (j->state) {
    case ZP_VENT_JOB_OPENING:
        zp_vent_job_to(j, ZP_VENT_JOB_OPEN);
        return ZP_VENT_ACK_OPENED;
    case ZP_VENT_JOB_CLOSING:
        /* A bare Ack in CLOSING is taken as the JobClose's answer (the
         * answer to a keepalive JobOpen sent meanwhile looks the same;
         * so it was before the lifecycle was an enum). */
        zp_vent_job_to(j, ZP_VENT_JOB_CLOSED);
        j->last_status_us = now;
        return ZP_VENT_ACK_CLOSED;
    default:
        return ZP_VENT_ACK_NOTHING;
    }
}

bool zp_vent_link_on_status(zp_vent_job_t *j, bool done, uint64_t failed)
{
    if (!done || j->state != ZP_VENT_JOB_CLOSED)
        return false;
    zp_vent_job_to(j, ZP_VENT_JOB_DONE);
    j->failed = failed;
    return true;
}

void zp_vent_link_restarted(zp_vent_job_t *j)
{
    if (j->state == ZP_VENT_JOB_CLOSING || j->state == ZP_VENT_JOB_CLOSED)
        zp_vent_job_to(j, ZP_VENT_JOB_OPEN);
    j->last_close_us = 0;
    j->reopen = zp_vent_job_live(j);
}

bool zp_vent_link_instance(zp_vent_link_t *l, const char *instance)
{
    if (!instance || !*instance)
        return false;
    if (l->sink_instance && strcmp(l->sink_instance, instance) == 0)
        return false;
    bool restarted = l->sink_instance != NULL;
    char *copy = strdup(instance);
    if (!copy) /* keep the old one: the next Ack tells of the change again */
        return restarted;
    free(l->sink_instance);
    l->sink_instance = copy;
    return restarted;
}

void zp_vent_link_free(zp_vent_link_t *l)
{
    free(l->sink_instance);
    l->sink_instance = NULL;
}
