/* zpipe plugin check: loads a plugin with the worker's loader and host
 * table and tries its process callback on sample inputs in a child
 * process, so a crash is reported, not suffered. */
#define _GNU_SOURCE
#include "plugin_kit.h"
#include "worker.h"
#include "zp_log.h"
#include "zp_opts.h"
#include "zp_plugin.h"
#include "zp_util.h"
#include "zpipe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_SHOW_BYTES 200 /* input and output bytes shown per call */

static const char s_check_synopsis[] =
    "Usage: zpipe plugin check FILE.so [--input TEXT ...] [--config "
    "KEY=VALUE ...]\n"
    "Loads a plugin with the worker's loader (the same refusal rules and\n"
    "messages), prints its descriptor, then runs process on each --input\n"
    "(default: a few samples, one of them empty) with the worker's host\n"
    "table, printing the status, output, error text and time of each call,\n"
    "and runs fini. Calls run in a child process: a crash or a hang is\n"
    "reported with the input that caused it, and the inputs after it run in\n"
    "a fresh child. Settings (--config) go to the plugin under the file's\n"
    "name, FILE of FILE.so, as with zpipe run. Exit status: 0 loaded and\n"
    "every call returned (whatever its status), 1 a call crashed or hung,\n"
    "2 bad usage, 3 refused (the loader's message on stderr).";

typedef struct {
    const char *data;
    size_t len;
} s_input_t;

/* One check: what every child needs. */
typedef struct {
    zp_worker_config_t cfg;       /* the one plugin and its settings */
    const zp_strlist_t *settings; /* KEY=VALUE as given */
    const s_input_t *in;
    size_t n_in;
    uint64_t timeout_ms, memory_limit;
} s_check_t;

/* Built-in samples: text, empty, text with a newline, bytes that are not
 * UTF-8. */
static const s_input_t s_samples[] = {
    {"hello", 5},
    {"", 0},
    {"two words\nand a line", 20},
    {"\x00\x01\xfe\xff", 4},
};

static const char *s_status_name(int status)
{
    switch (status) {
    case ZPIPE_OK:
        return "ZPIPE_OK";
    case ZPIPE_ERROR:
        return "ZPIPE_ERROR";
    case ZPIPE_RETRY:
        return "ZPIPE_RETRY";
    case ZPIPE_NOMEM:
        return "ZPIPE_NOMEM";
    case ZPIPE_INVALID:
        return "ZPIPE_INVALID";
    default:
        return NULL;
    }
}

/* Prints data quoted on one line: printable ASCII as is, UTF-8 as is when
 * the whole of it is valid, everything else escaped; at most S_SHOW_BYTES
 * bytes, then a note of the rest. */
static void s_print_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t show = len > S_SHOW_BYTES ? S_SHOW_BYTES : len;
    bool utf8 = zp_utf8_valid(p, len);
    putchar('"');
    for (size_t i = 0; i < show; i++) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c == '\r')
            fputs("\\r", stdout);
        else if ((c >= 0x20 && c < 0x7f) || (utf8 && c >= 0x80))
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    putchar('"');
    if (show < len)
        printf("... (%zu bytes, %zu shown)", len, show);
    else
        printf(" (%zu byte%s%s)", len, len == 1 ? "" : "s",
               utf8 ? "" : ", not UTF-8");
}

static void s_print_descriptor(const zp_plugin_t *p,
                               const zp_strlist_t *settings)
{
    const zpipe_plugin_t *d = &p->desc;
    printf("plugin       %s\n", d->name);
    printf("version      %s\n", d->version ? d->version : "(none)");
    printf("description  %s\n", d->description ? d->description : "(none)");
    printf("file         %s\n", p->path);
    printf("abi          %u.%u (this host speaks %d.%d)\n", d->abi_major,
           d->abi_minor, ZPIPE_ABI_MAJOR, ZPIPE_ABI_MINOR);
    printf("struct_size  %u (ABI 1.0: %zu, this host's: %zu)\n", d->struct_size,
           (size_t)ZP_PLUGIN_SIZE_1_0, sizeof *d);
    printf("callbacks    process; optional: init %s, fini %s, reducer %s\n",
           d->init ? "yes" : "no", d->fini ? "yes" : "no",
           d->reduce ? "yes (reduce_init, reduce, reduce_final, reduce_fini)"
                     : "no");
    for (size_t i = 0; i < settings->count; i++)
        printf("setting      %s\n", settings->items[i]);
    fflush(stdout);
}

