/* fetch: a job's records from a running sink (see fetch.h). */
#define _GNU_SOURCE
#include "fetch.h"
#include "client.h"
#include "zp_util.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_UNKNOWN_GRACE_US 10000000u /* a job the sink may not know yet */
#define S_RESEND_US        2000000u  /* ask again (a restarted sink forgot) */

static uint64_t s_ask(zp_client_t *c, const char *job, uint64_t cursor)
{
    Zpipe__V1__ResultsRequest rq = ZPIPE__V1__RESULTS_REQUEST__INIT;
    rq.job_id = (char *)job;
    rq.cursor = cursor;
    /* max_bytes 0: the sink's 1 MiB. With 1,000,000 records (116 MB):
     * 1 MiB 0.10-0.17 s, 256 KiB 0.17-0.22 s, 8 MiB 0.22-0.33 s (fresh
     * big buffers cost more than the round trips they save). */
    rq.wait = true;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULTS_REQUEST;
    m.results_request = &rq;
    zp_client_send(c, &m, ZMQ_DONTWAIT);
    return zp_mono_us();
}

static bool s_cancelled(const zp_fetch_opts_t *o)
{
    return o->cancel && atomic_load(o->cancel);
}

static bool s_go_on(const zp_fetch_opts_t *o, uint64_t t0)
{
    return !zp_stopping() && !s_cancelled(o) &&
           !(o->timeout_ms && zp_mono_us() - t0 > o->timeout_ms * 1000);
}

int zp_fetch_records(const zp_fetch_opts_t *o)
{
    int rc = 3;
    zp_client_t *c = zp_client_new(o->sink, ZP_CLIENT_MAX_MSG, o->secret,
                                   "sink-key", o->sink_key);
    uint64_t t0 = zp_mono_us(), cursor = o->cursor, asked = 0;
    bool known = false, sent = false;
    if (!c)
        goto done;
    while (s_go_on(o, t0)) {
        if (!sent)
            asked = s_ask(c, o->job, cursor);
        sent = false;
        zp_message_t *r = NULL;
        /* Answers to an earlier request for the same cursor are as good;
         * any other cursor is stale. */
        while (!zp_stopping() && !s_cancelled(o) &&
               zp_mono_us() - asked < S_RESEND_US) {
            r = zp_client_recv(c, ZPIPE__V1__MESSAGE__KIND_RESULTS_CHUNK,
                               o->job, 200);
            if (r && r->results_chunk->cursor == cursor)
                break;
            r = NULL;
        }
        if (!r)
            continue;
        const Zpipe__V1__ResultsChunk *ch = r->results_chunk;
        if (ch->error && *ch->error) {
            if (!known && strcmp(ch->error, "unknown job") == 0 &&
                zp_mono_us() - t0 < S_UNKNOWN_GRACE_US) {
                usleep(100000);
                continue;
            }
            fprintf(stderr, "%s: job %s: %s\n", o->prog, o->job, ch->error);
            goto done;
        }
        known = true;
        /* The next chunk is asked for before this one is written: the
         * sink reads and sends it while the output takes this one. */
        if (!ch->done) {
            asked = s_ask(c, o->job, ch->next_cursor);
            sent = true;
        }
        if (ch->records.len && fwrite(ch->records.data, 1, ch->records.len,
                                      o->out) != ch->records.len) {
            fprintf(stderr, "%s: writing the records: %s\n", o->prog,
                    strerror(errno));
            goto done;
        }
        cursor = ch->next_cursor;
        if (ch->done) {
            rc = fflush(o->out) == 0 ? 0 : 3;
            if (rc)
                fprintf(stderr, "%s: writing the records: %s\n", o->prog,
                        strerror(errno));
            goto done;
        }
    }
    if (s_cancelled(o)) {
        rc = -1;
        goto done;
    }
    if (zp_stopping())
        rc = 128 + zp_stop_signal();
    else
        fprintf(stderr, "%s: job %s not done within %llu ms\n", o->prog, o->job,
                (unsigned long long)o->timeout_ms);
    fprintf(stderr, "%s: resume with zpipe results --cursor %llu %s\n", o->prog,
            (unsigned long long)cursor, o->job);
done:
    fflush(o->out);
    zp_client_destroy(&c);
    return rc;
}
