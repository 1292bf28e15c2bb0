/* zpipe run: start a ventilator, N workers and a sink on ipc:// endpoints in
 * a private directory, feed the input as one job, wait for the sink to
 * report it done, stop everything, and exit 0 only if every task succeeded.
 *
 * It supervises what it started: a worker that dies is replaced (with
 * backoff); a sink that dies is restarted when it has a journal to resume
 * from; otherwise a dead sink or ventilator ends the run with an error.
 * Children are started with posix_spawn (never a bare fork) and end
 * themselves if this process dies (--parent-pid). */
#define _GNU_SOURCE
#include "zpipe.h"
#include "timeline.h"
#include "zp_codec.h"
#include "zp_journal.h"
#include "zp_log.h"
#include "zp_metrics.h"
#include "zp_net.h"
#include "zp_opts.h"
#include "zp_plugin.h"
#include "zp_spawn.h"
#include "zp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_MAX_WORKERS       1024
#define S_MAX_ARGS          112
#define S_BACKOFF_MIN_US    100000u
#define S_BACKOFF_MAX_US    5000000u
#define S_STABLE_US         10000000u /* a child that lived this long was fine */
#define S_FUTILE_PER_WORKER 3 /* deaths per worker with no progress between */

typedef struct {
    const char *plugin, *input, *output, *format, *dispatch, *job, *isolation;
    const char *journal, *transport;
    const char *trace; /* Chrome trace-event JSON of every task's life */
    const char *web;   /* HOST:PORT for the sink's web view and metrics */
    uint64_t workers, batch, window, deadline_ms, memory_limit, max_attempts;
    uint64_t no_worker_timeout_ms;
    bool ordered, progress, no_progress, resume, reduce;
    zp_strlist_t config; /* KEY=VALUE settings for the plugin */
} s_run_opts_t;

typedef enum { S_SINK, S_VENT, S_WORKER } s_role_t;

typedef struct {
    s_role_t role;
    pid_t pid;
    bool alive;
    int status;
    uint64_t started_us, restart_at_us, backoff_us;
    long maxrss_kb; /* peak resident set of any of its incarnations */
} s_child_t;

typedef struct {
    char *argv[3][S_MAX_ARGS]; /* per role */
    size_t argc[3];
    s_child_t *kids;
    size_t n_kids;
    uint64_t worker_restarts, sink_restarts, futile_restarts;
    size_t n_workers;
    bool sink_restartable;
} s_super_t;

static const char *s_role_name[] = {"sink", "ventilator", "worker"};

static const char s_synopsis[] =
    "Usage: zpipe run --plugin NAME|PATH [OPTIONS]\n"
    "Runs one job on this machine: each input line is a task for the plugin;\n"
    "records go to the output. Exit status: 0 every task succeeded, 1 some\n"
    "tasks failed (or, with --reduce, the reduction failed), 2 bad usage, 3\n"
    "a component failed or the job could not progress, 130/143\n"
    "interrupted.";

/* Runs "zpipe-worker --describe" to validate the plugin before starting
 * anything and to learn its descriptor name. Caller owns the result. */
static char *s_plugin_name(const char *worker, const char *spec,
                           char *const *config, size_t n_config,
                           bool *has_reducer)
{
    int fds[2];
    if (n_config > 32 || pipe(fds) < 0)
        return NULL;
    char *argv[8 + 2 * 32] = {(char *)worker, "--plugin",    (char *)spec,
                              "--describe",   "--log-level", "error"};
    for (size_t i = 0; i < n_config; i++) {
        argv[6 + 2 * i] = "--plugin-config";
        argv[7 + 2 * i] = config[i];
    }
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
    char *nl = strchr(tab + 1, '\n');
    if (nl)
        *nl = '\0';
    const char *last = strrchr(tab + 1, '\t');
    *has_reducer = last && strcmp(last + 1, "reducer") == 0;
    return strdup(line);
}

