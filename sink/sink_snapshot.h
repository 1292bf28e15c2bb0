/* sink_snapshot: the sink's job table as a compacted journal's snapshot
 * (zp_journal.h), and back. A dump writes the forgotten ids, the finished
 * jobs' summaries in the order they finished, and each live job's open,
 * close, counters and runs of tasks with records; a replay rebuilds the
 * table from those lines without a line per record, so a restarted sink
 * is as small as the one that wrote the snapshot. */
#ifndef ZP_SINK_SNAPSHOT_H
#define ZP_SINK_SNAPSHOT_H

#include "sink_job.h"
#include "zp_journal.h"

#include <stdint.h>

/* Writes jobs (a zp_jobs_t) into out; a zp_journal_dump_fn. Returns 0,
 * or -1 when out of memory or a write failed. */
int zp_snapshot_dump(void *jobs, zp_journal_t *out);

/* Replay of the snapshot's lines into jobs; the O, C and R lines are
 * replayed as any journal's. */
/* An F line: a forgotten job. */
void zp_snapshot_forgotten(zp_jobs_t *jobs, const zp_journal_forgotten_t *job);
/* A D line: the job, added DONE with its counters, or NULL when it
 * cannot be (out of memory, the id already known, counts that
 * disagree). Its spool is the caller's to restore, the job to release. */
zp_sink_job_t *zp_snapshot_done(zp_jobs_t *jobs, const char *id,
                                const char *token,
                                const zp_journal_summary_t *summary);
/* An S line: a live job's counters. NULL when the job is unknown. */
zp_sink_job_t *zp_snapshot_counts(zp_jobs_t *jobs, const char *id,
                                  const zp_journal_summary_t *counts);
/* An H line: tasks with records. Returns the job, NULL when it is
 * unknown or out of memory. */
zp_sink_job_t *zp_snapshot_have(zp_jobs_t *jobs, const char *id, uint64_t first,
                                uint64_t count);

#endif
