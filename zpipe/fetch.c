/* fetch: a job's records from a running sink (see fetch.h). */
#define _GNU_SOURCE
#include "fetch.h"
#include "client.h"
#include "zp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define S_UNKNOWN_GRACE_US 10000000u /* a job the sink may not know yet */
#define S_RESEND_US        2000000u  /* ask again (a restarted sink forgot) */

static uint64_t s_ask(zp_client_t *c, const char *job, uint64_t cursor,
                      bool by_reference)
{
    Zpipe__V1__ResultsRequest rq = ZPIPE__V1__RESULTS_REQUEST__INIT;
    rq.job_id = (char *)job;
    rq.cursor = cursor;
    /* max_bytes 0: the sink's 1 MiB. With 1,000,000 records (116 MB):
     * 1 MiB 0.10-0.17 s, 256 KiB 0.17-0.22 s, 8 MiB 0.22-0.33 s (fresh
     * big buffers cost more than the round trips they save). */
    rq.wait = true;
    rq.by_reference = by_reference;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULTS_REQUEST;
    m.results_request = &rq;
    zp_client_send(c, &m, ZMQ_DONTWAIT);
    return zp_mono_us();
}

/* The sink's spool file, read by reference. */
typedef struct {
    int fd; /* -1: none open */
    uint64_t dev, ino;
} s_spool_t;

/* Opens the file chunk ch points at (or keeps the one open when it is
 * that one): true, or false with *why (static text) when it cannot be
 * read or is not the sink's file (another host, another mount). */
