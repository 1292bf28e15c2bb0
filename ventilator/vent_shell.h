/* vent_shell: the ventilator's shell, shared by its files (private to
 * ventilator/): the sockets, the state modules it wires together, and the
 * handlers that carry out their decisions. ventilator.c holds set-up, the
 * loop of phases and teardown; vent_shell_workers.c the dispatch socket,
 * vent_shell_sink.c the sink's control socket, vent_shell_intake.c the
 * producers' intake. */
#ifndef ZP_VENT_SHELL_H
#define ZP_VENT_SHELL_H

#include "ventilator.h"
#include "vent_acks.h"
#include "vent_job.h"
#include "vent_journal.h"
#include "vent_link.h"
#include "vent_metrics.h"
#include "vent_quarantine.h"
#include "vent_retry.h"
#include "vent_sched.h"
#include "vent_tasks.h"
#include "vent_workers.h"
#include "zp_cluster.h"
#include "zp_codec.h"
#include "zp_curve.h"
#include "zp_events.h"
#include "zp_metrics.h"
#include "zp_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const zp_ventilator_config_t *cfg; /* borrowed, outlives the run */
    bool push;                         /* --dispatch push */
    uint64_t batch_max; /* most tasks per message (--batch, resolved) */
    void *ctx, *dispatch, *control, *monitor, *intake;
    void *control_monitor; /* the control socket's connects */
    zp_curve_t *curve;
    uint64_t probe_until_us, last_probe_us; /* probing after a disconnect */
    uint32_t bisect_group;  /* the last suspect group made (vent_bisect) */
    uint64_t last_check_us; /* last liveness check */

    zp_vent_jobs_t *jobs;
    zp_vent_job_t *file_job; /* the --input job, NULL in service mode */
    zp_vent_tasks_t *tasks;
    zp_vent_workers_t *workers;
    zp_vent_quarantine_t *quarantine; /* workers drained and refused */
    zp_vent_sched_t sched;
    zp_vent_link_t link;
    zp_vent_counters_t n;
    zp_metrics_t *metrics;  /* NULL unless --metrics */
    zp_events_t *events;    /* NULL unless --events */
    zp_vjournal_t *journal; /* NULL unless --journal */
    zp_vent_acks_t acks;    /* intake answers waiting for the journal */
    char *instance;         /* this ventilator's, new at each start */
    uint64_t last_compact_us;
    uint64_t last_tend_us, last_keepalive_us;
    uint64_t resumed_us;   /* started with tasks from the journal: when */
    uint64_t committed_us; /* the sink last told of commits (mono µs) */

    zp_arena_t *arena;          /* decoded messages, reset per message */
    zp_task_view_t intake_view; /* a producer's TaskBatch, viewed in place */
    zp_buf_t scratch;           /* encoded messages */
    Zpipe__V1__Result **fail_ptrs;
    /* Batch under construction. */
    Zpipe__V1__Task *pb_tasks;
    Zpipe__V1__Task **pb_ptrs;
    zp_vent_task_t **batch;
    size_t cap_batch;
} zp_vent_shell_t;

/* Whether another task may be held now. */
bool zp_vent_shell_can_hold(const zp_vent_shell_t *v);

/* ---- vent_shell_workers.c: the dispatch socket ---- */
/* One message from a worker (rid) on the dispatch socket. */
void zp_vent_shell_on_dispatch(zp_vent_shell_t *v, const char *rid,
                               size_t rid_len, void *frame);
/* Counts (and logs, sampled) a message dropped on the dispatch socket. */
void zp_vent_shell_bad(zp_vent_shell_t *v, const char *what, size_t len);
/* Forgets w (its slot is reused); with lost its tasks in flight are sent
 * again; dead: it vanished rather than said bye. */
void zp_vent_shell_drop_worker(zp_vent_shell_t *v, zp_vent_worker_t *w,
                               const char *why, bool lost, bool dead);
/* Probes every worker after a disconnect; drops those gone. */
void zp_vent_shell_probe_workers(zp_vent_shell_t *v);
/* Logs a failed read of the --input file (errno, or the reader's why for
 * input that ends inside a frame). */
