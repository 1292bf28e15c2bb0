/* zpipe run: start a ventilator, N workers and a sink on ipc:// endpoints in
 * a private directory, feed the input as one job, wait for the sink to
 * report it done, stop everything, and exit 0 only if every task succeeded.
 *
 * The children are started with posix_spawn before this process creates its
 * ZeroMQ context, and end themselves if this process dies (--parent-pid). */
#define _GNU_SOURCE
#include "zpipe.h"
#include "zp_codec.h"
#include "zp_log.h"
#include "zp_net.h"
#include "zp_opts.h"
#include "zp_spawn.h"
#include "zp_util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_MAX_WORKERS 1024

typedef struct {
    const char *plugin, *input, *output, *format, *dispatch, *job, *isolation;
    uint64_t workers, batch, window, deadline_ms, memory_limit, max_attempts;
    bool ordered, progress, no_progress;
} s_run_opts_t;

typedef struct {
    pid_t pid;
    const char *role;
    bool alive;
    int status;
} s_child_t;

static const char s_synopsis[] =
    "Usage: zpipe run --plugin NAME|PATH [OPTIONS]\n"
    "Runs one job on this machine: each input line is a task for the plugin;\n"
    "records go to the output. Exit status: 0 every task succeeded, 1 some\n"
    "tasks failed, 2 bad usage, 3 a component failed, 130/143 interrupted.";

/* Runs "zpipe-worker --describe" to validate the plugin before starting
 * anything and to learn its descriptor name. Caller owns the result. */
static char *s_plugin_name(const char *worker, const char *spec)
{
    int fds[2];
    if (pipe(fds) < 0)
        return NULL;
    char *argv[] = {(char *)worker, "--plugin", (char *)spec, "--describe",
                    "--log-level",  "error",    NULL};
    pid_t pid = zp_spawn(argv, -1, fds[1]);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        zp_error("cannot start %s: %s", worker, strerror(errno));
        return NULL;
    }
    char line[1024];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof line - 1 &&
           (r = read(fds[0], line + n, sizeof line - 1 - n)) > 0)
        n += (size_t)r;
    line[n] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return NULL;
    char *tab = strchr(line, '\t');
    if (!tab)
        return NULL;
    *tab = '\0';
    return strdup(line);
}

static void s_argv_push(char **argv, size_t *n, const char *a)
{
    argv[(*n)++] = (char *)a;
    argv[*n] = NULL;
}

static void s_stop_children(s_child_t *kids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (kids[i].alive)
            kill(kids[i].pid, SIGTERM);
    uint64_t until = zp_mono_us() + 5000000;
    for (;;) {
        bool any = false;
        for (size_t i = 0; i < n; i++) {
            if (!kids[i].alive)
                continue;
            if (waitpid(kids[i].pid, &kids[i].status, WNOHANG) == kids[i].pid)
                kids[i].alive = false;
            else
                any = true;
        }
        if (!any)
            return;
        if (zp_mono_us() > until)
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    for (size_t i = 0; i < n; i++)
        if (kids[i].alive) {
            zp_warn("%s pid %d did not stop within 5 s; killing it",
                    kids[i].role, (int)kids[i].pid);
            kill(kids[i].pid, SIGKILL);
            waitpid(kids[i].pid, &kids[i].status, 0);
            kids[i].alive = false;
        }
}

static void s_describe_exit(char *buf, size_t len, int status)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by %s", strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "stopped");
}

static void s_progress(const Zpipe__V1__JobStatus *st, uint64_t t0)
{
    double secs = (double)(zp_mono_us() - t0) / 1e6;
    double rate = secs > 0 ? (double)st->done / secs : 0;
    char line[160];
    if (st->state >= ZPIPE__V1__JOB_STATE__JOB_CLOSED && st->total) {
        double pct = 100.0 * (double)st->done / (double)st->total;
        double eta = rate > 0 ? (double)(st->total - st->done) / rate : 0;
        int bar = (int)(pct / 5);
        char bars[21];
        for (int i = 0; i < 20; i++)
            bars[i] = i < bar ? '#' : '.';
        bars[20] = '\0';
        snprintf(
            line, sizeof line,
            "\r[%s] %llu/%llu %5.1f%%  %.0f tasks/s  ETA %.0fs  failed %llu ",
            bars, (unsigned long long)st->done, (unsigned long long)st->total,
            pct, rate, eta, (unsigned long long)st->failed);
    } else {
        snprintf(line, sizeof line, "\r%llu done  %.0f tasks/s  failed %llu ",
                 (unsigned long long)st->done, rate,
                 (unsigned long long)st->failed);
    }
    ssize_t w = write(STDERR_FILENO, line, strlen(line));
    (void)w;
}

