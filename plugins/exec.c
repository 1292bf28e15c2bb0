/* exec: runs a command per task, like GNU parallel spread over a cluster.
 *
 * Settings (host->config; zpipe run --config KEY=VALUE, a worker's
 * --plugin-config exec.KEY=VALUE, or ZPIPE_PLUGIN_EXEC_KEY):
 *   cmd         the command line, split into words as a shell would split
 *               it ('single', "double" quotes, backslash) but never run by
 *               a shell; every {} in a word is replaced by the payload.
 *               Without it (a worker serving many jobs), each job must
 *               bring its own (zpipe submit --config cmd=...).
 *   shell       1: run cmd with /bin/sh -c instead; the payload is "$1"
 *               (and stdin); {} is not replaced. Default 0.
 *   stdin       payload|none: what the command reads. Default: the payload
 *               unless cmd has {} (then none).
 *   cwd         working directory. Default: the worker's.
 *   env         extra environment, words NAME=VALUE (quoted like cmd).
 *   trim        1: drop one trailing newline from the output. Default 1.
 *   timeout_ms  kill the command after this long. Default: the task's
 *               deadline (zpipe run --deadline-ms); 0 = none.
 *   retry_exit  exit codes that mean "try again later", comma-separated.
 *               Default 75 (EX_TEMPFAIL).
 *   stderr_max  bytes of stderr kept in the error text. Default 4096.
 *
 * Output is the command's stdout; exit status 0 is success, any other a
 * failure whose error text holds the status and the end of stderr. The
 * command runs in a process group of its own: at the timeout, and when it
 * exits, the whole group is killed, so no child outlives the task. */
#define _GNU_SOURCE
#include <zpipe/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef struct {
    char **words; /* cmd split; NULL-terminated */
    size_t n_words;
    bool shell, payload_stdin, trim;
    char *cwd;
    char **env; /* environ + the env setting; NULL-terminated */
    uint64_t timeout_ms;
    int retry[16];
    size_t n_retry;
    size_t stderr_max;
} exec_state_t;

/* Splits text into words with shell quoting rules (no expansion).
 * Returns a NULL-terminated array, or NULL with *why set. */
static char **s_split(const char *text, size_t *count, const char **why)
{
    size_t cap = 8, n = 0, len = strlen(text);
    char **words = calloc(cap, sizeof *words);
    char *buf = malloc(len + 1);
    if (!words || !buf) {
        *why = "out of memory";
        goto fail;
    }
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        size_t b = 0;
        char quote = 0;
        for (; *p && (quote || (*p != ' ' && *p != '\t' && *p != '\n')); p++) {
            if (quote == '\'') {
                if (*p == '\'')
                    quote = 0;
                else
                    buf[b++] = *p;
            } else if (*p == '\\' && p[1] && quote != '\'') {
                buf[b++] = *++p;
            } else if (quote == '"') {
                if (*p == '"')
                    quote = 0;
                else
                    buf[b++] = *p;
            } else if (*p == '\'' || *p == '"')
                quote = *p;
            else
                buf[b++] = *p;
        }
        if (quote) {
            *why = "unterminated quote";
            goto fail;
        }
        if (n + 2 > cap) {
            cap *= 2;
            char **grown = realloc(words, cap * sizeof *words);
            if (!grown) {
                *why = "out of memory";
                goto fail;
            }
            words = grown;
        }
        words[n] = malloc(b + 1);
        if (words[n]) {
            memcpy(words[n], buf, b);
            words[n][b] = '\0';
        }
        if (!words[n++]) {
            *why = "out of memory";
            goto fail;
        }
        words[n] = NULL;
    }
    free(buf);
    *count = n;
    return words;
fail:
    for (size_t i = 0; words && i < n; i++)
        free(words[i]);
    free(words);
    free(buf);
    return NULL;
}

