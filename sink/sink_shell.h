/* sink_shell: the sink daemon's shell, private to sink/: its state and
 * the handlers its loop calls. sink.c sets up, runs the loop of phases
 * and tears down; sink_results.c carries out what the state modules
 * decide for result batches (write, commit, complete a job);
 * sink_requests.c answers the control socket. Only these touch sockets. */
#ifndef ZP_SINK_SHELL_H
#define ZP_SINK_SHELL_H

#include "sink.h"
#include "sink_job.h"
#include "sink_metrics.h"
#include "sink_promise.h"
#include "sink_records.h"
#include "sink_reduce.h"
#include "sink_store.h"
#include "sink_web.h"
#include "zp_codec.h"
#include "zp_events.h"
#include "zp_metrics.h"
#include "zp_trace.h"
#include "zp_trim.h"
#include "zp_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

/* A JobOpen answered once its journal line is written (the barrier). */
typedef struct {
    zp_peer_t peer;
    char job[129];
} zp_open_ack_t;

typedef struct {
    const zp_sink_config_t *cfg;
    void *ctx, *results, *control, *pub;
    zp_curve_t *curve;
    void *mon_results, *mon_control; /* dropped connections */
    zp_records_format_t format;      /* --format; jsonl is also the spool's */
    zp_jobs_t jobs;
    zp_store_t *store;
    zp_promise_t promise; /* the journal kept, what a crash may cost */
    zp_trim_t trim;       /* memory given back once idle after a burst */
    zp_reduce_t *reduce;  /* NULL unless --reduce */
    zp_arena_t *arena;
    zp_result_view_t view; /* results decoded without copies */
    zmq_msg_t *view_frame; /* the frame view's outputs lie in, or NULL */
    zp_buf_t rec, scratch;
    zp_buf_t spool_rec, chunk; /* a JSON record for the spool; a reply */
    char spool_path[4200];     /* a reply's, by reference */
    zp_records_jsonl_t jsonl;  /* the batch's job and worker, escaped */
    bool jsonl_ready;          /* jsonl is made for the batch at hand */
    zp_sink_counters_t n;      /* bad messages, dropped connections */
    zp_metrics_t *metrics;     /* NULL unless --metrics */
    zp_events_t *events;       /* NULL unless --events */
    zp_sink_web_t *web;        /* the web view, on the metrics server */
    char *instance;            /* changes on every start */
    zp_trace_log_t *trace;     /* --trace, else NULL */
    zp_open_ack_t *open_acks;  /* JobOpens waiting for the barrier */
    size_t n_open_acks, cap_open_acks;
} zp_sink_t;

/* sink_results.c */

/* A message on the results socket (or a ResultBatch on control: the
 * ventilator's failure records for tasks it gave up on). */
void zp_sink_on_results(zp_sink_t *s, zmq_msg_t *frame, const char *rid,
                        size_t rid_len);
/* The barrier, then every job's opener is told what is committed. */
void zp_sink_commit_all(zp_sink_t *s);
/* When job j is closed and has every record: completes it. */
void zp_sink_check_done(zp_sink_t *s, zp_sink_job_t *j);

/* sink_refold.c */

/* After the journal replay: each live reduced job gets its reducer and a
 * fresh accumulator back from its fold log, which folds again, once
 * each, the results of the tasks the journal has; stale fold logs (their
 * jobs done or unknown) are removed. */
void zp_sink_folds_resume(zp_sink_t *s);
/* Once the sockets are up: the reduced jobs the journal has complete but
 * without their final record are completed (zp_sink_check_done). */
void zp_sink_folds_finish(zp_sink_t *s);
/* A JobOpen gave job j its reducer: its fold log is made (with a
 * journal), so that a restarted sink knows its reducer. Returns true when
 * one was made (the open is acknowledged after the barrier writes it). */
bool zp_sink_fold_open(zp_sink_t *s, zp_sink_job_t *j);

/* sink.c */

/* Job j is DONE and told: its spool file closed, its state released to
 * a summary (zp_jobs_release). */
void zp_sink_release(zp_sink_t *s, zp_sink_job_t *j);
/* Counts a bad message on socket (cfg->results or cfg->control; its
 * name), logged sampled. */
void zp_sink_bad(zp_sink_t *s, const char *socket, const char *why, size_t len);

/* sink_requests.c */

/* A message from peer rid on the control socket. */
void zp_sink_on_control(zp_sink_t *s, const char *rid, size_t rid_len,
                        zmq_msg_t *frame);
/* Sends job j's status (NULL: unknown job job_id) to rid. */
void zp_sink_send_status(zp_sink_t *s, const zp_sink_job_t *j,
                         const char *job_id, const char *rid, size_t rid_len);
/* Answers j's parked ResultsRequests that now have records, or an end. */
void zp_sink_serve_fetchers(zp_sink_t *s, zp_sink_job_t *j);
/* Tells j's opener what was committed and what to retry (call after
 * the barrier); what it cannot be told now is kept for later. */
void zp_sink_flush_commits(zp_sink_t *s, zp_sink_job_t *j);
/* Right after a barrier: the journal, grown past --journal-compact, is
 * rewritten as what the sink keeps (sink_snapshot.h). */
void zp_sink_compact(zp_sink_t *s);
/* Answers the JobOpens whose journal lines the barrier just wrote. */
void zp_sink_send_open_acks(zp_sink_t *s);

#endif
