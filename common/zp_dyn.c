/* zp_dyn: optional shared libraries opened on demand; see zp_dyn.h. */
#include "zp_dyn.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Loads are rare (a feature's first use): one lock for every library. */
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;

/* A table of function pointers is filled from dlsym's void pointers. */
_Static_assert(sizeof(void *) == sizeof(void (*)(void)),
               "function pointers must be the size of data pointers");

/* Opens the library and resolves every symbol, or closes it again. */
static int s_open(zp_dyn_lib_t *lib, const char *what, char *err, size_t errlen)
{
    const char *file = lib->test_env ? getenv(lib->test_env) : NULL;
    if (!file || !*file)
        file = lib->soname;
    dlerror();
    void *handle = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        snprintf(err, errlen, "%s needs %s: %s", what, lib->soname,
                 why ? why : "cannot be loaded");
        return -1;
    }
    for (size_t i = 0; i < lib->n_syms; i++) {
        dlerror();
        void *fn = dlsym(handle, lib->syms[i].name);
        if (!fn) {
            const char *why = dlerror();
            snprintf(err, errlen, "%s needs %s: %s", what, lib->soname,
                     why ? why : lib->syms[i].name);
            dlclose(handle);
            return -1;
        }
        memcpy((char *)lib->table + lib->syms[i].offset, &fn, sizeof fn);
    }
    lib->handle = handle;
    return 0;
}

int zp_dyn_load(zp_dyn_lib_t *lib, const char *what, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&s_lock);
    if (!lib->handle) {
        rc = s_open(lib, what, err, errlen);
        if (rc == 0 && lib->on_load)
            lib->on_load(lib->table);
    }
    pthread_mutex_unlock(&s_lock);
    return rc;
}

bool zp_dyn_loaded(zp_dyn_lib_t *lib)
{
    pthread_mutex_lock(&s_lock);
    bool loaded = lib->handle != NULL;
    pthread_mutex_unlock(&s_lock);
    return loaded;
}
