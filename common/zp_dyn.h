/* zp_dyn: optional shared libraries opened on demand (dlopen by soname).
 *
 * Every zpipe process links only what each run needs (libzmq, protobuf-c,
 * libc): linking libczmq and libmicrohttpd too made every start load about
 * 40 libraries (gnutls, krb5 and the rest come with them). A feature that
 * needs one of them (CURVE certificate files: zp_czmq.h; --metrics and the
 * sink's web view: zp_mhd.h) loads it at first use through a table of
 * function pointers typed from the library's real header, so calls are
 * still checked by the compiler. A library that cannot be loaded is an
 * error naming the feature and the soname, never a crash.
 *
 * Tests only: when the environment variable named by a library's test_env
 * (ZPIPE_TEST_LIBCZMQ, ZPIPE_TEST_LIBMHD) is set, its value is opened
 * instead of the soname, so a test can simulate a missing library. */
#ifndef ZP_DYN_H
#define ZP_DYN_H

#include <stdbool.h>
#include <stddef.h>

/* One function of a library: its symbol and the offset of its pointer in
 * the caller's table (offsetof). */
typedef struct {
    const char *name;
    size_t offset;
} zp_dyn_sym_t;

/* A library loaded on demand; a static object per library, zero except for
 * the constants. */
typedef struct {
    const char *soname;   /* e.g. "libczmq.so.4" */
    const char *test_env; /* tests only: a file opened instead of soname */
    const zp_dyn_sym_t *syms;
    size_t n_syms;
    void *table; /* filled with one function pointer per syms entry */
    /* Called once, under the load lock, right after the table is filled;
     * or NULL. */
    void (*on_load)(void *table);
    void *handle; /* set by zp_dyn_load, never closed */
} zp_dyn_lib_t;

/* Opens lib (RTLD_NOW | RTLD_LOCAL) and fills its table, the first time;
 * later calls return at once. The library stays loaded until the process
 * exits. Thread-safe. Returns 0, or -1 with err set to "WHAT needs SONAME:
 * REASON" (dlerror's text); a failed load is tried again at the next
 * call. */
int zp_dyn_load(zp_dyn_lib_t *lib, const char *what, char *err, size_t errlen);

/* True when lib is loaded (for tests: a process that does not use the
 * feature never loads it). */
bool zp_dyn_loaded(zp_dyn_lib_t *lib);

#endif
