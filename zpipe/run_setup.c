/* run_setup: what `zpipe run` does before its children start: its
 * options and their checks, the plugin's check by a worker, the endpoints
 * and the three command lines. */
#define _GNU_SOURCE
#include "run.h"
#include "zp_journal.h"
#include "zp_log.h"
#include "zp_metrics.h"
#include "zp_spawn.h"
#include "zp_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

void zp_run_opts_init(zp_run_opts_t *o)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    *o = (zp_run_opts_t){
        .input = "-",
        .input_format = "lines",
        .output = "-",
        .format = "jsonl",
        .dispatch = "credit",
        .workers = ncpu > 0 ? (uint64_t)ncpu : 2,
        .batch = 0,
        .window = 4096,
        .isolation = "process",
        .max_attempts = 3,
        .no_worker_timeout_ms = 30000,
        .transport = "ipc",
    };
}

/* A table, one entry per option: long, but flat. */
void zp_run_opts_table(zp_run_opts_t *o, zp_opt_t *out)
{
    const zp_opt_t opts[] = {
        {"plugin", 'p', ZP_OPT_STR, "ZPIPE_PLUGIN", "NAME",
         "plugin name (on ZPIPE_PLUGIN_PATH, beside the binaries, installed) "
         "or path to a .so (required)",
         &o->plugin, 0, 0, NULL},
        {"config", 'c', ZP_OPT_LIST, NULL, "KEY=VALUE",
         "a plugin setting, e.g. cmd='sha256sum' for exec (also "
         "ZPIPE_PLUGIN_<PLUGIN>_<KEY>); repeatable",
         &o->config, 0, 0, NULL},
        {"reduce", 0, ZP_OPT_FLAG, "ZPIPE_REDUCE_JOB", NULL,
         "fold the results with the plugin's reducer: one final record "
         "(failures still one by one)",
         &o->reduce, 0, 0, NULL},
        {"workers", 'n', ZP_OPT_UINT, "ZPIPE_WORKERS", "N",
         "worker processes (default: the number of CPUs)", &o->workers, 1,
         ZP_RUN_MAX_WORKERS, NULL},
        {"input", 'i', ZP_OPT_STR, "ZPIPE_INPUT", "FILE",
         "the tasks, as --input-format says; - for stdin (default -)",
         &o->input, 0, 0, NULL},
        {"input-format", 0, ZP_OPT_CHOICE, "ZPIPE_INPUT_FORMAT", "FORMAT",
         "lines (default): a task per line; frames: each task a 4-byte "
         "big-endian length N, then N bytes",
         &o->input_format, 0, 0, "lines|frames"},
        {"output", 'o', ZP_OPT_STR, "ZPIPE_OUTPUT", "FILE",
         "records; - for stdout (default -)", &o->output, 0, 0, NULL},
        {"format", 'f', ZP_OPT_CHOICE, "ZPIPE_FORMAT", "FORMAT",
         "record format: jsonl (default), lines (the outputs, one a line) "
         "or frames (binary: a 24-byte header, then output, cause, error; "
         "docs/formats.md)",
         &o->format, 0, 0, "jsonl|lines|frames"},
        {"ordered", 0, ZP_OPT_FLAG, "ZPIPE_ORDERED", NULL,
         "write records in input order", &o->ordered, 0, 0, NULL},
        {"dispatch", 0, ZP_OPT_CHOICE, "ZPIPE_DISPATCH", "MODE",
         "credit (default) or push", &o->dispatch, 0, 0, "credit|push"},
        {"batch", 0, ZP_OPT_UINT, "ZPIPE_BATCH", "N",
         "most tasks per message (default 0 = automatic: 2048 under credit "
         "dispatch, 1024 under push)",
         &o->batch, 0, 65536, NULL},
        {"window", 'w', ZP_OPT_UINT, "ZPIPE_WINDOW", "N",
         "most tasks a worker holds at once (default 4096)", &o->window, 1,
         1000000, NULL},
        {"deadline-ms", 0, ZP_OPT_UINT, "ZPIPE_DEADLINE_MS", "MS",
         "per-task deadline; a task past it is killed, 0 = none (default 0)",
         &o->deadline_ms, 0, 86400000, NULL},
        {"isolation", 0, ZP_OPT_CHOICE, "ZPIPE_ISOLATION", "MODE",
         "process (default): a crashing plugin fails only its task; none: "
         "plugins run inside the workers (trusted plugins, less overhead)",
         &o->isolation, 0, 0, "process|none"},
        {"memory-limit", 0, ZP_OPT_UINT, "ZPIPE_MEMORY_LIMIT", "BYTES",
         "address-space limit per executor process, 0 = none (default 0)",
         &o->memory_limit, 0, UINT64_MAX, NULL},
        {"max-attempts", 0, ZP_OPT_UINT, "ZPIPE_MAX_ATTEMPTS", "N",
         "attempts before a retryable failure is final (default 3)",
         &o->max_attempts, 1, 100, NULL},
        {"journal", 0, ZP_OPT_STR, "ZPIPE_JOURNAL", "FILE",
         "the sink keeps a commit log: it is restarted without loss if it "
         "dies, and --resume can finish the job later (needs --output FILE)",
         &o->journal, 0, 0, NULL},
        {"resume", 0, ZP_OPT_FLAG, "ZPIPE_RESUME", NULL,
         "rerun the journal's job, skipping tasks it already committed and "
         "appending to the output",
         &o->resume, 0, 0, NULL},
        {"no-worker-timeout-ms", 0, ZP_OPT_UINT, "ZPIPE_NO_WORKER_TIMEOUT_MS",
         "MS", "fail when no worker is connected this long (default 30000)",
         &o->no_worker_timeout_ms, 0, 86400000, NULL},
        {"transport", 0, ZP_OPT_CHOICE, "ZPIPE_TRANSPORT", "KIND",
         "how the local processes talk: ipc (default) or tcp on loopback",
         &o->transport, 0, 0, "ipc|tcp"},
        {"job", 'j', ZP_OPT_STR, "ZPIPE_JOB", "ID", "job id (default random)",
         &o->job, 0, 0, NULL},
        {"trace", 0, ZP_OPT_STR, "ZPIPE_TRACE_FILE", "FILE",
         "write every task's life (queued, dispatched, run, committed) as "
         "Chrome trace-event JSON for Perfetto or chrome://tracing, and "
         "print per-worker utilisation and where the time went",
         &o->trace, 0, 0, NULL},
        {"web", 0, ZP_OPT_STR, "ZPIPE_WEB", "HOST:PORT",
         "serve the sink's web view (http://HOST:PORT/) and its metrics "
         "while the job runs; port 0 picks a free one (printed)",
         &o->web, 0, 0, NULL},
        {"progress", 0, ZP_OPT_FLAG, NULL, NULL,
         "show progress on stderr even when it is not a terminal", &o->progress,
         0, 0, NULL},
        {"no-progress", 0, ZP_OPT_FLAG, NULL, NULL, "never show progress",
         &o->no_progress, 0, 0, NULL},
        {0},
    };
    _Static_assert(sizeof opts / sizeof *opts == ZP_RUN_N_OPTS,
                   "ZP_RUN_N_OPTS is the table's size");
    memcpy(out, opts, sizeof opts);
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

const char *zp_run_usage_error(const zp_run_opts_t *o, char *web_addr,
                               size_t addr_len, char *web_url, size_t url_len,
                               char *err, size_t err_len)
{
    if (!o->plugin)
        return "--plugin is required";
    if (o->journal && strcmp(o->output, "-") == 0)
        return "--journal needs --output FILE";
    if (o->resume && !o->journal)
        return "--resume needs --journal FILE";
    if (o->job && !zp_job_id_valid(o->job))
        return "--job must be 1 to 128 of [A-Za-z0-9_.:-]";
    if (o->config.count > ZP_RUN_MAX_CONFIG)
        return "at most 32 --config settings";
    if (o->web && s_web_addr(o->web, web_addr, addr_len, web_url, url_len, err,
                             err_len) < 0)
        return err;
    for (size_t i = 0; i < o->config.count; i++)
        if (!strchr(o->config.items[i], '=') || o->config.items[i][0] == '=')
            return "--config takes KEY=VALUE";
    return NULL;
}

char *zp_run_plugin_name(const char *worker, const char *spec,
                         char *const *config, size_t n_config,
                         bool *has_reducer)
{
    int fds[2];
    if (n_config > ZP_RUN_MAX_CONFIG || pipe(fds) < 0)
        return NULL;
    char *argv[8 + 2 * ZP_RUN_MAX_CONFIG] = {(char *)worker, "--plugin",
                                             (char *)spec,   "--describe",
                                             "--log-level",  "error"};
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

/* The journal's visitor: keeps the last opened job. */
static void s_last_job(void *ctx, const char *job, uint32_t max_attempts,
                       const char *token)
{
    (void)max_attempts;
    (void)token;
    char **out = ctx;
    free(*out);
    *out = strdup(job);
}

char *zp_run_journal_job(const char *path)
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
    zp_journal_visitor_t v = {.on_open = s_last_job};
    size_t valid;
    if (data.len)
        zp_journal_replay(data.data, data.len, &v, &job, &valid);
    zp_buf_free(&data);
    return job;
}

int zp_run_plan_endpoints(zp_run_plan_t *p, const char *transport,
                          const char *dir)
{
    snprintf(p->trace_log, sizeof p->trace_log, "%s/trace.jsonl", dir);
    snprintf(p->sink_journal, sizeof p->sink_journal, "%s/sink.journal", dir);
    if (strcmp(transport, "tcp") == 0) {
        int ports[3];
        if (s_free_ports(ports, 3) < 0) {
            zp_error("cannot find free loopback ports: %s", strerror(errno));
            return -1;
        }
        snprintf(p->ep_disp, sizeof p->ep_disp, "tcp://127.0.0.1:%d", ports[0]);
        snprintf(p->ep_res, sizeof p->ep_res, "tcp://127.0.0.1:%d", ports[1]);
        snprintf(p->ep_ctl, sizeof p->ep_ctl, "tcp://127.0.0.1:%d", ports[2]);
    } else {
        snprintf(p->ep_disp, sizeof p->ep_disp, "ipc://%s/dispatch", dir);
        snprintf(p->ep_res, sizeof p->ep_res, "ipc://%s/results", dir);
        snprintf(p->ep_ctl, sizeof p->ep_ctl, "ipc://%s/control", dir);
    }
    return 0;
}

static void s_push(zp_run_plan_t *p, zp_role_t role, const char *a)
{
    if (p->argc[role] < ZP_RUN_MAX_ARGS - 1) {
        p->argv[role][p->argc[role]++] = (char *)a;
        p->argv[role][p->argc[role]] = NULL;
    }
}

/* Pushes an option and its value. */
static void s_push2(zp_run_plan_t *p, zp_role_t role, const char *flag,
                    const char *value)
{
    s_push(p, role, flag);
    s_push(p, role, value);
}

static void s_sink_argv(zp_run_plan_t *p, const zp_run_opts_t *o,
                        const zp_run_names_t *n)
{
    s_push(p, ZP_ROLE_SINK, n->sink);
    s_push2(p, ZP_ROLE_SINK, "--results", p->ep_res);
    s_push2(p, ZP_ROLE_SINK, "--control", p->ep_ctl);
    s_push2(p, ZP_ROLE_SINK, "--publish", "none");
    s_push2(p, ZP_ROLE_SINK, "--output", o->output);
    s_push2(p, ZP_ROLE_SINK, "--format", o->format);
    if (o->ordered)
        s_push(p, ZP_ROLE_SINK, "--ordered");
    if (o->journal) {
        s_push2(p, ZP_ROLE_SINK, "--journal", o->journal);
    } else {
        /* The sink's own journal in the private directory: a sink killed
         * mid-run is restarted and resumes from it. Written, not synced:
         * it only has to outlive the sink, not the run. */
        s_push2(p, ZP_ROLE_SINK, "--journal", p->sink_journal);
        s_push2(p, ZP_ROLE_SINK, "--journal-sync", "no");
    }
    if (o->trace)
        s_push2(p, ZP_ROLE_SINK, "--trace", p->trace_log);
    if (*n->web_addr)
        s_push2(p, ZP_ROLE_SINK, "--metrics", n->web_addr);
    if (o->reduce) {
        s_push2(p, ZP_ROLE_SINK, "--reduce", o->plugin);
        for (size_t i = 0; i < o->config.count; i++)
            s_push2(p, ZP_ROLE_SINK, "--plugin-config", n->pconf[i]);
    }
}

static void s_ventilator_argv(zp_run_plan_t *p, const zp_run_opts_t *o,
                              const zp_run_names_t *n)
{
    zp_role_t r = ZP_ROLE_VENTILATOR;
    s_push(p, r, n->ventilator);
    s_push2(p, r, "--bind", p->ep_disp);
    s_push2(p, r, "--sink", p->ep_ctl);
    s_push2(p, r, "--input", o->input);
    s_push2(p, r, "--input-format", o->input_format);
    s_push2(p, r, "--plugin", n->name);
    s_push2(p, r, "--job", n->job);
    s_push2(p, r, "--dispatch", o->dispatch);
    s_push2(p, r, "--batch", p->batch);
    s_push2(p, r, "--deadline-ms", p->deadline);
    s_push2(p, r, "--max-attempts", p->attempts);
    s_push2(p, r, "--no-worker-timeout-ms", p->no_worker);
    if (o->trace)
        s_push(p, r, "--trace");
    if (o->resume) {
        s_push2(p, r, "--resume-journal", o->journal);
    }
}

static void s_worker_argv(zp_run_plan_t *p, const zp_run_opts_t *o,
                          const zp_run_names_t *n)
{
    zp_role_t r = ZP_ROLE_WORKER;
    s_push(p, r, n->worker);
    s_push2(p, r, "--ventilator", p->ep_disp);
    s_push2(p, r, "--sink", p->ep_res);
    s_push2(p, r, "--plugin", o->plugin);
    for (size_t i = 0; i < o->config.count; i++)
        s_push2(p, r, "--plugin-config", n->pconf[i]);
    s_push2(p, r, "--dispatch", o->dispatch);
    s_push2(p, r, "--window", p->window);
    s_push2(p, r, "--isolation", o->isolation);
    s_push2(p, r, "--memory-limit", p->mem);
}

void zp_run_plan_argv(zp_run_plan_t *p, const zp_run_opts_t *o,
                      const zp_run_names_t *n)
{
    snprintf(p->parent, sizeof p->parent, "%d", (int)getpid());
    snprintf(p->batch, sizeof p->batch, "%llu", (unsigned long long)o->batch);
    snprintf(p->window, sizeof p->window, "%llu",
             (unsigned long long)o->window);
    snprintf(p->deadline, sizeof p->deadline, "%llu",
             (unsigned long long)o->deadline_ms);
    snprintf(p->mem, sizeof p->mem, "%llu",
             (unsigned long long)o->memory_limit);
    snprintf(p->attempts, sizeof p->attempts, "%llu",
             (unsigned long long)o->max_attempts);
    snprintf(p->no_worker, sizeof p->no_worker, "%llu",
             (unsigned long long)o->no_worker_timeout_ms);
    s_sink_argv(p, o, n);
    s_ventilator_argv(p, o, n);
    s_worker_argv(p, o, n);
    const char *common[] = {"--parent-pid", p->parent,
                            "--log-level",  zp_log_level_name(),
                            "--log-format", zp_log_format_name()};
    for (zp_role_t r = ZP_ROLE_SINK; r <= ZP_ROLE_WORKER; r++)
        for (size_t i = 0; i < sizeof common / sizeof *common; i++)
            s_push(p, r, common[i]);
}
