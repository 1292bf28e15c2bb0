/* client: the zpipe commands' DEALER to a ventilator's intake or a sink's
 * control socket (CURVE when asked), with the messages decoded into an
 * arena of its own. */
#include "client.h"
#include "zp_curve.h"
#include "zp_net.h"
#include "zp_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct zp_client_t {
    void *ctx, *sock;
    void *monitor; /* PAIR: the socket's connection events, or NULL */
    zp_curve_t *curve;
    zp_arena_t *arena;
    zp_buf_t scratch;
    zmq_msg_t frame; /* the last frame taken */
    size_t max_msg;
};

zp_client_t *zp_client_new(const char *endpoint, size_t max_msg,
                           const char *secret, const char *option,
                           const char *key_spec)
{
    zp_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    zmq_msg_init(&self->frame);
    self->max_msg = max_msg;
    self->ctx = zmq_ctx_new();
    self->arena = zp_arena_new();
    if (!self->ctx || !self->arena)
        goto fail;
    char err[1024], key[ZP_CURVE_KEY_LEN + 1];
    zp_curve_config_t cc = {.secret = secret};
    self->curve = zp_curve_new(self->ctx, &cc, err, sizeof err);
    if (!self->curve || zp_curve_peer_key(self->curve, option, key_spec, key,
                                          err, sizeof err) < 0) {
        fprintf(stderr, "zpipe: %s\n", err);
        goto fail;
    }
    self->sock = zp_socket(self->ctx, ZMQ_DEALER, endpoint, false, max_msg,
                           self->curve, key);
    if (!self->sock)
        goto fail;
    return self;
fail:
    zp_client_destroy(&self);
    return NULL;
}

void zp_client_destroy(zp_client_t **self_p)
{
    zp_client_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->monitor)
        zp_monitor_close(self->sock, &self->monitor);
    if (self->sock) {
        int zero = 0;
        zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(self->sock);
    }
    zmq_msg_close(&self->frame);
    zp_curve_destroy(&self->curve);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    zp_arena_destroy(&self->arena);
    zp_buf_free(&self->scratch);
    free(self);
    *self_p = NULL;
}

int zp_client_send(zp_client_t *self, const zp_message_t *m, int flags)
{
    return zp_send(self->sock, NULL, 0, m, &self->scratch, flags);
}

int zp_client_send_frame(zp_client_t *self, const void *data, size_t len,
                         int flags)
{
    return zmq_send(self->sock, data, len, flags) < 0 ? -1 : 0;
}

int zp_client_ask_status(zp_client_t *self, const char *job, bool wait)
{
    Zpipe__V1__StatusRequest sr = ZPIPE__V1__STATUS_REQUEST__INIT;
    if (job)
        sr.job_id = (char *)job;
    sr.wait = wait;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST;
    m.status_request = &sr;
    return zp_client_send(self, &m, ZMQ_DONTWAIT);
}

bool zp_client_poll(zp_client_t *self, long ms)
{
    zmq_pollitem_t it = {self->sock, 0, ZMQ_POLLIN, 0};
    return zmq_poll(&it, 1, ms) > 0;
}

int zp_client_watch(zp_client_t *self)
{
    if (!self->monitor)
        self->monitor = zp_curve_monitor(
            self->curve, self->sock,
            ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED, "server");
    return self->monitor ? 0 : -1;
}

bool zp_client_wait(zp_client_t *self, long ms)
{
    return zp_client_wait_fd(self, ms, -1);
}

bool zp_client_wait_fd(zp_client_t *self, long ms, int fd)
{
    zmq_pollitem_t it[3] = {{self->sock, 0, ZMQ_POLLIN, 0},
                            {NULL, fd, ZMQ_POLLIN, 0},
                            {self->monitor, 0, ZMQ_POLLIN, 0}};
    int n = 1;
    if (fd >= 0)
        n++;
    else
        it[1] = it[2];
    if (self->monitor)
        n++;
    return zmq_poll(it, n, ms) > 0;
}

int zp_client_event(zp_client_t *self)
{
    return self->monitor ? zp_monitor_next(self->monitor) : 0;
}

int zp_client_next(zp_client_t *self, zp_message_t **m)
{
    *m = NULL;
    if (zp_recv(self->sock, false, NULL, NULL, &self->frame, ZMQ_DONTWAIT) != 0)
        return -1;
    zp_arena_reset(self->arena);
    *m = zp_decode(self->arena, zmq_msg_data(&self->frame),
                   zmq_msg_size(&self->frame), self->max_msg);
    return 0;
}

/* The job a message of kind is about (NULL for other kinds). */
static const char *s_job_of(const zp_message_t *m, int kind)
{
    return kind == ZPIPE__V1__MESSAGE__KIND_JOB_STATUS ? m->job_status->job_id
           : kind == ZPIPE__V1__MESSAGE__KIND_ACK      ? m->ack->job_id
           : kind == ZPIPE__V1__MESSAGE__KIND_RESULTS_CHUNK
               ? m->results_chunk->job_id
               : NULL;
}

zp_message_t *zp_client_recv(zp_client_t *self, int kind, const char *job,
                             long ms)
{
    zp_message_t *found = NULL;
    uint64_t until = zp_mono_us() + (uint64_t)ms * 1000;
    while (!found && !zp_stopping()) {
        uint64_t now = zp_mono_us();
        if (now >= until)
            break;
        if (!zp_client_poll(self, (long)((until - now) / 1000) + 1))
            continue;
        zp_message_t *m;
        while (!found && zp_client_next(self, &m) == 0) {
            if (!m || (int)m->kind_case != kind)
                continue;
            const char *id = s_job_of(m, kind);
            if (!job || (id && strcmp(id, job) == 0))
                found = m;
        }
    }
    return found;
}
