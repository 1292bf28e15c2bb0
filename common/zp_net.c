/* zp_net: the few socket patterns every zpipe daemon repeats. */
#include "zp_net.h"
#include "zp_log.h"
#include "zp_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

void zp_fast_reconnect(void *sock)
{
    int ivl = 2, ivl_max = 1000;
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
}

int zp_poll_asked(zmq_pollitem_t *items, int n, long timeout)
{
    zmq_pollitem_t polled[17];
    int slot[16], k = 0;
    for (int i = 0; i < n; i++) {
        items[i].revents = 0;
        if (!items[i].events || (!items[i].socket && items[i].fd < 0) ||
            k == 16)
            continue;
        slot[k] = i;
        polled[k++] = items[i];
    }
    /* A stop signal wakes the poll even when it came just before it. */
    int stop = zp_stop_fd();
    if (stop >= 0)
        polled[k] = (zmq_pollitem_t){NULL, stop, ZMQ_POLLIN, 0};
    int rc = zmq_poll(polled, k + (stop >= 0), timeout);
    for (int j = 0; rc > 0 && j < k; j++)
        items[slot[j]].revents = polled[j].revents;
    if (rc > 0 && stop >= 0 && polled[k].revents)
        zp_stop_fd_drain();
    return rc;
}

int zp_heartbeat(void *sock, int timeout_ms)
{
    int ivl = ZP_HEARTBEAT_IVL_MS, timeout = timeout_ms;
    if (zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl) != 0 ||
        zmq_setsockopt(sock, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout) !=
            0 ||
        zmq_setsockopt(sock, ZMQ_HEARTBEAT_TTL, &timeout, sizeof timeout) != 0)
        return -1;
    return 0;
}

void *zp_socket_open(void *ctx, int type, const char *endpoint, bool bind,
                     size_t max_frame)
{
    void *sock = zmq_socket(ctx, type);
    if (!sock) {
        zp_error("socket for %s: %s", endpoint, zmq_strerror(errno));
        return NULL;
    }
    int linger = ZP_LINGER_MS;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (max_frame) {
        /* Room for the envelope around the largest payload. */
        int64_t cap = (int64_t)max_frame + 4096;
        zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &cap, sizeof cap);
    }
    if (!bind)
        zp_fast_reconnect(sock);
    if (type == ZMQ_ROUTER) {
        int on = 1;
        /* Fail loudly instead of dropping when a peer has vanished. */
        zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &on, sizeof on);
    }
    return sock;
}

int zp_socket_attach(void *sock, const char *endpoint, bool bind,
                     zp_curve_t *curve, const char *server_key)
{
    if (zp_curve_apply(curve, sock, endpoint, bind, server_key) < 0) {
        zmq_close(sock);
        return -1;
    }
    int rc = bind ? zmq_bind(sock, endpoint) : zmq_connect(sock, endpoint);
    if (rc != 0) {
        zp_error("%s %s: %s", bind ? "bind" : "connect", endpoint,
                 zmq_strerror(errno));
        zmq_close(sock);
        return -1;
    }
    return 0;
}

void *zp_socket(void *ctx, int type, const char *endpoint, bool bind,
                size_t max_frame, zp_curve_t *curve, const char *server_key)
{
    void *sock = zp_socket_open(ctx, type, endpoint, bind, max_frame);
    if (!sock || zp_socket_attach(sock, endpoint, bind, curve, server_key) < 0)
        return NULL;
    return sock;
}

