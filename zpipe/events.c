/* zpipe events: follows the event streams of a ventilator and a sink
 * (their --events PUB sockets) and prints one line per event, JSON or
 * text, for people at a terminal and for shell scripts. */
#define _GNU_SOURCE
#include "zp_codec.h"
#include "zp_curve.h"
#include "zp_events.h"
#include "zp_log.h"
#include "zp_net.h"
#include "zp_opts.h"
#include "zp_util.h"
#include "zpipe.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

static const char s_synopsis[] =
    "Usage: zpipe events [OPTIONS] --ventilator ENDPOINT and/or --sink "
    "ENDPOINT\n"
    "Prints the events a ventilator and a sink publish on their --events\n"
    "sockets (workers joining, leaving and dying; jobs opening, closing and\n"
    "finishing; tasks failing, retried or quarantined), one line each, as\n"
    "they happen. Exit status: 0 (Ctrl-C, or --count events seen), 1 no\n"
    "event within --timeout-ms, 2 bad usage, 3 cannot connect.";

typedef struct {
    const char *ventilator, *sink, *format, *secret, *vent_key, *sink_key;
    zp_strlist_t topics;
    uint64_t count, timeout_ms;
} s_opts_t;

#define S_MAX_INSTANCES 16 /* publisher processes tracked for seq gaps */

typedef struct {
    char instance[48];
    uint64_t seq;
} s_last_t;

static void s_json_field(zp_buf_t *b, const char *key, const char *value)
{
    if (!value || !*value)
        return;
    zp_buf_printf(b, ",\"%s\":\"", key);
    zp_buf_append_json(b, value, strlen(value));
    zp_buf_append_str(b, "\"");
}

static void s_print_json(zp_buf_t *b, const char *topic,
                         const Zpipe__V1__Event *e)
{
    zp_buf_printf(b, "{\"kind\":\"%s\",\"time_us\":%" PRIu64, topic,
                  e->time_us);
    s_json_field(b, "source", e->source);
    s_json_field(b, "instance", e->instance);
    zp_buf_printf(b, ",\"seq\":%" PRIu64, e->seq);
    s_json_field(b, "worker_id", e->worker_id);
    s_json_field(b, "job_id", e->job_id);
    if (!strncmp(topic, "task_", 5))
        zp_buf_printf(b, ",\"task_id\":%" PRIu64 ",\"attempt\":%u", e->task_id,
                      e->attempt);
    s_json_field(b, "cause", e->cause);
    s_json_field(b, "detail", e->detail);
    s_json_field(b, "plugin", e->plugin);
    s_json_field(b, "host", e->host);
    if (e->pid)
        zp_buf_printf(b, ",\"pid\":%u", e->pid);
    if (e->count || !strcmp(topic, "job_done") || !strcmp(topic, "job_closed"))
        zp_buf_printf(b, ",\"count\":%" PRIu64, e->count);
    if (!strcmp(topic, "job_done"))
        zp_buf_printf(b, ",\"succeeded\":%" PRIu64 ",\"failed\":%" PRIu64,
                      e->succeeded, e->failed);
    zp_buf_append_str(b, "}\n");
}

static void s_text_field(zp_buf_t *b, const char *key, const char *value)
{
    if (value && *value)
        zp_buf_printf(b, " %s=%s", key, value);
}

static void s_print_text(zp_buf_t *b, const char *topic,
                         const Zpipe__V1__Event *e)
{
    time_t sec = (time_t)(e->time_us / 1000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    zp_buf_printf(b, "%s.%03uZ %-10s %-16s", when,
                  (unsigned)(e->time_us / 1000 % 1000),
                  e->source ? e->source : "?", topic);
    s_text_field(b, "job", e->job_id);
    if (!strncmp(topic, "task_", 5))
        zp_buf_printf(b, " task=%" PRIu64 " attempt=%u", e->task_id,
                      e->attempt);
    s_text_field(b, "worker", e->worker_id);
    s_text_field(b, "plugin", e->plugin);
    s_text_field(b, "host", e->host);
    if (e->pid)
        zp_buf_printf(b, " pid=%u", e->pid);
    if (e->count)
        zp_buf_printf(b, " count=%" PRIu64, e->count);
    if (!strcmp(topic, "job_done"))
        zp_buf_printf(b, " succeeded=%" PRIu64 " failed=%" PRIu64, e->succeeded,
                      e->failed);
    s_text_field(b, "cause", e->cause);
    if (e->detail && *e->detail)
        zp_buf_printf(b, " -- %s", e->detail);
    zp_buf_append_str(b, "\n");
}

/* Notes e's seq; returns how many events of its publisher (instance:
 * a restarted daemon starts again at 1) were lost. */
static uint64_t s_gap(s_last_t *last, size_t *n, const Zpipe__V1__Event *e)
{
    const char *src = e->instance ? e->instance : "";
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(last[i].instance, src)) {
            uint64_t lost =
                e->seq > last[i].seq + 1 ? e->seq - last[i].seq - 1 : 0;
            last[i].seq = e->seq;
            return lost;
        }
    size_t i = *n < S_MAX_INSTANCES ? (*n)++ : S_MAX_INSTANCES - 1;
    snprintf(last[i].instance, sizeof last[i].instance, "%s", src);
    last[i].seq = e->seq;
    return 0;
}