/* n distinct free loopback ports (held open together, then released). */
static int s_free_ports(int *ports, int n)
{
    int fds[8];
    int rc = 0;
    for (int i = 0; i < n && i < 8; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET};
        socklen_t len = sizeof a;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof a) < 0 ||
            getsockname(fds[i], (struct sockaddr *)&a, &len) < 0)
            rc = -1;
        ports[i] = ntohs(a.sin_port);
    }
    for (int i = 0; i < n && i < 8; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return rc;
}

/* --web: spec checked as --metrics would, with port 0 made a free port
 * (the sink would pick one we could not show): the sink's --metrics in out
 * and the page's address in url. */
static int s_web_addr(const char *spec, char *out, size_t len, char *url,
                      size_t url_len, char *err, size_t errlen)
{
    uint32_t addr;
    uint16_t port;
    char why[128];
    if (zp_metrics_parse_addr(spec, &addr, &port, why, sizeof why) < 0) {
        const char *m = strncmp(why, "--metrics ", 10) ? why : why + 10;
        snprintf(err, errlen, "--web %s", m);
        return -1;
    }
    int free_port = port;
    if (!port && s_free_ports(&free_port, 1) < 0) {
        snprintf(err, errlen, "--web: no free port: %s", strerror(errno));
        return -1;
    }
    const char *colon = strrchr(spec, ':');
    int host_len = (int)(colon - spec);
    snprintf(out, len, "%.*s:%d", host_len, spec, free_port);
    bool any = addr == 0;
    snprintf(url, url_len, "http://%.*s:%d/", any ? 9 : host_len,
             any ? "127.0.0.1" : spec, free_port);
    return 0;
}

/* --resume: the job the journal was written for (its last opened job). */
static void s_last_job(void *ctx, const char *job, uint32_t max_attempts)
{
    (void)max_attempts;
    char **out = ctx;
    free(*out);
    *out = strdup(job);
}

static char *s_journal_job(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    zp_buf_t data = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        zp_buf_append(&data, chunk, n);
    fclose(f);
    char *job = NULL;
    zp_journal_visitor_t v = {s_last_job, NULL, NULL};
    size_t valid;
    if (data.len)
        zp_journal_replay(data.data, data.len, &v, &job, &valid);
    zp_buf_free(&data);
    return job;
}

static void s_push(s_super_t *s, s_role_t role, const char *a)
{
    if (s->argc[role] < S_MAX_ARGS - 1) {
        s->argv[role][s->argc[role]++] = (char *)a;
        s->argv[role][s->argc[role]] = NULL;
    }
}

/* Pushes an option and its value. */
static void s_push2(s_super_t *s, s_role_t role, const char *flag,
                    const char *value)
{
    s_push(s, role, flag);
    s_push(s, role, value);
}

static int s_start(s_super_t *s, s_child_t *c)
{
    c->pid = zp_spawn(s->argv[c->role], -1, -1);
    if (c->pid < 0) {
        zp_error("cannot start the %s: %s", s_role_name[c->role],
                 strerror(errno));
        c->alive = false;
        return -1;
    }
    c->alive = true;
    c->started_us = zp_mono_us();
    c->restart_at_us = 0;
    return 0;
}

