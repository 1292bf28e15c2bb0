/* sink_store: the output file, the journal, the spools and the durability
 * barrier (see sink_store.h). */
#define _GNU_SOURCE
#include "sink_store.h"
#include "zp_journal.h"
#include "zp_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct zp_store {
    zp_store_config_t cfg;
    FILE *out;
    uint64_t out_offset; /* bytes in the output file */
    zp_journal_t *journal;
    zp_spools_t *spools; /* --spool */
    bool dirty;          /* written since the last sync */
    bool failed;
    /* Journal replay: */
    const zp_store_replay_t *replay;
    void *replay_ctx;
    uint64_t resumed;
    uint64_t out_size; /* the output's size before the replay (rewind) */
    uint64_t beyond;   /* records past it, left out */
};

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

static void s_replay_record(void *ctx, const char *job, uint64_t task, bool ok,
                            uint64_t offset)
{
    zp_store_t *self = ctx;
    /* An output shorter than the journal says lost its tail (a power loss
     * before an unsynced journal's records reached the disk): those
     * records are not there to keep. Offsets only grow, so neither are
     * the ones after. */
    if (self->cfg.rewind && offset > self->out_size) {
        self->beyond++;
        return;
    }
    if (!self->replay->on_record(self->replay_ctx, job, task, ok))
        return;
    if (offset > self->out_offset)
        self->out_offset = offset;
    self->resumed++;
}

/* Opens the output of a journaled sink: a file is cut back to the end of
 * the last record the journal has; a stream is appended to as it is. */
static int s_open_output_journaled(zp_store_t *self)
{
    const zp_store_config_t *cfg = &self->cfg;
    if (strcmp(cfg->output, "-") == 0) {
        self->out = stdout;
        return 0;
    }
    int fd = open(cfg->output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 ||
        (cfg->rewind && ftruncate(fd, (off_t)self->out_offset) != 0)) {
        zp_error("cannot open output %s: %s", cfg->output, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    self->out = fdopen(fd, "a");
    if (!self->out) {
        close(fd);
        return -1;
    }
    return 0;
}

/* With a journal: replays it and opens the output. */
static int s_open_journaled(zp_store_t *self)
{
    const zp_store_config_t *cfg = &self->cfg;
    struct stat st;
    if (cfg->rewind && stat(cfg->output, &st) == 0)
        self->out_size = (uint64_t)st.st_size;
    zp_journal_visitor_t v = {s_replay_open, s_replay_close, s_replay_record};
    char err[512];
    self->journal = zp_journal_open(cfg->journal, &v, self, err, sizeof err);
    if (!self->journal) {
        zp_error("journal: %s", err);
        return -1;
    }
    if (self->beyond)
        zp_warn("journal %s: %llu records are past the end of %s (lost "
                "with the output's unsynced tail); their tasks have no record",
                cfg->journal, (unsigned long long)self->beyond, cfg->output);
    if (!cfg->rewind)
        self->out_offset = 0; /* a stream: offsets count from here */
    return s_open_output_journaled(self);
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
        if (s_open_journaled(self) < 0) {
            zp_store_destroy(&self);
            return NULL;
        }
    } else {
        self->out =
            strcmp(cfg->output, "-") == 0 ? stdout : fopen(cfg->output, "w");
        if (!self->out) {
            zp_error("cannot open output %s: %s", cfg->output, strerror(errno));
            zp_store_destroy(&self);
            return NULL;
        }
    }
    setvbuf(self->out, NULL, _IOFBF, 1 << 20);
    return self;
}

void zp_store_destroy(zp_store_t **self_p)
{
    zp_store_t *self = *self_p;
    if (!self)
        return;
    if (self->out && self->out != stdout)
        fclose(self->out);
    zp_journal_destroy(&self->journal);
    zp_spools_destroy(&self->spools);
    free(self);
    *self_p = NULL;
}

uint64_t zp_store_resumed(const zp_store_t *self)
{
    return self->resumed;
}

uint64_t zp_store_beyond_output(const zp_store_t *self)
{
    return self->beyond;
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

void zp_store_job_opened(zp_store_t *self, const char *job,
                         uint32_t max_attempts, const char *token)
{
    self->dirty = true;
    if (self->journal)
        zp_journal_open_job(self->journal, job, max_attempts, token);
}

void zp_store_job_closed(zp_store_t *self, const char *job, uint64_t total)
{
    self->dirty = true;
    if (self->journal)
        zp_journal_close_job(self->journal, job, total);
}

static void s_write(zp_store_t *self, const void *data, size_t len)
{
    if (len && fwrite(data, 1, len, self->out) != len)
        S_FAIL(self, "writing %s: %s", self->cfg.output, strerror(errno));
}

/* Appends one record to the job's spool, in the journal's order (records
 * are spooled when they are emitted). */
static void s_spool_write(zp_store_t *self, zp_spool_t *spool, const char *job,
                          const void *json, size_t len)
{
    if (zp_spools_append(self->spools, spool, job, json, len) < 0)
        self->failed = true; /* logged */
}

void zp_store_emit(zp_store_t *self, zp_spool_t *spool, const char *job,
                   uint64_t task, bool ok, const void *data, size_t len,
                   const void *json, size_t json_len)
{
    s_write(self, data, len);
    if (self->spools)
        s_spool_write(self, spool, job, json ? json : data,
                      json ? json_len : len);
    self->out_offset += len;
    self->dirty = true;
    if (self->journal &&
        zp_journal_record(self->journal, job, task, ok, self->out_offset) < 0)
        zp_error("journal: out of memory");
}

void zp_store_emit_final(zp_store_t *self, zp_spool_t *spool, const char *job,
                         const void *data, size_t len, const void *json,
                         size_t json_len)
{
    s_write(self, data, len);
    if (self->spools)
        s_spool_write(self, spool, job, json ? json : data,
                      json ? json_len : len);
    self->out_offset += len;
    self->dirty = true;
    fflush(self->out);
}

/* The output, then the journal: a record the journal has is in the
 * output (synced first with --journal-sync yes). */
static int s_sync_journaled(zp_store_t *self)
{
    if (!self->cfg.sync)
        return zp_journal_write(self->journal);
    if (self->cfg.rewind && fdatasync(fileno(self->out)) != 0)
        return -1;
    return zp_journal_sync(self->journal);
}

int zp_store_sync(zp_store_t *self)
{
    if (self->spools && zp_spools_sync(self->spools) < 0) {
        self->failed = true; /* logged */
        return -1;
    }
    if (!self->dirty)
        return 0;
    if (fflush(self->out) != 0 ||
        (self->journal && s_sync_journaled(self) != 0)) {
        S_FAIL(self, "writing %s%s: %s", self->cfg.output,
               self->journal ? " or its journal" : "", strerror(errno));
        return -1;
    }
    self->dirty = false;
    return 0;
}

bool zp_store_unsynced(const zp_store_t *self)
{
    return self->dirty || (self->spools && zp_spools_pending(self->spools));
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
    if (self->spools)
        zp_spools_restore(self->spools, spool, job, records);
}

int zp_store_spool_fd(zp_store_t *self, zp_spool_t *spool, const char *job)
{
    return self->spools ? zp_spools_fd(self->spools, spool, job) : -1;
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

int zp_store_finish(zp_store_t *self)
{
    if (fflush(self->out) != 0)
        self->failed = true;
    return self->failed ? -1 : 0;
}

int zp_store_drop_journal(zp_store_t *self)
{
    if (!self->journal)
        return 0;
    zp_journal_destroy(&self->journal);
    return unlink(self->cfg.journal);
}
