/* zp_plugin: the dlopen loader and its refusal rules. */
#define _GNU_SOURCE
#include "zp_plugin.h"
#include "zp_log.h"
#include "zp_name.h"
#include "zp_util.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef ZPIPE_PLUGIN_RELDIR
#define ZPIPE_PLUGIN_RELDIR "../lib/zpipe/plugins"
#endif
#ifndef ZPIPE_PLUGIN_INSTALL_DIR
#define ZPIPE_PLUGIN_INSTALL_DIR "/usr/local/lib/zpipe/plugins"
#endif

/* The host table one plugin instance sees: the set's template plus the
 * functions that need to know which plugin is asking. */
typedef struct {
    zpipe_host_t host; /* first: plugins get &this->host */
    const zp_plugins_t *set;
    char name[65];
    char init_err[512];
    /* A job's settings, "KEY=VALUE" strings end to end (each NUL-ended,
     * then an empty one); NULL for the worker's own instance. */
    char *job;
} s_host_t;

/* An instance made for a job's settings: the plugin's code, its own host
 * table and state. Cached, least recently used out first. */
#define S_MAX_INSTANCES 16
typedef struct {
    size_t base;  /* index of the loaded plugin */
    char *config; /* the settings text it was made for */
    zp_plugin_t inst;
    char *error; /* init failed: why (then inst.state is unset) */
    uint64_t used;
} s_inst_t;

struct zp_plugins {
    const zpipe_host_t *host;
    const char *const *config; /* "NAME.KEY=VALUE", borrowed */
    size_t n_config;
    s_inst_t inst[S_MAX_INSTANCES];
    size_t n_inst;
    uint64_t tick;
    zp_plugin_t *items;
    size_t count;
    char **dirs; /* resolved; when set, the only places plugins load from */
    size_t ndirs;
    bool skip_init; /* zp_plugins_skip_init */
};

/* Finis and forgets instance k (the last one moves into its place). */
static void s_inst_drop(zp_plugins_t *self, size_t k)
{
    s_inst_t *x = &self->inst[k];
    if (!x->error && x->inst.desc.fini)
        x->inst.desc.fini(x->inst.state);
    s_host_t *h = (s_host_t *)x->inst.host;
    if (h)
        free(h->job);
    free(h);
    free(x->config);
    free(x->error);
    self->inst[k] = self->inst[--self->n_inst];
}

void zp_plugins_skip_init(zp_plugins_t *self)
{
    self->skip_init = true;
}

zp_plugins_t *zp_plugins_new(const zpipe_host_t *host)
{
    zp_plugins_t *self = calloc(1, sizeof *self);
    if (self)
        self->host = host;
    return self;
}

void zp_plugins_destroy(zp_plugins_t **self_p)
{
    zp_plugins_t *self = *self_p;
    if (!self)
        return;
    while (self->n_inst)
        s_inst_drop(self, self->n_inst - 1);
    for (size_t i = self->count; i-- > 0;) {
        zp_plugin_t *p = &self->items[i];
        if (p->desc.fini && p->initialised)
            p->desc.fini(p->state);
        dlclose(p->handle);
        free(p->path);
        free(p->host);
    }
    for (size_t i = 0; i < self->ndirs; i++)
        free(self->dirs[i]);
    free(self->dirs);
    free(self->items);
    free(self);
    *self_p = NULL;
}

static bool s_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Tries dir/NAME.so; returns an owned path or NULL. */
static char *s_try_dir(const char *dir, size_t dirlen, const char *name)
{
    char *path;
    if (asprintf(&path, "%.*s/%s.so", (int)dirlen, dir, name) < 0)
        return NULL;
    if (s_is_file(path))
        return path;
    free(path);
    return NULL;
}

