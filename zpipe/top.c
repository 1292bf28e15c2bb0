/* zpipe top: a terminal view of a running cluster, refreshed every second:
 * workers (host, plugins, credit, tasks/s, last seen), jobs (progress,
 * rate, ETA, failures) and totals, from the ventilator's ClusterStatus
 * and, with --sink, each job's JobStatus. Plain ANSI: works over ssh. */
#define _GNU_SOURCE
#include "client.h"
#include "zp_log.h"
#include "zp_net.h"
#include "zp_opts.h"
#include "zp_util.h"
#include "zpipe.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <zmq.h>

#define S_MAX_SEEN 512 /* workers and jobs remembered for rates */

static const char s_synopsis[] =
    "Usage: zpipe top [OPTIONS]\n"
    "Shows a running cluster, refreshed every --interval-ms: workers (host,\n"
    "plugins, credit, tasks/s, last seen), jobs (progress, rate, ETA and,\n"
    "with --sink, failures) and totals. q or Ctrl-C quits. Exit status: 0,\n"
    "2 bad usage, 3 no answer from the ventilator (--once).";

typedef struct {
    char id[160];
    uint64_t count; /* committed (worker) or done (job) at the last frame */
    uint64_t at_us;
    double rate; /* per second, smoothed */
} s_seen_t;

typedef struct {
    s_seen_t items[S_MAX_SEEN];
    size_t n;
} s_rates_t;

/* Updates id's rate from its new count; returns tasks per second. */
static double s_rate(s_rates_t *r, const char *id, uint64_t count, uint64_t now)
{
    s_seen_t *s = NULL;
    for (size_t i = 0; i < r->n && !s; i++)
        if (strcmp(r->items[i].id, id) == 0)
            s = &r->items[i];
    if (!s) {
        s = &r->items[r->n < S_MAX_SEEN ? r->n++ : S_MAX_SEEN - 1];
        snprintf(s->id, sizeof s->id, "%s", id);
        s->count = count;
        s->at_us = now;
        s->rate = 0;
        return 0;
    }
    double dt = (double)(now - s->at_us) / 1e6;
    if (dt >= 0.2 && count >= s->count) {
        double inst = (double)(count - s->count) / dt;
        s->rate = s->rate == 0 ? inst : 0.5 * s->rate + 0.5 * inst;
        s->count = count;
        s->at_us = now;
    }
    return s->rate;
}

static void s_bar(char *out, size_t width, double frac)
{
    size_t fill = (size_t)(frac * (double)width + 0.5);
    if (fill > width)
        fill = width;
    for (size_t i = 0; i < width; i++)
        out[i] = i < fill ? '#' : '.';
    out[width] = '\0';
}

static void s_eta(char *out, size_t len, double remaining, double rate)
{
    if (rate <= 0 || remaining <= 0)
        snprintf(out, len, "%s", remaining <= 0 ? "done" : "-");
    else if (remaining / rate < 120)
        snprintf(out, len, "%.0fs", remaining / rate);
    else
        snprintf(out, len, "%.0fm", remaining / rate / 60);
}

typedef struct {
    const char *ventilator, *sink, *secret, *vent_key, *sink_key;
    uint64_t interval_ms;
    bool once;
} s_top_opts_t;

/* One frame: asks, then prints. Returns 0, or -1 when the ventilator did
 * not answer. */
