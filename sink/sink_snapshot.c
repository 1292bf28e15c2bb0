/* sink_snapshot: the job table to and from a compacted journal (see
 * sink_snapshot.h). */
#include "sink_snapshot.h"
#include "sink_control.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static zp_journal_summary_t s_summary(const zp_sink_job_t *j)
{
    const zp_ledger_t *l = &j->ledger;
    return (zp_journal_summary_t){
        .max_attempts = l->max_attempts,
        .total = l->total,
        .succeeded = l->succeeded,
        .failed = l->failed,
        .duplicates = l->duplicates,
        .retries = l->retries,
        .first_us = j->first_us,
        .last_us = j->last_us,
        .flags = j->reduce.error ? ZP_JOURNAL_REDUCE_FAILED : 0,
    };
}

/* The job's spool (--spool): its length and checksum, so a restart can
 * tell it is whole (at a compaction every spool is durable). */
static int s_dump_spool(const zp_sink_job_t *j, zp_journal_t *out)
{
    if (!j->spool.len)
        return 0;
    return zp_journal_spool(out, j->id, j->spool.len, j->spool.crc);
}

static int s_dump_done(const zp_sink_job_t *j, zp_journal_t *out)
{
    zp_journal_summary_t m = s_summary(j);
    if (zp_journal_put_done(out, j->id, j->token, &m) < 0)
        return -1;
    return s_dump_spool(j, out);
}

/* The tasks first..first+count-1 that have records written: a run of
 * the ledger's, less the records parked for --ordered (received, not
 * yet in the output nor the journal). */
static int s_dump_run(const zp_sink_job_t *j, zp_journal_t *out, uint64_t first,
                      uint64_t count)
{
    const zp_order_t *o = &j->order;
    /* Parked ids lie in [lo, hi): the run is walked id by id there only. */
    uint64_t lo = zp_order_next(o) + 1, hi = zp_order_next(o) + o->ring_cap;
    uint64_t end = first + count, t = first, a = first;
    while (t < end) {
        if (t >= lo && t < hi && zp_order_is_parked(o, t)) {
            if (t > a && zp_journal_put_have(out, j->id, a, t - a) < 0)
                return -1;
            a = ++t;
            continue;
        }
        t = t < lo ? (lo < end ? lo : end) : t >= hi ? end : t + 1;
    }
    return t > a ? zp_journal_put_have(out, j->id, a, t - a) : 0;
}

/* A live job: its open, its close, its counters, its runs of records
 * (what the journal has: parked records are not counted). */
static int s_dump_live(const zp_sink_job_t *j, zp_journal_t *out)
{
    const zp_ledger_t *l = &j->ledger;
    zp_journal_summary_t m = s_summary(j);
    uint64_t parked_ok = 0, parked_failed = 0;
    bool parked = zp_order_parked(&j->order) > 0;
    if (parked) {
        zp_order_parked_counts(&j->order, &parked_ok, &parked_failed);
        m.succeeded -= parked_ok;
        m.failed -= parked_failed;
    }
    char hex[33];
    zp_lease_key_hex(&j->prev_key, hex);
    if (zp_journal_open_job(out, j->id, l->max_attempts, j->token) < 0 ||
        (zp_lease_key_set(&j->prev_key) && zp_journal_key(out, j->id, hex) < 0))
        return -1;
    zp_lease_key_hex(&j->key, hex);
    if ((zp_lease_key_set(&j->key) && zp_journal_key(out, j->id, hex) < 0) ||
        (l->state == ZP_JOB_CLOSED &&
         zp_journal_close_job(out, j->id, l->total) < 0) ||
        zp_journal_put_counts(out, j->id, &m) < 0 || s_dump_spool(j, out) < 0)
        return -1;
    uint64_t first, count, from = 0;
    while (zp_ledger_next_run(l, from, &first, &count)) {
        int rc = parked ? s_dump_run(j, out, first, count)
                        : zp_journal_put_have(out, j->id, first, count);
        if (rc < 0)
            return -1;
        from = first + count;
    }
    /* A reduced job's final record, written, its job not yet told done:
     * the line that keeps a restarted sink from writing it again (its
     * offset is within the snapshot's). */
    if (j->reduce.final_written && l->state == ZP_JOB_CLOSED &&
        zp_journal_record(out, j->id, l->total, true, 0) < 0)
        return -1;
    return 0;
}

int zp_snapshot_dump(void *ctx, zp_journal_t *out)
{
    const zp_jobs_t *jobs = ctx;
    for (size_t i = 0; i < jobs->forgotten.n; i++) {
        zp_retain_entry_t e = zp_retain_at(&jobs->forgotten, i);
        zp_journal_forgotten_t f = {
            e.id_hash, e.token_hash,
            e.total,   e.succeeded,
            e.spooled, e.reduce_failed ? ZP_JOURNAL_REDUCE_FAILED : 0,
        };
        if (zp_journal_put_forgotten(out, &f) < 0)
            return -1;
    }
    /* Finished jobs in the order they finished: the oldest is forgotten
     * first after a restart too. */
    for (const zp_sink_job_t *j = jobs->done_oldest; j; j = j->next_done)
        if (s_dump_done(j, out) < 0)
            return -1;
    for (const zp_sink_job_t *j = jobs->tail; j; j = j->newer) {
        if (j->released)
            continue;
        int rc = j->ledger.state == ZP_JOB_DONE ? s_dump_done(j, out)
                                                : s_dump_live(j, out);
        if (rc < 0)
            return -1;
    }
    return 0;
}

void zp_snapshot_forgotten(zp_jobs_t *jobs, const zp_journal_forgotten_t *f)
{
    zp_retain_entry_t e = {
        f->id_hash, f->token_hash,
        f->total,   f->succeeded,
        f->spooled, (f->flags & ZP_JOURNAL_REDUCE_FAILED) != 0};
    zp_retain_add_hashed(&jobs->forgotten, e);
}

zp_sink_job_t *zp_snapshot_done(zp_jobs_t *jobs, const char *id,
                                const char *token,
                                const zp_journal_summary_t *m)
{
    if (zp_jobs_find(jobs, id))
        return NULL; /* a snapshot names a job once */
    zp_sink_job_t *j =
        zp_control_restore_open(jobs, id, m->max_attempts, token);
    if (!j)
        return NULL;
    if (zp_ledger_restore_done(&j->ledger, m->total, m->succeeded, m->failed,
                               m->duplicates, m->retries) < 0)
        return NULL;
    j->first_us = m->first_us;
    j->last_us = m->last_us;
    if ((m->flags & ZP_JOURNAL_REDUCE_FAILED) && !j->reduce.error)
        j->reduce.error = strdup("the reduction failed (before the sink "
                                 "restarted: no more is kept)");
    return j;
}

zp_sink_job_t *zp_snapshot_counts(zp_jobs_t *jobs, const char *id,
                                  const zp_journal_summary_t *m)
{
    zp_sink_job_t *j = zp_jobs_find(jobs, id);
    if (j)
        zp_ledger_restore_counts(&j->ledger, m->succeeded, m->failed,
                                 m->duplicates, m->retries);
    return j;
}

zp_sink_job_t *zp_snapshot_have(zp_jobs_t *jobs, const char *id, uint64_t first,
                                uint64_t count)
{
    zp_sink_job_t *j = zp_jobs_find(jobs, id);
    if (!j || zp_ledger_restore_have(&j->ledger, first, count) < 0)
        return NULL;
    return j;
}
