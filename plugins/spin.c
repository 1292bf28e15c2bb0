/* spin: burns the payload's number of microseconds of CPU time (thread
 * CPU clock, not wall time, so oversubscribed cores do not inflate
 * efficiency) and returns the payload. For benchmarks and fairness tests.
 *
 * ZPIPE_SPIN_SCALE (environment, a whole number, default 1) multiplies
 * every spin: a worker started with ZPIPE_SPIN_SCALE=20 is 20 times slower. */
#define _POSIX_C_SOURCE 200809L
#include <zpipe/plugin.h>

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    uint64_t scale;
} spin_state_t;

static uint64_t s_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int spin_init(const zpipe_host_t *host, void **state)
{
    spin_state_t *s = malloc(sizeof *s);
    if (!s)
        return ZPIPE_NOMEM;
    s->scale = 1;
    const char *env = getenv("ZPIPE_SPIN_SCALE");
    if (env && *env) {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);
        if (*end || v == 0 || v > 1000000) {
            host->log(
                ZPIPE_LOG_ERROR, "spin",
                "ZPIPE_SPIN_SCALE must be a whole number from 1 to 1000000");
            free(s);
            return ZPIPE_ERROR;
        }
        s->scale = v;
    }
    *state = s;
    return ZPIPE_OK;
}

static int spin_process(void *state, zpipe_call_t *call)
{
    spin_state_t *s = state;
    uint64_t us = 0;
    for (size_t i = 0; i < call->input_len; i++) {
        uint8_t c = call->input[i];
        if (c < '0' || c > '9' || us > 100000000u)
            return zpipe_fail(
                call, ZPIPE_INVALID,
                "payload must be microseconds as a whole number up to 1e8");
        us = us * 10 + (c - '0');
    }
    uint64_t until = s_cpu_ns() + us * s->scale * 1000u;
    volatile uint64_t sink = 0;
    while (s_cpu_ns() < until)
        for (int i = 0; i < 64; i++)
            sink += (uint64_t)i;
    (void)sink;
    if (zpipe_append(call, call->input, call->input_len) < 0)
        return zpipe_fail(call, ZPIPE_ERROR, "output too large");
    return ZPIPE_OK;
}

static void spin_fini(void *state)
{
    free(state);
}

static const zpipe_plugin_t spin_plugin = {
    ZPIPE_PLUGIN_HEADER,
    .name = "spin",
    .version = "1.0",
    .description = "burns the payload's microseconds of CPU time",
    .init = spin_init,
    .process = spin_process,
    .fini = spin_fini,
};

ZPIPE_PLUGIN_EXPORT(spin_plugin)
