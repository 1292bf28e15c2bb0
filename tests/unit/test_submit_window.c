/* Tests for zpipe submit's window of unanswered messages
 * (zpipe/submit_window.c): each test plays a ventilator's answers,
 * reconnects and restarts with a fake clock, and reads what the window
 * would send. Frames are short strings standing in for encoded messages. */
#define _GNU_SOURCE
#include "failalloc.h"
#include "submit_window.h"
#include "test.h"

#define SEC 1000000ull

/* Pushes a frame holding text. */
static int s_push(zp_submit_window_t *w, zp_submit_kind_t kind, uint64_t tasks,
                  const char *text, uint64_t now)
{
    char *frame = strdup(text);
    if (!frame)
        return -1;
    return zp_submit_window_push(w, kind, tasks, &frame, strlen(text), now);
}

/* Sends whatever the window gives, into out ("b1 b2 "); returns how many. */
static int s_send_all(zp_submit_window_t *w, char *out, size_t cap)
{
    const char *data;
    size_t len;
    int n = 0;
    out[0] = '\0';
    while (zp_submit_window_next(w, &data, &len)) {
        size_t at = strlen(out);
        snprintf(out + at, cap - at, "%.*s ", (int)len, data);
        zp_submit_window_sent(w);
        n++;
    }
    return n;
}

static zp_submit_ack_t s_ack(bool ok, uint64_t seq, uint64_t accepted,
                             const char *instance)
{
    return (zp_submit_ack_t){.ok = ok,
                             .seq = seq,
                             .accepted = accepted,
                             .ventilator_instance = instance};
}

/* A window with the job open (answered by instance "v1") and batches
 * 1..n of 10 tasks each pushed and sent. */
static zp_submit_window_t *s_open_with(size_t max, int n)
{
    zp_submit_window_t *w = zp_submit_window_new(max);
    char out[256], name[16];
    if (!w || s_push(w, ZP_SUBMIT_OPEN, 0, "open", 0) < 0)
        goto fail;
    s_send_all(w, out, sizeof out);
    zp_submit_ack_t a = s_ack(true, 0, 0, "v1");
    if (zp_submit_window_ack(w, &a, 0).verdict != ZP_SUBMIT_PROGRESS)
        goto fail;
    for (int i = 1; i <= n; i++) {
        snprintf(name, sizeof name, "b%d", i);
        if (s_push(w, ZP_SUBMIT_BATCH, 10, name, 0) < 0)
            goto fail;
    }
    s_send_all(w, out, sizeof out);
    return w;
fail:
    zp_submit_window_destroy(&w);
    return NULL;
}