static int s_frame(zp_client_t *vc, zp_client_t *sc, s_rates_t *wr,
                   s_rates_t *jr, const s_top_opts_t *o, bool tty, bool quiet)
{
    /* quiet: only take the counts (rates need two frames). */
    FILE *out = stdout;
    if (quiet && !(out = fopen("/dev/null", "w")))
        return -1;
    zp_client_ask_status(vc, NULL, false);
    zp_message_t *r =
        zp_client_recv(vc, ZPIPE__V1__MESSAGE__KIND_CLUSTER_STATUS, NULL,
                       (long)(o->interval_ms < 3000 ? 3000 : o->interval_ms));
    uint64_t now = zp_mono_us();
    if (tty)
        fputs("\033[H\033[2J", out); /* home, clear */
    if (!r) {
        fprintf(out,
                "zpipe top: no answer from %s (a saturated ventilator answers "
                "as tasks commit)\n",
                o->ventilator);
        fflush(out);
        if (quiet)
            fclose(out);
        return -1;
    }
    const Zpipe__V1__ClusterStatus *st = r->cluster_status;
    double total_rate = 0;
    fprintf(out,
            "zpipe top - %s - %zu workers, %zu jobs, %llu tasks held of %llu "
            "(%.1f MiB)   q quits\n\n",
            o->ventilator, st->n_workers, st->n_jobs,
            (unsigned long long)st->held, (unsigned long long)st->held_limit,
            (double)st->held_bytes / (1 << 20));
    fprintf(out, "%-28s %-18s %-20s %7s %9s %10s %9s\n", "WORKER", "HOST",
            "PLUGINS", "CREDIT", "TASKS/S", "COMMITTED", "LAST SEEN");
    for (size_t i = 0; i < st->n_workers; i++) {
        const Zpipe__V1__ClusterStatus__WorkerInfo *w = st->workers[i];
        char plugins[128] = "", host[64];
        size_t len = 0;
        for (size_t k = 0; k < w->n_plugins && len < sizeof plugins; k++)
            len += (size_t)snprintf(plugins + len, sizeof plugins - len, "%s%s",
                                    k ? "," : "", w->plugins[k]);
        /* Worker ids start with the host name (HOST-PID-RANDOM). */
        snprintf(host, sizeof host, "%s", w->worker_id);
        char *dash = strchr(host, '-');
        if (dash)
            *dash = '\0';
        double rate = s_rate(wr, w->worker_id, w->committed, now);
        total_rate += rate;
        fprintf(out, "%-28.28s %-18.18s %-20.20s %7llu %9.0f %10llu %7.1fs\n",
                w->worker_id, host, plugins, (unsigned long long)w->credit,
                rate, (unsigned long long)w->committed,
                (double)w->last_seen_ms / 1000.0);
    }
    fprintf(out, "\n%-24s %-10s %-22s %6s %9s %6s %10s %8s\n", "JOB", "PLUGIN",
            "PROGRESS", "DONE", "TASKS/S", "ETA", "IN FLIGHT", "FAILED");
    for (size_t i = 0; i < st->n_jobs; i++) {
        const Zpipe__V1__ClusterStatus__JobInfo *j = st->jobs[i];
        uint64_t done = j->tasks - (j->queued + j->in_flight < j->tasks
                                        ? j->queued + j->in_flight
                                        : j->tasks);
        char failed[24] = "-";
        if (sc) {
            zp_client_ask_status(sc, j->job_id, false);
            zp_message_t *js = zp_client_recv(
                sc, ZPIPE__V1__MESSAGE__KIND_JOB_STATUS, j->job_id, 500);
            if (js) {
                snprintf(failed, sizeof failed, "%llu",
                         (unsigned long long)js->job_status->failed);
                if (js->job_status->done > done)
                    done = js->job_status->done;
            }
        }
        double frac = j->tasks ? (double)done / (double)j->tasks : 0;
        char bar[21], eta[16];
        s_bar(bar, 20, frac);
        double rate = s_rate(jr, j->job_id, done, now);
        s_eta(eta, sizeof eta, j->closed ? (double)(j->tasks - done) : -1,
              rate);
        if (!j->closed)
            snprintf(eta, sizeof eta, "open");
        fprintf(out, "%-24.24s %-10.10s [%s] %5.1f%% %9.0f %6s %10llu %8s\n",
                j->job_id, j->plugin, bar, 100.0 * frac, rate, eta,
                (unsigned long long)j->in_flight, failed);
    }
    fprintf(out, "\ntotal: %.0f tasks/s over %zu workers\n", total_rate,
            st->n_workers);
    fflush(out);
    if (quiet)
        fclose(out);
    return 0;
}