/* Parses the options. Returns -1 to go on, else the exit code. */
static int s_events_args(s_opts_t *o, int argc, char **argv)
{
    const zp_opt_t opts[] = {
        {"ventilator", 'v', ZP_OPT_STR, NULL, "ENDPOINT",
         "the ventilator's --events endpoint", &o->ventilator, 0, 0, NULL},
        {"sink", 's', ZP_OPT_STR, NULL, "ENDPOINT",
         "the sink's --events endpoint", &o->sink, 0, 0, NULL},
        {"topic", 't', ZP_OPT_LIST, NULL, "PREFIX",
         "only events whose kind starts with PREFIX (task_, worker_dead, "
         "...); repeatable; default all",
         &o->topics, 0, 0, NULL},
        {"format", 'f', ZP_OPT_CHOICE, NULL, "FORMAT",
         "json (default; one object per line) or text", &o->format, 0, 0,
         "json|text"},
        {"count", 'n', ZP_OPT_UINT, NULL, "N", "exit after N events", &o->count,
         1, UINT32_MAX, NULL},
        {"timeout-ms", 0, ZP_OPT_UINT, NULL, "MS",
         "exit 1 when no event came for MS (default: wait for ever)",
         &o->timeout_ms, 1, UINT32_MAX, NULL},
        ZP_CURVE_SECRET_OPTION(o->secret),
        ZP_CURVE_KEY_OPTION("ventilator-key", "ZPIPE_VENTILATOR_KEY",
                            "the ventilator", o->vent_key),
        ZP_CURVE_KEY_OPTION("sink-key", "ZPIPE_SINK_KEY", "the sink",
                            o->sink_key),
        {0},
    };
    int rc = zp_opts_main(opts, argc, argv, "zpipe events", s_synopsis,
                          "zpipe " ZPIPE_VERSION);
    if (rc >= 0)
        return rc;
    if (!o->ventilator && !o->sink) {
        fprintf(stderr, "zpipe events: give --ventilator and/or --sink\n%s\n",
                s_synopsis);
        return 2;
    }
    return -1;
}

/* One follower: its SUB sockets and what it counted. */
typedef struct {
    void *ctx, *subs[2]; /* the ventilator's, the sink's */
    zp_curve_t *curve;
    zp_arena_t *arena;
    zp_buf_t line;
    s_last_t last[S_MAX_INSTANCES];
    size_t n_last;
    uint64_t seen, lost, bad;
} s_follow_t;

/* Subscribes to the streams asked for. Returns 0, or -1 (said on
 * stderr). */
static int s_subscribe(s_follow_t *f, const s_opts_t *o)
{
    char err[1024];
    zp_curve_config_t cc = {.secret = o->secret};
    f->curve = zp_curve_new(f->ctx, &cc, err, sizeof err);
    if (!f->curve) {
        fprintf(stderr, "zpipe events: %s\n", err);
        return -1;
    }
    const char *eps[2] = {o->ventilator, o->sink};
    const char *keys[2] = {o->vent_key, o->sink_key};
    const char *names[2] = {"ventilator-key", "sink-key"};
    for (int i = 0; i < 2; i++) {
        if (!eps[i])
            continue;
        char key[ZP_CURVE_KEY_LEN + 1];
        if (zp_curve_peer_key(f->curve, names[i], keys[i], key, err,
                              sizeof err) < 0) {
            fprintf(stderr, "zpipe events: %s\n", err);
            return -1;
        }
        f->subs[i] =
            zp_socket(f->ctx, ZMQ_SUB, eps[i], false, 1u << 24, f->curve, key);
        if (!f->subs[i])
            return -1;
        int hwm = 0;
        zmq_setsockopt(f->subs[i], ZMQ_RCVHWM, &hwm, sizeof hwm);
        if (o->topics.count == 0)
            zmq_setsockopt(f->subs[i], ZMQ_SUBSCRIBE, "", 0);
        for (size_t t = 0; t < o->topics.count; t++)
            zmq_setsockopt(f->subs[i], ZMQ_SUBSCRIBE, o->topics.items[t],
                           strlen(o->topics.items[t]));
    }
    return 0;
}