static void test_a_job_goes_open_batches_close(void)
{
    zp_submit_window_t *w = zp_submit_window_new(4);
    TEST_CHECK(w);
    char out[256];
    TEST_CHECK(zp_submit_window_wants(w, ZP_SUBMIT_OPEN));
    TEST_CHECK(!zp_submit_window_wants(w, ZP_SUBMIT_BATCH));
    TEST_EQ_INT(s_push(w, ZP_SUBMIT_OPEN, 0, "open", 0), 0);
    TEST_CHECK(!zp_submit_window_wants(w, ZP_SUBMIT_OPEN));
    TEST_CHECK(!zp_submit_window_wants(w, ZP_SUBMIT_BATCH)); /* not open yet */
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 1);
    TEST_EQ_STR(out, "open ");
    zp_submit_ack_t a = s_ack(true, 0, 0, "v1");
    zp_submit_outcome_t r = zp_submit_window_ack(w, &a, 1);
    TEST_EQ_INT(r.verdict, ZP_SUBMIT_PROGRESS);
    TEST_EQ_INT(r.kind, ZP_SUBMIT_OPEN);
    TEST_CHECK(!r.restarted);
    /* batches numbered 1, 2, ...; the close waits for their answers */
    TEST_EQ_INT(zp_submit_window_next_seq(w), 1);
    TEST_EQ_INT(s_push(w, ZP_SUBMIT_BATCH, 3, "b1", 1), 0);
    TEST_EQ_INT(zp_submit_window_next_seq(w), 2);
    TEST_EQ_INT(s_push(w, ZP_SUBMIT_BATCH, 5, "b2", 1), 0);
    TEST_CHECK(!zp_submit_window_wants(w, ZP_SUBMIT_CLOSE));
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 2);
    TEST_EQ_STR(out, "b1 b2 ");
    TEST_EQ_INT(zp_submit_window_total(w), 8);
    a = s_ack(true, 1, 3, "v1");
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 2).verdict, ZP_SUBMIT_PROGRESS);
    a = s_ack(true, 2, 5, "v1");
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 3).verdict, ZP_SUBMIT_PROGRESS);
    TEST_CHECK(zp_submit_window_wants(w, ZP_SUBMIT_CLOSE));
    TEST_EQ_INT(s_push(w, ZP_SUBMIT_CLOSE, 0, "close", 3), 0);
    TEST_CHECK(!zp_submit_window_wants(w, ZP_SUBMIT_BATCH));
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 1);
    TEST_EQ_STR(out, "close ");
    TEST_CHECK(!zp_submit_window_done(w));
    a = s_ack(true, 0, 8, "v1");
    r = zp_submit_window_ack(w, &a, 4);
    TEST_EQ_INT(r.verdict, ZP_SUBMIT_PROGRESS);
    TEST_EQ_INT(r.kind, ZP_SUBMIT_CLOSE);
    TEST_CHECK(zp_submit_window_done(w));
    zp_submit_stats_t st;
    zp_submit_window_stats(w, &st);
    TEST_EQ_INT(st.tasks_acked, 8);
    TEST_EQ_INT(st.resent, 0);
    TEST_EQ_INT(st.reconnects, 0);
    zp_submit_window_destroy(&w);
    TEST_CHECK(w == NULL);
    zp_submit_window_destroy(NULL);
}

static void test_at_most_the_window_of_batches_waits(void)
{
    zp_submit_window_t *w = s_open_with(4, 4);
    TEST_CHECK(w);
    TEST_CHECK(!zp_submit_window_wants(w, ZP_SUBMIT_BATCH));
    /* pushing anyway is refused, and the frame freed (valgrind) */
    TEST_EQ_INT(s_push(w, ZP_SUBMIT_BATCH, 1, "b5", 0), -1);
    TEST_EQ_INT(s_push(w, ZP_SUBMIT_OPEN, 0, "open", 0), -1);
    TEST_EQ_INT(zp_submit_window_next_seq(w), 5);
    zp_submit_ack_t a = s_ack(true, 1, 10, "v1");
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 1).verdict, ZP_SUBMIT_PROGRESS);
    TEST_CHECK(zp_submit_window_wants(w, ZP_SUBMIT_BATCH));
    zp_submit_window_destroy(&w);
}

static void test_repeated_answers_are_ignored(void)
{
    zp_submit_window_t *w = s_open_with(4, 3);
    TEST_CHECK(w);
    zp_submit_ack_t a = s_ack(true, 0, 0, "v1"); /* the open's, again */
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 1).verdict, ZP_SUBMIT_STALE);
    a = s_ack(true, 1, 10, "v1");
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 1).verdict, ZP_SUBMIT_PROGRESS);
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 1).verdict, ZP_SUBMIT_STALE);
    zp_submit_stats_t st;
    zp_submit_window_stats(w, &st);
    TEST_EQ_INT(st.stale, 2);
    TEST_EQ_INT(st.tasks_acked, 10);
    /* a batch's answer while the close waits: ignored too */
    a = s_ack(true, 2, 10, "v1");
    zp_submit_window_ack(w, &a, 1);
    a = s_ack(true, 3, 10, "v1");
    zp_submit_window_ack(w, &a, 1);
    TEST_EQ_INT(s_push(w, ZP_SUBMIT_CLOSE, 0, "close", 1), 0);
    a = s_ack(true, 3, 10, "v1");
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 1).verdict, ZP_SUBMIT_STALE);
    /* and the open's answer again: it does not name the total */
    a = s_ack(true, 0, 0, "v1");
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 1).verdict, ZP_SUBMIT_STALE);
    TEST_CHECK(!zp_submit_window_done(w));
    /* and after the close, anything */
    a = s_ack(true, 0, 30, "v1");
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 1).verdict, ZP_SUBMIT_PROGRESS);
    TEST_CHECK(zp_submit_window_done(w));
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 1).verdict, ZP_SUBMIT_STALE);
    zp_submit_window_destroy(&w);
}