void zp_vent_shell_input_error(const zp_vent_shell_t *v,
                               const zp_vent_reader_t *in);
/* Input refill: reads each file job's input up to what the next dispatch
 * can send (credit: a whole round; push: one batch), or up to a batch's
 * payload bytes (--batch-bytes) per worker, so that big tasks go out as
 * they are read rather than after the whole round is. Returns 1 when that
 * byte budget stopped it (refill again after a dispatch), 0, or -1 on a
 * fatal input error (logged). */
int zp_vent_shell_refill(zp_vent_shell_t *v);
/* Dispatch. Credit: a round of batches to the workers with credit,
 * returns 0. Push: one batch to the PUSH socket, returns 1 when sent, 0
 * when it cannot send. -1 on a fatal error (logged). */
int zp_vent_shell_dispatch(zp_vent_shell_t *v);
/* vent_shell_bisect.c: requeues the tasks lost with w (why: how) as
 * suspect groups (vent_bisect); returns how many it held. */
size_t zp_vent_shell_requeue_lost(zp_vent_shell_t *v, const zp_vent_worker_t *w,
                                  const char *why);
/* Whether w may be sent tasks of j now; *group: the suspect group to
 * send it (it holds nothing else), 0 for tasks that are not suspects. */
bool zp_vent_shell_bisect_gate(zp_vent_shell_t *v, zp_vent_worker_t *w,
                               zp_vent_job_t *j, uint32_t *group);
/* Requeues t after cause (why), counting and publishing it. */
void zp_vent_shell_requeue(zp_vent_shell_t *v, zp_vent_task_t *t,
                           zp_cause_t cause, const char *why);
/* Counts and publishes what a requeue of t did (r). */
void zp_vent_shell_retried(zp_vent_shell_t *v, const zp_vent_task_t *t,
                           zp_vent_retry_result_t r, zp_cause_t cause,
                           const char *why);
/* Sends the routing id rid a Bye saying why. */
void zp_vent_shell_bye(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                       const char *why);

/* ---- vent_shell_leases.c: liveness, leases, quarantine ---- */
/* Liveness: drops silent workers; requeues expired leases (moved to
 * another worker uncharged while one can run them, vent_retry's rule);
 * drains the workers whose leases keep expiring (vent_quarantine's
 * rule). */
void zp_vent_shell_liveness(zp_vent_shell_t *v, uint64_t now);
/* Drains w (why: its offence): puts it in quarantine, says bye, hands its
 * tasks in flight to other workers uncharged, logs one line, publishes
 * worker_left with cause "quarantined", and forgets it. */
void zp_vent_shell_quarantine(zp_vent_shell_t *v, zp_vent_worker_t *w,
                              const char *why);
/* Whether a hello (h from rid) is refused: a worker in quarantine. Tells
 * it so (a Bye, at most every few seconds) and logs it. */
bool zp_vent_shell_refused(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                           const Zpipe__V1__Hello *h);

/* ---- vent_shell_sink.c: the sink's control socket ---- */
/* Sends j's JobOpen (now: when, for the resend timer). */
void zp_vent_shell_send_open(zp_vent_shell_t *v, zp_vent_job_t *j,
                             uint64_t now);
/* One message from the sink. */
void zp_vent_shell_on_control(zp_vent_shell_t *v, void *frame);
/* Keeps each job's conversation with the sink going; removes finished
 * service jobs. */
void zp_vent_shell_tend_jobs(zp_vent_shell_t *v, uint64_t now);
/* Asks the sink which held tasks of producers' jobs (with_input: and of
 * the --input job) it has committed (after either side restarted, or the
 * link to the sink reconnected); its Committed answer frees them. */
void zp_vent_shell_query_commits(zp_vent_shell_t *v, bool with_input);
/* Removes j and its tasks (a finished job or a failed set-up). */
void zp_vent_shell_remove_job(zp_vent_shell_t *v, zp_vent_job_t *j);

/* ---- vent_shell_intake.c: the producers ---- */
/* One message from a producer (rid) on the intake. */
void zp_vent_shell_on_intake(zp_vent_shell_t *v, const char *rid,
                             size_t rid_len, void *frame);
