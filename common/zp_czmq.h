/* zp_czmq: the few czmq functions zpipe uses (reading and writing CURVE
 * certificate files, in czmq's ZPL format), from libczmq loaded on demand
 * (zp_dyn.h): a process that reads or writes no certificate file never
 * loads it. */
#ifndef ZP_CZMQ_H
#define ZP_CZMQ_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

#define ZP_CZMQ_SONAME "libczmq.so.4"

/* Typed from czmq.h, so every call is checked as a direct one would be. */
typedef struct {
    __typeof__(&zsys_handler_set) zsys_handler_set;
    __typeof__(&zconfig_str_load) zconfig_str_load;
    __typeof__(&zconfig_get) zconfig_get;
    __typeof__(&zconfig_destroy) zconfig_destroy;
    __typeof__(&zcert_new) zcert_new;
    __typeof__(&zcert_set_meta) zcert_set_meta;
    __typeof__(&zcert_save) zcert_save;
    __typeof__(&zcert_destroy) zcert_destroy;
} zp_czmq_t;

/* The functions, loading libczmq.so.4 at the first call (and telling czmq
 * never to install its SIGINT/SIGTERM handlers). Borrowed, valid until the
 * process exits; NULL with err "WHAT needs libczmq.so.4: REASON" when the
 * library cannot be loaded. Thread-safe. Tests may name another file in
 * ZPIPE_TEST_LIBCZMQ to simulate a missing library. */
const zp_czmq_t *zp_czmq(const char *what, char *err, size_t errlen);

/* True when libczmq has been loaded by this process. */
bool zp_czmq_loaded(void);

#endif
