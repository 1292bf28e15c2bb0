/* vent_intake: the rules of the producers' protocol (docs/protocol.md,
 * "Producers"): what a JobOpen, TaskBatch or JobClose must be to be taken,
 * and the settings text a job carries. Pure: each check returns the
 * refusal's reason, or NULL to accept; the shell answers the producer. */
#ifndef ZP_VENT_INTAKE_H
#define ZP_VENT_INTAKE_H

#include "vent_job.h"
#include "zpipe.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Settings as the "KEY=VALUE" lines a TaskBatch carries, from n entries:
 * either pairs ("KEY=VALUE" strings, the command line's --config) or kv
 * (a JobOpen's settings); the other is NULL. Returns 0 with *out the text
 * (caller owns the result) or NULL when there are none; -1 with *why set
 * (static storage) when one is not acceptable, or when out of memory. */
int zp_vent_settings_text(char *const *pairs,
                          const Zpipe__V1__Setting *const *kv, size_t n,
                          char **out, const char **why);

/* Bytes of an intake message the ventilator always takes, and what a
 * batch's framing around one task may add at most (job id, token, tags). */
#define ZP_VENT_INTAKE_FRAME   (64u << 20)
#define ZP_VENT_INTAKE_FRAMING (1u << 20)

/* The biggest intake message taken: ZP_VENT_INTAKE_FRAME, or room for a
 * task of max_task_bytes and its batch's framing when that is more. A
 * producer sends a task that long alone (zpipe submit --batch-bytes): a
 * bigger message would drop the connection (MAXMSGSIZE), and the
 * producer, sending it again, would never hear why. */
uint64_t zp_vent_intake_frame_cap(uint64_t max_task_bytes);

/* What a JobOpen is, by the jobs the ventilator knows. */
typedef enum {
    ZP_VENT_OPEN_NEW,      /* a new job: open it */
    ZP_VENT_OPEN_AGAIN,    /* the live job's open sent again: answer again */
    ZP_VENT_OPEN_FINISHED, /* a finished job's open sent again: answer ok */
    ZP_VENT_OPEN_REFUSE,   /* refused, see why */
} zp_vent_open_t;

/* JobOpen from connection rid. existing: the live job holding that id or
 * NULL; finished: the finished job that had it or NULL. The same id is
 * the same job when its token is the same (non-empty), or, with no
 * token, when it comes from the same connection; any other use of a known
 * id is refused, so one id never names two jobs. *why (refusals: static
 * storage or why_buf) and *reply_id (the job id the answer names,
 * borrowed from o, or "") are set. */
zp_vent_open_t zp_vent_intake_check_open(const Zpipe__V1__JobOpen *o,
                                         const zp_vent_job_t *existing,
                                         const zp_vent_finished_job_t *finished,
                                         const char *rid, size_t rid_len,
                                         const char **why, char *why_buf,
                                         size_t why_len, const char **reply_id);

/* What a TaskBatch is. */
typedef enum {
    ZP_VENT_BATCH_NEW,    /* take its tasks */
    ZP_VENT_BATCH_AGAIN,  /* numbered and taken before: answer the same */
    ZP_VENT_BATCH_REFUSE, /* refused, see why (and *expected for a gap) */
} zp_vent_batch_verdict_t;

/* The next line of a batch's lines checked by zp_vent_intake_check_tasks
 * (each ends with '\n'): its start, with *len its length without the
 * '\n', and *p moved past it; NULL once *p reaches end. */
static inline const uint8_t *zp_vent_line_next(const uint8_t **p,
                                               const uint8_t *end, size_t *len)
{
    if (*p >= end)
        return NULL;
    const uint8_t *line = *p;
    const uint8_t *nl = memchr(line, '\n', (size_t)(end - line));
    *len = (size_t)(nl - line);
    *p = nl + 1;
    return line;
}

/* TaskBatch for j (NULL: no such live job). A numbered batch (seq >= 1)
 * already taken is AGAIN with *again its ids, even once the job is
 * closed; a number past the next expected is refused with *expected the
 * next one; unnumbered batches are always new. A NEW batch holds *count
 * tasks: its tasks, then one per line of its lines (which must end with
 * '\n'); none may be longer than max_task_bytes. *why in
 * why_buf[0..len) or static storage. */
zp_vent_batch_verdict_t zp_vent_intake_check_tasks(
    const Zpipe__V1__TaskBatch *b, const zp_vent_job_t *j,
    uint64_t max_task_bytes, const char **why, char *why_buf, size_t len,
    zp_vent_batch_t *again, uint64_t *expected, uint64_t *count);

/* JobClose for j (NULL: no such live job; finished: the finished job with
 * that id or NULL, whose close is answered again): NULL to take it; else
 * why not. */
const char *zp_vent_intake_check_close(const Zpipe__V1__JobClose *c,
                                       const zp_vent_job_t *j,
                                       const zp_vent_finished_job_t *finished,
                                       char *why, size_t len);

/* Whether a TaskBatch or JobClose for live job j, carrying token ("" or
 * NULL: none) and sent on connection rid, is its producer's: it carries
 * the job's token, or comes on a connection that opened the job (its
 * owners), or no owner is known (the ventilator restarted and none has
 * come back: any connection may). NULL to take it, *adopt set when rid
 * is to become an owner; else why not (in why_buf[0..len)). */
const char *zp_vent_intake_check_owner(const zp_vent_job_t *j,
                                       const char *token, const char *rid,
                                       size_t rid_len, bool *adopt,
                                       char *why_buf, size_t len);

/* A producer's max_attempts (0: the ventilator's own) as the job takes
 * it: at most 100. */
uint32_t zp_vent_intake_attempts(uint32_t asked, uint32_t fallback);

#endif