static bool s_spool_open(s_spool_t *sp, const Zpipe__V1__ResultsChunk *ch,
                         const char **why)
{
    if (sp->fd >= 0 && sp->dev == ch->spool_dev && sp->ino == ch->spool_ino)
        return true;
    if (sp->fd >= 0)
        close(sp->fd);
    sp->fd = open(ch->spool_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (sp->fd < 0 || fstat(sp->fd, &st) != 0) {
        *why = strerror(errno);
    } else if ((uint64_t)st.st_dev != ch->spool_dev ||
               (uint64_t)st.st_ino != ch->spool_ino) {
        *why = "not the sink's file (another host or mount)";
    } else {
        sp->dev = ch->spool_dev;
        sp->ino = ch->spool_ino;
        return true;
    }
    if (sp->fd >= 0)
        close(sp->fd);
    sp->fd = -1;
    return false;
}

/* Copies len bytes at off of in to out's position: in the kernel when it
 * can (copy_file_range between files, sendfile to a pipe or socket),
 * else by read and write. 0, or -1 (errno; EIO: the file ended early). */
static int s_copy(int in, uint64_t off, uint64_t len, int out)
{
    loff_t o = (loff_t)off;
    int way = 0; /* copy_file_range, sendfile, read and write */
    static char buf[1 << 20];
    while (len > 0) {
        size_t n = len > (1u << 30) ? (1u << 30) : (size_t)len;
        ssize_t k;
        if (way == 0)
            k = copy_file_range(in, &o, out, NULL, n, 0);
        else if (way == 1) {
            off_t so = (off_t)o;
            k = sendfile(out, in, &so, n);
            if (k > 0)
                o = (loff_t)so;
        } else {
            k = pread(in, buf, n < sizeof buf ? n : sizeof buf, (off_t)o);
            if (k > 0 && zp_write_all(out, buf, (size_t)k) < 0)
                return -1;
            if (k > 0)
                o += k;
        }
        if (k > 0) {
            len -= (uint64_t)k;
            continue;
        }
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        if (errno == EINTR)
            continue;
        /* Not between these two (another file system before 5.3, a pipe,
         * O_APPEND, no support): the next way, before any byte went. */
        if (way < 2 && (uint64_t)o == off &&
            (errno == EXDEV || errno == EINVAL || errno == EBADF ||
             errno == ENOSYS || errno == EOPNOTSUPP || errno == ESPIPE)) {
            way++;
            continue;
        }
        return -1;
    }
    return 0;
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

/* The output: o->out, or o->path opened the first time: truncated, or
 * appended to when resuming from a cursor. */
static FILE *s_out(const zp_fetch_opts_t *o, FILE **out)
{
    if (!*out) {
        *out = fopen(o->path, o->cursor ? "a" : "w");
        if (!*out)
            fprintf(stderr, "%s: %s: %s\n", o->prog, o->path, strerror(errno));
    }
    return *out;
}

/* The folder path is in ("." for a bare name), in dir. */
static void s_dir_of(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, cap, ".");
    else
        snprintf(dir, cap, "%.*s", (int)(slash - path + 1), path);
}

/* Makes a directory entry made or changed in path's folder durable. */
static void s_sync_dir_of(const char *path)
{
    char dir[4096];
    s_dir_of(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* --take with a path: the done job's spool file, which holds all its
 * records (ch, from cursor 0, by reference), becomes o->path itself.
 * 0: renamed; 1: not possible here (another file system, no right to
 * either folder, not that file any more): copy instead; -1: renamed, but
 * what is at the path is not that file (said on stderr). */
static int s_take_file(const zp_fetch_opts_t *o,
                       const Zpipe__V1__ResultsChunk *ch)
{
    struct stat st;
    if (stat(ch->spool_path, &st) != 0 ||
        (uint64_t)st.st_dev != ch->spool_dev ||
        (uint64_t)st.st_ino != ch->spool_ino ||
        (uint64_t)st.st_size != ch->next_cursor || !S_ISREG(st.st_mode))
        return 1;
    if (rename(ch->spool_path, o->path) != 0)
        return 1;
    if (stat(o->path, &st) != 0 || (uint64_t)st.st_dev != ch->spool_dev ||
        (uint64_t)st.st_ino != ch->spool_ino) {
        fprintf(stderr,
                "%s: moved the sink's spool file %s to %s, but %s is not "
                "that file now (replaced meanwhile)\n",
                o->prog, ch->spool_path, o->path, o->path);
        return -1;
    }
    /* Its bytes are as durable as the sink made them; the new name is
     * made so before the sink is told. */
    s_sync_dir_of(o->path);
    return 0;
}

/* Whether path's folder is on the file system of the spool file ch
 * names: a done job's file may then be moved there. */
static bool s_same_fs(const char *path, const Zpipe__V1__ResultsChunk *ch)
{
    char dir[4096];
    s_dir_of(path, dir, sizeof dir);
    struct stat st;
    return stat(dir, &st) == 0 && (uint64_t)st.st_dev == ch->spool_dev;
}

/* Sends m and waits for the answer of kind that answers(r, arg) says is
 * the one, sending m again every 2 s (a restarted sink forgot it): that
 * answer (borrowed until the next call on c), or NULL once stopped,
 * cancelled or timed out (from t0). */
static const zp_message_t *
s_call(zp_client_t *c, const zp_fetch_opts_t *o, uint64_t t0,
       const zp_message_t *m, int kind,
       bool (*answers)(const zp_message_t *r, const void *arg), const void *arg)
{
    while (s_go_on(o, t0)) {
        zp_client_send(c, m, ZMQ_DONTWAIT);
        uint64_t asked = zp_mono_us();
        while (s_go_on(o, t0) && zp_mono_us() - asked < S_RESEND_US) {
            zp_message_t *r = zp_client_recv(c, kind, o->job, 200);
            if (r && answers(r, arg))
                return r;
        }
    }
    return NULL;
}

static bool s_is_done(const zp_message_t *r, const void *arg)
{
    (void)arg;
    return r->job_status->state == ZPIPE__V1__JOB_STATE__JOB_DONE;
}

/* Waits until the sink says the job is done (StatusRequest.wait). 0, or
 * -1 (stopped, cancelled, timed out). */
static int s_wait_done(zp_client_t *c, const zp_fetch_opts_t *o, uint64_t t0)
{
    Zpipe__V1__StatusRequest rq = ZPIPE__V1__STATUS_REQUEST__INIT;
    rq.job_id = (char *)o->job;
    rq.wait = true;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST;
    m.status_request = &rq;
    return s_call(c, o, t0, &m, ZPIPE__V1__MESSAGE__KIND_JOB_STATUS, s_is_done,
                  NULL)
               ? 0
               : -1;
}

/* The answer to a take at *arg (the cursor): taken, or refused. */
static bool s_answers_take(const zp_message_t *r, const void *arg)
{
    const Zpipe__V1__ResultsChunk *ch = r->results_chunk;
    return ch->cursor == *(const uint64_t *)arg &&
           (ch->taken || (ch->error && *ch->error));
}

/* Tells the sink the records were taken (ResultsRequest.take) once the
 * job's records are durable where they went. 0, 3 (refused: said on
 * stderr), or -1 (stopped, cancelled, timed out from t0). */
static int s_take(zp_client_t *c, const zp_fetch_opts_t *o, uint64_t cursor,
                  uint64_t t0)
{
    Zpipe__V1__ResultsRequest rq = ZPIPE__V1__RESULTS_REQUEST__INIT;
    rq.job_id = (char *)o->job;
    rq.cursor = cursor;
    rq.take = true;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULTS_REQUEST;
    m.results_request = &rq;
    const zp_message_t *r =
        s_call(c, o, t0, &m, ZPIPE__V1__MESSAGE__KIND_RESULTS_CHUNK,
               s_answers_take, &cursor);
    if (!r)
        return -1;
    if (r->results_chunk->taken)
        return 0;
    fprintf(stderr,
            "%s: job %s: every record is written, but the sink did not drop "
            "its copy: %s\n",
            o->prog, o->job, r->results_chunk->error);
    return 3;
}

int zp_fetch_records(const zp_fetch_opts_t *o)
{
    int rc = 3;
    zp_client_t *c = zp_client_new(o->sink, ZP_CLIENT_MAX_MSG, o->secret,
                                   "sink-key", o->sink_key);
    uint64_t t0 = zp_mono_us(), cursor = o->cursor, asked = 0;
    bool known = false, sent = false;
    bool must = o->direct && strcmp(o->direct, "yes") == 0;
    bool by_ref = must || ((!o->direct || strcmp(o->direct, "auto") == 0) &&
                           strncmp(o->sink, "ipc://", 6) == 0);
    /* Taken whole by a rename: the path is not opened until a record
     * must be copied after all. */
    bool rename_first = o->take && o->path && by_ref && cursor == 0;
    bool waited = false; /* for the job to be done, to move its file */
    FILE *out = o->path ? NULL : o->out;
    s_spool_t sp = {.fd = -1};
    if (!c)
        goto done;
    while (s_go_on(o, t0)) {
        if (!sent)
            asked = s_ask(c, o->job, cursor, by_ref);
        sent = false;
        zp_message_t *r = NULL;
        /* Answers to an earlier request for the same cursor are as good;
         * any other cursor is stale. */
        while (!zp_stopping() && !s_cancelled(o) &&
               zp_mono_us() - asked < S_RESEND_US) {
            r = zp_client_recv(c, ZPIPE__V1__MESSAGE__KIND_RESULTS_CHUNK,
                               o->job, 200);
            if (r && r->results_chunk->cursor == cursor &&
                !r->results_chunk->taken)
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
            if (o->take && strstr(ch->error, "no longer held"))
                fprintf(stderr,
                        "%s: (an interrupted zpipe results --take -o FILE "
                        "leaves them in FILE)\n",
                        o->prog);
            goto done;
        }
        known = true;
        bool ref = ch->spool_path && *ch->spool_path;
        /* A job still running whose file can be moved here once done:
         * waited for, rather than copied as it goes (a copy of every
         * byte, made while the job needs the cores). */
        if (rename_first && ref && !ch->done && ch->cursor == 0 && !waited &&
            s_same_fs(o->path, ch)) {
            waited = true;
            if (s_wait_done(c, o, t0) < 0)
                break;
            continue; /* asked again from 0: done now */
        }
        if (rename_first && ref && ch->done && ch->cursor == 0) {
            int k = s_take_file(o, ch);
            if (k < 0)
                goto done;
            if (k == 0) {
                cursor = ch->next_cursor;
                goto take;
            }
        }
        if (o->path && !out && ref) {
            /* Never the sink's own file, cut by opening it: one moved here
             * by a take that was not told (interrupted) is taken now. */
            struct stat st;
            bool same = stat(o->path, &st) == 0 &&
                        (uint64_t)st.st_dev == ch->spool_dev &&
                        (uint64_t)st.st_ino == ch->spool_ino;
            if (same && o->take && ch->done && ch->cursor == 0 &&
                (uint64_t)st.st_size == ch->next_cursor) {
                cursor = ch->next_cursor;
                goto take;
            }
            if (same) {
                fprintf(stderr, "%s: %s is the sink's spool file of job %s\n",
                        o->prog, o->path, o->job);
                goto done;
            }
        }
        if (o->path && !s_out(o, &out))
            goto done;
        const char *why = NULL;
        if (ref && !s_spool_open(&sp, ch, &why)) {
            if (must) {
                fprintf(stderr,
                        "%s: cannot read the sink's spool file %s: %s "
                        "(--direct yes)\n",
                        o->prog, ch->spool_path, why);
                goto done;
            }
            by_ref = false; /* the records over the socket, from here */
            continue;
        }
        if (must && !ref && ch->records.len) {
            fprintf(stderr,
                    "%s: the sink sent the records, not where they "
                    "are (a sink older than by-reference reads, or no "
                    "spool path; --direct yes)\n",
                    o->prog);
            goto done;
        }
        /* The next chunk is asked for before this one is written: the
         * sink reads and sends it while the output takes this one. */
        if (!ch->done) {
            asked = s_ask(c, o->job, ch->next_cursor, by_ref);
            sent = true;
        }
        if (ref && (fflush(out) != 0 ||
                    s_copy(sp.fd, ch->cursor, ch->next_cursor - ch->cursor,
                           fileno(out)) != 0)) {
            fprintf(stderr, "%s: copying the records from %s: %s\n", o->prog,
                    ch->spool_path,
                    errno == EIO ? "it ended before the records the sink "
                                   "said it holds"
                                 : strerror(errno));
            goto done;
        }
        if (!ref && ch->records.len &&
            fwrite(ch->records.data, 1, ch->records.len, out) !=
                ch->records.len) {
            fprintf(stderr, "%s: writing the records: %s\n", o->prog,
                    strerror(errno));
            goto done;
        }
        cursor = ch->next_cursor;
        if (ch->done) {
            /* Taken: the copy must be on disk before the sink drops its
             * own (callers take only into a regular file:
             * zp_fetch_take_refused). */
            if (fflush(out) != 0 || (o->take && fsync(fileno(out)) != 0)) {
                fprintf(stderr, "%s: writing the records: %s\n", o->prog,
                        strerror(errno));
                goto done;
            }
            if (o->take && o->path)
                s_sync_dir_of(o->path);
            if (!o->take) {
                rc = 0;
                goto done;
            }
            goto take;
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
    goto done;
take:
    /* A time of its own: the records are written, whatever the wait. */
    rc = s_take(c, o, cursor, zp_mono_us());
    if (rc == -1 && !s_cancelled(o)) {
        rc = zp_stopping() ? 128 + zp_stop_signal() : 3;
        fprintf(stderr,
                "%s: job %s: every record is written, but the sink was not "
                "told that they were taken (%s)\n",
                o->prog, o->job, zp_stopping() ? "interrupted" : "no answer");
    }
done:
    if (out)
        fflush(out);
    if (out && out != o->out && fclose(out) != 0 && rc == 0) {
        fprintf(stderr, "%s: %s: %s\n", o->prog, o->path, strerror(errno));
        rc = 3;
    }
    if (sp.fd >= 0)
        close(sp.fd);
    zp_client_destroy(&c);
    return rc;
}

const char *zp_fetch_take_refused(const char *path, FILE *out)
{
    struct stat st;
    if (path) {
        char dir[4096];
        s_dir_of(path, dir, sizeof dir);
        if (access(dir, W_OK) != 0)
            return "cannot write in FILE's folder";
        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
            return "--take writes a regular file (the sink deletes its copy "
                   "once the records are on disk)";
        return NULL;
    }
    if (fstat(fileno(out), &st) != 0 || !S_ISREG(st.st_mode))
        return "--take writes a regular file (-o FILE, or stdout redirected "
               "to one): the sink deletes its copy once the records are on "
               "disk, which a pipe or a terminal cannot say";
    return NULL;
}