char *zp_plugin_resolve(const char *spec, char *err, size_t errlen)
{
    /* The reason when nothing more specific is found: an allocation. */
    snprintf(err, errlen, "%s: out of memory", spec);
    if (strchr(spec, '/')) {
        if (!s_is_file(spec)) {
            snprintf(err, errlen, "%s: no such plugin file", spec);
            return NULL;
        }
        return strdup(spec);
    }
    const char *env = getenv("ZPIPE_PLUGIN_PATH");
    if (env) {
        const char *p = env;
        while (*p) {
            const char *colon = strchr(p, ':');
            size_t n = colon ? (size_t)(colon - p) : strlen(p);
            if (n) {
                char *hit = s_try_dir(p, n, spec);
                if (hit)
                    return hit;
            }
            if (!colon)
                break;
            p = colon + 1;
        }
    }
    char *exe = zp_exe_dir();
    if (exe) {
        char *dir = zp_path_join(exe, ZPIPE_PLUGIN_RELDIR);
        free(exe);
        char *hit = dir ? s_try_dir(dir, strlen(dir), spec) : NULL;
        free(dir);
        if (hit)
            return hit;
    }
    char *hit = s_try_dir(ZPIPE_PLUGIN_INSTALL_DIR,
                          strlen(ZPIPE_PLUGIN_INSTALL_DIR), spec);
    if (hit)
        return hit;
    snprintf(
        err, errlen,
        "%s: no plugin of that name (looked for %s.so on ZPIPE_PLUGIN_PATH, "
        "beside the binaries and in %s)",
        spec, spec, ZPIPE_PLUGIN_INSTALL_DIR);
    return NULL;
}

int zp_plugins_restrict(zp_plugins_t *self, const char *const *dirs, size_t n,
                        char *err, size_t errlen)
{
    char **real = calloc(n ? n : 1, sizeof *real);
    if (!real) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        real[i] = realpath(dirs[i], NULL);
        if (!real[i] || stat(real[i], &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "%s: cannot use as a plugin directory: %s",
                     dirs[i], real[i] ? "not a directory" : strerror(errno));
            for (size_t j = 0; j <= i; j++)
                free(real[j]);
            free(real);
            return -1;
        }
    }
    for (size_t i = 0; i < self->ndirs; i++)
        free(self->dirs[i]);
    free(self->dirs);
    self->dirs = real;
    self->ndirs = n;
    return 0;
}

/* Resolves spec against the set's directories: a name is looked up in
 * them, a path must lie directly in one of them. */
static char *s_resolve(const zp_plugins_t *self, const char *spec, char *err,
                       size_t errlen)
{
    if (!self->dirs)
        return zp_plugin_resolve(spec, err, errlen);
    if (!strchr(spec, '/')) {
        for (size_t i = 0; i < self->ndirs; i++) {
            char *hit = s_try_dir(self->dirs[i], strlen(self->dirs[i]), spec);
            if (hit)
                return hit;
        }
        snprintf(err, errlen,
                 "%s: no plugin of that name in the plugin directories (%s%s)",
                 spec, self->ndirs ? self->dirs[0] : "none",
                 self->ndirs > 1 ? ", ..." : "");
        return NULL;
    }
    char *real = realpath(spec, NULL);
    if (!real || !s_is_file(real)) {
        snprintf(err, errlen, "%s: no such plugin file", spec);
        free(real);
        return NULL;
    }
    const char *slash = strrchr(real, '/');
    size_t dirlen = (size_t)(slash - real);
    for (size_t i = 0; i < self->ndirs; i++)
        if (strlen(self->dirs[i]) == (dirlen ? dirlen : 1) &&
            strncmp(self->dirs[i], real, dirlen ? dirlen : 1) == 0)
            return real;
    snprintf(err, errlen,
             "%s: not in a plugin directory (this worker loads plugins only "
             "from --plugin-dir)",
             spec);
    free(real);
    return NULL;
}

/* A plugin runs with the worker's rights: refuse a file that someone else
 * could have written, or that sits in a directory where someone else can
 * replace it. */
static int s_check_mode(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, errlen,
                 "%s: refused: the file is %s-writable (mode %03o); "
                 "chmod go-w it",
                 path, st.st_mode & S_IWOTH ? "world" : "group",
                 (unsigned)(st.st_mode & 0777));
        return -1;
    }
    char *dir = strdup(path);
    if (!dir) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    int rc = stat(slash ? dir : ".", &st);
    if (rc == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) &&
        !(st.st_mode & S_ISVTX)) {
        snprintf(err, errlen,
                 "%s: refused: its directory %s is %s-writable (mode %03o) "
                 "so others could replace the file; chmod go-w it",
                 path, slash ? dir : ".",
                 st.st_mode & S_IWOTH ? "world" : "group",
                 (unsigned)(st.st_mode & 0777));
        rc = -1;
    }
    free(dir);
    return rc == 0 ? 0 : -1;
}

