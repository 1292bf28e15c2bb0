/* sink_store: the output file, the journal, the spools and the durability
 * barrier (see sink_store.h). */
#define _GNU_SOURCE
#include "sink_store.h"
#include "sink_disk.h"
#include "zp_idmap.h"
#include "zp_journal.h"
#include "zp_log.h"
#include "zp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct zp_store {
    zp_store_config_t cfg;
    zp_dfile_t *out;     /* NULL with --output none */
    zp_buf_t discard;    /* records for no output and no spool */
    uint64_t out_offset; /* bytes in the output file */
    zp_disk_t disk;      /* a write failed: paused until one succeeds */
    zp_disk_watch_t out_watch, journal_watch; /* deleted or replaced? */
    bool lost; /* the output or the journal is gone */
    zp_journal_t *journal;
    zp_spools_t *spools;  /* --spool */
    zp_foldlogs_t *folds; /* --reduce with a journal */
    bool dirty;           /* written since the last sync */
    bool failed;
    /* Journal replay: */
    const zp_store_replay_t *replay;
    void *replay_ctx;
    uint64_t resumed;
    uint64_t out_size;    /* the output's size before the replay (rewind) */
    uint64_t beyond;      /* records past it (the replay fails) */
    size_t line_at;       /* the replayed line's byte offset in the journal */
    bool damaged;         /* the replay found damage (errno EBADMSG) */
    zp_idmap_t *checks;   /* job id hash -> s_check_t: the last P lines */
    char beyond_why[512]; /* the first line past the output, described */
    /* Compaction: */
    uint64_t compact_last; /* the journal's size after the last one */
    uint64_t compactions;
};

/* A job's last P line (zp_journal.h), until its spool is restored. */
typedef struct {
    zp_spool_check_t check;
    char job[]; /* its id (the map's key is a hash) */
} s_check_t;

/* Logs the first failure only: the sink stops on it. */
#define S_FAIL(self, ...)                                                      \
    do {                                                                       \
        if (!(self)->failed)                                                   \
            zp_error(__VA_ARGS__);                                             \
        (self)->failed = true;                                                 \
    } while (0)

static void s_replay_open(void *ctx, const char *job, uint32_t max_attempts,
                          const char *token)
{
    zp_store_t *self = ctx;
    self->replay->on_open(self->replay_ctx, job, max_attempts, token);
}

static void s_replay_close(void *ctx, const char *job, uint64_t total)
{
    zp_store_t *self = ctx;
    self->replay->on_close(self->replay_ctx, job, total);
}

/* A line of the journal says the output holds more than it does: the
 * output lost its tail (a power loss with --journal-sync no; cut or
 * replaced) or the journal is damaged. Cutting the output back to it
 * would extend it with zeros, and leaving the records out would leave
 * their tasks without a record (the ventilator's --resume-journal skips
 * them): the replay fails (zp_store_new says why). */
static void s_past_output(zp_store_t *self, const char *what, uint64_t offset)
{
    if (self->beyond++)
        return;
    snprintf(self->beyond_why, sizeof self->beyond_why,
             "journal %s: %s at byte offset %zu says the output %s holds "
             "%llu bytes, but it has %llu: the output lost its tail (a power "
             "loss with --journal-sync no, or it was cut or replaced) or the "
             "journal is damaged; nothing was resumed",
             self->cfg.journal, what, self->line_at, self->cfg.output,
             (unsigned long long)offset, (unsigned long long)self->out_size);
}

static void s_replay_record(void *ctx, const char *job, uint64_t task, bool ok,
                            uint64_t offset)
{
    zp_store_t *self = ctx;
    if (self->cfg.rewind && offset > self->out_size) {
        char what[200];
        snprintf(what, sizeof what, "the record of job %s task %llu", job,
                 (unsigned long long)task);
        s_past_output(self, what, offset);
        return;
    }
    if (!self->replay->on_record(self->replay_ctx, job, task, ok))
        return;
    if (offset > self->out_offset)
        self->out_offset = offset;
    self->resumed++;
}

