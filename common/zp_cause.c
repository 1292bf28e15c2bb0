/* zp_cause: failure causes by name, and the one retry rule. */
#include "zp_cause.h"

#include <signal.h>
#include <stddef.h>
#include <string.h>

static const char *const s_names[ZP_CAUSE_COUNT] = {
    [ZP_CAUSE_NONE] = NULL,
    [ZP_CAUSE_PLUGIN_ERROR] = "plugin_error",
    [ZP_CAUSE_PLUGIN_RETRY] = "plugin_retry",
    [ZP_CAUSE_NO_SUCH_PLUGIN] = "no_such_plugin",
    [ZP_CAUSE_OUTPUT_TOO_LARGE] = "output_too_large",
    [ZP_CAUSE_PLUGIN_INIT] = "plugin_init",
    [ZP_CAUSE_RESOURCE_LIMIT] = "resource_limit",
    [ZP_CAUSE_TIMEOUT] = "timeout",
    [ZP_CAUSE_EXECUTOR_EXIT] = "executor_exit",
    [ZP_CAUSE_SIGSEGV] = "SIGSEGV",
    [ZP_CAUSE_SIGABRT] = "SIGABRT",
    [ZP_CAUSE_SIGBUS] = "SIGBUS",
    [ZP_CAUSE_SIGFPE] = "SIGFPE",
    [ZP_CAUSE_SIGILL] = "SIGILL",
    [ZP_CAUSE_SIGKILL] = "SIGKILL",
    [ZP_CAUSE_SIGTERM] = "SIGTERM",
    [ZP_CAUSE_SIGSYS] = "SIGSYS",
    [ZP_CAUSE_SIGTRAP] = "SIGTRAP",
    [ZP_CAUSE_SIGXCPU] = "SIGXCPU",
    [ZP_CAUSE_SIGXFSZ] = "SIGXFSZ",
    [ZP_CAUSE_WORKER_LOST] = "worker_lost",
    [ZP_CAUSE_LEASE_EXPIRED] = "lease_expired",
    [ZP_CAUSE_PYTHON_EXCEPTION] = "python_exception",
};

/* The causes a plugin may give its failures (host->set_cause): a name
 * the plugin's own runtime defines, never one the host finds itself
 * (a signal, a deadline, a memory limit), so a record never claims what
 * the host did not see. */
static const zp_cause_t s_claimable[] = {ZP_CAUSE_PYTHON_EXCEPTION};

const char *zp_cause_name(zp_cause_t c)
{
    return (unsigned)c < ZP_CAUSE_COUNT ? s_names[c] : NULL;
}

zp_cause_t zp_cause_parse(const char *name)
{
    if (!name || !*name)
        return ZP_CAUSE_NONE;
    for (int c = ZP_CAUSE_NONE + 1; c < ZP_CAUSE_COUNT; c++)
        if (strcmp(name, s_names[c]) == 0)
            return (zp_cause_t)c;
    return ZP_CAUSE_PLUGIN_ERROR;
}

zp_cause_t zp_cause_claimable(const char *name)
{
    for (size_t i = 0; name && i < sizeof s_claimable / sizeof *s_claimable;
         i++)
        if (strcmp(name, s_names[s_claimable[i]]) == 0)
            return s_claimable[i];
    return ZP_CAUSE_NONE;
}

zp_cause_t zp_cause_of_signal(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return ZP_CAUSE_SIGSEGV;
    case SIGABRT:
        return ZP_CAUSE_SIGABRT;
    case SIGBUS:
        return ZP_CAUSE_SIGBUS;
    case SIGFPE:
        return ZP_CAUSE_SIGFPE;
    case SIGILL:
        return ZP_CAUSE_SIGILL;
    case SIGKILL:
        return ZP_CAUSE_SIGKILL;
    case SIGTERM:
        return ZP_CAUSE_SIGTERM;
    case SIGSYS:
        return ZP_CAUSE_SIGSYS;
    case SIGTRAP:
        return ZP_CAUSE_SIGTRAP;
    case SIGXCPU:
        return ZP_CAUSE_SIGXCPU;
    case SIGXFSZ:
        return ZP_CAUSE_SIGXFSZ;
    default:
        return ZP_CAUSE_EXECUTOR_EXIT;
    }
}

bool zp_retry_again(bool retryable, uint32_t attempt, uint32_t max_attempts)
{
    return retryable && attempt < max_attempts;
}

bool zp_cause_retryable(zp_cause_t c)
{
    switch (c) {
    case ZP_CAUSE_PLUGIN_RETRY:
    case ZP_CAUSE_TIMEOUT:
    case ZP_CAUSE_EXECUTOR_EXIT:
        return true;
    default:
        return c >= ZP_CAUSE_SIGSEGV && c <= ZP_CAUSE_SIGXFSZ;
    }
}