int zp_plugins_configure(zp_plugins_t *self, const char *const *pairs, size_t n,
                         char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const char *dot = strchr(pairs[i], '.');
        const char *eq = strchr(pairs[i], '=');
        if (!dot || !eq || dot == pairs[i] || eq < dot + 2) {
            snprintf(err, errlen,
                     "--plugin-config %s: expected PLUGIN.KEY=VALUE", pairs[i]);
            return -1;
        }
    }
    self->config = pairs;
    self->n_config = n;
    return 0;
}

/* ZPIPE_PLUGIN_<NAME>_<KEY>, upper case, '.' and '-' as '_'. */
static const char *s_config_env(const char *name, const char *key)
{
    char var[256];
    int n = snprintf(var, sizeof var, "ZPIPE_PLUGIN_%s_%s", name, key);
    if (n < 0 || (size_t)n >= sizeof var)
        return NULL;
    for (char *c = var; *c; c++)
        *c = *c == '.' || *c == '-'
                 ? '_'
                 : (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
    return getenv(var);
}

static const char *s_host_config(const zpipe_host_t *host, const char *key)
{
    const s_host_t *h = (const s_host_t *)host;
    size_t nl = strlen(h->name), kl = strlen(key);
    const char *hit = NULL;
    /* The job's own settings first. */
    for (const char *c = h->job; c && *c; c += strlen(c) + 1)
        if (strncmp(c, key, kl) == 0 && c[kl] == '=')
            hit = c + kl + 1;
    if (hit)
        return hit;
    /* The last one given wins, as with every repeated option. */
    for (size_t i = 0; i < h->set->n_config; i++) {
        const char *c = h->set->config[i];
        if (strncmp(c, h->name, nl) == 0 && c[nl] == '.' &&
            strncmp(c + nl + 1, key, kl) == 0 && c[nl + 1 + kl] == '=')
            hit = c + nl + 2 + kl;
    }
    return hit ? hit : s_config_env(h->name, key);
}

static void s_host_init_error(const zpipe_host_t *host, const char *message)
{
    s_host_t *h = (s_host_t *)host;
    snprintf(h->init_err, sizeof h->init_err, "%s", message ? message : "");
}

const zp_plugin_t *zp_plugins_load(zp_plugins_t *self, const char *spec,
                                   char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: out of memory", spec); /* unless said */
    char *path = s_resolve(self, spec, err, errlen);
    if (!path)
        return NULL;
    if (s_check_mode(path, err, errlen) < 0)
        goto fail_path;

    dlerror();
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        snprintf(err, errlen, "%s: cannot load: %s", path,
                 why ? why : "unknown error");
        goto fail_path;
    }
    typedef const zpipe_plugin_t *(*entry_fn)(void);
    entry_fn entry;
    void *sym = dlsym(handle, ZPIPE_PLUGIN_ENTRY_SYMBOL);
    memcpy(&entry, &sym, sizeof entry);
    if (!entry) {
        snprintf(err, errlen, "%s: no %s symbol; not a zpipe plugin", path,
                 ZPIPE_PLUGIN_ENTRY_SYMBOL);
        goto fail_handle;
    }
    const zpipe_plugin_t *d = entry();
    if (!d) {
        snprintf(err, errlen, "%s: %s returned no descriptor", path,
                 ZPIPE_PLUGIN_ENTRY_SYMBOL);
        goto fail_handle;
    }
    if (d->abi_major != ZPIPE_ABI_MAJOR) {
        snprintf(err, errlen,
                 "%s: built for plugin ABI %u.%u, this host speaks major %u",
                 path, d->abi_major, d->abi_minor, ZPIPE_ABI_MAJOR);
        goto fail_handle;
    }
    if (d->abi_minor > ZPIPE_ABI_MINOR) {
        snprintf(
            err, errlen,
            "%s: built for plugin ABI %u.%u, newer than this host's %u.%u; "
            "upgrade zpipe or rebuild the plugin",
            path, d->abi_major, d->abi_minor, ZPIPE_ABI_MAJOR, ZPIPE_ABI_MINOR);
        goto fail_handle;
    }
    if (d->struct_size < ZP_PLUGIN_SIZE_1_0 || d->struct_size > sizeof *d) {
        snprintf(err, errlen,
                 "%s: descriptor struct_size %u is not valid for ABI %u.%u "
                 "(expected %zu to %zu)",
                 path, d->struct_size, d->abi_major, d->abi_minor,
                 (size_t)ZP_PLUGIN_SIZE_1_0, sizeof *d);
        goto fail_handle;
    }
    zpipe_plugin_t desc;
    memset(&desc, 0, sizeof desc);
    memcpy(&desc, d, d->struct_size);
    if (!zp_plugin_name_valid(desc.name)) {
        snprintf(err, errlen,
                 "%s: descriptor name is missing or not [A-Za-z0-9_.-]{1,64}",
                 path);
        goto fail_handle;
    }
    if (!desc.reduce != !desc.reduce_final) {
        snprintf(err, errlen,
                 "%s: plugin '%s' has only half a reducer (reduce and "
                 "reduce_final go together)",
                 path, desc.name);
        goto fail_handle;
    }
    if (!desc.process) {
        snprintf(err, errlen, "%s: plugin '%s' has no process callback", path,
                 desc.name);
        goto fail_handle;
    }
    const zp_plugin_t *dup = zp_plugins_find(self, desc.name);
    if (dup) {
        snprintf(err, errlen, "%s: plugin name '%s' is already loaded from %s",
                 path, desc.name, dup->path);
        goto fail_handle;
    }
    s_host_t *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail_handle;
    }
    h->host = *self->host;
    h->host.struct_size = sizeof h->host;
    h->host.abi_major = ZPIPE_ABI_MAJOR;
    h->host.abi_minor = ZPIPE_ABI_MINOR;
    h->host.config = s_host_config;
    h->host.init_error = s_host_init_error;
    h->set = self;
    snprintf(h->name, sizeof h->name, "%s", desc.name);
    void *state = NULL;
    if (desc.init && !self->skip_init) {
        int rc = desc.init(&h->host, &state);
        if (rc != ZPIPE_OK) {
            if (h->init_err[0])
                snprintf(err, errlen, "%s: plugin '%s' init failed: %s", path,
                         desc.name, h->init_err);
            else
                snprintf(err, errlen,
                         "%s: plugin '%s' init failed with status %d", path,
                         desc.name, rc);
            free(h);
            goto fail_handle;
        }
    }
    zp_plugin_t *items =
        realloc(self->items, (self->count + 1) * sizeof *items);
    if (!items) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail_init;
    }
    self->items = items;
    zp_plugin_t *p = &items[self->count++];
    p->path = path;
    p->host = &h->host;
    p->handle = handle;
    p->desc = desc;
    p->state = state;
    p->initialised = !desc.init || !self->skip_init;
    zp_info("plugin %s %s loaded from %s (ABI %u.%u)%s", desc.name,
            desc.version ? desc.version : "?", path, desc.abi_major,
            desc.abi_minor, p->initialised ? "" : ", not initialised here");
    return p;