/* A compacted journal's output length: the records of the jobs it
 * summarises end there. */
static void s_replay_offset(void *ctx, uint64_t offset)
{
    zp_store_t *self = ctx;
    if (self->cfg.rewind && offset > self->out_size) {
        s_past_output(self, "the snapshot", offset);
        return;
    }
    if (offset > self->out_offset)
        self->out_offset = offset;
}

static void s_replay_spool(void *ctx, const char *job, uint64_t length,
                           uint32_t crc)
{
    zp_store_t *self = ctx;
    uint64_t id = zp_hash_str(job);
    s_check_t *c = self->checks ? zp_idmap_get(self->checks, id) : NULL;
    if (c && strcmp(c->job, job) == 0) {
        c->check = (zp_spool_check_t){length, crc};
        return;
    }
    size_t jl = strlen(job) + 1;
    if (!self->checks && !(self->checks = zp_idmap_new()))
        goto fail;
    free(c); /* another id with the same hash: that one goes unchecked */
    c = malloc(sizeof *c + jl);
    if (!c || zp_idmap_put(self->checks, id, c) < 0) {
        free(c);
        zp_idmap_remove(self->checks, id);
        goto fail;
    }
    c->check = (zp_spool_check_t){length, crc};
    memcpy(c->job, job, jl);
    return;
fail:
    S_FAIL(self, "journal %s: out of memory", self->cfg.journal);
}

static void s_replay_forgotten(void *ctx, const zp_journal_forgotten_t *job)
{
    zp_store_t *self = ctx;
    if (self->replay->on_forgotten)
        self->replay->on_forgotten(self->replay_ctx, job);
}

static void s_replay_done(void *ctx, const char *job, const char *token,
                          const zp_journal_summary_t *summary)
{
    zp_store_t *self = ctx;
    if (self->replay->on_done)
        self->replay->on_done(self->replay_ctx, job, token, summary);
}

static void s_replay_counts(void *ctx, const char *job,
                            const zp_journal_summary_t *counts)
{
    zp_store_t *self = ctx;
    if (self->replay->on_counts)
        self->replay->on_counts(self->replay_ctx, job, counts);
}

static void s_replay_have(void *ctx, const char *job, uint64_t first,
                          uint64_t count)
{
    zp_store_t *self = ctx;
    if (self->replay->on_have)
        self->replay->on_have(self->replay_ctx, job, first, count);
}

static void s_replay_key(void *ctx, const char *job, const char *key)
{
    zp_store_t *self = ctx;
    if (self->replay->on_key)
        self->replay->on_key(self->replay_ctx, job, key);
}

/* The output's writer on fd (taken), keeping its first offset bytes;
 * watched for deletion when it is a file. */
