/* zp_cause: the closed list of failure causes a Result may carry, and the
 * one retry rule every process applies to them.
 *
 * Causes cross the wire as their names (Result.cause); the enum is for the
 * code. Append only: docs/protocol.md lists the names. */
#ifndef ZP_CAUSE_H
#define ZP_CAUSE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    ZP_CAUSE_NONE = 0,         /* success: no cause */
    ZP_CAUSE_PLUGIN_ERROR,     /* process returned an error */
    ZP_CAUSE_PLUGIN_RETRY,     /* process asked to be retried */
    ZP_CAUSE_NO_SUCH_PLUGIN,   /* the worker has no such plugin */
    ZP_CAUSE_OUTPUT_TOO_LARGE, /* output over --max-output */
    ZP_CAUSE_PLUGIN_INIT,      /* the plugin's init failed for the job */
    ZP_CAUSE_RESOURCE_LIMIT,   /* --memory-limit */
    ZP_CAUSE_TIMEOUT,          /* --deadline-ms */
    ZP_CAUSE_EXECUTOR_EXIT,    /* the executor exited during the call */
    ZP_CAUSE_SIGSEGV,          /* the executor died of a signal: */
    ZP_CAUSE_SIGABRT,
    ZP_CAUSE_SIGBUS,
    ZP_CAUSE_SIGFPE,
    ZP_CAUSE_SIGILL,
    ZP_CAUSE_SIGKILL,
    ZP_CAUSE_SIGTERM,
    ZP_CAUSE_SIGSYS,
    ZP_CAUSE_SIGTRAP,
    ZP_CAUSE_SIGXCPU,
    ZP_CAUSE_SIGXFSZ,
    ZP_CAUSE_WORKER_LOST,      /* workers died holding it (ventilator) */
    ZP_CAUSE_LEASE_EXPIRED,    /* not committed within its lease (ventilator) */
    ZP_CAUSE_PYTHON_EXCEPTION, /* the python plugin's function raised */
    ZP_CAUSE_COUNT
} zp_cause_t;

/* The wire name of c ("plugin_error", "SIGSEGV", ...); NULL for
 * ZP_CAUSE_NONE and for values out of range. Static storage. */
const char *zp_cause_name(zp_cause_t c);
/* The cause a wire name stands for: NULL or "" is ZP_CAUSE_NONE; a name
 * not on the list is ZP_CAUSE_PLUGIN_ERROR (a peer's text is never
 * trusted as a cause). */
zp_cause_t zp_cause_parse(const char *name);
/* The cause a plugin named through host->set_cause, if it is one a
 * plugin may claim (python_exception); else ZP_CAUSE_NONE. */
zp_cause_t zp_cause_claimable(const char *name);
/* The cause for an executor killed by sig (ZP_CAUSE_EXECUTOR_EXIT for a
 * signal not on the list). */
zp_cause_t zp_cause_of_signal(int sig);

/* Executor deaths (crash, timeout) of one task before it is quarantined
 * as a poison task and not retried again. */
#define ZP_POISON_DEATHS 3
/* Workers lost holding one task before it is given up (worker_lost). */
#define ZP_MAX_LOSSES 10

/* The retry rule. A failed attempt runs again when its result says it is
 * retryable and attempts are left: attempt (1-based, the one that failed)
 * below max_attempts. */
bool zp_retry_again(bool retryable, uint32_t attempt, uint32_t max_attempts);
/* Whether a failure of cause c is worth another attempt, as the worker
 * marks it: plugin_retry and executor deaths are; a plugin's error, a
 * memory limit, a missing plugin are not. */
bool zp_cause_retryable(zp_cause_t c);

#endif
