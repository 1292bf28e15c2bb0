/* Tests for zp_net's zp_poll_asked: only items that are there and ask for
 * something are polled, so a closed pipe never wakes a poll. */
#include "test.h"
#include "zp_net.h"
#include "zp_util.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static long long s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* A pipe whose writer is closed reports POLLHUP even to an item asking
 * for nothing; zp_poll_asked skips it and times out. */
static void test_a_closed_pipe_asking_nothing_does_not_wake(void)
{
    int p[2];
    TEST_CHECK(pipe(p) == 0);
    close(p[1]);
    zmq_pollitem_t items[2] = {{NULL, p[0], 0, 0}, {NULL, -1, ZMQ_POLLIN, 0}};
    items[0].revents = 7; /* set to 0 by the call */
    long long t0 = s_now_ms();
    TEST_EQ_INT(zp_poll_asked(items, 2, 30), 0);
    TEST_CHECK(s_now_ms() - t0 >= 25);
    TEST_EQ_INT(items[0].revents, 0);
    TEST_EQ_INT(items[1].revents, 0);
    /* Asked for, the same pipe is ready at once (end of input). */
    items[0].events = ZMQ_POLLIN;
    TEST_EQ_INT(zp_poll_asked(items, 2, 1000), 1);
    TEST_CHECK(items[0].revents != 0);
    close(p[0]);
}

/* An absent socket's item asks for nothing: stdin (fd 0) is not polled
 * for it, and the present ones get their revents in their own slots. */
static void test_revents_land_in_their_slots(void)
{
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    TEST_CHECK(zmq_bind(a, "inproc://poll-asked") == 0);
    TEST_CHECK(zmq_connect(b, "inproc://poll-asked") == 0);
    TEST_CHECK(zmq_send(b, "x", 1, 0) == 1);
    zmq_pollitem_t items[3] = {
        {NULL, 0, 0, 0}, {a, 0, ZMQ_POLLIN, 0}, {b, 0, ZMQ_POLLIN, 0}};
    TEST_EQ_INT(zp_poll_asked(items, 3, 1000), 1);
    TEST_EQ_INT(items[0].revents, 0);
    TEST_CHECK(items[1].revents & ZMQ_POLLIN);
    TEST_EQ_INT(items[2].revents, 0);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

/* A stop signal that comes after the loop asked zp_stopping and before
 * it polled wakes the poll at once (it slept its whole timeout: the
 * sink's 50-100 ms in 1 zpipe run of 20); once drained, a poll sleeps
 * again (no busy loop while a daemon finishes after the signal). Last:
 * this process is then stopping. */
static void test_a_stop_signal_before_the_poll_wakes_it(void)
{
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PULL);
    TEST_CHECK(zmq_bind(a, "inproc://poll-stop") == 0);
    zp_signals_install(0);
    TEST_CHECK(zp_stop_fd() >= 0);
    TEST_CHECK(!zp_stopping());
    raise(SIGTERM); /* as if between the check and the poll */
    TEST_CHECK(zp_stopping());
    zmq_pollitem_t items[1] = {{a, 0, ZMQ_POLLIN, 0}};
    long long t0 = s_now_ms();
    TEST_EQ_INT(zp_poll_asked(items, 1, 5000), 1);
    TEST_CHECK(s_now_ms() - t0 < 1000);
    TEST_EQ_INT(items[0].revents, 0);
    t0 = s_now_ms();
    TEST_EQ_INT(zp_poll_asked(items, 1, 100), 0);
    TEST_CHECK(s_now_ms() - t0 >= 90);
    zmq_close(a);
    zmq_ctx_term(ctx);
}

static const test_case_t tests[] = {
    {"test_a_closed_pipe_asking_nothing_does_not_wake",
     test_a_closed_pipe_asking_nothing_does_not_wake},
    {"test_revents_land_in_their_slots", test_revents_land_in_their_slots},
    {"test_a_stop_signal_before_the_poll_wakes_it",
     test_a_stop_signal_before_the_poll_wakes_it},
    {NULL, NULL},
};

TEST_MAIN(tests)
