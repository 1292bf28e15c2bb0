/* zp_net: the few socket patterns every zpipe daemon repeats. */
#include "zp_net.h"
#include "zp_log.h"

#include <errno.h>
#include <string.h>
#include <zmq.h>

void *zp_socket(void *ctx, int type, const char *endpoint, bool bind,
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
    if (type == ZMQ_ROUTER) {
        int on = 1;
        /* Fail loudly instead of dropping when a peer has vanished. */
        zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &on, sizeof on);
    }
    int rc = bind ? zmq_bind(sock, endpoint) : zmq_connect(sock, endpoint);
    if (rc != 0) {
        zp_error("%s %s: %s", bind ? "bind" : "connect", endpoint,
                 zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

int zp_send(void *sock, const char *routing_id, size_t routing_len,
            const zp_message_t *msg, zp_buf_t *scratch, int flags)
{
    if (zp_encode(msg, scratch) < 0) {
        errno = ENOMEM;
        return -1;
    }
    if (routing_id &&
        zmq_send(sock, routing_id, routing_len, flags | ZMQ_SNDMORE) < 0)
        return -1;
    if (zmq_send(sock, scratch->data, scratch->len, flags) < 0)
        return -1;
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