static void s_free_words(char **words)
{
    for (size_t i = 0; words && words[i]; i++)
        free(words[i]);
    free(words);
}

static void exec_fini(void *state)
{
    exec_state_t *s = state;
    if (!s)
        return;
    s_free_words(s->words);
    /* env holds environ's pointers (not ours) and then our own words. */
    if (s->env) {
        size_t base = 0;
        while (environ[base])
            base++;
        for (size_t i = base; s->env[i]; i++)
            free(s->env[i]);
        free(s->env);
    }
    free(s->cwd);
    free(s);
}

static bool s_parse_uint(const char *text, uint64_t max, uint64_t *out)
{
    if (!text || !*text)
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || text[0] == '-' || v > max)
        return false;
    *out = v;
    return true;
}

static bool s_parse_bool(const char *text, bool *out)
{
    if (!strcmp(text, "1") || !strcmp(text, "true") || !strcmp(text, "yes"))
        *out = true;
    else if (!strcmp(text, "0") || !strcmp(text, "false") ||
             !strcmp(text, "no"))
        *out = false;
    else
        return false;
    return true;
}

static int s_bad(const zpipe_host_t *host, exec_state_t *s, const char *key,
                 const char *value, const char *why)
{
    char msg[512];
    snprintf(msg, sizeof msg, "setting %s=%s: %s", key, value ? value : "",
             why);
    exec_fini(s);
    return zpipe_init_fail(host, msg);
}

static int exec_init(const zpipe_host_t *host, void **state)
{
    exec_state_t *s = calloc(1, sizeof *s);
    if (!s)
        return ZPIPE_NOMEM;
    const char *why = NULL, *v;
    s->trim = true;
    const char *cmd = zpipe_config(host, "cmd");
    if (!cmd) {
        /* A worker serving many jobs: each job brings its own cmd. */
        *state = s;
        return ZPIPE_OK;
    }
    if (!*cmd)
        return s_bad(host, s, "cmd", cmd,
                     "empty: the command to run per task (zpipe run "
                     "--config cmd='sha256sum')");
    if ((v = zpipe_config(host, "shell")) && !s_parse_bool(v, &s->shell))
        return s_bad(host, s, "shell", v, "expected 0 or 1");
    if ((v = zpipe_config(host, "trim")) && !s_parse_bool(v, &s->trim))
        return s_bad(host, s, "trim", v, "expected 0 or 1");
    if (s->shell) {
        s->words = calloc(6, sizeof *s->words);
        if (!s->words)
            return s_bad(host, s, "cmd", cmd, "out of memory");
        const char *w[] = {"/bin/sh", "-c", cmd, "zpipe-exec"};
        for (size_t i = 0; i < 4; i++)
            if (!(s->words[i] = strdup(w[i])))
                return s_bad(host, s, "cmd", cmd, "out of memory");
        s->n_words = 4;
    } else if (!(s->words = s_split(cmd, &s->n_words, &why)) || s->n_words == 0)
        return s_bad(host, s, "cmd", cmd, why ? why : "no words");
    bool has_braces = false;
    for (size_t i = 0; !s->shell && i < s->n_words; i++)
        has_braces |= strstr(s->words[i], "{}") != NULL;
    s->payload_stdin = s->shell || !has_braces;
    if ((v = zpipe_config(host, "stdin"))) {
        if (strcmp(v, "payload") == 0)
            s->payload_stdin = true;
        else if (strcmp(v, "none") == 0)
            s->payload_stdin = false;
        else
            return s_bad(host, s, "stdin", v, "expected payload or none");
    }
    if ((v = zpipe_config(host, "cwd"))) {
        if (access(v, X_OK) != 0)
            return s_bad(host, s, "cwd", v, strerror(errno));
        s->cwd = strdup(v);
    }
    if ((v = zpipe_config(host, "timeout_ms")) &&
        !s_parse_uint(v, 86400000ull * 365, &s->timeout_ms))
        return s_bad(host, s, "timeout_ms", v, "expected milliseconds");
    uint64_t u = 4096;
    if ((v = zpipe_config(host, "stderr_max")) &&
        !s_parse_uint(v, 1u << 20, &u))
        return s_bad(host, s, "stderr_max", v, "expected 0 to 1048576");
    s->stderr_max = u;
    const char *retry = zpipe_config(host, "retry_exit");
    if (!retry)
        retry = "75";
    for (const char *p = retry; *p;) {
        char num[16];
        size_t n = strcspn(p, ",");
        snprintf(num, sizeof num, "%.*s", (int)(n < 15 ? n : 15), p);
        if (n && (!s_parse_uint(num, 255, &u) || s->n_retry == 16))
            return s_bad(host, s, "retry_exit", retry,
                         "expected up to 16 exit codes 0-255, comma-separated");
        if (n)
            s->retry[s->n_retry++] = (int)u;
        p += n + (p[n] == ',');
    }
    size_t base = 0, extra = 0;
    while (environ[base])
        base++;
    char **env_words = NULL;
    if ((v = zpipe_config(host, "env"))) {
        env_words = s_split(v, &extra, &why);
        if (!env_words)
            return s_bad(host, s, "env", v, why);
        for (size_t i = 0; i < extra; i++)
            if (!strchr(env_words[i], '=') || env_words[i][0] == '=') {
                s_free_words(env_words);
                return s_bad(host, s, "env", v, "expected NAME=VALUE words");
            }
    }
    s->env = calloc(base + extra + 1, sizeof *s->env);
    if (!s->env) {
        s_free_words(env_words);
        return s_bad(host, s, "env", v, "out of memory");
    }
    memcpy(s->env, environ, base * sizeof *s->env);
    for (size_t i = 0; i < extra; i++)
        s->env[base + i] = env_words[i];
    free(env_words); /* the words now belong to s->env */
    *state = s;
    return ZPIPE_OK;
}

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* argv for one task: {} replaced by the payload (as one argument, never
 * through a shell); with shell, the payload is $1. */
