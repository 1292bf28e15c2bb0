/* sink_control: what the sink does with a message on its control socket
 * (JobOpen, JobClose, StatusRequest, CommitQuery), as changes to the job table
 * and an answer for the shell to send. Sends nothing. */
#ifndef ZP_SINK_CONTROL_H
#define ZP_SINK_CONTROL_H

#include "sink_job.h"
#include "zp_codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Workers listed in one JobStatus. */
#define ZP_CONTROL_MAX_WORKERS 64

/* The answer to JobOpen or JobClose. */
typedef struct {
    bool ok;            /* Ack.ok */
    const char *error;  /* Ack.error (static text), NULL when ok or reused */
    const char *ack_id; /* Ack.job_id, borrowed from the message */
    const char *bad;    /* non-NULL: also count a bad message, this one */
    zp_sink_job_t *job; /* the job, when there is one */
    bool is_new;        /* JobOpen: the job was not known (journal it) */
    bool adopted;       /* JobOpen: a known job took the open's token
                           (journal it) */
    bool reused;        /* JobOpen refused: the id belongs to another job
                           (Ack.error: "job id X was already used by
                           another job"; counted) */
    bool closed;        /* JobClose: closed now (journal it; maybe done) */
    bool keyed;         /* JobOpen: the job took the open's dispatch key
                           (journal it) */
    bool took_over;     /* JobOpen: ... replacing another key: a new
                           dispatcher (logged) */
    bool replay;        /* JobOpen without a key for a keyed job: from
                           someone else than its dispatcher; acknowledged,
                           changes nothing */
    bool forgotten;     /* a finished job forgotten (--retain-jobs): an
                           open with its token, or a close, is answered
                           ok and changes nothing (job is NULL) */
} zp_control_answer_t;

/* JobOpen from peer rid. The open's token says which job it means: a new
 * id makes a job with it; a known job with the same token, or an open
 * without one (legacy), is that job again; a known job with another
 * token, or a DONE one without any, is another job: refused (reused).
 * A forgotten job (jobs->forgotten) is still the same job for an open
 * with its token or none, another job for an open with another token.
 * A job opened without a token takes the first token an open brings
 * while it is unfinished. When taken, rid becomes the job's opener and
 * a waiter, and its max_attempts is taken. */
zp_control_answer_t zp_control_job_open(zp_jobs_t *jobs,
                                        const Zpipe__V1__JobOpen *m,
                                        const char *rid, size_t rid_len);
/* Journal replay of an open line: the job, made when new, with its
 * max_attempts and its token (when it has none yet). NULL when out of
 * memory. */
zp_sink_job_t *zp_control_restore_open(zp_jobs_t *jobs, const char *id,
                                       uint32_t max_attempts,
                                       const char *token);
/* CommitQuery: keeps in q->task_ids (rewritten in place, in order) the
 * ids whose record the job holds and has written (zp_sink_job_written;
 * ordered: --ordered) and returns how many; 0 for an unknown job, all of
 * them for a forgotten one (it finished with every record). The
 * caller makes the records durable before answering. */
size_t zp_control_commit_query(const zp_jobs_t *jobs, Zpipe__V1__CommitQuery *q,
                               bool ordered);
/* JobClose from peer rid: the job is closed with its total (an unknown
 * job is made and closed) and rid waits for it. A forgotten job's close
 * is answered ok (re-closing a finished job is fine). */
zp_control_answer_t zp_control_job_close(zp_jobs_t *jobs,
                                         const Zpipe__V1__JobClose *m,
                                         const char *rid, size_t rid_len);
/* rid waits for the job to be done (a full list drops its oldest). */
void zp_control_wait(zp_sink_job_t *job, const char *rid, size_t rid_len);

/* Room for the workers of one JobStatus. */
typedef struct {
    Zpipe__V1__WorkerStats ws[ZP_CONTROL_MAX_WORKERS];
    Zpipe__V1__WorkerStats *wp[ZP_CONTROL_MAX_WORKERS];
} zp_control_workers_t;

/* Fills st (initialised) with job's status (NULL: an unknown job, only
 * its id). Strings and workers are borrowed from job and w. */
void zp_control_status(Zpipe__V1__JobStatus *st, const zp_sink_job_t *job,
                       const char *job_id, uint64_t bad_messages,
                       zp_control_workers_t *w);
/* Fills st (initialised) with a forgotten job's status (--retain-jobs):
 * done, with its counts; no workers, times or other counters. */
void zp_control_status_forgotten(Zpipe__V1__JobStatus *st,
                                 const zp_retain_entry_t *job,
                                 const char *job_id, uint64_t bad_messages);

#endif
