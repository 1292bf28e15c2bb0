/* zp_plugin: finding, loading, validating and unloading task plugins.
 *
 * A set holds every plugin a process loaded; each is opened with
 * RTLD_NOW | RTLD_LOCAL and checked against the ABI rules in
 * <zpipe/plugin.h> before its init runs. A file that is group- or
 * world-writable, or in a directory others may write to (without the
 * sticky bit), is refused before it is opened. A refusal is one line naming the
 * file and the reason. */
#ifndef ZP_PLUGIN_H
#define ZP_PLUGIN_H

#include <zpipe/plugin.h>

#include <stdbool.h>
#include <stddef.h>

/* One loaded plugin. desc is a zero-padded copy of the plugin's descriptor,
 * so fields appended after the plugin's minor read as NULL/0. */
typedef struct {
    char *path;
    zpipe_host_t *host; /* the table this instance's init was given */
    void *handle;
    zpipe_plugin_t desc;
    void *state;      /* from init */
    bool initialised; /* init ran (or there is none): fini is owed */
} zp_plugin_t;

typedef struct zp_plugins zp_plugins_t;

/* host is borrowed and must outlive the set. Caller owns the result. */
zp_plugins_t *zp_plugins_new(const zpipe_host_t *host);
/* Runs fini on every plugin, closes them; nulls the caller's pointer. */
void zp_plugins_destroy(zp_plugins_t **self_p);

/* Resolves spec (a path containing '/', or a name looked up as NAME.so on
 * ZPIPE_PLUGIN_PATH, then beside the binaries, then the install dir).
 * Caller owns the result; NULL with err set when nothing is found. */
char *zp_plugin_resolve(const char *spec, char *err, size_t errlen);

/* Settings for plugins' host->config: pairs "PLUGIN.KEY=VALUE" (borrowed;
 * must outlive the set), read by every later load. Returns 0, or -1 with
 * err naming a pair that is not of that form. */
int zp_plugins_configure(zp_plugins_t *self, const char *const *pairs, size_t n,
                         char *err, size_t errlen);

/* Settings "KEY=VALUE" meant for the plugin spec (a name or a path), as
 * the "NAME.KEY=VALUE" pairs zp_plugins_configure takes; NAME is the file
 * name without ".so", by custom the descriptor's name. Caller owns the
 * array of n strings and each string; NULL when out of memory. */
char **zp_plugin_settings_for(const char *spec, const char *const *pairs,
                              size_t n);

/* Restricts every later load to files directly inside dirs (compared
 * after resolving symbolic links): names are looked up only there and a
 * path elsewhere is refused. Returns 0, or -1 with err naming a directory
 * that cannot be used. */
int zp_plugins_restrict(zp_plugins_t *self, const char *const *dirs, size_t n,
                        char *err, size_t errlen);

/* Loads after this open and validate plugins but do not run their init
 * (nor, at destroy, their fini): for a process that only checks and names
 * its plugins while others run them (a worker whose executors run the
 * tasks), so an interpreter or a model is not started where no task runs.
 * zp_plugins_instance then refuses such a plugin. zp_plugins_load_dir
 * still initialises what it finds (a bad file must be skipped there). */
void zp_plugins_skip_init(zp_plugins_t *self);

/* Loads every NAME.so in dir, in name order, skipping files already
 * loaded and names already loaded (shadowed, as on a search path). A refused
 * file is logged (file and reason) and skipped, so one bad file does not stop
 * the others. Returns how many were loaded, or -1 with err set when dir cannot
 * be read. */
int zp_plugins_load_dir(zp_plugins_t *self, const char *dir, char *err,
                        size_t errlen);

/* Resolves, opens, validates and initialises spec. On success returns the
 * plugin (borrowed from the set). On refusal returns NULL with err holding
 * "FILE: reason". */
const zp_plugin_t *zp_plugins_load(zp_plugins_t *self, const char *spec,
                                   char *err, size_t errlen);

/* The reason the plugin last gave through host->init_error ("" if none),
 * e.g. after its reduce_init failed. Borrowed. */
const char *zp_plugin_init_error(const zp_plugin_t *p);

/* The instance of base for a job's settings (config: "KEY=VALUE" lines,
 * which host->config reads before the set's own settings): base itself
 * when config is empty, else one made with its own init and state, kept
 * (up to 16, least recently used out first, with its fini) for the next
 * batch of the job. NULL with err set when that init failed; the failure
 * is kept too. Borrowed from the set. */
const zp_plugin_t *zp_plugins_instance(zp_plugins_t *self,
                                       const zp_plugin_t *base,
                                       const char *config, char *err,
                                       size_t errlen);

/* The plugin named name, or NULL. Borrowed. */
const zp_plugin_t *zp_plugins_find(const zp_plugins_t *self, const char *name);
size_t zp_plugins_count(const zp_plugins_t *self);
const zp_plugin_t *zp_plugins_at(const zp_plugins_t *self, size_t index);

/* Size of zpipe_plugin_t in ABI 1.0, the smallest struct_size accepted. */
#define ZP_PLUGIN_SIZE_1_0                                                     \
    (offsetof(zpipe_plugin_t, fini) + sizeof(void (*)(void *)))

#endif
