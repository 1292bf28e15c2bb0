/* zp_czmq: czmq's certificate functions, loaded on demand; see zp_czmq.h. */
#include "zp_czmq.h"
#include "zp_dyn.h"

#define S_SYM(f)                                                               \
    {                                                                          \
#f, offsetof(zp_czmq_t, f)                                             \
    }

static const zp_dyn_sym_t s_syms[] = {
    S_SYM(zsys_handler_set), S_SYM(zconfig_str_load), S_SYM(zconfig_get),
    S_SYM(zconfig_destroy),  S_SYM(zcert_new),        S_SYM(zcert_set_meta),
    S_SYM(zcert_save),       S_SYM(zcert_destroy),
};

static zp_czmq_t s_table;

/* czmq must not take over SIGINT/SIGTERM if zconfig or zcert start it: the
 * daemons' own handlers stop them. */
static void s_on_load(void *table)
{
    ((zp_czmq_t *)table)->zsys_handler_set(NULL);
}

static zp_dyn_lib_t s_lib = {
    .soname = ZP_CZMQ_SONAME,
    .test_env = "ZPIPE_TEST_LIBCZMQ",
    .syms = s_syms,
    .n_syms = sizeof s_syms / sizeof s_syms[0],
    .table = &s_table,
    .on_load = s_on_load,
    .handle = NULL,
};

const zp_czmq_t *zp_czmq(const char *what, char *err, size_t errlen)
{
    return zp_dyn_load(&s_lib, what, err, errlen) == 0 ? &s_table : NULL;
}

bool zp_czmq_loaded(void)
{
    return zp_dyn_loaded(&s_lib);
}
