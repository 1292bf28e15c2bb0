/* run: the parts of `zpipe run` shared by its files: the options, the
 * set-up (plugin check, endpoints, the children's command lines) and the
 * report (progress, summary, exit code). The command itself is run.c. */
#ifndef ZP_RUN_H
#define ZP_RUN_H

#include "supervisor.h"
#include "zp_codec.h"
#include "zp_opts.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define ZP_RUN_MAX_WORKERS 1024
#define ZP_RUN_MAX_ARGS    112
#define ZP_RUN_MAX_CONFIG  32

typedef struct {
    const char *plugin, *input, *output, *format, *dispatch, *job, *isolation;
    const char *journal, *transport;
    const char *input_format; /* lines or frames (the ventilator's) */
    const char *trace;        /* Chrome trace-event JSON of every task's life */
    const char *web; /* HOST:PORT for the sink's web view and metrics */
    uint64_t workers, batch, window, deadline_ms, memory_limit, max_attempts;
    uint64_t no_worker_timeout_ms;
    bool ordered, progress, no_progress, resume, reduce;
    zp_strlist_t config; /* KEY=VALUE settings for the plugin */
} zp_run_opts_t;

/* The defaults (workers: the number of CPUs). */
void zp_run_opts_init(zp_run_opts_t *o);

/* Writes zpipe run's option table for o into out (room for
 * ZP_RUN_N_OPTS entries, the last the {0} end). */
#define ZP_RUN_N_OPTS 26
void zp_run_opts_table(zp_run_opts_t *o, zp_opt_t *out);

/* The first usage error in o (NULL when none). --web is checked too: its
 * sink --metrics value goes to web_addr and the page's address to web_url;
 * err is room for the text returned. */
const char *zp_run_usage_error(const zp_run_opts_t *o, char *web_addr,
                               size_t addr_len, char *web_url, size_t url_len,
                               char *err, size_t err_len);

/* Runs "zpipe-worker --describe" (worker is its path) to validate the
 * plugin spec with its settings before anything starts, and learns its
 * descriptor name and whether it has a reducer. Caller owns the result;
 * NULL when refused. */
char *zp_run_plugin_name(const char *worker, const char *spec,
                         char *const *config, size_t n_config,
                         bool *has_reducer);

/* --resume: the job the journal at path was written for (its last opened
 * job). Caller owns the result; NULL when there is none. */
char *zp_run_journal_job(const char *path);

/* What the three kinds of children are run with. */
typedef struct {
    char *argv[ZP_ROLE_COUNT][ZP_RUN_MAX_ARGS];
    size_t argc[ZP_ROLE_COUNT];
    char ep_disp[128], ep_res[128], ep_ctl[128]; /* the endpoints */
    char trace_log[64];                          /* the sink's trace log */
    char sink_journal[64]; /* the sink's own journal without --journal */
    char parent[32], batch[32], window[32], deadline[32], mem[32];
    char attempts[32], no_worker[32];
} zp_run_plan_t;

/* The endpoints in the private directory dir (ipc), or on free loopback
 * ports (tcp). Returns 0, or -1 (logged). */
int zp_run_plan_endpoints(zp_run_plan_t *p, const char *transport,
                          const char *dir);

/* The binaries and names the command lines need (all borrowed). */
typedef struct {
    const char *sink, *ventilator, *worker; /* paths */
    const char *name, *job;                 /* the plugin's name, the job */
    char *const *pconf;                     /* o->config as the plugin's */
    const char *web_addr;                   /* the sink's --metrics or "" */
} zp_run_names_t;

/* Fills the three command lines (pointing into p, o and n, which must
 * outlive them). */
void zp_run_plan_argv(zp_run_plan_t *p, const zp_run_opts_t *o,
                      const zp_run_names_t *n);

/* ---- the report ---------------------------------------------------------- */

/* How the watch over a job ended. */
typedef enum {
    ZP_RUN_DONE,        /* the sink has every task */
    ZP_RUN_INTERRUPTED, /* SIGINT/SIGTERM */
    ZP_RUN_FAILED       /* a component failed, or the job cannot progress */
} zp_run_end_t;

/* zpipe run's exit status: DONE 0 when every task succeeded, 1 some
 * failed or the reduction failed, 3 the accounting does not balance;
 * INTERRUPTED 128 + the signal; FAILED 3. */
int zp_run_exit_code(zp_run_end_t end, const Zpipe__V1__JobStatus *last,
                     bool reduce_failed, int stop_signal);

/* The progress line on stderr (\r, no newline), since t0_us. */
void zp_run_progress(const Zpipe__V1__JobStatus *st, uint64_t t0_us);

#endif
