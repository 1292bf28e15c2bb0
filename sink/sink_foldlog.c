/* sink_foldlog: the reduced jobs' fold logs (see sink_foldlog.h). */
#define _GNU_SOURCE
#include "sink_foldlog.h"
#include "zp_crc32c.h"
#include "zp_journal.h"
#include "zp_log.h"
#include "zp_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAGIC       "zpfold1\n"
#define S_MAGIC_LEN   8
#define S_HEAD        16 /* a record's task, len and crc */
#define S_PLUGIN_TASK UINT64_MAX

struct zp_foldlog {
    zp_foldlog_t *prev, *next; /* the live logs */
    zp_buf_t buf;              /* appended, not yet written */
    bool exists;               /* its file was made (else emptied first) */
    char job[129];
};

struct zp_foldlogs {
    char *dir;
    bool sync;
    zp_foldlog_t *head;
    size_t pending;       /* bytes in every buf */
    char (*retired)[129]; /* jobs whose files go at the next collect */
    size_t n_retired, cap_retired;
};

static void s_put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t s_get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* DIR/JOB.fold into path (cap bytes); false when it does not fit. */
static bool s_path(const zp_foldlogs_t *self, const char *job, char *path,
                   size_t cap)
{
    int n = snprintf(path, cap, "%s/%s.fold", self->dir, job);
    return n > 0 && (size_t)n < cap;
}

/* fsyncs a directory. */
static int s_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* With sync: dir's entry in its parent is made durable. */
static int s_sync_parent(const char *dir)
{
    char *copy = strdup(dir);
    if (!copy)
        return -1;
    char *slash = strrchr(copy, '/');
    const char *parent = ".";
    if (slash == copy)
        parent = "/";
    else if (slash) {
        *slash = '\0';
        parent = copy;
    }
    int rc = s_sync_dir(parent);
    free(copy);
    return rc;
}

zp_foldlogs_t *zp_foldlogs_new(const char *dir, bool sync)
{
    zp_foldlogs_t *self = calloc(1, sizeof *self);
    if (!self || !(self->dir = strdup(dir))) {
        zp_error("fold logs %s: out of memory", dir);
        free(self);
        return NULL;
    }
    self->sync = sync;
    if (mkdir(dir, 0755) == 0) {
        if (sync && s_sync_parent(dir) < 0) {
            zp_error("fold logs %s: cannot sync its parent directory: %s", dir,
                     strerror(errno));
            zp_foldlogs_destroy(&self);
        }
    } else if (errno != EEXIST) {
        zp_error("fold logs %s: cannot make the directory: %s", dir,
                 strerror(errno));
        zp_foldlogs_destroy(&self);
    }
    return self;
}

static void s_free_log(zp_foldlog_t *log)
{
    zp_buf_free(&log->buf);
    free(log);
}

