/* zpipe plugin ABI: the one header a task plugin includes.
 *
 * A plugin is a shared object exporting one symbol, ZPIPE_PLUGIN_ENTRY_SYMBOL,
 * that returns a pointer to a static descriptor. Everything a plugin needs
 * from the host comes through function pointers in zpipe_host_t, so a plugin
 * links against nothing of zpipe and this header has no ZeroMQ or protobuf
 * types.
 *
 * Compatibility policy (see docs in plugins/README.md):
 *  - ZPIPE_ABI_MAJOR changes only when a change would break a built plugin;
 *    a host refuses a plugin of another major.
 *  - ZPIPE_ABI_MINOR grows when fields are appended to a struct below. A host
 *    loads plugins built for its minor or older and refuses newer ones.
 *  - Every struct starts with struct_size, so each side knows which fields
 *    the other was built with. Fields are only ever appended.
 *  - Status codes are frozen: never renumbered, never reused.
 *
 * Threading: the host calls init once per process that uses the plugin
 * (and once more per distinct set of job settings, each with its own
 * state), then process any number of times, then fini once per init. It never
 * calls process concurrently on one state. Several processes (workers,
 * executors) may each hold their own state at the same time, so a plugin must
 * not rely on being the only instance on a machine.
 *
 * append and set_error are accepted only from the thread running process,
 * before it returns: from another thread, or after, append returns -1 and
 * the host counts it (a call struct kept past its return may already be
 * another task's).
 *
 * Ownership: input bytes are borrowed, read-only, for the duration of one
 * process call (in an executor they are mapped read-only: a write is a
 * SIGSEGV of that task).
 * Output and error text are copied by the host when appended; the plugin
 * keeps ownership of what it passes in.
 */
#ifndef ZPIPE_PLUGIN_H
#define ZPIPE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZPIPE_ABI_MAJOR 1
#define ZPIPE_ABI_MINOR 2

/* The symbol the loader looks up with dlsym. */
#define ZPIPE_PLUGIN_ENTRY_SYMBOL "zpipe_plugin_entry"

#if defined(__GNUC__)
#define ZPIPE_EXPORT __attribute__((visibility("default")))
#else
#define ZPIPE_EXPORT
#endif

/* Status codes returned by init and process. Frozen and append-only.
 * ZPIPE_RETRY says a later attempt may succeed (a busy resource, a network
 * hiccup); ZPIPE_ERROR says this input will fail again. */
enum {
    ZPIPE_OK = 0,
    ZPIPE_ERROR = 1,   /* permanent failure for this input */
    ZPIPE_RETRY = 2,   /* transient failure; the task may be retried */
    ZPIPE_NOMEM = 3,   /* out of memory; treated as transient */
    ZPIPE_INVALID = 4, /* the input is malformed for this plugin; permanent */
};

/* True if status names a failure that a retry may cure. */
#define ZPIPE_STATUS_IS_RETRYABLE(s) ((s) == ZPIPE_RETRY || (s) == ZPIPE_NOMEM)

/* Log levels for zpipe_host_t.log. */
enum {
    ZPIPE_LOG_ERROR = 0,
    ZPIPE_LOG_WARN = 1,
    ZPIPE_LOG_INFO = 2,
    ZPIPE_LOG_DEBUG = 3,
};

typedef struct zpipe_call zpipe_call_t;

/* Functions the host provides. Borrowed; valid until fini returns. */
typedef struct zpipe_host {
    uint32_t struct_size; /* sizeof (zpipe_host_t) as the host built it */
    uint16_t abi_major;
    uint16_t abi_minor;
    /* Append len bytes to the task's output; the host copies them.
     * Returns 0, or -1 if the output would exceed the host's limit or the
     * call is not running on this thread (see Threading above). */
    int (*append)(zpipe_call_t *call, const void *data, size_t len);
    /* Set the task's error text (copied, truncated to a host limit). The
     * status returned from process decides success; this only explains. */
    void (*set_error)(zpipe_call_t *call, const char *message);
    /* One log line on the host's log, at a ZPIPE_LOG_* level. */
    void (*log)(int level, const char *plugin, const char *message);

    /* ---- ABI 1.1 (check host->abi_minor >= 1 before use) ---- */

    /* The plugin's setting key, or NULL when it is not set. Settings come
     * from the job's options, the worker's --plugin-config NAME.KEY=VALUE,
     * or the environment as ZPIPE_PLUGIN_<NAME>_<KEY> (upper case, '.' and
     * '-' as '_'), in that order. host is the table init was given; the
     * string is borrowed until fini. */
    const char *(*config)(const struct zpipe_host *host, const char *key);
    /* Why init is about to fail (a bad setting, a missing resource): the
     * host puts it in the message that refuses the plugin or fails the
     * job's tasks. Copied; call before returning a failure from init. */
    void (*init_error)(const struct zpipe_host *host, const char *message);

    /* ---- ABI 1.2 (check host->abi_minor >= 2 and struct_size) ---- */

    /* Names the cause of the failure process is about to return (a status
     * other than ZPIPE_OK) in place of plugin_error/plugin_retry. Only
     * causes on the host's list of plugin-claimable ones are accepted
     * (today "python_exception"); returns 0, or -1 for any other name, from
     * another thread, or outside process. The status still decides whether
     * the task is retried, and a cause the host finds itself (an output
     * over the limit, a memory limit) wins. May be NULL (the sink's
     * reducer table). */
    int (*set_cause)(zpipe_call_t *call, const char *cause);
} zpipe_host_t;