static int s_open_out(zp_store_t *self, int fd, uint64_t offset)
{
    const char *path = self->cfg.output;
    self->out = zp_dfile_new(path, fd, offset);
    if (!self->out) {
        zp_error("cannot open output %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fd > 2 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        zp_disk_watch_set(&self->out_watch, path);
    return 0;
}

/* Opens the output of a journaled sink: a file is cut back to the end of
 * the last record the journal has; a stream is appended to as it is. */
static int s_open_output_journaled(zp_store_t *self)
{
    const zp_store_config_t *cfg = &self->cfg;
    if (strcmp(cfg->output, "-") == 0)
        return s_open_out(self, 1, 0);
    int fd = open(cfg->output, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    if (fd >= 0 && cfg->rewind && fstat(fd, &st) == 0 &&
        (uint64_t)st.st_size < self->out_offset) {
        /* Never cut "back" forwards: that would fill it with zeros. */
        zp_error("output %s is %llu bytes, shorter than the %llu its journal "
                 "committed: it changed during the replay",
                 cfg->output, (unsigned long long)st.st_size,
                 (unsigned long long)self->out_offset);
        close(fd);
        return -1;
    }
    if (fd < 0 || fstat(fd, &st) != 0) {
        zp_error("cannot open output %s: %s", cfg->output, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* A file is cut back to the journal's end; a stream's offsets count
     * from here. */
    return s_open_out(self, fd,
                      cfg->rewind ? self->out_offset : (uint64_t)st.st_size);
}

/* With a journal: replays it and opens the output. */
static int s_open_journaled(zp_store_t *self)
{
    const zp_store_config_t *cfg = &self->cfg;
    struct stat st;
    if (cfg->rewind && stat(cfg->output, &st) == 0)
        self->out_size = (uint64_t)st.st_size;
    zp_journal_visitor_t v = {
        .on_open = s_replay_open,
        .on_close = s_replay_close,
        .on_record = s_replay_record,
        .on_offset = s_replay_offset,
        .on_forgotten = s_replay_forgotten,
        .on_done = s_replay_done,
        .on_counts = s_replay_counts,
        .on_have = s_replay_have,
        .on_key = s_replay_key,
        .on_spool = s_replay_spool,
        .line_at = &self->line_at,
    };
    char err[512];
    self->journal = zp_journal_open(cfg->journal, &v, self, err, sizeof err);
    if (!self->journal) {
        zp_error("journal: %s", err);
        self->damaged = errno == EBADMSG;
        return -1;
    }
    if (self->beyond) {
        self->damaged = true;
        zp_error("%s (%llu records past its end)", self->beyond_why,
                 (unsigned long long)self->beyond);
        return -1;
    }
    if (!cfg->rewind)
        self->out_offset = 0; /* a stream: offsets count from here */
    self->compact_last = zp_journal_size(self->journal);
    zp_disk_watch_set(&self->journal_watch, cfg->journal);
    return zp_store_output_none(cfg->output) ? 0
                                             : s_open_output_journaled(self);
}

zp_store_t *zp_store_new(const zp_store_config_t *cfg,
                         const zp_store_replay_t *replay, void *ctx)
{
    if (cfg->spool && access(cfg->spool, W_OK | X_OK) != 0) {
        zp_error("spool directory %s: %s", cfg->spool, strerror(errno));
        return NULL;
    }
    zp_store_t *self = calloc(1, sizeof *self);
    if (!self) {
        zp_error("out of memory opening the output");
        return NULL;
    }
    self->cfg = *cfg;
    self->replay = replay;
    self->replay_ctx = ctx;
    if (cfg->spool &&
        !(self->spools = zp_spools_new(cfg->spool, cfg->spool_files,
                                       cfg->journal && cfg->sync))) {
        zp_error("out of memory opening the spools");
        zp_store_destroy(&self);
        return NULL;
    }
    if (cfg->journal) {
        if (s_open_journaled(self) < 0 ||
            (cfg->folds &&
             !(self->folds = zp_foldlogs_new(cfg->folds, cfg->sync)))) {
            int saved = self->damaged ? EBADMSG : 0;
            zp_store_destroy(&self);
            errno = saved;
            return NULL;
        }
    } else if (!zp_store_output_none(cfg->output)) {
        int fd = strcmp(cfg->output, "-") == 0
                     ? 1
                     : open(cfg->output,
                            O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || s_open_out(self, fd, 0) < 0) {
            if (fd < 0)
                zp_error("cannot open output %s: %s", cfg->output,
                         strerror(errno));
            zp_store_destroy(&self);
            return NULL;
        }
    }
    return self;
}

void zp_store_destroy(zp_store_t **self_p)
{
    zp_store_t *self = *self_p;
    if (!self)
        return;
    /* Records the output could not take are not journaled either. */
    if (self->out && zp_dfile_commit(self->out, false) < 0 && self->journal)
        zp_journal_discard(self->journal);
    zp_dfile_destroy(&self->out);
    /* The journal is flushed as it closes: its folded tasks first. */
    if (self->folds && zp_foldlogs_write(self->folds) < 0)
        zp_warn("fold logs: some folded results were not written; a "
                "restart reports their jobs' reductions as failed");
    zp_foldlogs_destroy(&self->folds);
    if (self->cfg.sync)
        zp_journal_destroy(&self->journal);
    else
        zp_journal_destroy_unsynced(&self->journal);
    zp_spools_destroy(&self->spools);
    zp_buf_free(&self->discard);
    size_t cursor = 0;
    uint64_t id;
    void *c;
    while (self->checks && zp_idmap_next(self->checks, &cursor, &id, &c))
        free(c);
    zp_idmap_destroy(&self->checks);
    free(self);
    *self_p = NULL;
}

uint64_t zp_store_resumed(const zp_store_t *self)
{
    return self->resumed;
}

uint64_t zp_store_offset(const zp_store_t *self)
{
    return self->out_offset;
}

bool zp_store_journaled(const zp_store_t *self)
{
    return self->journal != NULL;
}

bool zp_store_failed(const zp_store_t *self)
{
    return self->failed;
}

bool zp_store_lost(const zp_store_t *self)
{
    return self->lost;
}

const zp_disk_t *zp_store_disk(const zp_store_t *self)
{
    return &self->disk;
}

bool zp_store_paused(const zp_store_t *self)
{
    return zp_disk_paused(&self->disk);
}

/* A write of path failed (errno): the store pauses (sink_disk.h), or
 * fails for good when the file was cut short under it (ESTALE). */
static void s_io_failed(zp_store_t *self, const char *path)
{
    if (errno == ESTALE) {
        S_FAIL(self,
               "%s is shorter than what the sink wrote to it (cut by "
               "something else): the records committed to it are lost; the "
               "run fails",
               path);
        self->lost = true;
        return;
    }
    zp_disk_failed(&self->disk, path, errno, zp_mono_us());
}

void zp_store_job_opened(zp_store_t *self, const char *job,
                         uint32_t max_attempts, const char *token)
{
    self->dirty = true;
    if (self->journal)
        zp_journal_open_job(self->journal, job, max_attempts, token);
}

void zp_store_job_keyed(zp_store_t *self, const char *job, const char *key)
{
    self->dirty = true;
    if (self->journal)
        zp_journal_key(self->journal, job, key);
}

void zp_store_job_closed(zp_store_t *self, const char *job, uint64_t total)
{
    self->dirty = true;
    if (self->journal)
        zp_journal_close_job(self->journal, job, total);
}

bool zp_store_output_none(const char *output)
{
    return strcmp(output, ZP_STORE_NO_OUTPUT) == 0;
}

bool zp_store_has_output(const zp_store_t *self)
{
    return self->out != NULL;
}

zp_buf_t *zp_store_record_buf(zp_store_t *self, zp_spool_t *spool,
                              const char *job)
{
    if (self->out)
        return zp_dfile_buf(self->out);
    if (!self->spools) {
        self->discard.len = 0; /* records go nowhere */
        return &self->discard;
    }
    zp_buf_t *b = zp_spools_buf(self->spools, spool, job);
    if (!b)
        self->failed = true; /* logged */
    return b;
}

/* The output got a record of len bytes, the job's spool (with spools)
 * spooled: written once a megabyte piled up (not while paused: the
 * barrier's retry does that), else buffered until the barrier. */
static void s_out_emitted(zp_store_t *self, zp_spool_t *spool, const char *job,
                          size_t len, const void *spooled, size_t spooled_len)
{
    if (self->spools &&
        zp_spools_append(self->spools, spool, job, spooled, spooled_len) < 0)
        self->failed = true; /* logged */
    self->out_offset += len;
    if (zp_dfile_full(self->out) && !zp_disk_paused(&self->disk) &&
        zp_dfile_write(self->out) < 0)
        s_io_failed(self, self->cfg.output);
}

/* A record was written: to the journal, with the output's length. */
static void s_journal_emitted(zp_store_t *self, const char *job, uint64_t task,
                              bool ok)
{
    self->dirty = true;
    if (self->journal &&
        zp_journal_record(self->journal, job, task, ok, self->out_offset) < 0)
        zp_error("journal: out of memory");
}

void zp_store_emit_rendered(zp_store_t *self, zp_spool_t *spool,
                            const char *job, uint64_t task, bool ok,
                            size_t from, const void *json, size_t json_len)
{
    if (self->out) {
        const zp_buf_t *b = zp_dfile_buf(self->out);
        size_t len = b->len - from;
        s_out_emitted(self, spool, job, len, json ? json : b->data + from,
                      json ? json_len : len);
    } else if (self->spools) {
        /* The spool is the output: the record was rendered into it. */
        zp_spools_appended(self->spools, spool, from);
    }
    s_journal_emitted(self, job, task, ok);
}

int zp_store_emit_ref(zp_store_t *self, zp_spool_t *spool, const char *job,
                      uint64_t task, bool ok, const void *data, size_t len,
                      const void *tail, size_t tail_len, const void *json,
                      size_t json_len, zp_dfile_release_fn *release, void *hint)
{
    if (!self->out || zp_disk_paused(&self->disk) || (self->spools && !json))
        return -1;
    zp_buf_t *b = zp_dfile_buf(self->out);
    /* Room for the tail first: once the reference is taken, the tail
     * cannot fail. */
    if (zp_buf_reserve(b, tail_len) < 0 ||
        zp_dfile_append_ref(self->out, data, len, release, hint) < 0)
        return -1;
    zp_buf_append(b, tail, tail_len);
    s_out_emitted(self, spool, job, len + tail_len, json, json_len);
    s_journal_emitted(self, job, task, ok);
    return 0;
}

void zp_store_emit(zp_store_t *self, zp_spool_t *spool, const char *job,
                   uint64_t task, bool ok, const void *data, size_t len,
                   const void *json, size_t json_len)
{
    if (!self->out && json) { /* only the spool's rendering is kept */
        data = json;
        len = json_len;
        json = NULL;
    }
    zp_buf_t *b = zp_store_record_buf(self, spool, job);
    if (!b)
        return;
    size_t from = b->len;
    if (zp_buf_append(b, data, len) < 0) {
        S_FAIL(self, "writing the record of job %s task %llu: out of memory",
               job, (unsigned long long)task);
        return;
    }
    zp_store_emit_rendered(self, spool, job, task, ok, from, json, json_len);
}

void zp_store_emit_final(zp_store_t *self, zp_spool_t *spool, const char *job,
                         uint64_t total, bool ok, const void *data, size_t len,
                         const void *json, size_t json_len)
{
    zp_store_emit(self, spool, job, total, ok, data, len, json, json_len);
    if (self->out && !zp_disk_paused(&self->disk) &&
        zp_dfile_write(self->out) < 0)
        s_io_failed(self, self->cfg.output);
}

zp_foldlogs_t *zp_store_folds(const zp_store_t *self)
{
    return self->folds;
}

void zp_store_fold(zp_store_t *self, zp_foldlog_t *log, const char *job,
                   uint64_t task, const void *data, size_t len)
{
    /* Not kept: not acknowledged either (the store stops the sink). A job
     * without a fold log (it could not be made) still journals its
     * record: a restart then finds the log short and says the reduction
     * failed, instead of never hearing of the task again. */
    if (log && zp_foldlogs_append(self->folds, log, task, data, len) < 0) {
        S_FAIL(self, "job %s: out of memory keeping task %llu's folded result",
               job, (unsigned long long)task);
        return;
    }
    self->dirty = true;
    if (self->journal &&
        zp_journal_record(self->journal, job, task, true, self->out_offset) < 0)
        S_FAIL(self, "journal: out of memory");
}

/* A spool made durable that grew: its length and checksum journaled. */
static int s_journal_spool(void *ctx, zp_spool_t *spool)
{
    zp_store_t *self = ctx;
    if (spool->journaled == spool->len)
        return 0;
    spool->journaled = spool->len;
    return zp_journal_spool(self->journal, spool->job, spool->len, spool->crc);
}

/* The output, then the journal: a record the journal has is in the
 * output (synced first with --journal-sync yes). A failure pauses the
 * store, naming the file. */
static int s_sync_files(zp_store_t *self)
{
    bool sync = self->journal && self->cfg.sync && self->cfg.rewind;
    if (self->out && zp_dfile_commit(self->out, sync) < 0) {
        s_io_failed(self, self->cfg.output);
        return -1;
    }
    if (!self->journal)
        return 0;
    if ((self->cfg.sync ? zp_journal_sync(self->journal)
                        : zp_journal_write(self->journal)) < 0) {
        s_io_failed(self, self->cfg.journal);
        return -1;
    }
    return 0;
}

/* Whether the output and the journal are still the files the store
 * opened; if not, the store has failed for good (logged). */
static bool s_files_kept(zp_store_t *self)
{
    char why[256];
    const zp_disk_watch_t *w[] = {&self->out_watch, &self->journal_watch};
    for (int i = 0; i < 2; i++)
        if (!zp_disk_watch_ok(w[i], why, sizeof why)) {
            S_FAIL(self,
                   "%s %s %s while the sink was writing it: the records "
                   "committed to it are lost; the run fails",
                   i ? "journal" : "output", w[i]->path, why);
            self->lost = true;
            return false;
        }
    return true;
}

int zp_store_sync(zp_store_t *self)
{
    uint64_t now = zp_mono_us();
    if (zp_disk_paused(&self->disk) && !zp_disk_retry_due(&self->disk, now)) {
        errno = EAGAIN;
        return -1; /* paused: tried again once the backoff is over */
    }
    if (!s_files_kept(self))
        return -1;
    /* A task the journal has is in its job's fold log: those first. */
    if (self->spools && zp_spools_sync(self->spools) < 0) {
        s_io_failed(self, zp_spools_failed_path(self->spools));
        return -1;
    }
    if (self->folds && zp_foldlogs_write(self->folds) < 0) {
        self->failed = true; /* logged */
        return -1;
    }
    if (self->spools && self->journal &&
        zp_spools_each_pending(self->spools, s_journal_spool, self) != 0) {
        S_FAIL(self, "journal: out of memory");
        return -1;
    }
    if (self->dirty && s_sync_files(self) < 0)
        return -1;
    zp_disk_recovered(&self->disk, now);
    if (!self->dirty)
        return 0;
    self->dirty = false;
    /* The final records of the retired logs' jobs are durable now. */
    if (self->folds)
        zp_foldlogs_collect(self->folds);
    return 0;
}

bool zp_store_unsynced(const zp_store_t *self)
{
    return self->dirty || (self->spools && zp_spools_pending(self->spools)) ||
           (self->folds && zp_foldlogs_pending(self->folds));
}

void zp_store_publish(zp_store_t *self, zp_spool_published_fn *published,
                      void *ctx)
{
    if (self->spools)
        zp_spools_publish(self->spools, published, ctx);
}

void zp_store_spool_restore(zp_store_t *self, zp_spool_t *spool,
                            const char *job, uint64_t records)
{
    if (!self->spools)
        return;
    s_check_t *c =
        self->checks ? zp_idmap_remove(self->checks, zp_hash_str(job)) : NULL;
    const zp_spool_check_t *check =
        c && strcmp(c->job, job) == 0 ? &c->check : NULL;
    if (zp_spools_restore(self->spools, spool, job, records, check) < 0)
        self->failed = true; /* logged: the sink stops */
    free(c);
}

int zp_store_spool_fd(zp_store_t *self, zp_spool_t *spool, const char *job)
{
    return self->spools ? zp_spools_fd(self->spools, spool, job) : -1;
}

int zp_store_spool_open_read(const zp_store_t *self, const char *job)
{
    if (!self->spools) {
        errno = ENOENT;
        return -1;
    }
    return zp_spools_open_read(self->spools, job);
}

int zp_store_spool_remove(zp_store_t *self, zp_spool_t *spool, const char *job)
{
    if (!self->spools) {
        errno = ENOENT;
        return -1;
    }
    return zp_spools_remove(self->spools, spool, job);
}

bool zp_store_spool_recheck(zp_store_t *self, zp_spool_t *spool,
                            const char *job)
{
    return self->spools && zp_spools_recheck(self->spools, spool, job);
}

size_t zp_store_spools_gone(const zp_store_t *self)
{
    return self->spools ? zp_spools_gone(self->spools) : 0;
}

bool zp_store_spool_path(zp_store_t *self, const char *job, char *path,
                         size_t cap)
{
    return self->spools && zp_spools_path(self->spools, job, path, cap);
}

void zp_store_spool_close(zp_store_t *self, zp_spool_t *spool)
{
    if (self->spools && zp_spools_close(self->spools, spool) < 0)
        self->failed = true; /* logged */
}

size_t zp_store_spools_open(const zp_store_t *self)
{
    return self->spools ? zp_spools_open(self->spools) : 0;
}

bool zp_store_compact_policy(uint64_t size, uint64_t last, uint64_t threshold)
{
    return threshold && size >= threshold && size / 2 >= last;
}

bool zp_store_compact_due(const zp_store_t *self)
{
    return self->journal && !self->failed &&
           zp_store_compact_policy(zp_journal_size(self->journal),
                                   self->compact_last, self->cfg.compact);
}

/* What the store's part of a snapshot is, then the caller's. */
typedef struct {
    zp_store_t *store;
    zp_journal_dump_fn *dump;
    void *ctx;
} s_dump_t;

static int s_dump(void *ctx, zp_journal_t *out)
{
    s_dump_t *d = ctx;
    if (zp_journal_put_offset(out, d->store->out_offset) < 0)
        return -1;
    return d->dump(d->ctx, out);
}

int zp_store_compact(zp_store_t *self, zp_journal_dump_fn *dump, void *ctx)
{
    if (!self->journal || self->failed || self->dirty ||
        zp_disk_paused(&self->disk))
        return -1;
    uint64_t before = zp_journal_size(self->journal);
    /* The snapshot says the output holds out_offset bytes: make it so
     * (already, when the barrier syncs it). */
    if (self->out && self->cfg.rewind && !self->cfg.sync &&
        zp_dfile_commit(self->out, true) < 0) {
        s_io_failed(self, self->cfg.output);
        return -1;
    }
    s_dump_t d = {self, dump, ctx};
    if (zp_journal_compact(self->journal, s_dump, &d) < 0) {
        zp_warn("journal %s: cannot compact it (%s); it stays as it is, "
                "tried again once it has grown as much",
                self->cfg.journal, errno ? strerror(errno) : "out of memory");
        self->compact_last = before; /* wait for as much again */
        return -1;
    }
    self->compact_last = zp_journal_size(self->journal);
    self->compactions++;
    zp_disk_watch_set(&self->journal_watch, self->cfg.journal); /* renamed */
    return 0;
}

uint64_t zp_store_journal_size(const zp_store_t *self)
{
    return self->journal ? zp_journal_size(self->journal) : 0;
}

uint64_t zp_store_compactions(const zp_store_t *self, uint64_t *last_size)
{
    if (last_size)
        *last_size = self->compact_last;
    return self->compactions;
}

int zp_store_finish(zp_store_t *self)
{
    if (!s_files_kept(self))
        return -1;
    if (self->out && zp_dfile_commit(self->out, false) < 0) {
        zp_error("writing %s: %s; the records not written are not "
                 "journaled either",
                 self->cfg.output, strerror(errno));
        self->failed = true;
    }
    if (self->folds && zp_foldlogs_write(self->folds) < 0)
        self->failed = true;
    return self->failed ? -1 : 0;
}

int zp_store_drop_journal(zp_store_t *self)
{
    if (!self->journal)
        return 0;
    zp_journal_destroy(&self->journal);
    self->journal_watch.set = false;
    if (self->folds && zp_foldlogs_drop(self->folds) < 0 && errno != ENOENT)
        zp_warn("fold logs %s: cannot remove the directory: %s",
                self->cfg.folds, strerror(errno));
    return unlink(self->cfg.journal);
}
