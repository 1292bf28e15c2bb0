/* zp_mhd: the libmicrohttpd functions behind --metrics and the sink's web
 * view (zp_metrics), from libmicrohttpd loaded on demand (zp_dyn.h): a
 * process without --metrics never loads it, nor gnutls and the rest that
 * come with it. */
#ifndef ZP_MHD_H
#define ZP_MHD_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#define ZP_MHD_SONAME "libmicrohttpd.so.12"

/* Typed from microhttpd.h, so every call is checked as a direct one would
 * be (MHD_start_daemon's options stay variadic, as in the header). */
typedef struct {
    __typeof__(&MHD_start_daemon) MHD_start_daemon;
    __typeof__(&MHD_stop_daemon) MHD_stop_daemon;
    __typeof__(&MHD_create_response_from_buffer)
        MHD_create_response_from_buffer;
    __typeof__(&MHD_add_response_header) MHD_add_response_header;
    __typeof__(&MHD_queue_response) MHD_queue_response;
    __typeof__(&MHD_destroy_response) MHD_destroy_response;
} zp_mhd_t;

/* The functions, loading libmicrohttpd.so.12 at the first call. Borrowed,
 * valid until the process exits; NULL with err "WHAT needs
 * libmicrohttpd.so.12: REASON" when the library cannot be loaded.
 * Thread-safe. Tests may name another file in ZPIPE_TEST_LIBMHD to
 * simulate a missing library. */
const zp_mhd_t *zp_mhd(const char *what, char *err, size_t errlen);

/* True when libmicrohttpd has been loaded by this process. */
bool zp_mhd_loaded(void);

#endif