/* Refuses a producer's message (counted, logged sampled). */
void zp_vent_shell_intake_refuse(zp_vent_shell_t *v, const char *rid,
                                 size_t rid_len, const char *job,
                                 const char *why);
/* Answers j's producer that j is open (ok) or was refused. */
void zp_vent_shell_intake_ack(zp_vent_shell_t *v, zp_vent_job_t *j, bool ok,
                              const char *error);

/* ---- vent_shell_journal.c: the journal (--journal) ---- */
/* Opens and replays the journal into the jobs and tasks (no --journal:
 * nothing). Returns -1 when it cannot (logged). */
int zp_vent_shell_journal_open(zp_vent_shell_t *v);
/* Writes what is buffered and closes it; frees the unsent answers. */
void zp_vent_shell_journal_close(zp_vent_shell_t *v);
/* Appends a producer's job, a batch of b's n tasks (those in b->tasks,
 * then one per line of b->lines) given ids first .. (seq: the batch's
 * number, 0 none), a close. Each returns 0, or -1 when out of memory
 * (nothing appended: refuse). No journal: 0. */
int zp_vent_shell_journal_job(zp_vent_shell_t *v, const zp_vent_job_t *j);
int zp_vent_shell_journal_tasks(zp_vent_shell_t *v, const zp_vent_job_t *j,
                                uint64_t seq, uint64_t first,
                                const Zpipe__V1__TaskBatch *b, size_t n);
int zp_vent_shell_journal_close_job(zp_vent_shell_t *v, const zp_vent_job_t *j);
/* Takes a producer's new batch b of n tasks (zp_vent_intake_check_tasks'
 * count: b->tasks, then b->lines) for j, all or nothing: holds its tasks,
 * numbers it (b->seq, 0 none) and journals it. Returns 0 with *first the
 * first id given, or -1 when out of memory, with nothing held, numbered
 * or journaled and j's next id as it was: the batch is refused and sent
 * again, and no id is skipped (a journaled batch must follow the one
 * before, else the replay refuses the journal). Touches no socket. */
int zp_vent_shell_take_batch(zp_vent_shell_t *v, zp_vent_job_t *j,
                             const Zpipe__V1__TaskBatch *b, uint64_t n,
                             uint64_t *first);
/* Appends commits of j's tasks; a removed job's id and token (finished:
 * remembered; removed unfinished: written at time 0, forgotten). */
void zp_vent_shell_journal_committed(zp_vent_shell_t *v, const zp_vent_job_t *j,
                                     const uint64_t *ids, size_t n);
void zp_vent_shell_journal_finished(zp_vent_shell_t *v, const zp_vent_job_t *j);
/* An Ack to a producer: sent now without a journal, else queued until a
 * sync covers what it answers. */
void zp_vent_shell_answer(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                          const char *job, bool ok, const char *error,
                          uint64_t first, uint64_t accepted, uint64_t seq);
/* The Ack to a JobOpen or JobClose of a job that already finished with
 * total tasks: ok, Ack.finished set, Ack.accepted = total; sent or queued
 * as zp_vent_shell_answer does. */
void zp_vent_shell_answer_finished(zp_vent_shell_t *v, const char *rid,
                                   size_t rid_len, const char *job,
                                   uint64_t total);
/* Group commit: one sync for everything appended, then every queued
 * answer. On a write error nothing is answered (retried next turn). */
void zp_vent_shell_answers_flush(zp_vent_shell_t *v);
/* The held tasks of producers' jobs (with_input: and of the --input
 * job), by job (in list order) then id, in an array the caller frees
 * (*count of them); NULL when out of memory. */
zp_vent_task_t **zp_vent_shell_held_sorted(zp_vent_shell_t *v, bool with_input,
                                           size_t *count);
/* Compacts the journal now (what is live: jobs, their tasks and lines,
 * finished ids). Returns 0, or -1 with why in err[0..len) (the journal
 * goes on as it was). */
int zp_vent_shell_journal_compact(zp_vent_shell_t *v, char *err, size_t len);
/* Writes commits out, forgets old finished ids, compacts when due. */
void zp_vent_shell_journal_tend(zp_vent_shell_t *v, uint64_t now);

#endif
