/* The zpipe commands' client of a ventilator intake or a sink control
 * socket: one DEALER, CURVE when asked, messages decoded into an arena. */
#ifndef ZP_CLIENT_H
#define ZP_CLIENT_H

#include "zp_codec.h"
#include "zp_curve.h"

typedef struct {
    void *ctx, *sock;
    zp_curve_t *curve;
    zp_arena_t *arena;
    zp_buf_t scratch;
} zp_client_t;

/* Connects to endpoint; with secret (own certificate) over CURVE to the
 * server whose key is key_spec (option names it in messages). Returns 0,
 * or -1 (the reason on stderr). Close with zp_client_close either way. */
int zp_client_open(zp_client_t *c, const char *endpoint, const char *secret,
                   const char *option, const char *key_spec);
void zp_client_close(zp_client_t *c);

/* Waits up to ms for a message of kind (about job when job is set and
 * kind is a JobStatus, Ack or ResultsChunk); NULL on timeout or
 * interruption. The result lives until the next call. */
zp_message_t *zp_client_recv(zp_client_t *c, int kind, const char *job,
                             long ms);

#endif
