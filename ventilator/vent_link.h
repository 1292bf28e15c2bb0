/* vent_link: the ventilator's conversation with the sink about each job,
 * as decisions. JobOpen until acknowledged (then again as a keepalive
 * that teaches a restarted sink), JobClose with the count once the input
 * ended until acknowledged, then StatusRequest until the sink says done;
 * a change of the sink's instance means it restarted. The shell sends
 * what zp_vent_link_due says and reports it with zp_vent_link_sent. */
#ifndef ZP_VENT_LINK_H
#define ZP_VENT_LINK_H

#include "vent_job.h"

#include <stdbool.h>
#include <stdint.h>

#define ZP_VENT_RESEND_US    1000000u /* unanswered open or close */
#define ZP_VENT_KEEPALIVE_US 2000000u /* open keepalive, status request */

/* What to send for a job (bits). */
enum {
    ZP_VENT_SEND_OPEN = 1,
    ZP_VENT_SEND_CLOSE = 2,
    ZP_VENT_SEND_STATUS = 4,
    ZP_VENT_SAY_CLOSING = 8, /* with SEND_CLOSE: log that the input ended */
};

/* What j needs sent at now (a set of ZP_VENT_SEND_* bits; 0: nothing).
 * A finished job needs nothing. keepalive: whether j may send its
 * periodic JobOpen now (the shell lets one job a round do it: one answer
 * is enough to see a sink restart, and thousands of idle jobs must not
 * each talk to the sink every two seconds). After a sink restart every
 * live job sends its JobOpen once, so that the sink learns its opener. */
unsigned zp_vent_link_due(const zp_vent_job_t *j, uint64_t now, bool keepalive);
/* The shell sent what (ZP_VENT_SEND_* bits) for j at now. A first
 * JobClose moves j from OPEN to CLOSING. */
void zp_vent_link_sent(zp_vent_job_t *j, unsigned what, uint64_t now);

/* What an Ack for j meant, by j's state. */
typedef enum {
    ZP_VENT_ACK_NOTHING, /* a keepalive's answer */
    ZP_VENT_ACK_OPENED,  /* the sink opened the job: dispatch may start */
    ZP_VENT_ACK_CLOSED,  /* the sink has the close: ask for the status */
    ZP_VENT_ACK_REFUSED, /* the sink refused the job: it is over */
} zp_vent_ack_t;

/* The sink acknowledged (ok) or refused (!ok) j's last request at now:
 * applies the transition and says what it was. */
zp_vent_ack_t zp_vent_link_on_ack(zp_vent_job_t *j, bool ok, uint64_t now);
/* The sink's JobStatus for j (done: its state is JOB_DONE, failed: its
 * failed tasks). True when j became DONE. */
bool zp_vent_link_on_status(zp_vent_job_t *j, bool done, uint64_t failed);
/* The sink restarted: j's close (if any) is sent again. */
void zp_vent_link_restarted(zp_vent_job_t *j);

/* The sink's instance as its acks name it. Zero-initialise;
 * zp_vent_link_free releases it. */
typedef struct {
    char *sink_instance;
} zp_vent_link_t;

/* An ack named instance (NULL or "": none): returns true when it differs
 * from the one known before (the sink restarted). Out of memory: the old
 * one is kept, so the next ack reports the restart again (sending the
 * uncommitted tasks twice is safe; missing the restart is not). */
bool zp_vent_link_instance(zp_vent_link_t *l, const char *instance);
/* Forgets the instance (l is zero again). */
void zp_vent_link_free(zp_vent_link_t *l);

#endif