int zp_cmd_top(int argc, char **argv)
{
    s_top_opts_t o = {.ventilator = "tcp://127.0.0.1:5561",
                      .interval_ms = 1000};
    const zp_opt_t opts[] = {
        {"ventilator", 'v', ZP_OPT_STR, "ZPIPE_VENTILATOR", "ENDPOINT",
         "the ventilator's intake (default tcp://127.0.0.1:5561)",
         &o.ventilator, 0, 0, NULL},
        {"sink", 's', ZP_OPT_STR, NULL, "ENDPOINT",
         "the sink's control endpoint, for failures per job (optional)",
         &o.sink, 0, 0, NULL},
        {"interval-ms", 0, ZP_OPT_UINT, NULL, "MS",
         "refresh interval (default 1000)", &o.interval_ms, 100, 60000, NULL},
        {"once", 0, ZP_OPT_FLAG, NULL, NULL,
         "print one frame and exit (no screen control)", &o.once, 0, 0, NULL},
        ZP_CURVE_SECRET_OPTION(o.secret),
        ZP_CURVE_KEY_OPTION("ventilator-key", "ZPIPE_VENTILATOR_KEY",
                            "the ventilator", o.vent_key),
        ZP_CURVE_KEY_OPTION("sink-key", "ZPIPE_SINK_KEY", "the sink",
                            o.sink_key),
        {0},
    };
    int rc = zp_opts_main(opts, argc, argv, "zpipe top", s_synopsis,
                          "zpipe " ZPIPE_VERSION);
    if (rc >= 0)
        return rc;
    zp_signals_install(0);
    zp_client_t *vc = NULL, *sc = NULL;
    static s_rates_t wr, jr;
    rc = 3;
    vc = zp_client_new(o.ventilator, ZP_CLIENT_MAX_MSG, o.secret,
                       "ventilator-key", o.vent_key);
    if (!vc ||
        (o.sink && !(sc = zp_client_new(o.sink, ZP_CLIENT_MAX_MSG, o.secret,
                                        "sink-key", o.sink_key))))
        goto done;
    bool tty = !o.once && isatty(STDOUT_FILENO);
    /* Keys without Enter, no echo; restored on every way out. */
    struct termios saved;
    bool raw =
        !o.once && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (raw) {
        struct termios t = saved;
        t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        t.c_cc[VMIN] = 0;
        t.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &t);
    }
    if (tty)
        fputs("\033[?25l", stdout); /* hide the cursor */
    if (o.once) { /* a first look for the rates, then the frame */
        s_frame(vc, sc, &wr, &jr, &o, false, true);
        usleep((useconds_t)(o.interval_ms * 1000));
    }
    for (;;) {
        int f = s_frame(vc, sc, &wr, &jr, &o, tty, false);
        if (o.once) {
            rc = f < 0 ? 3 : 0;
            break;
        }
        rc = 0;
        struct pollfd in = {STDIN_FILENO, POLLIN, 0};
        bool quit = false;
        uint64_t until = zp_mono_us() + o.interval_ms * 1000;
        while (!quit && !zp_stopping() && zp_mono_us() < until) {
            int wait = (int)((until - zp_mono_us()) / 1000) + 1;
            if (poll(&in, 1, wait > 100 ? 100 : wait) > 0) {
                char ch;
                ssize_t n = read(STDIN_FILENO, &ch, 1);
                quit = n == 0 || (n == 1 && (ch == 'q' || ch == 'Q'));
                if (n == 0)
                    in.fd = -1; /* stdin closed: keep going on the timer */
                quit = quit && n == 1;
            }
        }
        if (quit || zp_stopping())
            break;
    }
    if (tty)
        fputs("\033[?25h\n", stdout);
    if (raw)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    fflush(stdout);
done:
    zp_client_destroy(&vc);
    zp_client_destroy(&sc);
    return rc;
}
