/* submit_window: what zpipe submit has given a ventilator's intake and not
 * yet seen acknowledged (the JobOpen, up to a window of TaskBatches, the
 * JobClose), kept so that all of it can be sent again, in order, after a
 * reconnect or a ventilator restart (docs/protocol.md, "Producers": every
 * message may be resent and a resend gets the same answer).
 *
 * Touches no socket and reads no clock: the shell pushes encoded frames,
 * sends what zp_submit_window_next gives, and reports Acks, connection
 * events and the time (now, monotonic µs). */
#ifndef ZP_SUBMIT_WINDOW_H
#define ZP_SUBMIT_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* With nothing heard for this long while connected, the oldest message
 * without an answer is sent again (a backstop for a reconnect the monitor
 * did not report; harmless, since the ventilator answers a repeat the
 * same way). */
#define ZP_SUBMIT_NUDGE_US 5000000ull

typedef enum {
    ZP_SUBMIT_OPEN,  /* JobOpen: first, alone */
    ZP_SUBMIT_BATCH, /* TaskBatch numbered 1, 2, ... (TaskBatch.seq) */
    ZP_SUBMIT_CLOSE, /* JobClose: once every batch has its answer */
} zp_submit_kind_t;

/* What an Ack did. */
typedef enum {
    ZP_SUBMIT_PROGRESS, /* answered what was waiting: it left the window */
    ZP_SUBMIT_STALE,    /* answered something already answered: ignored */
    ZP_SUBMIT_RESEND,   /* a batch out of order: resent from Ack.seq on */
    ZP_SUBMIT_REFUSED,  /* a refusal that sending again cannot cure */
    ZP_SUBMIT_FINISHED, /* the open's answer: the job already finished (a
                         * rerun after the close); nothing more is sent
                         * and the window is done */
} zp_submit_verdict_t;

/* The fields of an intake Ack the window reads (borrowed). */
typedef struct {
    bool ok;
    uint64_t seq, first_task_id, accepted;
    const char *ventilator_instance; /* NULL or "" when not said */
    bool finished;                   /* Ack.finished */
} zp_submit_ack_t;

typedef struct {
    zp_submit_verdict_t verdict;
    zp_submit_kind_t kind; /* PROGRESS: the kind answered */
    /* REFUSED by the window itself (the Ack was ok, or says nothing of
     * the reason), in static storage; NULL: the Ack's error says why. */
    const char *why;
    /* The Ack came from a new ventilator instance: whatever it had not
     * answered is being sent again. */
    bool restarted;
} zp_submit_outcome_t;

typedef struct {
    uint64_t tasks_acked; /* tasks in the batches answered */
    uint64_t resent;      /* messages sent more than once */
    uint64_t reconnects;  /* reconnects and ventilator restarts seen */
    uint64_t stale;       /* Acks ignored as repeats */
} zp_submit_stats_t;

typedef struct zp_submit_window_t zp_submit_window_t;

/* A window of at most max_batches TaskBatches awaiting their answer (at
 * least 1). Caller owns the result; NULL when out of memory. */
zp_submit_window_t *zp_submit_window_new(size_t max_batches);

/* Frees every frame held; nulls the pointer (NULL is fine). */
void zp_submit_window_destroy(zp_submit_window_t **self_p);

/* Whether the shell should push one of kind now: OPEN while nothing was
 * pushed; BATCH once the open has its answer, before the close, with
 * fewer than max_batches batches unanswered; CLOSE once the open and
 * every batch have their answers. */
bool zp_submit_window_wants(const zp_submit_window_t *self,
                            zp_submit_kind_t kind);

/* Whether a line of len bytes joins a batch that holds n lines of bytes
 * bytes, at most max_tasks lines and max_bytes bytes of lines: the first
 * line always does (a line longer than max_bytes goes alone); any other
 * when both limits still hold with it. The cuts depend on the lines and
 * the limits only, so a rerun with the same input and limits makes the
 * same batches (a resumed job's batches must be the ones it had). */
bool zp_submit_batch_takes(size_t n, size_t bytes, size_t len, size_t max_tasks,
                           size_t max_bytes);

/* The lines of text (len bytes, each ended by '\n'; a partial last line
 * is not looked at) that join a batch holding n lines of bytes bytes, by
 * zp_submit_batch_takes line by line, without a call per line: returns
 * how many bytes of text they take, and adds their count to *n and
 * their bytes (without the newlines) to *bytes. Stops at the first line
 * that does not join (the batch is full) or at the text's end. */
size_t zp_submit_batch_cut(const char *text, size_t len, size_t *n,
                           size_t *bytes, size_t max_tasks, size_t max_bytes);

/* The seq the next batch pushed gets (1, 2, ...); its frame must carry
 * it in TaskBatch.seq. */
uint64_t zp_submit_window_next_seq(const zp_submit_window_t *self);

/* Tasks in every batch pushed so far: a JobClose's total. */
uint64_t zp_submit_window_total(const zp_submit_window_t *self);

/* Appends the encoded message *frame_p (len bytes, malloc'ed; tasks: the
 * batch's task count, 0 for others) to be sent, at now (its answer is
 * awaited from then). Takes ownership; nulls the caller's pointer (frees
 * it on failure). Returns 0, or -1 when zp_submit_window_wants(kind) is
 * false. */
int zp_submit_window_push(zp_submit_window_t *self, zp_submit_kind_t kind,
                          uint64_t tasks, char **frame_p, size_t len,
                          uint64_t now);

/* The next frame to send, in order: each pushed one once, every
 * unanswered one again after a reconnect, a restart or an out-of-order
 * refusal, the oldest again when nudged. Nothing while disconnected.
 * Returns false when there is nothing to send; else the frame in *data
 * and *len, borrowed until the next call on self. */
bool zp_submit_window_next(const zp_submit_window_t *self, const char **data,
                           size_t *len);

/* The frame from zp_submit_window_next went out (a failed send leaves
 * it to be given again). */
void zp_submit_window_sent(zp_submit_window_t *self);

/* An Ack about the job, at now. */
zp_submit_outcome_t zp_submit_window_ack(zp_submit_window_t *self,
                                         const zp_submit_ack_t *a,
                                         uint64_t now);

/* The connection dropped: what it carried may be lost, and nothing is
 * sent until it is back. */
void zp_submit_window_disconnected(zp_submit_window_t *self);

/* The connection is up (again), at now: after a drop, every unanswered
 * message is to be sent again, in order. */
void zp_submit_window_connected(zp_submit_window_t *self, uint64_t now);

/* The backstop: when connected, with a message sent and unanswered and
 * no Ack heard (nor a nudge) for ZP_SUBMIT_NUDGE_US, the oldest is to be
 * sent again. Returns true when it is. */
bool zp_submit_window_nudge(zp_submit_window_t *self, uint64_t now);

/* How long an answer has been awaited with no Ack heard, in µs; 0 when
 * nothing is awaited. The shell gives up past its --timeout-ms. */
uint64_t zp_submit_window_silent_us(const zp_submit_window_t *self,
                                    uint64_t now);

/* Whether the JobClose has its answer, or the JobOpen's said the job
 * had already finished: the job is submitted. */
bool zp_submit_window_done(const zp_submit_window_t *self);

void zp_submit_window_stats(const zp_submit_window_t *self,
                            zp_submit_stats_t *out);

#endif