void zp_foldlogs_destroy(zp_foldlogs_t **self_p)
{
    zp_foldlogs_t *self = *self_p;
    if (!self)
        return;
    while (self->head) {
        zp_foldlog_t *next = self->head->next;
        s_free_log(self->head);
        self->head = next;
    }
    free(self->retired);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

/* Appends one record to b; -1 when out of memory or too long. */
static int s_record(zp_buf_t *b, uint64_t task, const void *data, size_t len)
{
    if (len > UINT32_MAX || zp_buf_reserve(b, S_HEAD + len) < 0)
        return -1;
    uint8_t h[S_HEAD];
    s_put_le(h, task, 8);
    s_put_le(h + 8, len, 4);
    uint32_t crc = zp_crc32c(zp_crc32c(0, h, 12), data, len);
    s_put_le(h + 12, crc, 4);
    zp_buf_append(b, h, S_HEAD); /* reserved: cannot fail */
    zp_buf_append(b, data, len);
    return 0;
}

static zp_foldlog_t *s_new_log(zp_foldlogs_t *self, const char *job)
{
    if (!zp_job_id_valid(job))
        return NULL;
    zp_foldlog_t *log = calloc(1, sizeof *log);
    if (!log)
        return NULL;
    snprintf(log->job, sizeof log->job, "%s", job);
    log->next = self->head;
    if (self->head)
        self->head->prev = log;
    self->head = log;
    return log;
}

static void s_unlink_log(zp_foldlogs_t *self, zp_foldlog_t *log)
{
    if (log->prev)
        log->prev->next = log->next;
    else
        self->head = log->next;
    if (log->next)
        log->next->prev = log->prev;
    self->pending -= log->buf.len;
}

zp_foldlog_t *zp_foldlogs_create(zp_foldlogs_t *self, const char *job,
                                 const char *plugin)
{
    size_t pl = strlen(plugin);
    if (pl > ZP_FOLDLOG_MAX_PLUGIN)
        return NULL;
    zp_foldlog_t *log = s_new_log(self, job);
    if (!log)
        return NULL;
    if (zp_buf_append(&log->buf, S_MAGIC, S_MAGIC_LEN) < 0 ||
        s_record(&log->buf, S_PLUGIN_TASK, plugin, pl) < 0) {
        s_unlink_log(self, log);
        s_free_log(log);
        return NULL;
    }
    self->pending += log->buf.len;
    return log;
}

int zp_foldlogs_append(zp_foldlogs_t *self, zp_foldlog_t *log, uint64_t task,
                       const void *data, size_t len)
{
    if (s_record(&log->buf, task, data, len) < 0)
        return -1;
    self->pending += S_HEAD + len;
    return 0;
}

size_t zp_foldlogs_pending(const zp_foldlogs_t *self)
{
    return self->pending;
}

/* Writes what log buffered; *made: its file was made. */
static int s_write_log(zp_foldlogs_t *self, zp_foldlog_t *log, bool *made)
{
    char path[4096 + 160];
    if (!s_path(self, log->job, path, sizeof path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC;
    int fd = open(path, log->exists ? flags : flags | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    int rc = zp_write_all(fd, log->buf.data, log->buf.len);
    if (rc == 0 && self->sync)
        rc = fdatasync(fd);
    int e = errno;
    close(fd);
    errno = e;
    if (rc < 0)
        return -1;
    *made |= !log->exists;
    log->exists = true;
    self->pending -= log->buf.len;
    log->buf.len = 0;
    return 0;
}

int zp_foldlogs_write(zp_foldlogs_t *self)
{
    if (!self->pending)
        return 0;
    bool made = false;
    for (zp_foldlog_t *log = self->head; log; log = log->next) {
        if (log->buf.len && s_write_log(self, log, &made) < 0) {
            zp_error("fold log %s/%s.fold: cannot write it: %s", self->dir,
                     log->job, strerror(errno));
            return -1;
        }
    }
    if (made && self->sync && s_sync_dir(self->dir) < 0) {
        zp_error("fold logs %s: cannot sync the directory: %s", self->dir,
                 strerror(errno));
        return -1;
    }
    return 0;
}

void zp_foldlogs_retire(zp_foldlogs_t *self, zp_foldlog_t **log_p)
{
    zp_foldlog_t *log = *log_p;
    if (!log)
        return;
    *log_p = NULL;
    s_unlink_log(self, log);
    if (self->n_retired == self->cap_retired) {
        size_t cap = self->cap_retired ? 2 * self->cap_retired : 8;
        void *r = realloc(self->retired, cap * sizeof *self->retired);
        if (r) {
            self->retired = r;
            self->cap_retired = cap;
        }
    }
    if (self->n_retired < self->cap_retired)
        memcpy(self->retired[self->n_retired++], log->job, sizeof log->job);
    else /* removed as stale by the next start */
        zp_warn("fold log %s/%s.fold: out of memory; it stays until the "
                "sink restarts",
                self->dir, log->job);
    s_free_log(log);
}

size_t zp_foldlogs_collect(zp_foldlogs_t *self)
{
    size_t failed = 0;
    for (size_t i = 0; i < self->n_retired; i++)
        if (zp_foldlogs_remove(self, self->retired[i]) < 0 && errno != ENOENT) {
            zp_warn("fold log %s/%s.fold: cannot remove it: %s", self->dir,
                    self->retired[i], strerror(errno));
            failed++;
        }
    self->n_retired = 0;
    return failed;
}

long zp_foldlogs_scan(zp_foldlogs_t *self,
                      void (*fn)(void *ctx, const char *job), void *ctx)
{
    DIR *d = opendir(self->dir);
    if (!d) {
        zp_error("fold logs %s: cannot read the directory: %s", self->dir,
                 strerror(errno));
        return -1;
    }
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        char job[129];
        if (len <= 5 || len - 5 >= sizeof job ||
            strcmp(e->d_name + len - 5, ".fold") != 0)
            continue;
        memcpy(job, e->d_name, len - 5);
        job[len - 5] = '\0';
        if (!zp_job_id_valid(job))
            continue;
        n++;
        fn(ctx, job);
    }
    closedir(d);
    return n;
}

/* Reads one record at f's position into *data (grown as needed); returns
 * 1 with *task and *len, 0 at a torn or bad record (or the end), -1 when
 * out of memory. left: the bytes the file has from here. */
static int s_read_record(FILE *f, uint64_t left, zp_buf_t *data, uint64_t *task,
                         size_t *len)
{
    uint8_t h[S_HEAD];
    if (left < S_HEAD || fread(h, 1, S_HEAD, f) != S_HEAD)
        return 0;
    *task = s_get_le(h, 8);
    *len = (size_t)s_get_le(h + 8, 4);
    if (*len > left - S_HEAD)
        return 0;
    data->len = 0;
    if (zp_buf_reserve(data, *len + 1) < 0)
        return -1;
    if (fread(data->data, 1, *len, f) != *len)
        return 0;
    data->len = *len;
    uint32_t crc = zp_crc32c(zp_crc32c(0, h, 12), data->data, *len);
    return crc == (uint32_t)s_get_le(h + 12, 4);
}

/* Reads the magic and the plugin record; 1 when whole (plugin set), 0
 * when torn, -1 when out of memory. */
static int s_read_header(FILE *f, uint64_t size, zp_buf_t *data, char *plugin)
{
    char magic[S_MAGIC_LEN];
    if (size < S_MAGIC_LEN || fread(magic, 1, S_MAGIC_LEN, f) != S_MAGIC_LEN ||
        memcmp(magic, S_MAGIC, S_MAGIC_LEN) != 0)
        return 0;
    uint64_t task;
    size_t len;
    int r = s_read_record(f, size - S_MAGIC_LEN, data, &task, &len);
    if (r <= 0)
        return r;
    if (task != S_PLUGIN_TASK || len > ZP_FOLDLOG_MAX_PLUGIN)
        return 0;
    memcpy(plugin, data->data, len);
    plugin[len] = '\0';
    return 1;
}

/* Reads the records after the header through v; *valid: the end of the
 * last whole one. Returns 0, or -1 when out of memory. */
static int s_read_entries(FILE *f, uint64_t size, zp_buf_t *data,
                          const zp_foldlog_visitor_t *v, void *ctx,
                          uint64_t *valid)
{
    for (;;) {
        uint64_t task;
        size_t len;
        int r = s_read_record(f, size - *valid, data, &task, &len);
        if (r <= 0)
            return r;
        if (task != S_PLUGIN_TASK && !v->on_entry(ctx, task, data->data, len))
            return 0; /* cut here */
        *valid += S_HEAD + len;
    }
}

/* Replays an open file f of size bytes for job; the log, or NULL. */
static zp_foldlog_t *s_resume(zp_foldlogs_t *self, const char *job,
                              const char *path, FILE *f, uint64_t size,
                              const zp_foldlog_visitor_t *v, void *ctx,
                              uint64_t *torn)
{
    zp_buf_t data = {0};
    char plugin[ZP_FOLDLOG_MAX_PLUGIN + 1];
    zp_foldlog_t *log = NULL;
    int h = s_read_header(f, size, &data, plugin);
    if (h == 0) {
        zp_info("fold log %s: its header is torn (the job's open was never "
                "acknowledged); removed",
                path);
        unlink(path);
        goto done;
    }
    if (h < 0 || !v->on_plugin(ctx, plugin))
        goto done;
    uint64_t valid = (uint64_t)ftell(f);
    if (s_read_entries(f, size, &data, v, ctx, &valid) < 0) {
        zp_error("fold log %s: out of memory reading it", path);
        goto done;
    }
    if (valid < size && ftruncate(fileno(f), (off_t)valid) != 0) {
        zp_error("fold log %s: cannot cut its torn tail: %s", path,
                 strerror(errno));
        goto done;
    }
    if (torn)
        *torn = size - valid;
    log = s_new_log(self, job);
    if (log)
        log->exists = true;
    else
        zp_error("fold log %s: out of memory", path);
done:
    zp_buf_free(&data);
    return log;
}

zp_foldlog_t *zp_foldlogs_resume(zp_foldlogs_t *self, const char *job,
                                 const zp_foldlog_visitor_t *v, void *ctx,
                                 uint64_t *torn)
{
    char path[4096 + 160];
    if (torn)
        *torn = 0;
    if (!zp_job_id_valid(job) || !s_path(self, job, path, sizeof path))
        return NULL;
    FILE *f = fopen(path, "r+be");
    if (!f) {
        if (errno != ENOENT)
            zp_error("fold log %s: cannot open it: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    zp_foldlog_t *log = NULL;
    if (fstat(fileno(f), &st) == 0)
        log = s_resume(self, job, path, f, (uint64_t)st.st_size, v, ctx, torn);
    else
        zp_error("fold log %s: %s", path, strerror(errno));
    fclose(f);
    return log;
}

int zp_foldlogs_remove(zp_foldlogs_t *self, const char *job)
{
    char path[4096 + 160];
    if (!s_path(self, job, path, sizeof path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return unlink(path);
}

int zp_foldlogs_drop(zp_foldlogs_t *self)
{
    zp_foldlogs_collect(self);
    return rmdir(self->dir);
}
