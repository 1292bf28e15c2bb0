/* vent_shell_leases: liveness and leases of the dispatch socket's
 * workers. Silent workers are dropped; an expired lease moves its tasks to
 * another worker (vent_retry's rule); a worker whose leases keep expiring
 * is drained and refused for a while (vent_quarantine's rule). */
#include "vent_shell.h"
#include "zp_log.h"

#include <stdio.h>

/* When the worker with this serial last made progress; 0 if gone. */
static uint64_t s_progress(void *ctx, uint64_t serial)
{
    zp_vent_shell_t *v = ctx;
    zp_vent_worker_t *w = zp_vent_workers_by_serial(v->workers, serial);
    return w ? w->last_progress_us : 0;
}

/* Whether a connected worker can run t on which its lease has not
 * expired (the holder's expiry is noted only after this). */
static bool s_other_worker(const zp_vent_shell_t *v, const zp_vent_task_t *t)
{
    size_t nw = zp_vent_workers_count(v->workers);
    for (size_t i = 0; i < nw; i++) {
        const zp_vent_worker_t *w = zp_vent_workers_at(v->workers, i);
        if (w->serial != t->worker && !zp_vent_expired_on(t, w->serial) &&
            zp_vent_worker_has(w, t->job->plugin))
            return true;
    }
    return false;
}

/* Requeues the tasks of this scan whose lease expired, noting on each
 * holder the newest dispatch among them (its strike). */
static void s_requeue_expired(zp_vent_shell_t *v, zp_vent_task_t **expired,
                              size_t n)
{
    zp_vent_worker_t *w = NULL;
    /* Tasks of one batch lie together and share the answer while none
     * has expired before. */
    uint64_t last_worker = 0;
    const zp_vent_job_t *last_job = NULL;
    bool last_other = false;
    for (size_t i = 0; i < n; i++) {
        zp_vent_task_t *t = expired[i];
        uint64_t holder = t->worker;
        if (holder && (!w || w->serial != holder))
            w = zp_vent_workers_by_serial(v->workers, holder);
        if (!holder)
            w = NULL;
        if (w && t->sent_us > w->expired_newest_us)
            w->expired_newest_us = t->sent_us;
        bool other;
        if (!t->n_expired && last_job == t->job && last_worker == holder)
            other = last_other;
        else {
            other = s_other_worker(v, t);
            if (!t->n_expired) {
                last_job = t->job;
                last_worker = holder;
                last_other = other;
            }
        }
        char why[200];
        snprintf(why, sizeof why, "not completed within its lease on worker %s",
                 w ? w->id : "?");
        v->n.expired++;
        zp_vent_retry_result_t r = {ZP_VENT_REQUEUE, false, t->attempt};
        if (v->committed_us <= t->sent_us &&
            t->quiet < ZP_VENT_QUIET_EXPIRIES) {
            t->quiet++; /* the sink's doing, not the task's or worker's */
            zp_vent_tasks_requeue_front(t);
        } else
            r = zp_vent_requeue_expired(t, holder, other, why);
        zp_vent_shell_retried(v, t, r, ZP_CAUSE_LEASE_EXPIRED, why);
    }
}

/* Strikes the workers whose leases this scan found expired; drains those
 * with ZP_VENT_STRIKES in a row, unless it is the last worker (draining it
 * would leave the tasks nowhere to go: they are charged instead). */
static void s_strike(zp_vent_shell_t *v, uint64_t now)
{
    bool on = zp_vent_quarantine_enabled(v->quarantine);
    for (size_t i = 0; i < zp_vent_workers_count(v->workers);) {
        zp_vent_worker_t *w = zp_vent_workers_at(v->workers, i);
        uint64_t newest = w->expired_newest_us;
        w->expired_newest_us = 0;
        /* Only while the sink commits others' work sent after these: a
         * sink away or paused (a full disk) is not the workers' fault. */
        if (on && newest && v->committed_us > newest &&
            zp_vent_strike(&w->strikes, now, newest, w->committed) &&
            zp_vent_workers_count(v->workers) > 1) {
            char why[240];
            snprintf(why, sizeof why,
                     "its leases expired %d times in a row with none of its "
                     "results committed (a hung plugin, or results sent to "
                     "another sink: check its --sink)",
                     ZP_VENT_STRIKES);
            zp_vent_shell_quarantine(v, w, why);
            continue;
        }
        i++;
    }
}