static void test_an_answer_covers_the_batches_before_it(void)
{
    zp_submit_window_t *w = s_open_with(4, 4);
    TEST_CHECK(w);
    /* batch 3 taken means 1 and 2 were (their answers went with a
     * dropped connection) */
    zp_submit_ack_t a = s_ack(true, 3, 10, "v1");
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 1).verdict, ZP_SUBMIT_PROGRESS);
    zp_submit_stats_t st;
    zp_submit_window_stats(w, &st);
    TEST_EQ_INT(st.tasks_acked, 30);
    a = s_ack(true, 2, 10, "v1"); /* late: ignored */
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 1).verdict, ZP_SUBMIT_STALE);
    a = s_ack(true, 4, 10, "v1");
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 1).verdict, ZP_SUBMIT_PROGRESS);
    TEST_CHECK(zp_submit_window_wants(w, ZP_SUBMIT_CLOSE));
    zp_submit_window_destroy(&w);
}

static void test_an_older_ventilators_unnumbered_answers_count(void)
{
    /* Before TaskBatch.seq the intake answered batches in order with
     * Ack.seq 0: such an answer (as many tasks as the oldest batch) is
     * that batch's; the open's answer again (no tasks) is not. */
    zp_submit_window_t *w = s_open_with(4, 2);
    TEST_CHECK(w);
    zp_submit_ack_t a = s_ack(true, 0, 0, NULL);
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 1).verdict, ZP_SUBMIT_STALE);
    a = s_ack(true, 0, 10, NULL);
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 1).verdict, ZP_SUBMIT_PROGRESS);
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 1).verdict, ZP_SUBMIT_PROGRESS);
    TEST_CHECK(zp_submit_window_wants(w, ZP_SUBMIT_CLOSE));
    zp_submit_window_destroy(&w);
}

static void test_a_reconnect_sends_every_unanswered_message_in_order(void)
{
    zp_submit_window_t *w = s_open_with(4, 3);
    TEST_CHECK(w);
    char out[256];
    zp_submit_ack_t a = s_ack(true, 1, 10, "v1");
    zp_submit_window_ack(w, &a, 1);
    zp_submit_window_disconnected(w);
    /* nothing goes into a dead connection, not even a new batch */
    TEST_EQ_INT(s_push(w, ZP_SUBMIT_BATCH, 10, "b4", 2), 0);
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 0);
    zp_submit_window_connected(w, 3 * SEC);
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 3);
    TEST_EQ_STR(out, "b2 b3 b4 ");
    zp_submit_stats_t st;
    zp_submit_window_stats(w, &st);
    TEST_EQ_INT(st.resent, 2); /* b4 went once */
    TEST_EQ_INT(st.reconnects, 1);
    /* a second "connected" without a drop changes nothing */
    zp_submit_window_connected(w, 4 * SEC);
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 0);
    zp_submit_window_destroy(&w);
}

static void test_the_open_and_the_close_are_resent_too(void)
{
    zp_submit_window_t *w = zp_submit_window_new(4);
    TEST_CHECK(w);
    char out[256];
    TEST_EQ_INT(s_push(w, ZP_SUBMIT_OPEN, 0, "open", 0), 0);
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 1);
    zp_submit_window_disconnected(w);
    zp_submit_window_connected(w, 1);
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 1);
    TEST_EQ_STR(out, "open ");
    zp_submit_ack_t a = s_ack(true, 0, 0, "v1");
    zp_submit_window_ack(w, &a, 2);
    TEST_EQ_INT(s_push(w, ZP_SUBMIT_CLOSE, 0, "close", 2), 0);
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 1);
    zp_submit_window_disconnected(w);
    zp_submit_window_connected(w, 3);
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 1);
    TEST_EQ_STR(out, "close ");
    zp_submit_window_destroy(&w);
}