/* Takes one event from sock and prints it; returns false when the message
 * was not one (counted as bad). */
static bool s_take_event(s_follow_t *f, void *sock, bool json)
{
    char topic[64];
    int tl = zmq_recv(sock, topic, sizeof topic - 1, 0);
    int more = 0;
    size_t ml = sizeof more;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
    if (tl < 0 || !more) {
        f->bad++;
        return false;
    }
    topic[tl < (int)sizeof topic ? tl : (int)sizeof topic - 1] = '\0';
    zmq_msg_t body;
    zmq_msg_init(&body);
    zmq_msg_recv(&body, sock, 0);
    zp_arena_reset(f->arena);
    zp_message_t *m =
        zp_decode(f->arena, zmq_msg_data(&body), zmq_msg_size(&body), 1u << 24);
    zmq_msg_close(&body);
    if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_EVENT) {
        f->bad++;
        return false;
    }
    f->lost += s_gap(f->last, &f->n_last, m->event);
    f->line.len = 0;
    if (json)
        s_print_json(&f->line, zp_event_topic(m->event->kind), m->event);
    else
        s_print_text(&f->line, zp_event_topic(m->event->kind), m->event);
    fwrite(f->line.data, 1, f->line.len, stdout);
    fflush(stdout);
    return true;
}

/* Prints events until stopped, --count events or --timeout-ms of
 * silence. Returns the exit code. */
static int s_follow(s_follow_t *f, const s_opts_t *o)
{
    int rc = 0;
    bool json = strcmp(o->format, "json") == 0;
    uint64_t last_us = zp_mono_us();
    while (!zp_stopping() && (!o->count || f->seen < o->count)) {
        zmq_pollitem_t items[2] = {{f->subs[0], 0, ZMQ_POLLIN, 0},
                                   {f->subs[1], 0, ZMQ_POLLIN, 0}};
        zmq_pollitem_t *it = f->subs[0] ? items : items + 1;
        int n_items = (f->subs[0] != NULL) + (f->subs[1] != NULL);
        if (zmq_poll(it, n_items, 200) < 0)
            continue;
        if (o->timeout_ms && zp_mono_us() - last_us > o->timeout_ms * 1000) {
            rc = 1;
            break;
        }
        for (int i = 0; i < n_items; i++) {
            if (!(it[i].revents & ZMQ_POLLIN) ||
                !s_take_event(f, it[i].socket, json))
                continue;
            last_us = zp_mono_us();
            if (o->count && ++f->seen >= o->count)
                break;
        }
    }
    if (f->lost || f->bad)
        fprintf(stderr,
                "zpipe events: %" PRIu64 " events lost (publisher buffer "
                "full), %" PRIu64 " malformed messages dropped\n",
                f->lost, f->bad);
    return rc;
}

int zp_cmd_events(int argc, char **argv)
{
    s_opts_t o = {.format = "json"};
    int rc = s_events_args(&o, argc, argv);
    if (rc >= 0) {
        zp_strlist_free(&o.topics);
        return rc;
    }
    zp_signals_install(0);
    rc = 3;
    s_follow_t f = {.ctx = zmq_ctx_new(), .arena = zp_arena_new()};
    if (f.ctx && f.arena && s_subscribe(&f, &o) == 0)
        rc = s_follow(&f, &o);
    for (int i = 0; i < 2; i++)
        if (f.subs[i]) {
            int zero = 0;
            zmq_setsockopt(f.subs[i], ZMQ_LINGER, &zero, sizeof zero);
            zmq_close(f.subs[i]);
        }
    zp_curve_destroy(&f.curve);
    if (f.ctx)
        zmq_ctx_term(f.ctx);
    zp_arena_destroy(&f.arena);
    zp_buf_free(&f.line);
    zp_strlist_free(&o.topics);
    return rc;
}
