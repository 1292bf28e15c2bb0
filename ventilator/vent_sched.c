/* vent_sched: which job, how many tasks, how much input. */
#include "vent_sched.h"

bool zp_vent_sched_wants(const zp_vent_job_t *j, bool can_hold)
{
    if (!zp_vent_job_live(j))
        return false;
    return j->ready.len > 0 || j->lines.n > 0 ||
           (j->has_input && !zp_vent_reader_done(&j->in) && can_hold);
}

zp_vent_job_t *zp_vent_sched_pick(const zp_vent_sched_t *s, zp_vent_job_t *jobs,
                                  const zp_vent_worker_t *w, bool can_hold)
{
    zp_vent_job_t *best = NULL;
    bool best_after = false;
    for (zp_vent_job_t *j = jobs; j; j = j->next) {
        if ((w && !zp_vent_worker_has(w, j->plugin)) ||
            !zp_vent_sched_wants(j, can_hold))
            continue;
        bool after = j->slot > s->last_slot;
        if (!best || j->priority > best->priority ||
            (j->priority == best->priority && after && !best_after)) {
            best = j;
            best_after = after;
        }
    }
    return best;
}

size_t zp_vent_sched_batch(uint64_t credit, uint64_t batch)
{
    return (size_t)(credit < batch ? credit : batch);
}

uint64_t zp_vent_sched_batch_max(uint64_t batch, bool push)
{
    if (batch)
        return batch;
    return push ? ZP_VENT_BATCH_PUSH : ZP_VENT_BATCH_CREDIT;
}

size_t zp_vent_sched_fair_share(const zp_vent_job_t *j,
                                const zp_vent_workers_t *ws)
{
    if (j->has_input && !j->in.eof)
        return SIZE_MAX; /* more is coming: batches as big as credit */
    size_t eligible = 0, n = zp_vent_workers_count(ws);
    for (size_t i = 0; i < n; i++) {
        const zp_vent_worker_t *w = zp_vent_workers_at(ws, i);
        if (w->credit > 0 && zp_vent_worker_has(w, j->plugin))
            eligible++;
    }
    if (eligible <= 1)
        return SIZE_MAX;
    return (j->ready.len + eligible - 1) / eligible;
}

uint64_t zp_vent_sched_free_credit(const zp_vent_workers_t *ws,
                                   const zp_vent_job_t *j)
{
    uint64_t c = 0;
    size_t n = zp_vent_workers_count(ws);
    for (size_t i = 0; i < n; i++) {
        const zp_vent_worker_t *w = zp_vent_workers_at(ws, i);
        if (zp_vent_worker_has(w, j->plugin))
            c += w->credit;
    }
    return c;
}

size_t zp_vent_sched_refill_want(const zp_vent_job_t *j,
                                 const zp_vent_workers_t *ws, bool can_hold)
{
    if ((!j->has_input && !j->lines.n) || !zp_vent_sched_wants(j, can_hold))
        return 0;
    /* Every worker that may give j a turn in the round: a higher priority
     * job may run dry in it, so those count too (reading ahead is bounded
     * by the hold limit; reading short would leave credit idle until the
     * next poll). */
    return (size_t)zp_vent_sched_free_credit(ws, j);
}

uint64_t zp_vent_sched_refill_bytes(const zp_vent_workers_t *ws,
                                    uint64_t batch_bytes)
{
    uint64_t with_credit = 0;
    size_t n = zp_vent_workers_count(ws);
    for (size_t i = 0; i < n; i++)
        with_credit += zp_vent_workers_at(ws, i)->credit > 0;
    return batch_bytes * (with_credit ? with_credit : 1);
}

void zp_vent_sched_served(zp_vent_sched_t *s, size_t k, size_t n_workers,
                          const zp_vent_job_t *j)
{
    if (n_workers)
        s->rr = (s->rr + k + 1) % n_workers;
    s->last_slot = j->slot;
}

void zp_vent_sched_workers_changed(zp_vent_sched_t *s, size_t n_workers)
{
    if (s->rr >= n_workers)
        s->rr = 0;
}