static void test_a_new_ventilator_instance_gets_everything_again_once(void)
{
    zp_submit_window_t *w = s_open_with(4, 3);
    TEST_CHECK(w);
    char out[256];
    /* no reconnect seen (no monitor, or too quick): the new instance's
     * first answer sends the rest again */
    zp_submit_ack_t a = s_ack(true, 1, 10, "v2");
    zp_submit_outcome_t r = zp_submit_window_ack(w, &a, 1);
    TEST_EQ_INT(r.verdict, ZP_SUBMIT_PROGRESS);
    TEST_CHECK(r.restarted);
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 2);
    TEST_EQ_STR(out, "b2 b3 ");
    /* a reconnect, then the new instance: sent again once, not twice */
    zp_submit_window_disconnected(w);
    zp_submit_window_connected(w, 2);
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 2);
    a = s_ack(true, 2, 10, "v3");
    r = zp_submit_window_ack(w, &a, 3);
    TEST_CHECK(r.restarted);
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 0);
    /* an Ack that names no instance is no restart */
    a = s_ack(true, 0, 0, "");
    r = zp_submit_window_ack(w, &a, 4);
    TEST_CHECK(!r.restarted);
    zp_submit_stats_t st;
    zp_submit_window_stats(w, &st);
    TEST_EQ_INT(st.reconnects, 2);
    TEST_EQ_INT(st.resent, 4); /* b2 and b3, twice */
    zp_submit_window_destroy(&w);
}

static void test_out_of_order_is_resent_from_the_expected_batch(void)
{
    zp_submit_window_t *w = s_open_with(4, 4);
    TEST_CHECK(w);
    char out[256];
    zp_submit_ack_t a = s_ack(false, 2, 0, "v1");
    zp_submit_outcome_t r = zp_submit_window_ack(w, &a, 1);
    TEST_EQ_INT(r.verdict, ZP_SUBMIT_RESEND);
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 3);
    TEST_EQ_STR(out, "b2 b3 b4 ");
    zp_submit_stats_t st;
    zp_submit_window_stats(w, &st);
    TEST_EQ_INT(st.tasks_acked, 10); /* batch 1 is the ventilator's */
    a = s_ack(true, 4, 10, "v1");
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 2).verdict, ZP_SUBMIT_PROGRESS);
    TEST_CHECK(zp_submit_window_wants(w, ZP_SUBMIT_CLOSE));
    zp_submit_window_destroy(&w);
}

static void test_refusals_resending_cannot_cure_are_final(void)
{
    zp_submit_window_t *w = s_open_with(4, 3);
    TEST_CHECK(w);
    zp_submit_ack_t a = s_ack(true, 2, 10, "v1");
    zp_submit_window_ack(w, &a, 1);
    /* expects a batch it had answered: it lost them */
    a = s_ack(false, 2, 0, "v1");
    zp_submit_outcome_t r = zp_submit_window_ack(w, &a, 1);
    TEST_EQ_INT(r.verdict, ZP_SUBMIT_REFUSED);
    TEST_CONTAINS(r.why, "lost batches");
    /* expects one never sent */
    a = s_ack(false, 9, 0, "v1");
    r = zp_submit_window_ack(w, &a, 1);
    TEST_EQ_INT(r.verdict, ZP_SUBMIT_REFUSED);
    TEST_CHECK(r.why == NULL); /* the Ack's error says why */
    /* a refusal of the batch as such ("unknown job") */
    a = s_ack(false, 0, 0, "v1");
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 1).verdict, ZP_SUBMIT_REFUSED);
    /* an answer with another count for a batch (a rerun with another
     * --batch), or one never sent */
    a = s_ack(true, 3, 4, "v1");
    r = zp_submit_window_ack(w, &a, 1);
    TEST_EQ_INT(r.verdict, ZP_SUBMIT_REFUSED);
    TEST_CONTAINS(r.why, "another number of tasks");
    a = s_ack(true, 7, 10, "v1");
    r = zp_submit_window_ack(w, &a, 1);
    TEST_EQ_INT(r.verdict, ZP_SUBMIT_REFUSED);
    TEST_CONTAINS(r.why, "never sent");
    zp_submit_window_destroy(&w);
    /* the open refused (an id used by another job) */
    w = zp_submit_window_new(2);
    TEST_CHECK(w);
    TEST_EQ_INT(s_push(w, ZP_SUBMIT_OPEN, 0, "open", 0), 0);
    a = s_ack(false, 0, 0, "v1");
    r = zp_submit_window_ack(w, &a, 1);
    TEST_EQ_INT(r.verdict, ZP_SUBMIT_REFUSED);
    TEST_EQ_INT(r.kind, ZP_SUBMIT_OPEN);
    zp_submit_window_destroy(&w);
}