/* What the child tells the parent, one byte plus an input index, so the
 * parent knows where a crash happened. */
enum {
    S_MSG_LOADED = 'L',
    S_MSG_CALL = 'C',
    S_MSG_DONE = 'D',
    S_MSG_FINI = 'F'
};

typedef struct {
    char kind;
    uint32_t index;
} s_msg_t;

static void s_tell(int fd, char kind, size_t index)
{
    s_msg_t m = {kind, (uint32_t)index};
    ssize_t w;
    do
        w = write(fd, &m, sizeof m);
    while (w < 0 && errno == EINTR);
}

/* The child: load, (print the descriptor when first), run inputs from
 * start, fini. Exit 0 when done, 3 when refused. */
static int s_check_child(const s_check_t *c, size_t start, int fd)
{
    struct rlimit core = {0, 0};
    setrlimit(RLIMIT_CORE, &core); /* a crash is expected; no core files */
    char err[1024];
    zp_worker_probe_t *probe = zp_worker_probe_new(&c->cfg, err, sizeof err);
    if (!probe) {
        fprintf(stderr, "zpipe plugin check: plugin refused: %s\n", err);
        return 3;
    }
    const zp_plugin_t *p = zp_worker_probe_plugin(probe);
    s_tell(fd, S_MSG_LOADED, 0);
    if (start == 0) {
        s_print_descriptor(p, c->settings);
        const char *base = strrchr(p->path, '/');
        base = base ? base + 1 : p->path;
        size_t nl = strlen(p->desc.name);
        if (c->settings->count && (strncmp(base, p->desc.name, nl) != 0 ||
                                   strcmp(base + nl, ".so") != 0))
            printf("warning      the plugin calls itself '%s' but the file "
                   "is %s: settings reach it only under its name (rename "
                   "the file %s.so)\n",
                   p->desc.name, base, p->desc.name);
    }
    if (c->memory_limit) {
        struct rlimit rl = {c->memory_limit, c->memory_limit};
        setrlimit(RLIMIT_AS, &rl);
    }
    const s_input_t *in = c->in;
    for (size_t i = start; i < c->n_in; i++) {
        printf("\ninput #%zu     ", i + 1);
        s_print_bytes(in[i].data, in[i].len);
        putchar('\n');
        fflush(stdout);
        s_tell(fd, S_MSG_CALL, i);
        zp_worker_outcome_t o;
        zp_worker_probe_call(probe, (const uint8_t *)in[i].data, in[i].len, i,
                             &o);
        s_tell(fd, S_MSG_DONE, i);
        const char *sname = s_status_name(o.status);
        if (sname)
            printf("  status     %s", sname);
        else
            printf("  status     %d (not a ZPIPE_* status)", o.status);
        if (o.cause)
            printf(" (cause %s, %s)", o.cause,
                   ZPIPE_STATUS_IS_RETRYABLE(o.status) &&
                           strcmp(o.cause, "resource_limit") != 0
                       ? "retryable"
                       : "not retryable");
        fputs("\n  output     ", stdout);
        if (o.status == ZPIPE_OK)
            s_print_bytes(o.output, o.output_len);
        else
            fputs("(none: a failed task outputs nothing)", stdout);
        fputs("\n  error      ", stdout);
        if (o.error_len)
            s_print_bytes(o.error, o.error_len);
        else
            fputs("(none)", stdout);
        printf("\n  time       %llu us\n", (unsigned long long)o.elapsed_us);
        fflush(stdout);
    }
    s_tell(fd, S_MSG_FINI, 0);
    zp_worker_probe_destroy(&probe);
    return 0;
}

static const char *s_signame(int sig)
{
    static char other[32];
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev) {
        snprintf(other, sizeof other, "SIG%s", abbrev);
        return other;
    }
    snprintf(other, sizeof other, "signal %d", sig);
    return other;
}

/* How one child ended, as the parent saw it. */
typedef struct {
    bool loaded, in_call, in_fini, finished, timed_out;
    size_t index; /* the input running when it ended */
    int status;   /* from waitpid */
} s_child_end_t;

/* Forks a child running inputs from start, follows its progress, and
 * kills it when one call runs longer than timeout_ms (0 = no limit). */