static char **s_argv(const exec_state_t *s, const zpipe_call_t *call)
{
    char **argv = calloc(s->n_words + 2, sizeof *argv);
    if (!argv)
        return NULL;
    size_t i = 0;
    for (; i < s->n_words; i++) {
        const char *w = s->words[i];
        size_t n = 0;
        for (const char *q = w; (q = strstr(q, "{}")); q += 2)
            n++;
        if (s->shell || n == 0) {
            argv[i] = strdup(w);
        } else {
            size_t len = strlen(w) - 2 * n + n * call->input_len;
            char *out = malloc(len + 1), *o = out;
            for (const char *q = w; out && *q;) {
                if (q[0] == '{' && q[1] == '}') {
                    memcpy(o, call->input, call->input_len);
                    o += call->input_len;
                    q += 2;
                } else
                    *o++ = *q++;
            }
            if (out)
                *o = '\0';
            argv[i] = out;
        }
        if (!argv[i])
            goto fail;
    }
    if (s->shell) {
        /* Not strndup: the payload is not NUL-terminated. */
        argv[i] = malloc(call->input_len + 1);
        if (argv[i]) {
            memcpy(argv[i], call->input, call->input_len);
            argv[i][call->input_len] = '\0';
        }
        if (!argv[i++])
            goto fail;
    }
    return argv;
fail:
    s_free_words(argv);
    return NULL;
}