int zp_cmd_run(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s_run_opts_t o = {
        .input = "-",
        .output = "-",
        .format = "jsonl",
        .dispatch = "credit",
        .workers = ncpu > 0 ? (uint64_t)ncpu : 2,
        .batch = 256,
        .window = 1024,
        .isolation = "process",
        .max_attempts = 3,
    };
    zp_log_set_level("warn");
    const zp_opt_t opts[] = {
        {"plugin", 'p', ZP_OPT_STR, "ZPIPE_PLUGIN", "NAME",
         "plugin name (on ZPIPE_PLUGIN_PATH, beside the binaries, installed) "
         "or path to a .so (required)",
         &o.plugin, 0, 0, NULL},
        {"workers", 'n', ZP_OPT_UINT, "ZPIPE_WORKERS", "N",
         "worker processes (default: the number of CPUs)", &o.workers, 1,
         S_MAX_WORKERS, NULL},
        {"input", 'i', ZP_OPT_STR, "ZPIPE_INPUT", "FILE",
         "one task per line; - for stdin (default -)", &o.input, 0, 0, NULL},
        {"output", 'o', ZP_OPT_STR, "ZPIPE_OUTPUT", "FILE",
         "records; - for stdout (default -)", &o.output, 0, 0, NULL},
        {"format", 'f', ZP_OPT_CHOICE, "ZPIPE_FORMAT", "FORMAT",
         "record format (default jsonl)", &o.format, 0, 0, "jsonl|lines"},
        {"ordered", 0, ZP_OPT_FLAG, "ZPIPE_ORDERED", NULL,
         "write records in input order", &o.ordered, 0, 0, NULL},
        {"dispatch", 0, ZP_OPT_CHOICE, "ZPIPE_DISPATCH", "MODE",
         "credit (default) or push", &o.dispatch, 0, 0, "credit|push"},
        {"batch", 0, ZP_OPT_UINT, "ZPIPE_BATCH", "N",
         "most tasks per message (default 256)", &o.batch, 1, 65536, NULL},
        {"window", 'w', ZP_OPT_UINT, "ZPIPE_WINDOW", "N",
         "most tasks a worker holds at once (default 1024)", &o.window, 1,
         1000000, NULL},
        {"deadline-ms", 0, ZP_OPT_UINT, "ZPIPE_DEADLINE_MS", "MS",
         "per-task deadline, 0 = none (default 0)", &o.deadline_ms, 0, 86400000,
         NULL},
        {"isolation", 0, ZP_OPT_CHOICE, "ZPIPE_ISOLATION", "MODE",
         "process (default): a crashing plugin fails only its task; none: "
         "plugins run inside the workers (trusted plugins, less overhead)",
         &o.isolation, 0, 0, "process|none"},
        {"memory-limit", 0, ZP_OPT_UINT, "ZPIPE_MEMORY_LIMIT", "BYTES",
         "address-space limit per executor process, 0 = none (default 0)",
         &o.memory_limit, 0, UINT64_MAX, NULL},
        {"max-attempts", 0, ZP_OPT_UINT, "ZPIPE_MAX_ATTEMPTS", "N",
         "attempts before a retryable failure is final (default 3)",
         &o.max_attempts, 1, 100, NULL},
        {"job", 'j', ZP_OPT_STR, "ZPIPE_JOB", "ID", "job id (default random)",
         &o.job, 0, 0, NULL},
        {"progress", 0, ZP_OPT_FLAG, NULL, NULL,
         "show progress on stderr even when it is not a terminal", &o.progress,
         0, 0, NULL},
        {"no-progress", 0, ZP_OPT_FLAG, NULL, NULL, "never show progress",
         &o.no_progress, 0, 0, NULL},
        {0},
    };
    char err[512];
    int first = 0;
    switch (zp_opts_parse(opts, argc, argv, &first, err, sizeof err)) {
    case ZP_OPTS_HELP:
        zp_opts_usage(stdout, s_synopsis, opts);
        return 0;
    case ZP_OPTS_VERSION:
        printf("zpipe %s\n", ZPIPE_VERSION);
        return 0;
    case ZP_OPTS_BAD:
        fprintf(stderr, "zpipe run: %s\n", err);
        zp_opts_usage(stderr, s_synopsis, opts);
        return 2;
    case ZP_OPTS_OK:
        break;
    }
    if (first < argc) {
        fprintf(stderr, "zpipe run: unexpected argument '%s'\n", argv[first]);
        zp_opts_usage(stderr, s_synopsis, opts);
        return 2;
    }
    if (!o.plugin) {
        fprintf(stderr, "zpipe run: --plugin is required\n");
        zp_opts_usage(stderr, s_synopsis, opts);
        return 2;
    }
    if (strcmp(o.input, "-") != 0 && access(o.input, R_OK) != 0) {
        fprintf(stderr, "zpipe run: cannot read input %s: %s\n", o.input,
                strerror(errno));
        return 2;
    }
    bool show = !o.no_progress && (o.progress || isatty(STDERR_FILENO));

    int rc = 3;
    char *bin_worker = zp_sibling("zpipe-worker");
    char *bin_vent = zp_sibling("zpipe-ventilator");
    char *bin_sink = zp_sibling("zpipe-sink");
    char *name = NULL, *job = NULL;
    char dir[] = "/tmp/zpipe-run-XXXXXX";
    bool have_dir = false;
    s_child_t *kids = calloc(o.workers + 2, sizeof *kids);
    size_t n_kids = 0;
    void *ctx = NULL, *control = NULL;
    zp_arena_t *arena = zp_arena_new();
    zp_buf_t scratch = {0};
    if (!bin_worker || !bin_vent || !bin_sink || !kids || !arena)
        goto done;

    name = s_plugin_name(bin_worker, o.plugin);
    if (!name) {
        fprintf(stderr,
                "zpipe run: plugin %s refused (see the message above)\n",
                o.plugin);
        goto done;
    }
    job = o.job ? strdup(o.job) : zp_random_id("job-", 6);
    if (!job || !mkdtemp(dir)) {
        zp_error("cannot make a private directory: %s", strerror(errno));
        goto done;
    }
    have_dir = true;
    char ep_disp[128], ep_res[128], ep_ctl[128], parent[32], sbatch[32],
        swindow[32], sdeadline[32], smem[32], sattempts[32];
    snprintf(smem, sizeof smem, "%llu", (unsigned long long)o.memory_limit);
    snprintf(sattempts, sizeof sattempts, "%llu",
             (unsigned long long)o.max_attempts);
    snprintf(ep_disp, sizeof ep_disp, "ipc://%s/dispatch", dir);
    snprintf(ep_res, sizeof ep_res, "ipc://%s/results", dir);
    snprintf(ep_ctl, sizeof ep_ctl, "ipc://%s/control", dir);
    snprintf(parent, sizeof parent, "%d", (int)getpid());
    snprintf(sbatch, sizeof sbatch, "%llu", (unsigned long long)o.batch);
    snprintf(swindow, sizeof swindow, "%llu", (unsigned long long)o.window);
    snprintf(sdeadline, sizeof sdeadline, "%llu",
             (unsigned long long)o.deadline_ms);
    const char *lvl = zp_log_level_name(), *lfmt = zp_log_format_name();

    /* The sink first, so the ventilator's JobOpen finds it. */
    {
        char *a[24];
        size_t n = 0;
        a[0] = NULL;
        s_argv_push(a, &n, bin_sink);
        s_argv_push(a, &n, "--results");
        s_argv_push(a, &n, ep_res);
        s_argv_push(a, &n, "--control");
        s_argv_push(a, &n, ep_ctl);
        s_argv_push(a, &n, "--publish");
        s_argv_push(a, &n, "none");
        s_argv_push(a, &n, "--output");
        s_argv_push(a, &n, o.output);
        s_argv_push(a, &n, "--format");
        s_argv_push(a, &n, o.format);
        if (o.ordered)
            s_argv_push(a, &n, "--ordered");
        s_argv_push(a, &n, "--parent-pid");
        s_argv_push(a, &n, parent);
        s_argv_push(a, &n, "--log-level");
        s_argv_push(a, &n, lvl);
        s_argv_push(a, &n, "--log-format");
        s_argv_push(a, &n, lfmt);
        kids[n_kids] = (s_child_t){zp_spawn(a, -1, -1), "sink", true, 0};
        if (kids[n_kids].pid < 0)
            goto spawn_failed;
        n_kids++;
    }
    {
        char *a[32];
        size_t n = 0;
        a[0] = NULL;
        s_argv_push(a, &n, bin_vent);
        s_argv_push(a, &n, "--bind");
        s_argv_push(a, &n, ep_disp);
        s_argv_push(a, &n, "--sink");
        s_argv_push(a, &n, ep_ctl);
        s_argv_push(a, &n, "--input");
        s_argv_push(a, &n, o.input);
        s_argv_push(a, &n, "--plugin");
        s_argv_push(a, &n, name);
        s_argv_push(a, &n, "--job");
        s_argv_push(a, &n, job);
        s_argv_push(a, &n, "--dispatch");
        s_argv_push(a, &n, o.dispatch);
        s_argv_push(a, &n, "--batch");
        s_argv_push(a, &n, sbatch);
        s_argv_push(a, &n, "--deadline-ms");
        s_argv_push(a, &n, sdeadline);
        s_argv_push(a, &n, "--max-attempts");
        s_argv_push(a, &n, sattempts);
        s_argv_push(a, &n, "--parent-pid");
        s_argv_push(a, &n, parent);
        s_argv_push(a, &n, "--log-level");
        s_argv_push(a, &n, lvl);
        s_argv_push(a, &n, "--log-format");
        s_argv_push(a, &n, lfmt);
        kids[n_kids] = (s_child_t){zp_spawn(a, -1, -1), "ventilator", true, 0};
        if (kids[n_kids].pid < 0)
            goto spawn_failed;
        n_kids++;
    }
    for (uint64_t i = 0; i < o.workers; i++) {
        char *a[32];
        size_t n = 0;
        a[0] = NULL;
        s_argv_push(a, &n, bin_worker);
        s_argv_push(a, &n, "--ventilator");
        s_argv_push(a, &n, ep_disp);
        s_argv_push(a, &n, "--sink");
        s_argv_push(a, &n, ep_res);
        s_argv_push(a, &n, "--plugin");
        s_argv_push(a, &n, o.plugin);
        s_argv_push(a, &n, "--dispatch");
        s_argv_push(a, &n, o.dispatch);
        s_argv_push(a, &n, "--window");
        s_argv_push(a, &n, swindow);
        s_argv_push(a, &n, "--isolation");
        s_argv_push(a, &n, o.isolation);
        s_argv_push(a, &n, "--memory-limit");
        s_argv_push(a, &n, smem);
        s_argv_push(a, &n, "--parent-pid");
        s_argv_push(a, &n, parent);
        s_argv_push(a, &n, "--log-level");
        s_argv_push(a, &n, lvl);
        s_argv_push(a, &n, "--log-format");
        s_argv_push(a, &n, lfmt);
        /* Workers must not read the job's stdin. */
        kids[n_kids] = (s_child_t){zp_spawn(a, -1, -1), "worker", true, 0};
        if (kids[n_kids].pid < 0)
            goto spawn_failed;
        n_kids++;
    }

    zp_signals_install(0);
    ctx = zmq_ctx_new();
    control = ctx ? zp_socket(ctx, ZMQ_DEALER, ep_ctl, false, 1u << 24) : NULL;
    if (!control)
        goto stop;

    uint64_t t0 = zp_mono_us(), last_req = 0;
    Zpipe__V1__JobStatus last = ZPIPE__V1__JOB_STATUS__INIT;
    Zpipe__V1__WorkerStats *final_workers = NULL;
    size_t n_final = 0;
    bool done = false;
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    while (!done && !zp_stopping()) {
        uint64_t now = zp_mono_us();
        if (now - last_req >= 250000) {
            Zpipe__V1__StatusRequest sr = ZPIPE__V1__STATUS_REQUEST__INIT;
            sr.job_id = job;
            sr.wait = true;
            zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
            m.kind_case = ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST;
            m.status_request = &sr;
            zp_send(control, NULL, 0, &m, &scratch, ZMQ_DONTWAIT);
            last_req = now;
        }
        zmq_pollitem_t it = {control, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) > 0) {
            while (zp_recv(control, false, NULL, NULL, &frame, ZMQ_DONTWAIT) ==
                   0) {
                zp_arena_reset(arena);
                zp_message_t *m = zp_decode(arena, zmq_msg_data(&frame),
                                            zmq_msg_size(&frame), 1u << 24);
                if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_JOB_STATUS ||
                    !m->job_status->job_id ||
                    strcmp(m->job_status->job_id, job))
                    continue;
                Zpipe__V1__JobStatus *st = m->job_status;
                last.state = st->state;
                last.total = st->total;
                last.done = st->done;
                last.succeeded = st->succeeded;
                last.failed = st->failed;
                last.duplicates = st->duplicates;
                last.bad_messages = st->bad_messages;
                if (st->state == ZPIPE__V1__JOB_STATE__JOB_DONE) {
                    done = true;
                    n_final = st->n_workers;
                    final_workers =
                        calloc(n_final ? n_final : 1, sizeof *final_workers);
                    for (size_t i = 0; final_workers && i < n_final; i++) {
                        final_workers[i] = *st->workers[i];
                        final_workers[i].worker_id =
                            strdup(st->workers[i]->worker_id);
                    }
                    break;
                }
            }
        }
        if (show)
            s_progress(&last, t0);
        /* Reap children; the job cannot finish without sink and ventilator. */
        size_t workers_alive = 0;
        for (size_t i = 0; i < n_kids; i++) {
            if (!kids[i].alive)
                continue;
            if (waitpid(kids[i].pid, &kids[i].status, WNOHANG) != kids[i].pid) {
                workers_alive += !strcmp(kids[i].role, "worker");
                continue;
            }
            kids[i].alive = false;
            char why[96];
            s_describe_exit(why, sizeof why, kids[i].status);
            bool vent_ok = !strcmp(kids[i].role, "ventilator") &&
                           WIFEXITED(kids[i].status) &&
                           WEXITSTATUS(kids[i].status) <= 1;
            if (vent_ok)
                continue; /* it saw the job done; our reply is on its way */
            zp_error("%s pid %d %s", kids[i].role, (int)kids[i].pid, why);
            if (strcmp(kids[i].role, "worker") != 0) {
                if (show)
                    fputc('\n', stderr);
                fprintf(stderr,
                        "zpipe run: the %s %s; job %s cannot complete\n",
                        kids[i].role, why, job);
                goto stop_loop;
            }
        }
        if (workers_alive == 0) {
            if (show)
                fputc('\n', stderr);
            fprintf(
                stderr,
                "zpipe run: every worker has exited; job %s cannot complete\n",
                job);
            goto stop_loop;
        }
    }
    if (show)
        fputs("\r\033[K", stderr);
    if (done) {
        double secs = (double)(zp_mono_us() - t0) / 1e6;
        fprintf(
            stderr,
            "zpipe run: job %s: %llu tasks, %llu succeeded, %llu failed, "
            "%llu duplicates dropped, %llu bad messages; %.3f s, %.0f tasks/s, "
            "%llu workers\n",
            job, (unsigned long long)last.total,
            (unsigned long long)last.succeeded, (unsigned long long)last.failed,
            (unsigned long long)last.duplicates,
            (unsigned long long)last.bad_messages, secs,
            secs > 0 ? (double)last.total / secs : 0.0,
            (unsigned long long)o.workers);
        for (size_t i = 0; final_workers && i < n_final; i++)
            fprintf(
                stderr,
                "zpipe run:   worker %s: %llu tasks, window %u, max held %u\n",
                final_workers[i].worker_id ? final_workers[i].worker_id : "?",
                (unsigned long long)final_workers[i].tasks_done,
                final_workers[i].window, final_workers[i].max_held);
        rc = last.failed ? 1 : 0;
    } else if (zp_stopping()) {
        fprintf(stderr,
                "zpipe run: interrupted; job %s incomplete (%llu done)\n", job,
                (unsigned long long)last.done);
        rc = 128 + zp_stop_signal();
    }
stop_loop:
    zmq_msg_close(&frame);
    for (size_t i = 0; final_workers && i < n_final; i++)
        free(final_workers[i].worker_id);
    free(final_workers);
stop:
    if (control) {
        int zero = 0;
        zmq_setsockopt(control, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(control);
    }
    if (ctx)
        zmq_ctx_term(ctx);
    s_stop_children(kids, n_kids);
    goto done;

spawn_failed:
    zp_error("cannot start a process: %s", strerror(errno));
    s_stop_children(kids, n_kids);
done:
    if (have_dir) {
        char path[256];
        const char *names[] = {"dispatch", "results", "control"};
        for (size_t i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            unlink(path);
        }
        rmdir(dir);
    }
    zp_arena_destroy(&arena);
    zp_buf_free(&scratch);
    free(kids);
    free(name);
    free(job);
    free(bin_worker);
    free(bin_vent);
    free(bin_sink);
    return rc;
}