static int s_check_run_child(const s_check_t *c, size_t start,
                             s_child_end_t *end)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        /* A crash is to be seen as the signal it is, also in a build whose
         * sanitizer would catch it and exit instead. */
        int fatal[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
        for (size_t i = 0; i < sizeof fatal / sizeof *fatal; i++)
            signal(fatal[i], SIG_DFL);
        int rc = s_check_child(c, start, fds[1]);
        fflush(stdout);
        fflush(stderr);
        _exit(rc);
    }
    close(fds[1]);
    *end = (s_child_end_t){.index = start};
    uint64_t call_start = 0;
    for (;;) {
        int wait_ms = -1;
        if (end->in_call && c->timeout_ms) {
            uint64_t spent = (zp_mono_us() - call_start) / 1000;
            wait_ms = spent >= c->timeout_ms ? 0 : (int)(c->timeout_ms - spent);
        }
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int r = poll(&pfd, 1, wait_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            end->timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        s_msg_t m;
        ssize_t got = read(fds[0], &m, sizeof m);
        if (got < 0 && errno == EINTR)
            continue;
        if (got != (ssize_t)sizeof m)
            break; /* the child is gone (or exiting) */
        if (m.kind == S_MSG_LOADED)
            end->loaded = true;
        else if (m.kind == S_MSG_CALL) {
            end->in_call = true;
            end->index = m.index;
            call_start = zp_mono_us();
        } else if (m.kind == S_MSG_DONE)
            end->in_call = false;
        else if (m.kind == S_MSG_FINI)
            end->in_fini = true;
    }
    close(fds[0]);
    while (waitpid(pid, &end->status, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

/* The options of zpipe plugin check. */
typedef struct {
    zp_strlist_t inputs, settings;
    uint64_t max_output, timeout_ms, memory_limit;
} s_check_opts_t;

/* Parses the options and the one operand, the plugin's file (*file).
 * Returns -1 to go on, else the exit code. */
static int s_check_args(s_check_opts_t *o, int argc, char **argv,
                        const char **file)
{
    const zp_opt_t opts[] = {
        {"input", 'i', ZP_OPT_LIST, NULL, "TEXT",
         "an input to call process with (repeatable; default: built-in "
         "samples, one empty)",
         &o->inputs, 0, 0, NULL},
        {"config", 'c', ZP_OPT_LIST, NULL, "KEY=VALUE",
         "a setting for the plugin's host->config (repeatable)", &o->settings,
         0, 0, NULL},
        {"max-output", 0, ZP_OPT_UINT, "ZPIPE_MAX_OUTPUT", "BYTES",
         "largest output a call may produce, as a worker's (default 64 MiB)",
         &o->max_output, 1, UINT64_MAX, NULL},
        {"timeout-ms", 0, ZP_OPT_UINT, NULL, "MS",
         "kill a call running longer than this (default 10000; 0 = never)",
         &o->timeout_ms, 0, 86400000, NULL},
        {"memory-limit", 0, ZP_OPT_UINT, NULL, "BYTES",
         "address-space limit for the calls (default 0 = none)",
         &o->memory_limit, 0, UINT64_MAX, NULL},
        {0},
    };
    const char *prog = "zpipe plugin check";
    int first;
    int rc = zp_opts_main_operands(opts, argc, argv, prog, s_check_synopsis,
                                   "zpipe " ZPIPE_VERSION, &first);
    if (rc >= 0)
        return rc;
    if (first >= argc) {
        zp_opts_fail(opts, prog, s_check_synopsis, "give the plugin FILE.so");
        return 2;
    }
    if (argc - first > 1) {
        zp_opts_fail(opts, prog, s_check_synopsis, "give one plugin file");
        return 2;
    }
    for (size_t i = 0; i < o->settings.count; i++)
        if (!strchr(o->settings.items[i], '=') ||
            o->settings.items[i][0] == '=') {
            zp_opts_fail(opts, prog, s_check_synopsis,
                         "--config takes KEY=VALUE");
            return 2;
        }
    *file = argv[first];
    return -1;
}

/* The plugin spec for arg: FILE.so in this folder is a file, not a plugin
 * name to look up. Caller owns the result; NULL when out of memory. */
static char *s_check_spec(const char *arg)
{
    size_t al = strlen(arg);
    struct stat sb;
    char *spec = NULL;
    if (!strchr(arg, '/') && al > 3 && strcmp(arg + al - 3, ".so") == 0 &&
        stat(arg, &sb) == 0)
        return asprintf(&spec, "./%s", arg) < 0 ? NULL : spec;
    return strdup(arg);
}

/* How a child that did not finish ended, for the report. */
static void s_check_how(char *how, size_t len, const s_child_end_t *end,
                        uint64_t timeout_ms)
{
    int st = end->status;
    if (end->timed_out)
        snprintf(how, len, "timed out after %llu ms",
                 (unsigned long long)timeout_ms);
    else if (WIFSIGNALED(st))
        snprintf(how, len, "crashed with %s", s_signame(WTERMSIG(st)));
    else
        snprintf(how, len, "exited with status %d", WEXITSTATUS(st));
}

/* One child runs the inputs in order; after a crash or a hang a fresh
 * child (a fresh init) takes the inputs after it, as a worker's new
 * executor takes the rest of a batch. Returns the exit code. */
static int s_check_all(const s_check_t *c, const char *spec)
{
    const char *prog = "zpipe plugin check";
    size_t start = 0, lost = 0;
    bool fini_ok = true;
    for (;;) {
        s_child_end_t end;
        if (s_check_run_child(c, start, &end) < 0) {
            fprintf(stderr, "%s: cannot start a child process: %s\n", prog,
                    strerror(errno));
            return 3;
        }
        int st = end.status;
        /* Done only when it said fini: exit(0) inside a call (or between
         * calls, from a plugin's thread) is a failure like a crash. */
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && end.in_fini &&
            !end.in_call)
            break;
        char how[128];
        s_check_how(how, sizeof how, &end, c->timeout_ms);
        if (!end.loaded) {
            /* Refused by the loader (its message is on stderr already),
             * or died in its constructor or init. */
            if (!(WIFEXITED(st) && WEXITSTATUS(st) == 3))
                fprintf(stderr,
                        "%s: plugin refused: %s: %s while loading (in a "
                        "constructor or init)\n",
                        prog, spec, how);
            return 3;
        }
        if (!end.in_call) {
            printf("\nplugin %s %s\n", how,
                   end.in_fini ? "in fini" : "between calls");
            fini_ok = false;
            break;
        }
        printf("  %s on input #%zu\n", how, end.index + 1);
        fflush(stdout);
        lost++;
        start = end.index + 1;
    }
    size_t n_in = c->n_in;
    printf(
        "\n%zu input%s: %zu call%s returned, %zu crashed, exited or timed out; "
        "fini %s\n",
        n_in, n_in == 1 ? "" : "s", n_in - lost, n_in - lost == 1 ? "" : "s",
        lost, fini_ok ? "ran" : "failed");
    return lost || !fini_ok ? 1 : 0;
}

int zp_plugin_check(int argc, char **argv)
{
    s_check_opts_t o = {.max_output = 64u << 20, .timeout_ms = 10000};
    const char *file = NULL;
    char *spec = NULL;
    char **pconf = NULL;
    s_input_t *in = NULL;
    int rc = s_check_args(&o, argc, argv, &file);
    if (rc >= 0)
        goto done;
    rc = 3;
    spec = s_check_spec(file);
    if (!spec)
        goto done;
    /* Settings go under the file's name, as zpipe run gives them. */
    pconf = zp_plugin_settings_for(spec, o.settings.items, o.settings.count);
    if (!pconf)
        goto done;
    size_t n_in =
        o.inputs.count ? o.inputs.count : sizeof s_samples / sizeof *s_samples;
    in = calloc(n_in, sizeof *in);
    if (!in)
        goto done;
    for (size_t i = 0; i < n_in; i++)
        in[i] = o.inputs.count
                    ? (s_input_t){o.inputs.items[i], strlen(o.inputs.items[i])}
                    : s_samples[i];
    s_check_t c = {
        .cfg = {.max_output = o.max_output, .memory_limit = o.memory_limit},
        .settings = &o.settings,
        .in = in,
        .n_in = n_in,
        .timeout_ms = o.timeout_ms,
        .memory_limit = o.memory_limit,
    };
    c.cfg.plugins.items = (const char **)&spec;
    c.cfg.plugins.count = 1;
    c.cfg.plugin_config.items = (const char **)pconf;
    c.cfg.plugin_config.count = o.settings.count;
    rc = s_check_all(&c, spec);
done:
    for (size_t i = 0; pconf && i < o.settings.count; i++)
        free(pconf[i]);
    free(pconf);
    free(in);
    free(spec);
    zp_strlist_free(&o.inputs);
    zp_strlist_free(&o.settings);
    return rc;
}
