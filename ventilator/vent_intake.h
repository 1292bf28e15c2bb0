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

/* Settings as the "KEY=VALUE" lines a TaskBatch carries, from n entries:
 * either pairs ("KEY=VALUE" strings, the command line's --config) or kv
 * (a JobOpen's settings); the other is NULL. Returns 0 with *out the text
 * (caller owns the result) or NULL when there are none; -1 with *why set
 * (static storage) when one is not acceptable, or when out of memory. */
int zp_vent_settings_text(char *const *pairs,
                          const Zpipe__V1__Setting *const *kv, size_t n,
                          char **out, const char **why);

/* JobOpen: NULL to take it; else why not (static storage). existing: the
 * job already holding that id or NULL; finished: whether the id belongs
 * to a recently finished job. *resend is set when it is the same
 * producer's JobOpen again (answer again if the job is open already);
 * *reply_id is the job id the answer names (borrowed from o, or ""). */
const char *zp_vent_intake_check_open(const Zpipe__V1__JobOpen *o,
                                      const zp_vent_job_t *existing,
                                      bool finished, const char *rid,
                                      size_t rid_len, bool *resend,
                                      const char **reply_id);

/* TaskBatch for j (NULL: no such job): NULL to take it; else why not, in
 * why[0..len) or static storage. */
const char *zp_vent_intake_check_tasks(const Zpipe__V1__TaskBatch *b,
                                       const zp_vent_job_t *j,
                                       uint64_t max_task_bytes, char *why,
                                       size_t len);

/* JobClose for j (NULL: no such job): NULL to take it; else why not. */
const char *zp_vent_intake_check_close(const Zpipe__V1__JobClose *c,
                                       const zp_vent_job_t *j, char *why,
                                       size_t len);

/* A producer's max_attempts (0: the ventilator's own) as the job takes
 * it: at most 100. */
uint32_t zp_vent_intake_attempts(uint32_t asked, uint32_t fallback);

#endif