static void test_a_refusal_naming_its_own_batch_ends_in_time(void)
{
    /* "unknown job", a task too big: Ack{ok=false, seq = the batch's own},
     * like an out-of-order refusal naming it; sent again, refused again */
    zp_submit_window_t *w = s_open_with(2, 2);
    TEST_CHECK(w);
    char out[256];
    zp_submit_ack_t a = s_ack(false, 1, 0, "v1");
    int resends = 0;
    zp_submit_outcome_t r;
    while ((r = zp_submit_window_ack(w, &a, 1)).verdict == ZP_SUBMIT_RESEND &&
           resends < 1000) {
        resends++;
        s_send_all(w, out, sizeof out);
    }
    TEST_EQ_INT(r.verdict, ZP_SUBMIT_REFUSED);
    TEST_EQ_INT(resends, 2 + 2);
    zp_submit_window_destroy(&w);
}

static void test_a_silent_ventilator_is_nudged_every_5s(void)
{
    zp_submit_window_t *w = zp_submit_window_new(4);
    TEST_CHECK(w);
    char out[256];
    TEST_EQ_INT(s_push(w, ZP_SUBMIT_OPEN, 0, "open", 10 * SEC), 0);
    TEST_CHECK(!zp_submit_window_nudge(w, 11 * SEC)); /* not sent yet */
    s_send_all(w, out, sizeof out);
    TEST_CHECK(!zp_submit_window_nudge(w, 14 * SEC));
    TEST_CHECK(zp_submit_window_nudge(w, 15 * SEC));
    TEST_CHECK(!zp_submit_window_nudge(w, 15 * SEC)); /* once */
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 1);
    TEST_EQ_STR(out, "open ");
    zp_submit_ack_t a = s_ack(true, 0, 0, "v1");
    zp_submit_window_ack(w, &a, 16 * SEC);
    for (int i = 0; i < 3; i++)
        s_push(w, ZP_SUBMIT_BATCH, 10,
               i == 0   ? "b1"
               : i == 1 ? "b2"
                        : "b3",
               16 * SEC);
    s_send_all(w, out, sizeof out);
    TEST_CHECK(!zp_submit_window_nudge(w, 20 * SEC));
    /* only the oldest goes again */
    TEST_CHECK(zp_submit_window_nudge(w, 21 * SEC));
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 1);
    TEST_EQ_STR(out, "b1 ");
    /* never while disconnected; the reconnect sends everything */
    zp_submit_window_disconnected(w);
    TEST_CHECK(!zp_submit_window_nudge(w, 40 * SEC));
    zp_submit_window_connected(w, 41 * SEC);
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 3);
    TEST_CHECK(!zp_submit_window_nudge(w, 45 * SEC));
    TEST_CHECK(zp_submit_window_nudge(w, 46 * SEC));
    zp_submit_window_destroy(&w);
}

static void test_late_batches_of_a_dropped_connection_are_no_refusal(void)
{
    /* batches 1..4 in flight; the connection drops with 1 and 2 lost, 3
     * and 4 still queued: on the new one they arrive first, each refused
     * naming batch 1, then the batches sent again are taken */
    zp_submit_window_t *w = s_open_with(4, 4);
    TEST_CHECK(w);
    char out[256];
    zp_submit_window_disconnected(w);
    zp_submit_window_connected(w, 1);
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 4);
    for (int late = 0; late < 2; late++) {
        zp_submit_ack_t a = s_ack(false, 1, 0, "v1");
        TEST_EQ_INT(zp_submit_window_ack(w, &a, 2).verdict, ZP_SUBMIT_RESEND);
        TEST_EQ_INT(s_send_all(w, out, sizeof out), 4);
        TEST_EQ_STR(out, "b1 b2 b3 b4 ");
    }
    zp_submit_ack_t a = s_ack(true, 1, 10, "v1");
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 3).verdict, ZP_SUBMIT_PROGRESS);
    /* the copies sent again are answered as repeats, or taken */
    a = s_ack(true, 1, 10, "v1");
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 3).verdict, ZP_SUBMIT_STALE);
    a = s_ack(true, 4, 10, "v1");
    TEST_EQ_INT(zp_submit_window_ack(w, &a, 3).verdict, ZP_SUBMIT_PROGRESS);
    TEST_CHECK(zp_submit_window_wants(w, ZP_SUBMIT_CLOSE));
    zp_submit_window_destroy(&w);
}

