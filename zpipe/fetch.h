/* fetch: a job's records from a running sink, from a cursor on, as the
 * sink makes them durable, until the job is done: what `zpipe results`
 * does, and `zpipe submit --results` while it submits. */
#ifndef ZP_FETCH_CLIENT_H
#define ZP_FETCH_CLIENT_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    const char *sink;              /* the sink's control endpoint */
    const char *secret, *sink_key; /* CURVE, both NULL for none */
    const char *job;
    const char *prog;    /* names the messages ("zpipe results") */
    uint64_t cursor;     /* where to start (0: the first record) */
    uint64_t timeout_ms; /* give up after this long, 0 = never */
    FILE *out;           /* where the records go, unless path is set */
    /* The file the records go to (created or truncated when the first
     * record comes), instead of out; NULL: out. */
    const char *path;
    /* Take the records: once every one of a done job is written and
     * made durable, the sink drops its copy (ResultsRequest.take). With
     * path, from cursor 0, and the sink's spool file readable here (by
     * reference) on path's file system, the job's spool file itself is
     * renamed to path once the job is done (a job still running is waited
     * for): nothing is copied. */
    bool take;
    /* Reading the sink's spool file itself (ResultsRequest.by_reference):
     * "auto" (NULL too) when the sink is on this host (an ipc://
     * endpoint), falling back to the records over the socket when the
     * file cannot be read; "yes" always, failing when it cannot; "no"
     * never. */
    const char *direct;
    /* Set by another thread: stop at the next answer, quietly (the
     * caller has said why). NULL: never. */
    const atomic_bool *cancel;
} zp_fetch_opts_t;

/* Writes o->job's records from o->cursor to o->out until the job is done
 * and every record is written. A job the sink does not know yet is asked
 * about again for 10 s; a request unanswered for 2 s is sent again (a
 * restarted sink forgot it). Returns 0 (done), 3 (failed or timed out:
 * said on stderr with the cursor to resume from), 128 + the signal
 * (interrupted), or -1 (cancelled). By reference, the records are copied
 * from the spool file in the kernel (copy_file_range, else sendfile, else
 * read and write): one copy instead of the sink's read, the socket's two
 * and this write. */
int zp_fetch_records(const zp_fetch_opts_t *o);

/* Why records cannot be taken into path (NULL: into out), or NULL: a take
 * writes a regular file it can sync, in a folder it can write. */
const char *zp_fetch_take_refused(const char *path, FILE *out);

#endif