int zp_send(void *sock, const char *routing_id, size_t routing_len,
            const zp_message_t *msg, zp_buf_t *scratch, int flags)
{
    (void)scratch;
    /* Encoded straight into the message libzmq sends, which would
     * otherwise copy every byte of it again (a batch's payloads). */
    zmq_msg_t m;
    size_t n = zp_encoded_size(msg);
    if (zmq_msg_init_size(&m, n) != 0) {
        errno = ENOMEM;
        return -1;
    }
    if (zp_encode_to(msg, zmq_msg_data(&m), n) != n) {
        zmq_msg_close(&m);
        errno = EINVAL;
        return -1;
    }
    if (routing_id &&
        zmq_send(sock, routing_id, routing_len, flags | ZMQ_SNDMORE) < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    if (zmq_msg_send(&m, sock, flags) < 0) {
        int e = errno;
        zmq_msg_close(&m);
        errno = e;
        return -1;
    }
    return 0;
}

int zp_recv(void *sock, bool routed, char *routing_id, size_t *routing_len,
            void *frame, int flags)
{
    zmq_msg_t *msg = frame;
    if (routed) {
        int n = zmq_recv(sock, routing_id, 255, flags);
        if (n < 0)
            return -1;
        *routing_len = n > 255 ? 255 : (size_t)n;
        int more = 0;
        size_t ml = sizeof more;
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
        if (!more)
            return 1;           /* a routing id with no body */
        flags &= ~ZMQ_DONTWAIT; /* the rest of a message arrives at once */
    }
    if (zmq_msg_recv(msg, sock, flags) < 0)
        return -1;
    int malformed = 0;
    while (zmq_msg_more(msg) || malformed) {
        /* Drain and reject extra frames. */
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        int more = 0;
        if (zmq_msg_recv(&extra, sock, 0) >= 0)
            more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
        malformed = 1;
        if (!more)
            break;
    }
    return malformed;
}

/* Closes and frees the first n of parts. */
static void s_close_parts(zmq_msg_t *parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    free(parts);
}

int zp_recv_parts(void *sock, void *frame, zmq_msg_t **parts, size_t *n_parts,
                  size_t max_parts, int flags)
{
    zmq_msg_t *msg = frame, *p = NULL;
    size_t n = 0, cap = 0;
    bool over = false, oom = false;
    *parts = NULL;
    *n_parts = 0;
    if (zmq_msg_recv(msg, sock, flags) < 0)
        return -1;
    bool more = zmq_msg_more(msg);
    while (more) { /* the rest of a message arrives at once */
        if (n == cap && !over && !oom) {
            size_t c = cap ? 2 * cap : 8;
            if (c > max_parts)
                c = max_parts;
            zmq_msg_t *q = c > cap ? realloc(p, c * sizeof *q) : NULL;
            if (q) {
                p = q;
                cap = c;
            } else if (c > cap)
                oom = true;
            else
                over = true;
        }
        zmq_msg_t extra, *into = n < cap ? &p[n] : &extra;
        zmq_msg_init(into);
        if (zmq_msg_recv(into, sock, 0) < 0) {
            zmq_msg_close(into);
            break;
        }
        more = zmq_msg_more(into);
        if (into == &extra)
            zmq_msg_close(&extra);
        else
            n++;
    }
    if (over || oom) {
        s_close_parts(p, n);
        if (oom && !over) {
            errno = ENOMEM;
            return -1;
        }
        return 1;
    }
    *parts = p;
    *n_parts = n;
    return 0;
}

void *zp_monitor_open(void *ctx, void *sock, int events, const char *name)
{
    char ep[96];
    snprintf(ep, sizeof ep, "inproc://zpipe-monitor-%s-%p", name, sock);
    if (zmq_socket_monitor(sock, ep, events) != 0) {
        zp_warn("cannot monitor %s: %s", name, zmq_strerror(errno));
        return NULL;
    }
    return zp_monitor_connect(ctx, ep, name);
}

void *zp_monitor_connect(void *ctx, const char *endpoint, const char *name)
{
    void *mon = zmq_socket(ctx, ZMQ_PAIR);
    if (mon && zmq_connect(mon, endpoint) != 0) {
        zmq_close(mon);
        mon = NULL;
    }
    if (!mon)
        zp_warn("cannot monitor %s: %s", name, zmq_strerror(errno));
    return mon;
}

int zp_monitor_drain(void *monitor)
{
    int n = 0;
    for (;;) {
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return n;
        }
        bool more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        while (more) { /* the endpoint frame */
            zmq_msg_init(&ev);
            more = zmq_msg_recv(&ev, monitor, 0) >= 0 && zmq_msg_more(&ev);
            zmq_msg_close(&ev);
        }
        n++;
    }
}

int zp_monitor_next(void *monitor)
{
    for (;;) {
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return 0;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= sizeof event)
            memcpy(&event, zmq_msg_data(&ev), sizeof event);
        bool more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        while (more) { /* the endpoint frame */
            zmq_msg_init(&ev);
            more = zmq_msg_recv(&ev, monitor, 0) >= 0 && zmq_msg_more(&ev);
            zmq_msg_close(&ev);
        }
        if (event)
            return event;
    }
}

void zp_monitor_close(void *sock, void **monitor_p)
{
    if (!*monitor_p)
        return;
    zmq_socket_monitor(sock, NULL, 0);
    int zero = 0;
    zmq_setsockopt(*monitor_p, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(*monitor_p);
    *monitor_p = NULL;
}