static void test_silence_is_counted_from_the_last_answer(void)
{
    zp_submit_window_t *w = zp_submit_window_new(4);
    TEST_CHECK(w);
    char out[256];
    TEST_EQ_INT(zp_submit_window_silent_us(w, 5 * SEC), 0); /* nothing due */
    s_push(w, ZP_SUBMIT_OPEN, 0, "open", 10 * SEC);
    s_send_all(w, out, sizeof out);
    TEST_EQ_INT(zp_submit_window_silent_us(w, 12 * SEC), 2 * SEC);
    /* a dropped connection does not stop the clock */
    zp_submit_window_disconnected(w);
    TEST_EQ_INT(zp_submit_window_silent_us(w, 30 * SEC), 20 * SEC);
    zp_submit_window_connected(w, 31 * SEC);
    zp_submit_ack_t a = s_ack(true, 0, 0, "v1");
    zp_submit_window_ack(w, &a, 32 * SEC);
    TEST_EQ_INT(zp_submit_window_silent_us(w, 40 * SEC), 0); /* all answered */
    s_push(w, ZP_SUBMIT_BATCH, 1, "b1", 50 * SEC);
    s_push(w, ZP_SUBMIT_BATCH, 1, "b2", 51 * SEC);
    TEST_EQ_INT(zp_submit_window_silent_us(w, 52 * SEC), 2 * SEC);
    /* any answer restarts it, a repeated one too */
    a = s_ack(true, 1, 1, "v1");
    zp_submit_window_ack(w, &a, 53 * SEC);
    TEST_EQ_INT(zp_submit_window_silent_us(w, 54 * SEC), 1 * SEC);
    zp_submit_window_ack(w, &a, 55 * SEC);
    TEST_EQ_INT(zp_submit_window_silent_us(w, 56 * SEC), 1 * SEC);
    zp_submit_window_destroy(&w);
}

/* A whole job with a reconnect and a restart; every allocation (the
 * window's and the frames') may fail, and nothing leaks. */
static void s_scenario(void *arg)
{
    (void)arg;
    zp_submit_window_t *w = zp_submit_window_new(3);
    if (!w)
        return;
    char out[256];
    s_push(w, ZP_SUBMIT_OPEN, 0, "open", 1);
    s_send_all(w, out, sizeof out);
    zp_submit_ack_t a = s_ack(true, 0, 0, "v1");
    zp_submit_window_ack(w, &a, 2);
    for (int i = 0; i < 3; i++)
        s_push(w, ZP_SUBMIT_BATCH, 2, "b", 3);
    s_send_all(w, out, sizeof out);
    zp_submit_window_disconnected(w);
    zp_submit_window_connected(w, 4);
    s_send_all(w, out, sizeof out);
    a = s_ack(true, 1, 2, "v2");
    zp_submit_window_ack(w, &a, 5);
    zp_submit_window_destroy(&w);
}

static void test_an_open_answered_finished_ends_the_window(void)
{
    zp_submit_window_t *w = zp_submit_window_new(4);
    char out[64];
    if (!w) {
        TEST_CHECK(w);
        return;
    }
    TEST_EQ_INT(s_push(w, ZP_SUBMIT_OPEN, 0, "open", 0), 0);
    s_send_all(w, out, sizeof out);
    zp_submit_ack_t a = s_ack(true, 0, 1000, "v1");
    a.finished = true;
    zp_submit_outcome_t r = zp_submit_window_ack(w, &a, 0);
    TEST_EQ_INT(r.verdict, ZP_SUBMIT_FINISHED);
    TEST_EQ_INT(r.kind, ZP_SUBMIT_OPEN);
    /* no batch, no close: the ventilator no longer has the job's */
    TEST_CHECK(!zp_submit_window_wants(w, ZP_SUBMIT_BATCH));
    TEST_CHECK(!zp_submit_window_wants(w, ZP_SUBMIT_CLOSE));
    TEST_CHECK(zp_submit_window_done(w));
    TEST_EQ_INT(s_send_all(w, out, sizeof out), 0);
    TEST_EQ_INT(zp_submit_window_silent_us(w, 10 * SEC), 0);
    zp_submit_window_destroy(&w);
}

