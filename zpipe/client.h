/* client: the one client of a ventilator's intake or a sink's control
 * socket for every zpipe command (run, submit, wait, results, status,
 * top): one DEALER, CURVE when asked, messages decoded into an arena. */
#ifndef ZP_CLIENT_H
#define ZP_CLIENT_H

#include "zp_codec.h"

#include <stdbool.h>
#include <stddef.h>

/* The largest message the commands accept from a cluster's sockets. */
#define ZP_CLIENT_MAX_MSG (1u << 30)

typedef struct zp_client_t zp_client_t;

/* Connects to endpoint, accepting messages up to max_msg bytes; with
 * secret (own certificate) over CURVE to the server whose key is key_spec
 * (option names it in messages; both may be NULL for plain sockets).
 * Caller owns the result; NULL on failure (the reason on stderr). */
zp_client_t *zp_client_new(const char *endpoint, size_t max_msg,
                           const char *secret, const char *option,
                           const char *key_spec);

/* Closes the socket at once (nothing unsent is kept) and nulls the
 * pointer. */
void zp_client_destroy(zp_client_t **self_p);

/* Sends m (flags as zmq_send: ZMQ_DONTWAIT or 0). Returns 0, or -1. */
int zp_client_send(zp_client_t *self, const zp_message_t *m, int flags);

/* Sends a frame already encoded (a Message), flags as zmq_send. Returns
 * 0, or -1 with errno. */
int zp_client_send_frame(zp_client_t *self, const void *data, size_t len,
                         int flags);

/* Sends a StatusRequest about job (NULL: the whole cluster), with wait set
 * as asked, without blocking. Returns 0, or -1. */
int zp_client_ask_status(zp_client_t *self, const char *job, bool wait);

/* Whether a message is waiting, after waiting up to ms for one. */
bool zp_client_poll(zp_client_t *self, long ms);

/* Starts watching the connection with a ZeroMQ socket monitor, so a
 * producer learns that its server went away and came back (the messages
 * queued on the old connection are lost with it). Returns 0, or -1
 * (logged): the client works on without. */
int zp_client_watch(zp_client_t *self);

/* Waits up to ms for a message or, once watching, a connection event;
 * returns true if either is waiting. */
bool zp_client_wait(zp_client_t *self, long ms);

/* As zp_client_wait, and also returns (true) when fd is readable; fd < 0:
 * none. */
bool zp_client_wait_fd(zp_client_t *self, long ms, int fd);

/* Takes the next connection event without blocking: ZMQ_EVENT_CONNECTED
 * or ZMQ_EVENT_DISCONNECTED; 0 when none is waiting or not watching. */
int zp_client_event(zp_client_t *self);

/* Takes the next waiting message without blocking: returns 0 with *m the
 * decoded message (NULL when it did not decode), or -1 when none is
 * waiting. *m is borrowed, valid until the next call on self. */
int zp_client_next(zp_client_t *self, zp_message_t **m);

/* Waits up to ms for a message of kind (about job when job is set and
 * kind is a JobStatus, Ack or ResultsChunk), dropping others; NULL on
 * timeout or interruption. Borrowed, valid until the next call on self. */
zp_message_t *zp_client_recv(zp_client_t *self, int kind, const char *job,
                             long ms);

#endif
