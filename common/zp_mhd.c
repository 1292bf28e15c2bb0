/* zp_mhd: libmicrohttpd's functions, loaded on demand; see zp_mhd.h. */
#include "zp_mhd.h"
#include "zp_dyn.h"

#define S_SYM(f)                                                               \
    {                                                                          \
#f, offsetof(zp_mhd_t, f)                                              \
    }

static const zp_dyn_sym_t s_syms[] = {
    S_SYM(MHD_start_daemon),
    S_SYM(MHD_stop_daemon),
    S_SYM(MHD_create_response_from_buffer),
    S_SYM(MHD_add_response_header),
    S_SYM(MHD_queue_response),
    S_SYM(MHD_destroy_response),
};

static zp_mhd_t s_table;

static zp_dyn_lib_t s_lib = {
    .soname = ZP_MHD_SONAME,
    .test_env = "ZPIPE_TEST_LIBMHD",
    .syms = s_syms,
    .n_syms = sizeof s_syms / sizeof s_syms[0],
    .table = &s_table,
    .on_load = NULL,
    .handle = NULL,
};

const zp_mhd_t *zp_mhd(const char *what, char *err, size_t errlen)
{
    return zp_dyn_load(&s_lib, what, err, errlen) == 0 ? &s_table : NULL;
}

bool zp_mhd_loaded(void)
{
    return zp_dyn_loaded(&s_lib);
}