fail_init:
    if (desc.fini && !self->skip_init)
        desc.fini(state);
    free(h);
fail_handle:
    dlclose(handle);
fail_path:
    free(path);
    return NULL;
}

const zp_plugin_t *zp_plugins_find(const zp_plugins_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (strcmp(self->items[i].desc.name, name) == 0)
            return &self->items[i];
    return NULL;
}

size_t zp_plugins_count(const zp_plugins_t *self)
{
    return self->count;
}

const zp_plugin_t *zp_plugins_at(const zp_plugins_t *self, size_t index)
{
    return index < self->count ? &self->items[index] : NULL;
}

static int s_by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool s_loaded_from(const zp_plugins_t *self, const char *path)
{
    char *real = realpath(path, NULL);
    bool hit = false;
    for (size_t i = 0; real && i < self->count && !hit; i++) {
        char *other = realpath(self->items[i].path, NULL);
        hit = other && strcmp(other, real) == 0;
        free(other);
    }
    free(real);
    return hit;
}

int zp_plugins_load_dir(zp_plugins_t *self, const char *dir, char *err,
                        size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: cannot read plugin directory: %s", dir,
                 strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 4 || e->d_name[0] == '.' ||
            strcmp(e->d_name + len - 3, ".so") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown)
                break;
            names = grown;
        }
        if (asprintf(&names[n], "%s/%s", dir, e->d_name) < 0)
            break;
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, s_by_name);
    int loaded = 0;
    /* A directory's plugins are initialised even where zp_plugins_skip_init
     * is set: one whose init fails must be skipped here, as any refused
     * file is, not stop the executors that would load it by name. */
    bool skip = self->skip_init;
    self->skip_init = false;
    for (size_t i = 0; i < n; i++) {
        char why[1024];
        /* NAME.so whose NAME is loaded already (from an earlier directory)
         * is shadowed, as on a search path; not an error. */
        const char *base = strrchr(names[i], '/') + 1;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(strlen(base) - 3), base);
        const zp_plugin_t *prev = zp_plugins_find(self, name);
        if (s_loaded_from(self, names[i]))
            ;
        else if (prev)
            zp_info("plugin %s: %s is shadowed by %s", name, names[i],
                    prev->path);
        else if (zp_plugins_load(self, names[i], why, sizeof why))
            loaded++;
        else
            zp_error("plugin refused: %s", why);
        free(names[i]);
    }
    self->skip_init = skip;
    free(names);
    return loaded;
}

