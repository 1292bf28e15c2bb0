/* zp_plugin: the dlopen loader and its refusal rules. */
#define _GNU_SOURCE
#include "zp_plugin.h"
#include "zp_log.h"
#include "zp_util.h"

#include <dlfcn.h>
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

struct zp_plugins {
    const zpipe_host_t *host;
    zp_plugin_t *items;
    size_t count;
};

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
    for (size_t i = self->count; i-- > 0;) {
        zp_plugin_t *p = &self->items[i];
        if (p->desc.fini)
            p->desc.fini(p->state);
        dlclose(p->handle);
        free(p->path);
    }
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

static bool s_name_ok(const char *name)
{
    if (!name || !*name || strlen(name) > 64)
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
              (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.'))
            return false;
    return true;
}

const zp_plugin_t *zp_plugins_load(zp_plugins_t *self, const char *spec,
                                   char *err, size_t errlen)
{
    char *path = zp_plugin_resolve(spec, err, errlen);
    if (!path)
        return NULL;

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
    if (!s_name_ok(desc.name)) {
        snprintf(err, errlen,
                 "%s: descriptor name is missing or not [A-Za-z0-9_.-]{1,64}",
                 path);
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
    void *state = NULL;
    if (desc.init) {
        int rc = desc.init(self->host, &state);
        if (rc != ZPIPE_OK) {
            snprintf(err, errlen, "%s: plugin '%s' init failed with status %d",
                     path, desc.name, rc);
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
    p->handle = handle;
    p->desc = desc;
    p->state = state;
    zp_info("plugin %s %s loaded from %s (ABI %u.%u)", desc.name,
            desc.version ? desc.version : "?", path, desc.abi_major,
            desc.abi_minor);
    return p;

fail_init:
    if (desc.fini)
        desc.fini(state);
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