/* Cuts lens[0..n) into batches as zpipe submit does; the batch sizes go
 * to sizes ("3 1 2 "). */
static void s_cut(const size_t *lens, size_t n, size_t max_tasks,
                  size_t max_bytes, char *sizes, size_t cap)
{
    size_t in = 0, bytes = 0;
    sizes[0] = '\0';
    for (size_t i = 0; i <= n; i++) {
        if (i < n &&
            zp_submit_batch_takes(in, bytes, lens[i], max_tasks, max_bytes)) {
            in++;
            bytes += lens[i];
            continue;
        }
        size_t at = strlen(sizes);
        snprintf(sizes + at, cap - at, "%zu ", in);
        in = 0;
        bytes = 0;
        if (i < n)
            i--; /* the line that did not fit starts the next batch */
    }
}

static void test_batches_are_cut_by_count_and_bytes(void)
{
    char sizes[256];
    size_t small[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    s_cut(small, 10, 4, 1u << 20, sizes, sizeof sizes);
    TEST_EQ_STR(sizes, "4 4 2 ");
    /* 100 KiB lines, 1 MiB: ten a batch, whatever the count allows. */
    size_t big[25];
    for (size_t i = 0; i < 25; i++)
        big[i] = 100u << 10;
    s_cut(big, 25, 8192, 1u << 20, sizes, sizeof sizes);
    TEST_EQ_STR(sizes, "10 10 5 ");
    /* A line over the limit goes alone, and the next line starts anew. */
    size_t mixed[5] = {10, 3u << 20, 10, 10, (1u << 20) - 20};
    s_cut(mixed, 5, 8192, 1u << 20, sizes, sizeof sizes);
    TEST_EQ_STR(sizes, "1 1 3 ");
    /* Exactly at the limit still fits; one byte more does not. */
    TEST_CHECK(zp_submit_batch_takes(1, 10, (1u << 20) - 10, 8192, 1u << 20));
    TEST_CHECK(!zp_submit_batch_takes(1, 10, (1u << 20) - 9, 8192, 1u << 20));
    /* A first line always goes, even empty or past both limits. */
    TEST_CHECK(zp_submit_batch_takes(0, 0, 0, 1, 1));
    TEST_CHECK(zp_submit_batch_takes(0, 0, SIZE_MAX, 1, 1));
    TEST_CHECK(!zp_submit_batch_takes(1, SIZE_MAX, 0, 8192, 1u << 20));
}

/* The batch sizes zp_submit_batch_cut gives for text, when it sees the
 * text a piece at a time (pieces of random length, ending anywhere, as
 * reads do) and only the whole lines of what it has seen. */
static void s_cut_text(const char *text, size_t len, size_t max_tasks,
                       size_t max_bytes, unsigned seed, char *sizes, size_t cap)
{
    size_t pos = 0, seen = 0, n = 0, bytes = 0;
    sizes[0] = '\0';
    srand(seed);
    while (pos < len) {
        if (seen < len) /* read a little more */
            seen += 1 + (size_t)rand() % 700;
        if (seen > len)
            seen = len;
        const char *last = memrchr(text + pos, '\n', seen - pos);
        size_t whole = last ? (size_t)(last - text) + 1 - pos : 0;
        size_t took = zp_submit_batch_cut(text + pos, whole, &n, &bytes,
                                          max_tasks, max_bytes);
        pos += took;
        if (took < whole || (pos == len && n)) { /* full, or the end */
            size_t at = strlen(sizes);
            snprintf(sizes + at, cap - at, "%zu ", n);
            n = bytes = 0;
        }
    }
}

static void test_batches_are_cut_the_same_from_blocks_of_text(void)
{
    enum { LINES = 6000 };
    static size_t lens[LINES];
    static char text[LINES * 40 + 8 * 3000];
    static char want[LINES * 6], got[LINES * 6];
    const size_t limits[][2] = {{4, 1u << 20}, {8192, 1u << 20}, {100, 300},
                                {3, 10},       {1000, 5000},     {1, 1},
                                {700, 2900}};
    srand(7);
    size_t len = 0;
    for (size_t i = 0; i < LINES; i++) {
        int r = rand() % 100;
        lens[i] = r < 20   ? 0
                  : r < 98 ? (size_t)(rand() % 30)
                           : 300 + (size_t)rand() % 2700;
        if (len + lens[i] + (LINES - i) > sizeof text)
            lens[i] = 0; /* room for a newline each left */
        memset(text + len, 'x', lens[i]);
        len += lens[i];
        text[len++] = '\n';
    }
    for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++)
        for (unsigned seed = 1; seed <= 3; seed++) {
            s_cut(lens, LINES, limits[k][0], limits[k][1], want, sizeof want);
            s_cut_text(text, len, limits[k][0], limits[k][1], seed, got,
                       sizeof got);
            TEST_EQ_STR(got, want);
        }
    /* Empty lines only: the count alone cuts, within the whole spans. */
    memset(text, '\n', 5000);
    size_t n = 0, bytes = 0;
    TEST_EQ_INT(zp_submit_batch_cut(text, 5000, &n, &bytes, 4096, 1u << 20),
                4096);
    TEST_EQ_INT(n, 4096);
    TEST_EQ_INT(bytes, 0);
    /* A partial last line is not taken; no whole line, nothing. */
    memcpy(text, "ab\ncd", 5);
    n = bytes = 0;
    TEST_EQ_INT(zp_submit_batch_cut(text, 5, &n, &bytes, 10, 10), 3);
    TEST_EQ_INT(n, 1);
    TEST_EQ_INT(zp_submit_batch_cut(text + 3, 2, &n, &bytes, 10, 10), 0);
    TEST_EQ_INT(n, 1);
    TEST_EQ_INT(bytes, 2);
}