const char *zp_plugin_init_error(const zp_plugin_t *p)
{
    return ((const s_host_t *)p->host)->init_err;
}

const zp_plugin_t *zp_plugins_instance(zp_plugins_t *self,
                                       const zp_plugin_t *base,
                                       const char *config, char *err,
                                       size_t errlen)
{
    if (!base->initialised) {
        snprintf(err, errlen,
                 "plugin '%s' is not initialised in this process (its "
                 "executors run it)",
                 base->desc.name);
        return NULL;
    }
    if (!config || !*config)
        return base;
    size_t b = (size_t)(base - self->items);
    for (size_t k = 0; k < self->n_inst; k++) {
        s_inst_t *x = &self->inst[k];
        if (x->base == b && strcmp(x->config, config) == 0) {
            x->used = ++self->tick;
            if (x->error) {
                snprintf(err, errlen, "%s", x->error);
                return NULL;
            }
            return &x->inst;
        }
    }
    if (self->n_inst == S_MAX_INSTANCES) {
        size_t lru = 0;
        for (size_t k = 1; k < self->n_inst; k++)
            if (self->inst[k].used < self->inst[lru].used)
                lru = k;
        s_inst_drop(self, lru);
    }
    s_inst_t *x = &self->inst[self->n_inst];
    memset(x, 0, sizeof *x);
    s_host_t *h = calloc(1, sizeof *h);
    size_t cl = strlen(config);
    x->config = strdup(config);
    char *job = h ? malloc(cl + 2) : NULL;
    if (!h || !x->config || !job) {
        free(h);
        free(job);
        free(x->config);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* "K=V\nK=V" -> "K=V\0K=V\0\0" */
    memcpy(job, config, cl + 1);
    job[cl + 1] = '\0';
    for (char *c = job; *c; c++)
        if (*c == '\n')
            *c = '\0';
    *h = *(const s_host_t *)base->host;
    h->job = job;
    h->init_err[0] = '\0';
    x->base = b;
    x->inst = *base;
    x->inst.host = &h->host;
    x->inst.state = NULL;
    x->used = ++self->tick;
    self->n_inst++;
    if (x->inst.desc.init &&
        x->inst.desc.init(&h->host, &x->inst.state) != ZPIPE_OK) {
        if (asprintf(&x->error,
                     "plugin '%s' init failed with the job's settings: %s",
                     base->desc.name,
                     h->init_err[0] ? h->init_err : "no reason given") < 0)
            x->error = NULL;
        snprintf(err, errlen, "%s", x->error ? x->error : "plugin init failed");
        return NULL;
    }
    return &x->inst;
}

char **zp_plugin_settings_for(const char *spec, const char *const *pairs,
                              size_t n)
{
    const char *base = strrchr(spec, '/');
    base = base ? base + 1 : spec;
    size_t bl = strlen(base);
    if (bl > 3 && strcmp(base + bl - 3, ".so") == 0)
        bl -= 3;
    char **out = calloc(n + 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++)
        if (asprintf(&out[i], "%.*s.%s", (int)bl, base, pairs[i]) < 0) {
            while (i-- > 0)
                free(out[i]);
            free(out);
            out = NULL;
        }
    return out;
}
