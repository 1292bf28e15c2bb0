/* sink_records: the sink's record formats, JSON Lines and lines; pure
 * functions that render into a caller's buffer (the bytes are the output
 * file's, exactly). */
#ifndef ZP_SINK_RECORDS_H
#define ZP_SINK_RECORDS_H

#include "zp_codec.h"
#include "zp_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Appends "output":"TEXT" when data is valid UTF-8, else
 * "output_b64":"BASE64". */
void zp_records_json_output(zp_buf_t *b, const void *data, size_t len);

/* Replaces b's contents with result r of job as a JSON line; worker is the
 * batch's worker id. All borrowed for the call. */
void zp_records_json(zp_buf_t *b, const char *job, const char *worker,
                     const Zpipe__V1__Result *r);

/* Replaces b's contents with data as one line: a trailing newline of its
 * own is dropped, one is added. */
void zp_records_line(zp_buf_t *b, const void *data, size_t len);

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

#endif