static void s_stop_children(s_super_t *s)
{
    for (size_t i = 0; i < s->n_kids; i++)
        if (s->kids[i].alive)
            kill(s->kids[i].pid, SIGTERM);
    uint64_t until = zp_mono_us() + 5000000;
    for (;;) {
        bool any = false;
        for (size_t i = 0; i < s->n_kids; i++) {
            s_child_t *c = &s->kids[i];
            if (!c->alive)
                continue;
            struct rusage ru;
            if (wait4(c->pid, &c->status, WNOHANG, &ru) == c->pid) {
                c->alive = false;
                if (ru.ru_maxrss > c->maxrss_kb)
                    c->maxrss_kb = ru.ru_maxrss;
            } else
                any = true;
        }
        if (!any)
            return;
        if (zp_mono_us() > until)
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    for (size_t i = 0; i < s->n_kids; i++) {
        s_child_t *c = &s->kids[i];
        if (c->alive) {
            zp_warn("%s pid %d did not stop within 5 s; killing it",
                    s_role_name[c->role], (int)c->pid);
            kill(c->pid, SIGKILL);
            struct rusage ru;
            wait4(c->pid, &c->status, 0, &ru);
            c->alive = false;
            if (ru.ru_maxrss > c->maxrss_kb)
                c->maxrss_kb = ru.ru_maxrss;
        }
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
        snprintf(line, sizeof line,
                 "\r[%s] %llu/%llu %5.1f%%  %.0f tasks/s  ETA %.0fs  failed "
                 "%llu ",
                 bars, (unsigned long long)st->done,
                 (unsigned long long)st->total, pct, rate, eta,
                 (unsigned long long)st->failed);
    } else {
        snprintf(line, sizeof line, "\r%llu done  %.0f tasks/s  failed %llu ",
                 (unsigned long long)st->done, rate,
                 (unsigned long long)st->failed);
    }
    ssize_t w = write(STDERR_FILENO, line, strlen(line));
    (void)w;
}

/* Reaps children and restarts what may be restarted. Returns false when
 * the job can no longer complete (reason printed). */
static bool s_supervise(s_super_t *s, const char *job, uint64_t done,
                        uint64_t *last_done)
{
    uint64_t now = zp_mono_us();
    if (done != *last_done) {
        *last_done = done;
        s->futile_restarts = 0;
    }
    for (size_t i = 0; i < s->n_kids; i++) {
        s_child_t *c = &s->kids[i];
        if (!c->alive && c->restart_at_us && now >= c->restart_at_us) {
            if (s_start(s, c) < 0)
                return false;
            zp_info("restarted the %s as pid %d", s_role_name[c->role],
                    (int)c->pid);
        }
        struct rusage ru;
        if (c->alive && wait4(c->pid, &c->status, WNOHANG, &ru) == c->pid) {
            c->alive = false;
            if (ru.ru_maxrss > c->maxrss_kb)
                c->maxrss_kb = ru.ru_maxrss;
            char why[96];
            s_describe_exit(why, sizeof why, c->status);
            if (c->role == S_VENT && WIFEXITED(c->status) &&
                WEXITSTATUS(c->status) <= 1)
                continue; /* it saw the job done; our reply is on its way */
            bool restart = c->role == S_WORKER ||
                           (c->role == S_SINK && s->sink_restartable);
            if (!restart) {
                fprintf(stderr,
                        "\nzpipe run: the %s (pid %d) %s; job %s cannot "
                        "complete%s\n",
                        s_role_name[c->role], (int)c->pid, why, job,
                        c->role == S_SINK ? " (run with --journal to make "
                                            "the sink restartable)"
                                          : "");
                return false;
            }
            /* Back off when it keeps dying young. */
            if (now - c->started_us >= S_STABLE_US)
                c->backoff_us = S_BACKOFF_MIN_US;
            else if (c->backoff_us < S_BACKOFF_MIN_US)
                c->backoff_us = S_BACKOFF_MIN_US;
            else if (c->backoff_us < S_BACKOFF_MAX_US)
                c->backoff_us *= 2;
            if (c->backoff_us > S_BACKOFF_MAX_US)
                c->backoff_us = S_BACKOFF_MAX_US;
            c->restart_at_us = now + c->backoff_us;
            if (c->role == S_WORKER) {
                s->worker_restarts++;
                s->futile_restarts++;
            } else
                s->sink_restarts++;
            zp_warn("the %s (pid %d) %s; restarting it in %.1f s",
                    s_role_name[c->role], (int)c->pid, why,
                    (double)c->backoff_us / 1e6);
            if (s->futile_restarts > S_FUTILE_PER_WORKER * s->n_workers) {
                fprintf(stderr,
                        "\nzpipe run: workers died %llu times in a row "
                        "without the job progressing; job %s cannot "
                        "complete (see the messages above)\n",
                        (unsigned long long)s->futile_restarts, job);
                return false;
            }
        }
    }
    return true;
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
        .batch = 1024,
        .window = 4096,
        .isolation = "process",
        .max_attempts = 3,
        .no_worker_timeout_ms = 30000,
        .transport = "ipc",
    };
    zp_log_set_level("warn");
    const zp_opt_t opts[] = {
        {"plugin", 'p', ZP_OPT_STR, "ZPIPE_PLUGIN", "NAME",
         "plugin name (on ZPIPE_PLUGIN_PATH, beside the binaries, installed) "
         "or path to a .so (required)",
         &o.plugin, 0, 0, NULL},
        {"config", 'c', ZP_OPT_LIST, NULL, "KEY=VALUE",
         "a plugin setting, e.g. cmd='sha256sum' for exec (also "
         "ZPIPE_PLUGIN_<PLUGIN>_<KEY>); repeatable",
         &o.config, 0, 0, NULL},
        {"reduce", 0, ZP_OPT_FLAG, "ZPIPE_REDUCE_JOB", NULL,
         "fold the results with the plugin's reducer: one final record "
         "(failures still one by one)",
         &o.reduce, 0, 0, NULL},
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
         "most tasks per message (default 1024)", &o.batch, 1, 65536, NULL},
        {"window", 'w', ZP_OPT_UINT, "ZPIPE_WINDOW", "N",
         "most tasks a worker holds at once (default 4096)", &o.window, 1,
         1000000, NULL},
        {"deadline-ms", 0, ZP_OPT_UINT, "ZPIPE_DEADLINE_MS", "MS",
         "per-task deadline; a task past it is killed, 0 = none (default 0)",
         &o.deadline_ms, 0, 86400000, NULL},
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
        {"journal", 0, ZP_OPT_STR, "ZPIPE_JOURNAL", "FILE",
         "the sink keeps a commit log: it is restarted without loss if it "
         "dies, and --resume can finish the job later (needs --output FILE)",
         &o.journal, 0, 0, NULL},
        {"resume", 0, ZP_OPT_FLAG, "ZPIPE_RESUME", NULL,
         "rerun the journal's job, skipping tasks it already committed and "
         "appending to the output",
         &o.resume, 0, 0, NULL},
        {"no-worker-timeout-ms", 0, ZP_OPT_UINT, "ZPIPE_NO_WORKER_TIMEOUT_MS",
         "MS", "fail when no worker is connected this long (default 30000)",
         &o.no_worker_timeout_ms, 0, 86400000, NULL},
        {"transport", 0, ZP_OPT_CHOICE, "ZPIPE_TRANSPORT", "KIND",
         "how the local processes talk: ipc (default) or tcp on loopback",
         &o.transport, 0, 0, "ipc|tcp"},
        {"job", 'j', ZP_OPT_STR, "ZPIPE_JOB", "ID", "job id (default random)",
         &o.job, 0, 0, NULL},
        {"trace", 0, ZP_OPT_STR, "ZPIPE_TRACE_FILE", "FILE",
         "write every task's life (queued, dispatched, run, committed) as "
         "Chrome trace-event JSON for Perfetto or chrome://tracing, and "
         "print per-worker utilisation and where the time went",
         &o.trace, 0, 0, NULL},
        {"web", 0, ZP_OPT_STR, "ZPIPE_WEB", "HOST:PORT",
         "serve the sink's web view (http://HOST:PORT/) and its metrics "
         "while the job runs; port 0 picks a free one (printed)",
         &o.web, 0, 0, NULL},
        {"progress", 0, ZP_OPT_FLAG, NULL, NULL,
         "show progress on stderr even when it is not a terminal", &o.progress,
         0, 0, NULL},
        {"no-progress", 0, ZP_OPT_FLAG, NULL, NULL, "never show progress",
         &o.no_progress, 0, 0, NULL},
        {0},
    };
    int prc = zp_opts_main(opts, argc, argv, "zpipe run", s_synopsis,
                           "zpipe " ZPIPE_VERSION);
    if (prc >= 0) {
        zp_strlist_free(&o.config);
        return prc;
    }
    const char *usage_error = NULL;
    if (!o.plugin)
        usage_error = "--plugin is required";
    else if (o.journal && strcmp(o.output, "-") == 0)
        usage_error = "--journal needs --output FILE";
    else if (o.resume && !o.journal)
        usage_error = "--resume needs --journal FILE";
    else if (o.job && !zp_job_id_valid(o.job))
        usage_error = "--job must be 1 to 128 of [A-Za-z0-9_.:-]";
    else if (o.reduce && o.journal)
        usage_error = "--reduce cannot be used with --journal (a reducer's "
                      "state is not journaled)";
    else if (o.config.count > 32)
        usage_error = "at most 32 --config settings";
    char web_addr[96] = "", web_url[128], web_err[160];
    if (!usage_error && o.web &&
        s_web_addr(o.web, web_addr, sizeof web_addr, web_url, sizeof web_url,
                   web_err, sizeof web_err) < 0)
        usage_error = web_err;
    for (size_t i = 0; !usage_error && i < o.config.count; i++)
        if (!strchr(o.config.items[i], '=') || o.config.items[i][0] == '=')
            usage_error = "--config takes KEY=VALUE";
    if (usage_error) {
        zp_strlist_free(&o.config);
        return zp_opts_fail(opts, "zpipe run", s_synopsis, usage_error);
    }
    if (strcmp(o.input, "-") != 0 && access(o.input, R_OK) != 0) {
        fprintf(stderr, "zpipe run: cannot read input %s: %s\n", o.input,
                strerror(errno));
        zp_strlist_free(&o.config);
        return 2;
    }
    if (o.journal && !o.resume && access(o.journal, F_OK) == 0) {
        fprintf(stderr,
                "zpipe run: journal %s exists; add --resume to finish its "
                "job, or remove it to start afresh\n",
                o.journal);
        zp_strlist_free(&o.config);
        return 2;
    }
    /* Opened now, so a path that cannot be written fails before work. */
    FILE *trace_out = NULL;
    if (o.trace && !(trace_out = fopen(o.trace, "we"))) {
        fprintf(stderr, "zpipe run: cannot write trace %s: %s\n", o.trace,
                strerror(errno));
        zp_strlist_free(&o.config);
        return 2;
    }
    bool show = !o.no_progress && (o.progress || isatty(STDERR_FILENO));

    int rc = 3;
    bool done_ok = false;
    s_super_t sup = {0};
    char *bin_worker = zp_sibling("zpipe-worker");
    char *bin_vent = zp_sibling("zpipe-ventilator");
    char *bin_sink = zp_sibling("zpipe-sink");
    char *name = NULL, *job = NULL, **pconf = NULL;
    char dir[] = "/tmp/zpipe-run-XXXXXX";
    bool have_dir = false;
    sup.kids = calloc(o.workers + 2, sizeof *sup.kids);
    void *ctx = NULL, *control = NULL;
    zp_arena_t *arena = zp_arena_new();
    zp_buf_t scratch = {0};
    if (!bin_worker || !bin_vent || !bin_sink || !sup.kids || !arena)
        goto done;

    /* Settings go to the plugin by name: NAME.so's NAME, as the worker
     * looks them up under the descriptor's name (the same, by custom). */
    pconf = zp_plugin_settings_for(o.plugin, o.config.items, o.config.count);
    if (!pconf)
        goto done;
    bool has_reducer = false;
    name = s_plugin_name(bin_worker, o.plugin, pconf, o.config.count,
                         &has_reducer);
    if (name && o.reduce && !has_reducer) {
        fprintf(stderr, "zpipe run: --reduce: plugin %s (%s) has no reducer\n",
                name, o.plugin);
        goto done;
    }
    if (!name) {
        fprintf(stderr,
                "zpipe run: plugin %s refused (see the message above)\n",
                o.plugin);
        goto done;
    }
    if (o.job)
        job = strdup(o.job);
    else if (o.resume && (job = s_journal_job(o.journal)) != NULL)
        fprintf(stderr, "zpipe run: resuming job %s from %s\n", job, o.journal);
    else
        job = zp_random_id("job-", 6);
    if (!job || !mkdtemp(dir)) {
        zp_error("cannot make a private directory: %s", strerror(errno));
        goto done;
    }
    have_dir = true;
    char ep_disp[128], ep_res[128], ep_ctl[128], parent[32], sbatch[32],
        swindow[32], sdeadline[32], smem[32], sattempts[32], snowork[32],
        trace_log[64];
    snprintf(trace_log, sizeof trace_log, "%s/trace.jsonl", dir);
    if (strcmp(o.transport, "tcp") == 0) {
        int ports[3];
        if (s_free_ports(ports, 3) < 0) {
            zp_error("cannot find free loopback ports: %s", strerror(errno));
            goto done;
        }
        snprintf(ep_disp, sizeof ep_disp, "tcp://127.0.0.1:%d", ports[0]);
        snprintf(ep_res, sizeof ep_res, "tcp://127.0.0.1:%d", ports[1]);
        snprintf(ep_ctl, sizeof ep_ctl, "tcp://127.0.0.1:%d", ports[2]);
    } else {
        snprintf(ep_disp, sizeof ep_disp, "ipc://%s/dispatch", dir);
        snprintf(ep_res, sizeof ep_res, "ipc://%s/results", dir);
        snprintf(ep_ctl, sizeof ep_ctl, "ipc://%s/control", dir);
    }
    snprintf(parent, sizeof parent, "%d", (int)getpid());
    snprintf(sbatch, sizeof sbatch, "%llu", (unsigned long long)o.batch);
    snprintf(swindow, sizeof swindow, "%llu", (unsigned long long)o.window);
    snprintf(sdeadline, sizeof sdeadline, "%llu",
             (unsigned long long)o.deadline_ms);
    snprintf(smem, sizeof smem, "%llu", (unsigned long long)o.memory_limit);
    snprintf(sattempts, sizeof sattempts, "%llu",
             (unsigned long long)o.max_attempts);
    snprintf(snowork, sizeof snowork, "%llu",
             (unsigned long long)o.no_worker_timeout_ms);
    const char *lvl = zp_log_level_name(), *lfmt = zp_log_format_name();
    const char *common[] = {"--parent-pid", parent, "--log-level", lvl,
                            "--log-format", lfmt};

    s_push(&sup, S_SINK, bin_sink);
    s_push2(&sup, S_SINK, "--results", ep_res);
    s_push2(&sup, S_SINK, "--control", ep_ctl);
    s_push2(&sup, S_SINK, "--publish", "none");
    s_push2(&sup, S_SINK, "--output", o.output);
    s_push2(&sup, S_SINK, "--format", o.format);
    if (o.ordered)
        s_push(&sup, S_SINK, "--ordered");
    if (o.journal) {
        s_push(&sup, S_SINK, "--journal");
        s_push(&sup, S_SINK, o.journal);
        sup.sink_restartable = true;
    }
    if (trace_out)
        s_push2(&sup, S_SINK, "--trace", trace_log);
    if (*web_addr) {
        s_push2(&sup, S_SINK, "--metrics", web_addr);
        fprintf(stderr, "zpipe run: web view at %s while the job runs\n",
                web_url);
    }
    if (o.reduce) {
        s_push2(&sup, S_SINK, "--reduce", o.plugin);
        for (size_t i = 0; i < o.config.count; i++)
            s_push2(&sup, S_SINK, "--plugin-config", pconf[i]);
    }

    s_push(&sup, S_VENT, bin_vent);
    s_push2(&sup, S_VENT, "--bind", ep_disp);
    s_push2(&sup, S_VENT, "--sink", ep_ctl);
    s_push2(&sup, S_VENT, "--input", o.input);
    s_push2(&sup, S_VENT, "--plugin", name);
    s_push2(&sup, S_VENT, "--job", job);
    s_push2(&sup, S_VENT, "--dispatch", o.dispatch);
    s_push2(&sup, S_VENT, "--batch", sbatch);
    s_push2(&sup, S_VENT, "--deadline-ms", sdeadline);
    s_push2(&sup, S_VENT, "--max-attempts", sattempts);
    s_push2(&sup, S_VENT, "--no-worker-timeout-ms", snowork);
    if (trace_out)
        s_push(&sup, S_VENT, "--trace");
    if (o.resume) {
        s_push(&sup, S_VENT, "--resume-journal");
        s_push(&sup, S_VENT, o.journal);
    }

    s_push(&sup, S_WORKER, bin_worker);
    s_push2(&sup, S_WORKER, "--ventilator", ep_disp);
    s_push2(&sup, S_WORKER, "--sink", ep_res);
    s_push2(&sup, S_WORKER, "--plugin", o.plugin);
    for (size_t i = 0; i < o.config.count; i++)
        s_push2(&sup, S_WORKER, "--plugin-config", pconf[i]);
    s_push2(&sup, S_WORKER, "--dispatch", o.dispatch);
    s_push2(&sup, S_WORKER, "--window", swindow);
    s_push2(&sup, S_WORKER, "--isolation", o.isolation);
    s_push2(&sup, S_WORKER, "--memory-limit", smem);
    for (s_role_t r = S_SINK; r <= S_WORKER; r++)
        for (size_t i = 0; i < sizeof common / sizeof *common; i++)
            s_push(&sup, r, common[i]);

    /* The sink first, so the ventilator's JobOpen finds it. Workers get
     * no stdin: only the ventilator reads the job's input. */
    sup.kids[sup.n_kids++] = (s_child_t){.role = S_SINK};
    sup.kids[sup.n_kids++] = (s_child_t){.role = S_VENT};
    for (uint64_t i = 0; i < o.workers; i++)
        sup.kids[sup.n_kids++] = (s_child_t){.role = S_WORKER};
    sup.n_workers = o.workers;
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (size_t i = 0; i < sup.n_kids; i++) {
        if (sup.kids[i].role == S_WORKER && devnull >= 0) {
            sup.kids[i].pid = zp_spawn(sup.argv[S_WORKER], devnull, -1);
            sup.kids[i].alive = sup.kids[i].pid > 0;
            sup.kids[i].started_us = zp_mono_us();
            if (!sup.kids[i].alive) {
                close(devnull);
                goto spawn_failed;
            }
        } else if (s_start(&sup, &sup.kids[i]) < 0) {
            if (devnull >= 0)
                close(devnull);
            goto spawn_failed;
        }
    }
    if (devnull >= 0)
        close(devnull);

    zp_signals_install(0);
    ctx = zmq_ctx_new();
    control =
        ctx ? zp_socket(ctx, ZMQ_DEALER, ep_ctl, false, 1u << 24, NULL, NULL)
            : NULL;
    if (!control)
        goto stop;

    uint64_t t0 = zp_mono_us(), last_req = 0, last_done = 0;
    Zpipe__V1__JobStatus last = ZPIPE__V1__JOB_STATUS__INIT;
    Zpipe__V1__WorkerStats *final_workers = NULL;
    char *reduce_error = NULL; /* from the sink, for a reduced job */
    size_t n_final = 0;
    bool done = false;
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    while (!done && !zp_stopping()) {
        uint64_t now = zp_mono_us();
        /* Until the sink knows the job (it registers us as a waiter
         * then), ask again soon: a request that arrives before the job
         * is opened is answered JOB_UNKNOWN and not remembered. */
        uint64_t every =
            last.state == ZPIPE__V1__JOB_STATE__JOB_UNKNOWN ? 10000 : 250000;
        if (now - last_req >= every) {
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
        if (zmq_poll(&it, 1, (long)(every / 1000)) > 0) {
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
                last.retries = st->retries;
                if (st->state == ZPIPE__V1__JOB_STATE__JOB_DONE) {
                    done = true;
                    if (st->reduce_error && *st->reduce_error && !reduce_error)
                        reduce_error = strdup(st->reduce_error);
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
        if (!done && !s_supervise(&sup, job, last.done, &last_done))
            goto stop_loop;
    }
    if (show)
        fputs("\r\033[K", stderr);
    if (done) {
        double secs = (double)(zp_mono_us() - t0) / 1e6;
        fprintf(stderr,
                "zpipe run: job %s: %llu tasks, %llu succeeded, %llu failed "
                "in %.3f s (%.0f tasks/s) on %llu workers\n",
                job, (unsigned long long)last.total,
                (unsigned long long)last.succeeded,
                (unsigned long long)last.failed, secs,
                secs > 0 ? (double)last.total / secs : 0.0,
                (unsigned long long)o.workers);
        for (size_t i = 0; final_workers && i < n_final; i++)
            fprintf(
                stderr,
                "zpipe run:   worker %s: %llu tasks, window %u, max held %u\n",
                final_workers[i].worker_id ? final_workers[i].worker_id : "?",
                (unsigned long long)final_workers[i].tasks_done,
                final_workers[i].window, final_workers[i].max_held);
        bool balanced = last.total == last.succeeded + last.failed;
        fprintf(stderr,
                "zpipe run: accounting: submitted %llu %s succeeded %llu + "
                "failed %llu; retries %llu, duplicates dropped %llu, bad "
                "messages %llu, worker restarts %llu, sink restarts %llu\n",
                (unsigned long long)last.total,
                balanced ? "=" : "!=", (unsigned long long)last.succeeded,
                (unsigned long long)last.failed,
                (unsigned long long)last.retries,
                (unsigned long long)last.duplicates,
                (unsigned long long)last.bad_messages,
                (unsigned long long)sup.worker_restarts,
                (unsigned long long)sup.sink_restarts);
        if (reduce_error)
            fprintf(stderr, "zpipe run: the reduction failed: %s\n",
                    reduce_error);
        rc = !balanced ? 3 : last.failed || reduce_error ? 1 : 0;
        done_ok = true;
    } else if (zp_stopping()) {
        fprintf(stderr,
                "zpipe run: interrupted; job %s incomplete (%llu done)%s\n",
                job, (unsigned long long)last.done,
                o.journal ? "; finish it with --resume" : "");
        rc = 128 + zp_stop_signal();
    }
stop_loop:
    if (!done && !zp_stopping())
        fprintf(stderr,
                "zpipe run: accounting: %llu tasks had their record when the "
                "run stopped%s\n",
                (unsigned long long)last.done,
                o.journal ? "; finish the job with --resume" : "");
    zmq_msg_close(&frame);
    for (size_t i = 0; final_workers && i < n_final; i++)
        free(final_workers[i].worker_id);
    free(final_workers);
    free(reduce_error);
stop:
    if (control) {
        int zero = 0;
        zmq_setsockopt(control, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(control);
    }
    if (ctx)
        zmq_ctx_term(ctx);
    s_stop_children(&sup);
    if (done_ok) {
        long rss[3] = {0, 0, 0};
        for (size_t i = 0; i < sup.n_kids; i++)
            if (sup.kids[i].maxrss_kb > rss[sup.kids[i].role])
                rss[sup.kids[i].role] = sup.kids[i].maxrss_kb;
        fprintf(
            stderr,
            "zpipe run: peak RSS KiB: sink %ld, ventilator %ld, workers %ld "
            "(largest, with its executors)\n",
            rss[S_SINK], rss[S_VENT], rss[S_WORKER]);
    }
    /* The sink has stopped: its trace log is complete. A run that did
     * not finish still gets the timeline of what happened. */
    if (trace_out &&
        zp_timeline_write(trace_log, trace_out, o.trace, stderr) < 0)
        fprintf(stderr, "zpipe run: no timeline written to %s\n", o.trace);
    goto done;

spawn_failed:
    zp_error("cannot start a process: %s", strerror(errno));
    s_stop_children(&sup);
done:
    if (have_dir) {
        char path[256];
        const char *names[] = {"dispatch", "results", "control", "trace.jsonl"};
        for (size_t i = 0; i < 4; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            unlink(path);
        }
        rmdir(dir);
    }
    if (trace_out)
        fclose(trace_out);
    zp_arena_destroy(&arena);
    zp_buf_free(&scratch);
    free(sup.kids);
    for (size_t i = 0; pconf && i < o.config.count; i++)
        free(pconf[i]);
    free(pconf);
    zp_strlist_free(&o.config);
    free(name);
    free(job);
    free(bin_worker);
    free(bin_vent);
    free(bin_sink);
    return rc;
}
