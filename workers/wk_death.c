/* wk_death: executor death classification (see wk_death.h). */
#define _GNU_SOURCE
#include "wk_death.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

zp_cause_t zp_wk_death_cause(const zp_wk_exit_t *exit, char *how, size_t howlen)
{
    int status = exit->wait_status;
    if (exit->killed_for_timeout) {
        snprintf(how, howlen, "ran past its deadline; executor killed");
        return ZP_CAUSE_TIMEOUT;
    }
    if (WIFSIGNALED(status)) {
        zp_cause_t cause = zp_cause_of_signal(WTERMSIG(status));
        /* Near the limit when it died: the limit, not the plugin, is why. */
        if (exit->memory_limit && exit->vm_bytes >= exit->memory_limit / 10 * 9)
            cause = ZP_CAUSE_RESOURCE_LIMIT;
        snprintf(how, howlen, "executor killed by %s%s",
                 strsignal(WTERMSIG(status)),
                 exit->input_write ? ": the plugin wrote to its read-only input"
                                   : "");
        return cause;
    }
    snprintf(how, howlen, "executor exited with status %d",
             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return ZP_CAUSE_EXECUTOR_EXIT;
}

size_t zp_wk_death_culprit(const zp_wk_inflight_t *f)
{
    if (!f->busy || !f->running || f->page_seq != f->cur_seq)
        return ZP_WK_NO_CULPRIT; /* between tasks, or before the batch */
    size_t culprit = f->sent_base + f->index;
    if (culprit < f->sent_base || culprit < f->cur_done || culprit >= f->cur_n)
        return ZP_WK_NO_CULPRIT;
    return culprit;
}

zp_wk_charge_t zp_wk_death_charge(zp_cause_t cause, uint32_t task_attempt)
{
    zp_wk_charge_t c = {.attempt = task_attempt ? task_attempt : 1};
    c.quarantined = c.attempt >= ZP_POISON_DEATHS;
    c.retryable = !c.quarantined && cause != ZP_CAUSE_RESOURCE_LIMIT;
    return c;
}

size_t zp_wk_death_rotate(Zpipe__V1__Task **tasks, size_t done, size_t culprit)
{
    for (size_t k = culprit; k > done; k--) {
        Zpipe__V1__Task *x = tasks[k];
        tasks[k] = tasks[k - 1];
        tasks[k - 1] = x;
    }
    return done + 1;
}

bool zp_wk_death_overdue(uint64_t deadline_ms, uint64_t default_ms,
                         uint64_t started_us, uint64_t now)
{
    uint64_t deadline = deadline_ms ? deadline_ms : default_ms;
    return deadline && now - started_us > deadline * 1000;
}

static uint64_t s_min(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* t plus us, saturating (past the end of time is never). */
static uint64_t s_after(uint64_t t, uint64_t us)
{
    return t > UINT64_MAX - us - 1 ? UINT64_MAX : t + us + 1;
}

uint64_t zp_wk_death_next_due(bool running, uint64_t started_us,
                              uint64_t deadline_ms, uint64_t default_ms,
                              uint64_t stall_us, uint64_t stall_floor_us,
                              zp_wk_horizon_t horizon, uint64_t now)
{
    const uint64_t ms_max = UINT64_MAX / 1000;
    uint64_t due = UINT64_MAX;
    if (running) {
        uint64_t d = deadline_ms ? deadline_ms : default_ms;
        if (d) /* overdue is strictly past it: one µs after */
            due = s_after(started_us, s_min(d, ms_max) * 1000);
        else if (stall_us)
            due = s_after(started_us, stall_us);
    }
    /* A task not started yet starts at now or later: it cannot be due
     * before now plus the least deadline it may have. */
    uint64_t least = horizon.min_ms;
    if (horizon.unbounded && default_ms && (!least || default_ms < least))
        least = default_ms;
    if (least)
        due = s_min(due, s_after(now, s_min(least, ms_max) * 1000));
    if (horizon.unbounded && !default_ms && stall_us && stall_floor_us)
        due = s_min(due, s_after(now, stall_floor_us));
    return due;
}

bool zp_wk_death_with_worker(int wait_status, bool worker_stopping)
{
    return worker_stopping && WIFSIGNALED(wait_status) &&
           (WTERMSIG(wait_status) == SIGTERM ||
            WTERMSIG(wait_status) == SIGINT);
}

bool zp_wk_death_fatal(unsigned start_fails)
{
    return start_fails >= ZP_WK_MAX_START_FAILS;
}
