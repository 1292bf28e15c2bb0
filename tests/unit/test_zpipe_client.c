/* Tests for the zpipe commands' control-socket client (zpipe/client.c)
 * against a ROUTER on an ipc:// endpoint standing in for a sink or an
 * intake. */
#define _GNU_SOURCE
#include "client.h"
#include "failalloc.h"
#include "test.h"
#include "zp_net.h"

#include <stdlib.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    char dir[64], endpoint[128];
    void *ctx, *router;
    char peer[256];
    size_t peer_len;
} server_t;

static int s_server_open(server_t *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/zp-client-test-XXXXXX");
    if (!mkdtemp(s->dir))
        return -1;
    snprintf(s->endpoint, sizeof s->endpoint, "ipc://%s/control", s->dir);
    s->ctx = zmq_ctx_new();
    s->router = zmq_socket(s->ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(s->router, ZMQ_LINGER, &linger, sizeof linger);
    return zmq_bind(s->router, s->endpoint);
}

static void s_server_close(server_t *s)
{
    zmq_close(s->router);
    zmq_ctx_term(s->ctx);
    char path[256];
    snprintf(path, sizeof path, "%s/control", s->dir);
    unlink(path);
    rmdir(s->dir);
}

/* Receives one request (the peer noted); returns it decoded into arena. */
static zp_message_t *s_server_recv(server_t *s, zp_arena_t *arena)
{
    zmq_pollitem_t it = {s->router, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, 5000) <= 0)
        return NULL;
    int n = zmq_recv(s->router, s->peer, sizeof s->peer, 0);
    if (n <= 0)
        return NULL;
    s->peer_len = (size_t)n;
    zmq_msg_t body;
    zmq_msg_init(&body);
    zmq_msg_recv(&body, s->router, 0);
    zp_message_t *m =
        zp_decode(arena, zmq_msg_data(&body), zmq_msg_size(&body), 1u << 20);
    zmq_msg_close(&body);
    return m;
}

static void s_server_send_raw(server_t *s, const void *data, size_t len)
{
    zmq_send(s->router, s->peer, s->peer_len, ZMQ_SNDMORE);
    zmq_send(s->router, data, len, 0);
}

static void s_server_send(server_t *s, const zp_message_t *m)
{
    zp_buf_t buf = {0};
    zp_encode(m, &buf);
    s_server_send_raw(s, buf.data, buf.len);
    zp_buf_free(&buf);
}

static void s_send_status(server_t *s, const char *job, uint64_t done)
{
    Zpipe__V1__JobStatus st = ZPIPE__V1__JOB_STATUS__INIT;
    st.job_id = (char *)job;
    st.done = done;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_STATUS;
    m.job_status = &st;
    s_server_send(s, &m);
}

static void test_asks_for_a_jobs_status(void)
{
    server_t s;
    TEST_EQ_INT(s_server_open(&s), 0);
    zp_client_t *c = zp_client_new(s.endpoint, 1u << 20, NULL, NULL, NULL);
    TEST_CHECK(c);
    TEST_EQ_INT(zp_client_ask_status(c, "job-1", true), 0);
    zp_arena_t *arena = zp_arena_new();
    zp_message_t *m = s_server_recv(&s, arena);
    TEST_CHECK(m && m->kind_case == ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST);
    TEST_EQ_STR(m->status_request->job_id, "job-1");
    TEST_CHECK(m->status_request->wait);
    /* the whole cluster: no job, no wait */
    TEST_EQ_INT(zp_client_ask_status(c, NULL, false), 0);
    m = s_server_recv(&s, arena);
    TEST_CHECK(m && m->kind_case == ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST);
    TEST_CHECK(!m->status_request->job_id || !*m->status_request->job_id);
    TEST_CHECK(!m->status_request->wait);
    zp_arena_destroy(&arena);
    zp_client_destroy(&c);
    TEST_CHECK(c == NULL);
    s_server_close(&s);
}

static void test_recv_drops_other_kinds_jobs_and_garbage(void)
{
    server_t s;
    TEST_EQ_INT(s_server_open(&s), 0);
    zp_client_t *c = zp_client_new(s.endpoint, 1u << 20, NULL, NULL, NULL);
    TEST_CHECK(c);
    zp_client_ask_status(c, "job-1", true);
    zp_arena_t *arena = zp_arena_new();
    TEST_CHECK(s_server_recv(&s, arena));
    s_server_send_raw(&s, "\xff\xff\xff", 3);
    Zpipe__V1__Ack ack = ZPIPE__V1__ACK__INIT;
    ack.job_id = "job-1";
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_ACK;
    m.ack = &ack;
    s_server_send(&s, &m);
    s_send_status(&s, "job-2", 5);
    s_send_status(&s, "job-1", 7);
    zp_message_t *r =
        zp_client_recv(c, ZPIPE__V1__MESSAGE__KIND_JOB_STATUS, "job-1", 5000);
    TEST_CHECK(r);
    TEST_EQ_STR(r->job_status->job_id, "job-1");
    TEST_EQ_INT(r->job_status->done, 7);
    /* nothing more: a timeout */
    TEST_CHECK(
        !zp_client_recv(c, ZPIPE__V1__MESSAGE__KIND_JOB_STATUS, NULL, 50));
    zp_arena_destroy(&arena);
    zp_client_destroy(&c);
    s_server_close(&s);
}

