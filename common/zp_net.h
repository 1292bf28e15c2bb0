/* zp_net: ZeroMQ socket set-up and framed send/receive of zpipe messages.
 *
 * Every socket gets a bounded linger (closing never hangs) and every
 * receiving socket a ZMQ_MAXMSGSIZE cap, so an oversized peer is cut off
 * before its frame is buffered. */
#ifndef ZP_NET_H
#define ZP_NET_H

#include "zp_codec.h"
#include "zp_curve.h"

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

/* Linger applied to every socket (ms). */
#define ZP_LINGER_MS 1000

/* For a connecting socket: a peer that is not up yet (every process
 * starts at once) is tried again after 10 ms, not libzmq's 100, backing
 * off to 1 s while it stays away. zp_socket does this itself. */
void zp_fast_reconnect(void *sock);

/* zmq_poll over the items that ask for events and are there (a socket, or
 * with a NULL socket a descriptor >= 0): an item with no events still
 * reports POLLHUP, and a NULL socket is the descriptor in .fd (0, stdin,
 * when left zero), so polling those would make a closed pipe wake every
 * poll. An absent socket's item must therefore ask for no events. Every
 * item's revents is set (0 for those not polled). Returns zmq_poll's
 * result. */
int zp_poll_asked(zmq_pollitem_t *items, int n, long timeout);

/* ZeroMQ heartbeats on a socket that carries a long-lived link between
 * daemons (the ventilator's control DEALER, the sink's control ROUTER):
 * a PING every ZP_HEARTBEAT_IVL_MS, and the connection is closed when
 * nothing at all arrives for ZP_HEARTBEAT_TIMEOUT_MS; the peer is told
 * to do the same (TTL). A link whose packets are silently dropped (a
 * NAT or firewall state lost, a cable cut) is then noticed in seconds
 * and reconnected, instead of after TCP's own timeouts (minutes, or
 * never for an idle link). Any whole message received counts, not only
 * the PONG (libzmq 4.3 cancels the timeout on each decoded message);
 * but the PONG waits behind what the peer is sending, so a single
 * message that takes over 3 s to arrive (1 MiB at under about
 * 350 KB/s) gets its connection cut and sent again after the
 * reconnect. Call before zmq_bind/zmq_connect: a connection takes the
 * options set when its listener or connecter was made. Returns 0, -1
 * with errno (libzmq without ZMTP 3.1 heartbeats). */
#define ZP_HEARTBEAT_IVL_MS     1000
#define ZP_HEARTBEAT_TIMEOUT_MS 3000
/* The sink's control ROUTER serves consumers too, whose ResultsChunks may
 * be large on slow links: there a dead connection is dropped after a
 * minute (the ventilator's own 3 s timeout notices its link going dead,
 * and ROUTER_HANDOVER lets it back in at once). */
#define ZP_HEARTBEAT_SHARED_TIMEOUT_MS 60000
/* timeout_ms: ZP_HEARTBEAT_TIMEOUT_MS, or the shared socket's. */
int zp_heartbeat(void *sock, int timeout_ms);

/* Creates a socket of type with zp_socket's options (linger, size cap,
 * fast reconnect for a connecting socket, ROUTER_MANDATORY), not yet
 * bound or connected, so more options can be set; zp_socket_attach then
 * binds or connects it. Logs and returns NULL on failure. */
void *zp_socket_open(void *ctx, int type, const char *endpoint, bool bind,
                     size_t max_frame);

/* Applies curve (see zp_socket) and binds or connects sock to endpoint.
 * On failure logs, closes sock and returns -1. */
int zp_socket_attach(void *sock, const char *endpoint, bool bind,
                     zp_curve_t *curve, const char *server_key);

/* Creates a socket of type; binds (bind = true) or connects to endpoint.
 * With curve enabled and a tcp:// endpoint the socket is a CURVE server
 * (bind; its rejected handshakes counted) or a client of server_key
 * (connect); curve may be NULL. Logs and returns NULL on failure, naming
 * the endpoint. */
void *zp_socket(void *ctx, int type, const char *endpoint, bool bind,
                size_t max_frame, zp_curve_t *curve, const char *server_key);

/* Encodes msg and sends it as one frame, preceded by routing_id when not
 * NULL (ROUTER sockets). The message is encoded into the ZeroMQ message
 * that is sent, not copied into it (scratch is not used; it stays for the
 * callers' sake). Returns 0, or -1 with errno (EAGAIN when flags has
 * ZMQ_DONTWAIT and the pipe is full, EHOSTUNREACH for a vanished peer). */
int zp_send(void *sock, const char *routing_id, size_t routing_len,
            const zp_message_t *msg, zp_buf_t *scratch, int flags);

/* Receives one message into frame (which must be zmq_msg_init'ed by the
 * caller). With routed = true, first reads the routing id frame. Extra
 * frames are consumed and make the call return 1 (malformed); 0 is ok;
 * -1 with errno on error (EAGAIN with ZMQ_DONTWAIT, EINTR on a signal). */
int zp_recv(void *sock, bool routed, char *routing_id, size_t *routing_len,
            void *frame, int flags);

/* Receives one message into frame (zmq_msg_init'ed by the caller) and
 * the frames after it into *parts (an array the caller frees with each
 * frame closed; NULL when none), *n_parts of them, at most max_parts:
 * the frames of a message over that are consumed and it returns 1
 * (malformed; nothing kept). 0 is ok; -1 with errno on error (EAGAIN with
 * ZMQ_DONTWAIT, EINTR on a signal, ENOMEM: the message is consumed). */
int zp_recv_parts(void *sock, void *frame, zmq_msg_t **parts, size_t *n_parts,
                  size_t max_parts, int flags);

/* Starts a monitor of events on sock; returns the PAIR socket to poll, or
 * NULL (logged). */
void *zp_monitor_open(void *ctx, void *sock, int events, const char *name);
/* The PAIR end of a monitor publishing on endpoint (inproc), or NULL
 * (logged, naming the socket). */
void *zp_monitor_connect(void *ctx, const char *endpoint, const char *name);
/* Reads every queued event; returns how many. */
int zp_monitor_drain(void *monitor);
/* Takes the next queued event without blocking and returns its number
 * (ZMQ_EVENT_CONNECTED, ...); 0 when none is waiting. */
int zp_monitor_next(void *monitor);
/* Stops the monitor and closes its socket; nulls the caller's pointer. */
void zp_monitor_close(void *sock, void **monitor_p);

#endif
