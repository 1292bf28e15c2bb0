/* sink_records: the sink's record formats, JSON Lines, lines and frames;
 * pure functions that render into a caller's buffer (the bytes are the
 * output file's, exactly). */
#ifndef ZP_SINK_RECORDS_H
#define ZP_SINK_RECORDS_H

#include "zp_codec.h"
#include "zp_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --format: which rendering the output gets. */
typedef enum {
    ZP_RECORDS_JSONL,
    ZP_RECORDS_LINES,
    ZP_RECORDS_FRAMES,
} zp_records_format_t;

/* The format called name: "lines", "frames", else JSON Lines. */
zp_records_format_t zp_records_format(const char *name);

/* Appends "output":"TEXT" when data is valid UTF-8, else
 * "output_b64":"BASE64" (one pass over valid text). Returns 0, or -1
 * when out of memory (b as it was). */
int zp_records_json_output(zp_buf_t *b, const void *data, size_t len);

/* The parts of JSON records that are the same for every record of a
 * batch: the job's id and the worker's, escaped once. Zero-initialise;
 * free with zp_records_jsonl_free. */
typedef struct {
    zp_buf_t head;        /* {"job":"JOB","task": */
    zp_buf_t tail;        /* ,"worker":"WORKER","elapsed_us": */
    zp_buf_t job, worker; /* the ids they are made for, as they are */
} zp_records_jsonl_t;

/* Makes c's parts for job and worker (borrowed for the call), unless
 * they are made for them already (a string compare per call). Returns
 * 0, or -1 when out of memory (made again by the next call). */
int zp_records_jsonl_prepare(zp_records_jsonl_t *c, const char *job,
                             const char *worker);
void zp_records_jsonl_free(zp_records_jsonl_t *c);

/* Appends result r as a JSON line with c's job and worker. No printf and
 * no allocation but b's growth (zp_json.h): the sink renders a million a
 * second into one large buffer. Returns 0, or -1 when out of memory (b as
 * it was). */
int zp_records_jsonl_append(const zp_records_jsonl_t *c, zp_buf_t *b,
                            const Zpipe__V1__Result *r);

/* Replaces b's contents with result r of job as a JSON line; worker is the
 * batch's worker id. All borrowed for the call. The same bytes as
 * zp_records_jsonl_append, for a record now and then (it allocates);
 * empty, and logged, when out of memory. */
void zp_records_json(zp_buf_t *b, const char *job, const char *worker,
                     const Zpipe__V1__Result *r);

/* Replaces b's contents with data as one line: a trailing newline of its
 * own is dropped, one is added. zp_records_line_append appends it
 * (returns 0, or -1 when out of memory, b as it was). */
void zp_records_line(zp_buf_t *b, const void *data, size_t len);
int zp_records_line_append(zp_buf_t *b, const void *data, size_t len);

/* A frame record: ZP_RECORDS_FRAME_HEADER bytes, all big-endian,
 *   u64 task id | u8 flags | u8 cause length C | u16 zero |
 *   u32 output length O | u32 error length E | u32 attempts
 * then O bytes of output, C of cause, E of error text (docs/formats.md). */
#define ZP_RECORDS_FRAME_HEADER  24
#define ZP_RECORDS_FRAME_FAILED  0x01u /* the task (or reduction) failed */
#define ZP_RECORDS_FRAME_RETRY   0x02u /* a failed task's retryable flag */
#define ZP_RECORDS_FRAME_REDUCED 0x04u /* the job's one reduced record */
/* A reduced record's task id. */
#define ZP_RECORDS_FRAME_REDUCED_ID UINT64_MAX

/* Replaces b's contents with result r as a frame record: the output as
 * it is; a failure's cause (plugin_error when it has none, cut at 255
 * bytes) and error text; attempts at least 1. r borrowed for the call. */
void zp_records_frame(zp_buf_t *b, const Zpipe__V1__Result *r);
/* The same appended to b: 0, or -1 when out of memory (logged; b as it
 * was). */
int zp_records_frame_append(zp_buf_t *b, const Zpipe__V1__Result *r);

/* A reduced job's one record (--reduce). Strings borrowed for the call. */
typedef struct {
    const char *job, *plugin;
    bool ok;
    uint64_t tasks, succeeded, failed;
    const char *error; /* when !ok; NULL = "failed" */
    const void *data;  /* the reduced value */
    size_t len;
} zp_records_reduced_t;

/* Replaces b's contents with the reduced record as a JSON line. */
void zp_records_reduced_json(zp_buf_t *b, const zp_records_reduced_t *r);

/* Replaces b's contents with the reduced record as a frame record: task
 * id ZP_RECORDS_FRAME_REDUCED_ID, flag REDUCED (and FAILED with the error,
 * "failed" when NULL), the value as output, no cause, attempts 1. The
 * task counts are the JSON record's only. */
void zp_records_reduced_frame(zp_buf_t *b, const zp_records_reduced_t *r);

#endif