static void test_next_takes_what_is_waiting(void)
{
    server_t s;
    TEST_EQ_INT(s_server_open(&s), 0);
    zp_client_t *c = zp_client_new(s.endpoint, 1u << 20, NULL, NULL, NULL);
    TEST_CHECK(c);
    zp_message_t *m = NULL;
    TEST_EQ_INT(zp_client_next(c, &m), -1); /* nothing yet */
    TEST_CHECK(!zp_client_poll(c, 10));
    zp_client_ask_status(c, "job-1", true);
    zp_arena_t *arena = zp_arena_new();
    TEST_CHECK(s_server_recv(&s, arena));
    s_server_send_raw(&s, "\xff", 1);
    s_send_status(&s, "job-1", 3);
    TEST_CHECK(zp_client_poll(c, 5000));
    TEST_EQ_INT(zp_client_next(c, &m), 0);
    TEST_CHECK(m == NULL); /* did not decode */
    while (!zp_client_poll(c, 10))
        ;
    TEST_EQ_INT(zp_client_next(c, &m), 0);
    TEST_CHECK(m && m->kind_case == ZPIPE__V1__MESSAGE__KIND_JOB_STATUS);
    TEST_EQ_INT(m->job_status->done, 3);
    TEST_EQ_INT(zp_client_next(c, &m), -1);
    zp_arena_destroy(&arena);
    zp_client_destroy(&c);
    s_server_close(&s);
}

/* Waits up to 5 s for the next connection event. */
static int s_next_event(zp_client_t *c)
{
    for (int i = 0; i < 50; i++) {
        int ev = zp_client_event(c);
        if (ev)
            return ev;
        zp_client_wait(c, 100);
    }
    return 0;
}

static void test_watch_reports_a_dropped_and_restored_connection(void)
{
    server_t s;
    TEST_EQ_INT(s_server_open(&s), 0);
    zp_client_t *c = zp_client_new(s.endpoint, 1u << 20, NULL, NULL, NULL);
    TEST_CHECK(c);
    TEST_EQ_INT(zp_client_event(c), 0); /* not watching: nothing */
    /* connected for sure (a request went through), then watched: the
     * first event can only be the drop */
    TEST_EQ_INT(zp_client_ask_status(c, "job-0", false), 0);
    zp_arena_t *arena = zp_arena_new();
    TEST_CHECK(s_server_recv(&s, arena));
    TEST_EQ_INT(zp_client_watch(c), 0);
    TEST_EQ_INT(zp_client_watch(c), 0); /* once is enough */
    TEST_EQ_INT(zp_client_event(c), 0);
    /* the server goes away and comes back on the same endpoint */
    zmq_close(s.router);
    TEST_EQ_INT(s_next_event(c), ZMQ_EVENT_DISCONNECTED);
    s.router = zmq_socket(s.ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(s.router, ZMQ_LINGER, &linger, sizeof linger);
    TEST_EQ_INT(zmq_bind(s.router, s.endpoint), 0);
    TEST_EQ_INT(s_next_event(c), ZMQ_EVENT_CONNECTED);
    TEST_EQ_INT(zp_client_event(c), 0);
    /* and the client talks to the new one */
    TEST_EQ_INT(zp_client_ask_status(c, "job-1", false), 0);
    zp_message_t *m = s_server_recv(&s, arena);
    TEST_CHECK(m && m->kind_case == ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST);
    /* a frame encoded elsewhere goes out as it is */
    zp_buf_t buf = {0};
    TEST_EQ_INT(zp_encode(m, &buf), 0);
    TEST_EQ_INT(zp_client_send_frame(c, buf.data, buf.len, 0), 0);
    m = s_server_recv(&s, arena);
    TEST_CHECK(m && m->kind_case == ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST);
    TEST_EQ_STR(m->status_request->job_id, "job-1");
    zp_buf_free(&buf);
    zp_arena_destroy(&arena);
    zp_client_destroy(&c);
    s_server_close(&s);
}

static void test_a_bad_endpoint_is_refused(void)
{
    TEST_CHECK(!zp_client_new("nonsense://x", 1u << 20, NULL, NULL, NULL));
    /* a server key without CURVE is a usage error, said on stderr */
    TEST_CHECK(!zp_client_new("ipc:///tmp/zp-none", 1u << 20, NULL, "sink-key",
                              "0123456789012345678901234567890123456789"));
    zp_client_destroy(NULL);
}

static void s_scenario_new_destroy(void *arg)
{
    const char *endpoint = arg;
    zp_client_t *c = zp_client_new(endpoint, 1u << 20, NULL, NULL, NULL);
    if (c && zp_client_watch(c) == 0)
        zp_client_event(c);
    if (c)
        zp_client_ask_status(c, "job-1", true);
    zp_client_destroy(&c);
}

static void test_allocation_failures(void)
{
    server_t s;
    TEST_EQ_INT(s_server_open(&s), 0);
    TEST_CHECK(failalloc_sweep(s_scenario_new_destroy, s.endpoint) >= 2);
    s_server_close(&s);
}

static const test_case_t tests[] = {
    {"test_asks_for_a_jobs_status", test_asks_for_a_jobs_status},
    {"test_recv_drops_other_kinds_jobs_and_garbage",
     test_recv_drops_other_kinds_jobs_and_garbage},
    {"test_next_takes_what_is_waiting", test_next_takes_what_is_waiting},
    {"test_watch_reports_a_dropped_and_restored_connection",
     test_watch_reports_a_dropped_and_restored_connection},
    {"test_a_bad_endpoint_is_refused", test_a_bad_endpoint_is_refused},
    {"test_allocation_failures", test_allocation_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
