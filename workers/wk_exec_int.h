/* wk_exec_int: the executor supervisor's state, shared by its two files
 * (wk_exec.c: lifecycle and feeding; wk_exec_take.c: results and death).
 * Private to them: nothing else includes it. */
#ifndef ZP_WK_EXEC_INT_H
#define ZP_WK_EXEC_INT_H

#include "wk_death.h"
#include "wk_exec.h"
#include "wk_queue.h"
#include "wk_stall.h"
#include "zp_codec.h"
#include "zp_frame.h"

/* The executor's lifecycle:
 *
 *   DOWN --start--> STARTING --hello--> IDLE <--all results--+
 *                      |                  |                  |
 *                      |                  +--a batch--> RUNNING
 *                      +--(died owing tasks)--> RECOVERING --hello--^
 *
 * and any state goes DOWN when the executor dies or is stopped; a dead
 * one is started again at once, RECOVERING when it owes the rest of the
 * batch it died in. */
/* An executor left running a stalled task (no deadline): fed nothing
 * more; its result for that task is taken when it comes, then it is
 * killed. */
typedef struct {
    zp_wk_child_t child;
    zp_frame_reader_t *reader;
    char *job;
    uint64_t task_id, since_us;
    uint64_t lease; /* Task.lease, for its record */
    uint32_t attempt;
} zp_wk_parked_t;

typedef enum {
    ZP_WK_EXEC_DOWN,       /* no process */
    ZP_WK_EXEC_STARTING,   /* started; no hello yet; nothing owed */
    ZP_WK_EXEC_RECOVERING, /* started; no hello yet; owes the current batch's
                              rest */
    ZP_WK_EXEC_IDLE,       /* ready, no batch */
    ZP_WK_EXEC_RUNNING,    /* ready, running the current batch */
} zp_wk_exec_state_t;

struct zp_wk_exec {
    const zp_worker_config_t *cfg;
    const char *id;
    char **files; /* the plugin files executors load, owned */
    size_t n_files;
    bool credit_mode;
    zp_wk_exec_env_t env;
    zp_wk_queue_t *queue; /* batches not yet given to it */
    zp_wk_child_t child;
    zp_wk_exec_state_t state;
    bool killed_for_timeout;
    bool stopping;    /* the worker is stopping: a signal to all is no crash */
    bool discard;     /* its output is garbage: read it until it dies */
    size_t sent_base; /* cur index of the first task it was sent */
    unsigned start_fails;
    bool ever_ready;           /* some executor of this worker said hello */
    int wait_status;           /* the last dead executor's, from waitpid */
    zp_frame_reader_t *reader; /* bytes read, not yet a whole frame */
    /* Frames for it, written as its socket takes them: a blocking write
     * could wait on an executor itself blocked writing results to us. */
    zp_buf_t wbuf;
    size_t woff;
    /* The batch it is running: the ventilator's frames, decoded into
     * cur_arena only when an executor dies in it (cur is NULL until). */
    zp_wk_batch_t cur_batch;
    zp_arena_t *cur_arena;
    char *cur_job, *cur_plugin, *cur_config; /* cur_config: the job's
                                              * settings, resent with it */
    uint64_t cur_dispatch_us; /* the batch's, for traced tasks' results */
    Zpipe__V1__Task **cur;
    size_t cur_n, cur_done, cur_bytes;         /* cur_bytes: payload per task */
    zp_wk_horizon_t cur_horizon, next_horizon; /* their tasks' deadlines */
    /* One more batch written behind it, so the executor goes from batch
     * to batch without waiting for this process to be scheduled. */
    zp_wk_batch_t next_batch;
    bool has_next;
    /* Where the current and next batches lie in the executor's inputs
     * region (their seq there; 0: they went through the socket). */
    uint64_t cur_shm, next_shm;
    uint64_t sent_seq, cur_seq, next_seq; /* frames written to it */
    uint64_t restarts;
    zp_arena_t *arena; /* its frames decoded off the common path */
    /* The elapsed_us of each result of the frame being scanned, for the
     * histograms once the scan accepted it (n of cap; short of some when
     * it could not grow). */
    uint64_t *elapsed;
    size_t elapsed_n, elapsed_cap;
    zp_buf_t scratch;    /* a batch encoded afresh */
    zp_task_view_t view; /* a batch with payload frames, put together */
    zp_wk_stall_t stall; /* recent call times: when a task is stalled */
    zp_wk_parked_t parked[ZP_WK_MAX_PARKED];
    size_t n_parked;
    uint64_t parked_total;
    /* Plugin output refused in its executors now gone. */
    uint64_t refused_before;
};

/* Moves to state to; refuses (-1, and asserts in debug builds) a
 * transition not on the diagram. */
int zp_wk_exec__set_state(zp_wk_exec_t *self, zp_wk_exec_state_t to);
/* A batch is current (running, or owed by a new executor). */
bool zp_wk_exec__busy(const zp_wk_exec_t *self);
/* It said hello: batches can be written to it. */
bool zp_wk_exec__ready(const zp_wk_exec_t *self);
/* Sends the current batch (cur[cur_done..]): whole, as the ventilator
 * sent it, else encoded afresh. 0, or -1 (shows as its death). */
int zp_wk_exec__send_current(zp_wk_exec_t *self, bool whole);
/* Decodes the current batch's frame into cur (a dead executor's batch).
 * 0 or -1. */
int zp_wk_exec__decode_current(zp_wk_exec_t *self);
/* The current batch has all its results: the next one (if any) is now
 * current, else it is idle. */
void zp_wk_exec__advance(zp_wk_exec_t *self);
/* Reads what the executor wrote and takes its whole frames; false when it
 * has closed (died). */
bool zp_wk_exec__read(zp_wk_exec_t *self);
/* One plugin call took elapsed_us: the stall samples and the worker's
 * histogram. arg: the supervisor. */
void zp_wk_exec__observe(void *arg, uint64_t elapsed_us);
/* d from an executor's result r: its fields, and its output and error
 * text appended to the results' buffers. */
void zp_wk_exec__copy_result(zp_wk_exec_t *self, zp_wk_done_t *d,
                             const Zpipe__V1__Result *r);
/* A frame from child: a reference to a result frame in its results
 * region becomes that frame (*data, *len; *seq its seq there), anything
 * else stays as it is (*seq 0). False for a reference that is wrong (not
 * the next, or out of the region): the executor sent garbage. */
bool zp_wk_exec__deref(zp_wk_child_t *child, const char **data, size_t *len,
                       uint64_t *seq);
/* Result frame seq of child's results region is done with (decoded, not
 * sent on); zp_wk_exec__publish tells the executor. */
void zp_wk_exec__release(zp_wk_child_t *child, uint64_t seq);
/* Tells child's executor which of its result frames are free. */
void zp_wk_exec__publish(zp_wk_child_t *child);
/* Reads what fd has (without blocking) into reader; *open set false when
 * the peer closed. False when out of memory (the rest stays unread). */
bool zp_wk_exec__fill(zp_frame_reader_t *reader, int fd, bool *open);
/* wk_exec_park.c: the running task is stalled: parks the executor (if
 * there is room) and starts a fresh one for the rest. 0, or -1 when no
 * executor can be started. */
int zp_wk_exec__park(zp_wk_exec_t *self);
/* Takes what parked executors wrote (the stalled task's result, or their
 * death), ending those that are done. */
void zp_wk_exec__poll_parked(zp_wk_exec_t *self);
/* Stops every parked executor. */
void zp_wk_exec__stop_parked(zp_wk_exec_t *self);

#endif