void zp_vent_shell_liveness(zp_vent_shell_t *v, uint64_t now)
{
    uint64_t timeout = v->cfg->heartbeat_timeout_ms * 1000;
    zp_vent_worker_t *w;
    while ((w = zp_vent_workers_silent(v->workers, now, timeout))) {
        char why[96];
        snprintf(why, sizeof why, "no heartbeat for %.1f s",
                 (double)(now - w->last_seen_us) / 1e6);
        zp_vent_shell_drop_worker(v, w, why, true, true);
    }
    zp_vent_task_t **expired;
    size_t n = zp_vent_tasks_expired(v->tasks, now, v->cfg->lease_ms * 1000,
                                     s_progress, v, &expired);
    if (!n)
        return;
    s_requeue_expired(v, expired, n);
    s_strike(v, now);
}

/* Sends w's tasks in flight to other workers, uncharged; returns how
 * many. */
static size_t s_hand_back(zp_vent_shell_t *v, const zp_vent_worker_t *w)
{
    size_t held = 0, cursor = 0;
    zp_vent_task_t *t;
    char msg[320];
    snprintf(msg, sizeof msg, "worker %s quarantined holding it", w->id);
    while (zp_vent_tasks_next(v->tasks, &cursor, &t))
        if (t->state == ZP_VENT_INFLIGHT && t->worker == w->serial) {
            zp_vent_retry_result_t r = {ZP_VENT_REQUEUE, false, t->attempt};
            zp_vent_tasks_requeue_front(t);
            zp_vent_shell_retried(v, t, r, ZP_CAUSE_WORKER_LOST, msg);
            held++;
        }
    return held;
}

void zp_vent_shell_quarantine(zp_vent_shell_t *v, zp_vent_worker_t *w,
                              const char *why)
{
    uint64_t now = zp_mono_us();
    uint64_t len = zp_vent_quarantine_add(v->quarantine, w->id, w->host, w->pid,
                                          w->rid, w->rid_len, now);
    char reason[320];
    snprintf(reason, sizeof reason, "quarantined for %llu s: %s",
             (unsigned long long)(len / 1000000), why);
    zp_vent_shell_bye(v, w->rid, w->rid_len, reason);
    size_t held = s_hand_back(v, w);
    zp_warn("worker %s (host %s, pid %u) %s; drained: no more tasks, %zu it "
            "held sent to other workers, its hello refused until then",
            w->id, *w->host ? w->host : "?", w->pid, reason, held);
    if (v->events) {
        Zpipe__V1__Event ev = ZPIPE__V1__EVENT__INIT;
        ev.kind = ZPIPE__V1__EVENT_KIND__EVENT_WORKER_LEFT;
        ev.worker_id = w->id;
        ev.host = w->host;
        ev.pid = w->pid;
        ev.cause = "quarantined";
        ev.detail = reason;
        ev.count = held;
        zp_events_emit(v->events, &ev);
    }
    zp_vent_workers_remove(v->workers, w, now);
    zp_vent_sched_workers_changed(&v->sched, zp_vent_workers_count(v->workers));
}

bool zp_vent_shell_refused(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                           const Zpipe__V1__Hello *h)
{
    uint64_t left = 0;
    bool answer = false;
    /* Never refuse the only worker there would be: its jobs would wait
     * out the quarantine with nobody to run them. */
    if (zp_vent_workers_count(v->workers) == 0)
        return false;
    if (!zp_vent_quarantine_refused(v->quarantine, h->worker_id, h->host,
                                    h->pid, rid, rid_len, zp_mono_us(), &left,
                                    &answer))
        return false;
    if (answer) {
        char reason[200];
        snprintf(reason, sizeof reason,
                 "quarantined for %llu more s: its leases kept expiring",
                 (unsigned long long)(left + 999999) / 1000000);
        zp_vent_shell_bye(v, rid, rid_len, reason);
        zp_warn("refused worker %s from %s pid %u: %s",
                h->worker_id && *h->worker_id ? h->worker_id : "?",
                h->host && *h->host ? h->host : "?", h->pid, reason);
    }
    return true;
}
