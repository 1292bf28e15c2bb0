/* zpipe status: a running ventilator's jobs and workers, once. */
#include "client.h"
#include "zp_curve.h"
#include "zp_opts.h"
#include "zp_util.h"
#include "zpipe.h"

#include <stdio.h>

static const char s_status_synopsis[] =
    "Usage: zpipe status [--ventilator ENDPOINT] [OPTIONS]\n"
    "Shows a running ventilator's jobs (tasks, queued, in flight) and\n"
    "workers (plugins, window, credit, tasks sent and committed, last\n"
    "seen). Exit status: 0 shown, 2 bad usage, 3 no answer within\n"
    "--timeout-ms.";

int zp_cmd_status(int argc, char **argv)
{
    const char *ventilator = "tcp://127.0.0.1:5561";
    const char *secret = NULL, *ventilator_key = NULL;
    uint64_t timeout_ms = 5000;
    const zp_opt_t opts[] = {
        {"ventilator", 'v', ZP_OPT_STR, "ZPIPE_VENTILATOR", "ENDPOINT",
         "the ventilator's intake (default tcp://127.0.0.1:5561)", &ventilator,
         0, 0, NULL},
        {"timeout-ms", 0, ZP_OPT_UINT, "ZPIPE_TIMEOUT_MS", "MS",
         "give up after this long (default 5000)", &timeout_ms, 1, 86400000ull,
         NULL},
        ZP_CURVE_SECRET_OPTION(secret),
        ZP_CURVE_KEY_OPTION("ventilator-key", "ZPIPE_VENTILATOR_KEY",
                            "the ventilator", ventilator_key),
        {0},
    };
    int rc = zp_opts_main(opts, argc, argv, "zpipe status", s_status_synopsis,
                          "zpipe " ZPIPE_VERSION);
    if (rc >= 0)
        return rc;
    zp_signals_install(0);
    rc = 3;
    zp_client_t *c = zp_client_new(ventilator, ZP_CLIENT_MAX_MSG, secret,
                                   "ventilator-key", ventilator_key);
    if (!c)
        goto done;
    zp_client_ask_status(c, NULL, false);
    zp_message_t *r = NULL;
    if (zp_client_poll(c, (long)timeout_ms))
        zp_client_next(c, &r);
    if (!r || r->kind_case != ZPIPE__V1__MESSAGE__KIND_CLUSTER_STATUS) {
        fprintf(stderr, "zpipe status: no answer from %s within %llu ms\n",
                ventilator, (unsigned long long)timeout_ms);
        goto done;
    }
    const Zpipe__V1__ClusterStatus *st = r->cluster_status;
    printf("%zu jobs, %zu workers; %llu tasks held of %llu (%.1f MiB)\n",
           st->n_jobs, st->n_workers, (unsigned long long)st->held,
           (unsigned long long)st->held_limit,
           (double)st->held_bytes / (1 << 20));
    if (st->n_jobs)
        printf("\n%-24s %-12s %4s %10s %10s %10s %s\n", "JOB", "PLUGIN", "PRI",
               "TASKS", "QUEUED", "IN FLIGHT", "CLOSED");
    for (size_t i = 0; i < st->n_jobs; i++) {
        const Zpipe__V1__ClusterStatus__JobInfo *j = st->jobs[i];
        printf("%-24s %-12s %4u %10llu %10llu %10llu %s\n", j->job_id,
               j->plugin, j->priority, (unsigned long long)j->tasks,
               (unsigned long long)j->queued, (unsigned long long)j->in_flight,
               j->closed ? "yes" : "no");
    }
    if (st->n_workers)
        printf("\n%-24s %-20s %6s %6s %10s %10s %s\n", "WORKER", "PLUGINS",
               "WINDOW", "CREDIT", "SENT", "COMMITTED", "LAST SEEN");
    for (size_t i = 0; i < st->n_workers; i++) {
        const Zpipe__V1__ClusterStatus__WorkerInfo *w = st->workers[i];
        char plugins[256] = "";
        size_t len = 0;
        for (size_t k = 0; k < w->n_plugins && len < sizeof plugins; k++)
            len += (size_t)snprintf(plugins + len, sizeof plugins - len, "%s%s",
                                    k ? "," : "", w->plugins[k]);
        printf("%-24s %-20s %6llu %6llu %10llu %10llu %.1f s ago\n",
               w->worker_id, plugins, (unsigned long long)w->window,
               (unsigned long long)w->credit, (unsigned long long)w->sent,
               (unsigned long long)w->committed,
               (double)w->last_seen_ms / 1000.0);
    }
    rc = 0;
done:
    zp_client_destroy(&c);
    return rc;
}
