/* wk_credit: credit window sizing and accounting (see wk_credit.h). */
#include "wk_credit.h"

void zp_wk_credit_init(zp_wk_credit_t *self, uint64_t window,
                       uint64_t target_ms)
{
    *self = (zp_wk_credit_t){.window = window, .target_ms = target_ms};
    self->target = window < 8 ? window : 8;
    if (self->target < 1)
        self->target = 1;
}

void zp_wk_credit_observe(zp_wk_credit_t *self, uint64_t elapsed_us,
                          size_t bytes, size_t n)
{
    const double a = 0.05;
    for (size_t i = 0; i < n; i++) /* n tasks that took elapsed_us each */
        if (self->ewma_task_us == 0) {
            self->ewma_task_us = (double)elapsed_us + 0.5;
            self->ewma_bytes = (double)bytes + 1;
        } else {
            self->ewma_task_us =
                (1 - a) * self->ewma_task_us + a * ((double)elapsed_us + 0.5);
            self->ewma_bytes =
                (1 - a) * self->ewma_bytes + a * ((double)bytes + 1);
        }
    if (self->ewma_task_us == 0)
        return; /* nothing measured yet */
    double t = (double)self->target_ms * 1000.0 / self->ewma_task_us;
    double by_bytes = 64.0 * 1024 * 1024 / self->ewma_bytes;
    if (t > by_bytes)
        t = by_bytes;
    uint64_t target = t < ZP_WK_MIN_CREDIT ? ZP_WK_MIN_CREDIT : (uint64_t)t;
    if (target > self->window)
        target = self->window;
    self->target = target;
}

uint64_t zp_wk_credit_busy_us(uint64_t elapsed_us, uint64_t waited_us)
{
    uint64_t most = elapsed_us - elapsed_us / 16;
    return elapsed_us - (waited_us < most ? waited_us : most);
}

void zp_wk_credit_done(zp_wk_credit_t *self, uint64_t n)
{
    self->completed += n;
}

zp_wk_arrival_t zp_wk_credit_received(zp_wk_credit_t *self, uint64_t n,
                                      bool check_window)
{
    zp_wk_arrival_t a = {0};
    self->received += n;
    /* Tasks sent against an earlier hello's credit (a ventilator that
     * heard two hellos) count as granted: what is outstanding never runs
     * below zero, where it would wrap and stop every later grant. */
    if (self->received > self->granted)
        self->granted = self->received;
    a.held = self->received - self->completed;
    if (a.held > self->max_held) {
        self->max_held = a.held;
        a.new_max = true;
    }
    if (check_window && a.held > self->window) {
        self->violations++;
        a.over = a.held - self->window;
    }
    return a;
}

uint64_t zp_wk_credit_due(const zp_wk_credit_t *self)
{
    uint64_t outstanding = self->granted - self->completed;
    if (outstanding >= self->target)
        return 0;
    uint64_t deficit = self->target - outstanding;
    uint64_t threshold = self->target / 4 ? self->target / 4 : 1;
    /* Always top up when nothing is outstanding, or we would idle. */
    return deficit >= threshold || outstanding == 0 ? deficit : 0;
}

void zp_wk_credit_granted(zp_wk_credit_t *self, uint64_t n)
{
    self->granted += n;
}

uint64_t zp_wk_credit_hello(const zp_wk_credit_t *self)
{
    uint64_t held = self->received - self->completed;
    return self->target > held ? self->target - held : 0;
}

void zp_wk_credit_hello_sent(zp_wk_credit_t *self, uint64_t credit)
{
    /* Outstanding = what we hold plus this grant, never above target. */
    self->granted = self->received + credit;
}

uint64_t zp_wk_credit_held(const zp_wk_credit_t *self)
{
    return self->received - self->completed;
}

uint64_t zp_wk_heartbeat_due_us(uint64_t last_sent_us, uint64_t heartbeat_ms,
                                uint64_t now)
{
    uint64_t due = last_sent_us + heartbeat_ms * 1000;
    return due > now ? due : now + (heartbeat_ms / 2 + 1) * 1000;
}