/* One task as a plugin sees it. Borrowed for the duration of process. */
struct zpipe_call {
    uint32_t struct_size; /* sizeof (zpipe_call_t) as the host built it */
    const zpipe_host_t *host;
    const uint8_t *input; /* task payload; not NUL-terminated */
    size_t input_len;
    uint64_t task_id;
    uint32_t attempt;     /* 1 on first delivery */
    uint64_t deadline_ms; /* budget for this attempt, 0 = none */
    const char *job_id;
    void *host_private; /* the host's; plugins must not touch it */
};

/* The descriptor a plugin returns from its entry symbol. Static storage;
 * the host reads it and never writes it. */
typedef struct zpipe_plugin {
    uint32_t struct_size; /* sizeof (zpipe_plugin_t) as the plugin built it */
    uint16_t abi_major;   /* ZPIPE_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor;   /* ZPIPE_ABI_MINOR the plugin was built with */
    const char *name;     /* unique among loaded plugins; [A-Za-z0-9_.-]+ */
    const char *version;  /* the plugin's own version, free text */
    const char *description;
    /* Optional. Make per-process state; *state is passed to process and
     * fini. Return ZPIPE_OK or a status; on failure the plugin is refused. */
    int (*init)(const zpipe_host_t *host, void **state);
    /* Required. Run one task: read call->input, append output through
     * call->host->append, return a status. */
    int (*process)(void *state, zpipe_call_t *call);
    /* Optional. Free what init made. */
    void (*fini)(void *state);

    /* ---- ABI 1.1: an optional reducer, run by the sink ----
     * With a reducer, `zpipe run --reduce` (a sink given --reduce PLUGIN)
     * folds each successful result of the plugin's jobs into one
     * accumulator per job and writes one final record when the job is
     * complete, in place of the per-task records (failures are still
     * written one by one). The sink calls these from one thread. Give
     * reduce and reduce_final, or neither. */

    /* Optional. Make a job's accumulator; host->config reads the same
     * settings as init. */
    int (*reduce_init)(const zpipe_host_t *host, void **acc);
    /* Fold one task's output (borrowed for the call) into acc. */
    int (*reduce)(void *acc, const uint8_t *output, size_t len);
    /* Append the job's final value through zpipe_append(call, ...); call
     * has the job id, an empty input and task_id = the number of tasks. */
    int (*reduce_final)(void *acc, zpipe_call_t *call);
    /* Optional. Free acc. */
    void (*reduce_fini)(void *acc);
} zpipe_plugin_t;

/* Fills the version fields; use as the start of a descriptor:
 *   static const zpipe_plugin_t desc = { ZPIPE_PLUGIN_HEADER, .name = ... }; */
#define ZPIPE_PLUGIN_HEADER                                                    \
    .struct_size = sizeof(zpipe_plugin_t), .abi_major = ZPIPE_ABI_MAJOR,       \
    .abi_minor = ZPIPE_ABI_MINOR

/* C linkage for the entry symbol, also when a plugin is C++. */
#ifdef __cplusplus
#define ZPIPE_EXTERN_C extern "C"
#else
#define ZPIPE_EXTERN_C
#endif

/* Defines the entry symbol returning desc. */
#define ZPIPE_PLUGIN_EXPORT(desc)                                              \
    ZPIPE_EXTERN_C ZPIPE_EXPORT const zpipe_plugin_t *zpipe_plugin_entry(      \
        void);                                                                 \
    ZPIPE_EXTERN_C const zpipe_plugin_t *zpipe_plugin_entry(void)              \
    {                                                                          \
        return &(desc);                                                        \
    }

/* Convenience wrappers around the host table. */
static inline int zpipe_append(zpipe_call_t *call, const void *data, size_t len)
{
    return call->host->append(call, data, len);
}

static inline int zpipe_fail(zpipe_call_t *call, int status,
                             const char *message)
{
    call->host->set_error(call, message);
    return status;
}

/* A setting, or NULL: also on a host older than ABI 1.1. */
static inline const char *zpipe_config(const zpipe_host_t *host,
                                       const char *key)
{
    if (host->abi_minor < 1 ||
        host->struct_size <
            offsetof(zpipe_host_t, config) + sizeof host->config ||
        !host->config)
        return (const char *)0;
    return host->config(host, key);
}

/* Fails init with a reason (returns ZPIPE_INVALID for convenience). */
static inline int zpipe_init_fail(const zpipe_host_t *host, const char *message)
{
    if (host->abi_minor >= 1 && host->init_error)
        host->init_error(host, message);
    else
        host->log(ZPIPE_LOG_ERROR, "", message);
    return ZPIPE_INVALID;
}

/* Names the failure's cause (ABI 1.2, see set_cause above); -1 on an
 * older host or a host without it, and for a name it does not accept. */
static inline int zpipe_set_cause(zpipe_call_t *call, const char *cause)
{
    const zpipe_host_t *host = call->host;
    if (host->abi_minor < 2 ||
        host->struct_size <
            offsetof(zpipe_host_t, set_cause) + sizeof host->set_cause ||
        !host->set_cause)
        return -1;
    return host->set_cause(call, cause);
}

#ifdef __cplusplus
}
#endif

#endif /* ZPIPE_PLUGIN_H */
