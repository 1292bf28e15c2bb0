/* wk_death: executor death classification (see wk_death.h). */
#define _GNU_SOURCE
#include "wk_death.h"

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

bool zp_wk_death_fatal(unsigned start_fails)
{
    return start_fails >= ZP_WK_MAX_START_FAILS;
}