static void test_allocation_failures(void)
{
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 3);
}

static const test_case_t tests[] = {
    {"test_a_job_goes_open_batches_close", test_a_job_goes_open_batches_close},
    {"test_batches_are_cut_the_same_from_blocks_of_text",
     test_batches_are_cut_the_same_from_blocks_of_text},
    {"test_at_most_the_window_of_batches_waits",
     test_at_most_the_window_of_batches_waits},
    {"test_repeated_answers_are_ignored", test_repeated_answers_are_ignored},
    {"test_an_answer_covers_the_batches_before_it",
     test_an_answer_covers_the_batches_before_it},
    {"test_an_older_ventilators_unnumbered_answers_count",
     test_an_older_ventilators_unnumbered_answers_count},
    {"test_a_reconnect_sends_every_unanswered_message_in_order",
     test_a_reconnect_sends_every_unanswered_message_in_order},
    {"test_the_open_and_the_close_are_resent_too",
     test_the_open_and_the_close_are_resent_too},
    {"test_a_new_ventilator_instance_gets_everything_again_once",
     test_a_new_ventilator_instance_gets_everything_again_once},
    {"test_out_of_order_is_resent_from_the_expected_batch",
     test_out_of_order_is_resent_from_the_expected_batch},
    {"test_refusals_resending_cannot_cure_are_final",
     test_refusals_resending_cannot_cure_are_final},
    {"test_a_refusal_naming_its_own_batch_ends_in_time",
     test_a_refusal_naming_its_own_batch_ends_in_time},
    {"test_late_batches_of_a_dropped_connection_are_no_refusal",
     test_late_batches_of_a_dropped_connection_are_no_refusal},
    {"test_a_silent_ventilator_is_nudged_every_5s",
     test_a_silent_ventilator_is_nudged_every_5s},
    {"test_silence_is_counted_from_the_last_answer",
     test_silence_is_counted_from_the_last_answer},
    {"test_an_open_answered_finished_ends_the_window",
     test_an_open_answered_finished_ends_the_window},
    {"test_batches_are_cut_by_count_and_bytes",
     test_batches_are_cut_by_count_and_bytes},
    {"test_allocation_failures", test_allocation_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