static int exec_process(void *state, zpipe_call_t *call)
{
    exec_state_t *s = state;
    if (!s->words)
        return zpipe_fail(call, ZPIPE_INVALID,
                          "exec has no command: give the job a cmd setting "
                          "(zpipe run --config cmd=..., zpipe submit --config "
                          "cmd=..., or the worker's --plugin-config "
                          "exec.cmd=...)");
    if (memchr(call->input, '\0', call->input_len) && !s->payload_stdin)
        return zpipe_fail(call, ZPIPE_INVALID,
                          "the payload has a NUL byte and cannot be an "
                          "argument");
    char **argv = s_argv(s, call);
    if (!argv)
        return zpipe_fail(call, ZPIPE_NOMEM, "out of memory");
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    int rc = ZPIPE_ERROR;
    char msg[1024];
    char *errbuf = calloc(1, s->stderr_max + 1);
    size_t errlen = 0;
    bool err_cut = false;
    if (!errbuf || pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) ||
        pipe2(err, O_CLOEXEC)) {
        rc = zpipe_fail(call, ZPIPE_RETRY, "cannot make pipes");
        goto done;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    if (s->cwd)
        posix_spawn_file_actions_addchdir_np(&fa, s->cwd);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all); /* SIGPIPE ignored here */
    posix_spawnattr_setpgroup(&at, 0);        /* its own group, to kill */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
    pid_t pid;
    int serr = posix_spawnp(&pid, argv[0], &fa, &at, argv, s->env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    in[0] = out[1] = err[1] = -1;
    if (serr != 0) {
        snprintf(msg, sizeof msg, "cannot run %s: %s", argv[0], strerror(serr));
        rc = zpipe_fail(call, serr == ENOENT ? ZPIPE_ERROR : ZPIPE_RETRY, msg);
        goto done;
    }
    uint64_t budget = s->timeout_ms ? s->timeout_ms : call->deadline_ms;
    /* Before the worker's own deadline, which kills the whole executor. */
    uint64_t margin = budget / 10 < 50 ? budget / 10 : 50;
    uint64_t until = budget ? s_now_ms() + budget - margin : 0;
    if (!s->payload_stdin) {
        close(in[1]);
        in[1] = -1;
    }
    if (in[1] >= 0)
        fcntl(in[1], F_SETFL, O_NONBLOCK);
    size_t written = 0;
    bool timed_out = false, too_big = false, held_nl = false;
    char chunk[65536];
    while (out[0] >= 0 || err[0] >= 0) {
        struct pollfd p[3];
        int np = 0, ii = -1, io = -1, ie = -1;
        if (in[1] >= 0) {
            ii = np;
            p[np++] = (struct pollfd){in[1], POLLOUT, 0};
        }
        if (out[0] >= 0) {
            io = np;
            p[np++] = (struct pollfd){out[0], POLLIN, 0};
        }
        if (err[0] >= 0) {
            ie = np;
            p[np++] = (struct pollfd){err[0], POLLIN, 0};
        }
        int wait_ms = -1;
        if (until) {
            uint64_t now = s_now_ms();
            if (now >= until) {
                timed_out = true;
                break;
            }
            wait_ms = (int)(until - now);
        }
        if (poll(p, (nfds_t)np, wait_ms) < 0 && errno != EINTR)
            break;
        if (ii >= 0 && p[ii].revents) {
            ssize_t w =
                write(in[1], call->input + written, call->input_len - written);
            if (w > 0)
                written += (size_t)w;
            if (w < 0 && errno != EAGAIN) /* it stopped reading: fine */
                written = call->input_len;
            if (written == call->input_len) {
                close(in[1]);
                in[1] = -1;
            }
        }
        if (io >= 0 && p[io].revents) {
            ssize_t r = read(out[0], chunk, sizeof chunk);
            if (r > 0 && !too_big) {
                /* With trim, a final newline is held back until more
                 * output shows it was not the last byte. */
                size_t n = (size_t)r;
                bool ends_nl = s->trim && chunk[n - 1] == '\n';
                if ((held_nl && zpipe_append(call, "\n", 1) < 0) ||
                    zpipe_append(call, chunk, n - ends_nl) < 0)
                    too_big = true;
                held_nl = ends_nl;
            }
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                close(out[0]);
                out[0] = -1;
            }
        }
        if (ie >= 0 && p[ie].revents) {
            ssize_t r = read(err[0], chunk, sizeof chunk);
            if (r > 0) {
                /* Keep the end: that is where the reason usually is. */
                size_t n = (size_t)r, keep = s->stderr_max;
                if (n >= keep) {
                    memcpy(errbuf, chunk + n - keep, keep);
                    errlen = keep;
                    err_cut = true;
                } else {
                    if (errlen + n > keep) {
                        size_t drop = errlen + n - keep;
                        memmove(errbuf, errbuf + drop, errlen - drop);
                        errlen -= drop;
                        err_cut = true;
                    }
                    memcpy(errbuf + errlen, chunk, n);
                    errlen += n;
                }
            }
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                close(err[0]);
                err[0] = -1;
            }
        }
    }
    /* No child outlives its task: the group goes on a timeout, and also
     * after a normal exit (a daemonised grandchild would hold our pipes). */
    int status = 0;
    /* Its output is closed; it may still run (a moment, or on purpose).
     * Wait for its exit on a pidfd, bounded by the deadline. */
    int pidfd = timed_out ? -1 : (int)syscall(SYS_pidfd_open, pid, 0);
    for (;;) {
        if (timed_out)
            kill(-pid, SIGKILL);
        pid_t r = waitpid(pid, &status, timed_out ? 0 : WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            break;
        if (r != 0)
            continue;
        uint64_t now = s_now_ms();
        if (until && now >= until) {
            timed_out = true;
            continue;
        }
        int wait_ms = until ? (int)(until - now) : -1;
        if (pidfd >= 0) {
            struct pollfd pp = {pidfd, POLLIN, 0};
            poll(&pp, 1, wait_ms);
        } else
            usleep(1000); /* no pidfd (kernel < 5.3) */
    }
    if (pidfd >= 0)
        close(pidfd);
    kill(-pid, SIGKILL);
    errbuf[errlen] = '\0';
    for (size_t i = 0; i < errlen; i++)
        if (errbuf[i] == '\0')
            errbuf[i] = ' ';
    const char *tail = errlen ? (err_cut ? ": ..." : ": ") : "";
    if (timed_out) {
        snprintf(msg, sizeof msg,
                 "timed out after %llu ms; killed %s and its children%s%s",
                 (unsigned long long)budget, argv[0], tail, errbuf);
        rc = zpipe_fail(call, ZPIPE_ERROR, msg);
    } else if (too_big) {
        rc = zpipe_fail(call, ZPIPE_ERROR, "output too large");
    } else if (WIFSIGNALED(status)) {
        snprintf(msg, sizeof msg, "%s killed by signal %d (%s)%s%s", argv[0],
                 WTERMSIG(status), strsignal(WTERMSIG(status)), tail, errbuf);
        rc = zpipe_fail(call, ZPIPE_ERROR, msg);
    } else if (WEXITSTATUS(status) != 0) {
        int code = WEXITSTATUS(status);
        bool retry = false;
        for (size_t i = 0; i < s->n_retry; i++)
            retry |= s->retry[i] == code;
        snprintf(msg, sizeof msg, "%s exited with status %d%s%s", argv[0], code,
                 tail, errbuf);
        rc = zpipe_fail(call, retry ? ZPIPE_RETRY : ZPIPE_ERROR, msg);
    } else
        rc = ZPIPE_OK;
done:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
        if (err[i] >= 0)
            close(err[i]);
    }
    free(errbuf);
    s_free_words(argv);
    return rc;
}

static const zpipe_plugin_t exec_plugin = {
    ZPIPE_PLUGIN_HEADER,
    .name = "exec",
    .version = "1.0",
    .description = "runs a command per task (--config cmd='...'); output is "
                   "its stdout",
    .init = exec_init,
    .process = exec_process,
    .fini = exec_fini,
};

ZPIPE_PLUGIN_EXPORT(exec_plugin)
