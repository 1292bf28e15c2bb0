/* Tests of zp_dyn: a library opened by soname at first use, a typed table
 * filled from it, and the errors that name the feature and the soname. */
#define _GNU_SOURCE
#include "test.h"
#include "zp_dyn.h"

#include <errno.h>
#include <stdlib.h>
#include <zmq.h>

typedef struct {
    __typeof__(&zmq_version) zmq_version;
    __typeof__(&zmq_strerror) zmq_strerror;
} s_zmq_t;

static const zp_dyn_sym_t s_syms[] = {
    {"zmq_version", offsetof(s_zmq_t, zmq_version)},
    {"zmq_strerror", offsetof(s_zmq_t, zmq_strerror)},
};

static int s_loads;
static void s_count(void *table)
{
    (void)table;
    s_loads++;
}

static void test_loads_once_and_fills_the_typed_table(void)
{
    s_zmq_t t = {0};
    zp_dyn_lib_t lib = {.soname = "libzmq.so.5",
                        .syms = s_syms,
                        .n_syms = 2,
                        .table = &t,
                        .on_load = s_count};
    char err[256] = "";
    s_loads = 0;
    TEST_CHECK(!zp_dyn_loaded(&lib));
    TEST_EQ_INT(zp_dyn_load(&lib, "the test", err, sizeof err), 0);
    TEST_EQ_INT(zp_dyn_load(&lib, "the test", err, sizeof err), 0);
    TEST_EQ_INT(s_loads, 1);
    TEST_CHECK(zp_dyn_loaded(&lib));
    int major = 0, minor = 0, patch = 0;
    t.zmq_version(&major, &minor, &patch);
    TEST_EQ_INT(major, ZMQ_VERSION_MAJOR);
    TEST_EQ_STR(t.zmq_strerror(EAGAIN), zmq_strerror(EAGAIN));
}

static void test_missing_library_names_the_feature_and_soname(void)
{
    s_zmq_t t = {0};
    zp_dyn_lib_t lib = {.soname = "libzp-test-none.so.1",
                        .syms = s_syms,
                        .n_syms = 2,
                        .table = &t,
                        .on_load = s_count};
    char err[256] = "";
    s_loads = 0;
    TEST_EQ_INT(zp_dyn_load(&lib, "--feature", err, sizeof err), -1);
    TEST_CONTAINS(err, "--feature needs libzp-test-none.so.1: ");
    TEST_CONTAINS(err, "cannot open shared object file");
    /* Tried again (and failing again) at the next call. */
    err[0] = '\0';
    TEST_EQ_INT(zp_dyn_load(&lib, "--feature", err, sizeof err), -1);
    TEST_CONTAINS(err, "--feature needs libzp-test-none.so.1: ");
    TEST_CHECK(!zp_dyn_loaded(&lib));
    TEST_EQ_INT(s_loads, 0);
}

static void test_missing_symbol_is_an_error_naming_it(void)
{
    s_zmq_t t = {0};
    static const zp_dyn_sym_t syms[] = {
        {"zmq_version", offsetof(s_zmq_t, zmq_version)},
        {"zp_no_such_function", offsetof(s_zmq_t, zmq_strerror)},
    };
    zp_dyn_lib_t lib = {
        .soname = "libzmq.so.5", .syms = syms, .n_syms = 2, .table = &t};
    char err[256] = "";
    TEST_EQ_INT(zp_dyn_load(&lib, "--feature", err, sizeof err), -1);
    TEST_CONTAINS(err, "--feature needs libzmq.so.5: ");
    TEST_CONTAINS(err, "zp_no_such_function");
    TEST_CHECK(!zp_dyn_loaded(&lib));
}

static void test_test_env_replaces_the_soname(void)
{
    s_zmq_t t = {0};
    zp_dyn_lib_t lib = {.soname = "libzmq.so.5",
                        .test_env = "ZP_TEST_DYN_FILE",
                        .syms = s_syms,
                        .n_syms = 2,
                        .table = &t};
    char err[256] = "";
    setenv("ZP_TEST_DYN_FILE", "libzp-test-none.so.2", 1);
    TEST_EQ_INT(zp_dyn_load(&lib, "--feature", err, sizeof err), -1);
    /* The message names the library the feature needs, and why the file
     * opened instead failed. */
    TEST_CONTAINS(err, "--feature needs libzmq.so.5: libzp-test-none.so.2");
    setenv("ZP_TEST_DYN_FILE", "", 1);
    TEST_EQ_INT(zp_dyn_load(&lib, "--feature", err, sizeof err), 0);
    unsetenv("ZP_TEST_DYN_FILE");
    TEST_CHECK(t.zmq_version != NULL);
}

static void test_long_reason_is_cut_to_the_buffer(void)
{
    s_zmq_t t = {0};
    zp_dyn_lib_t lib = {.soname = "libzp-test-none.so.3",
                        .syms = s_syms,
                        .n_syms = 2,
                        .table = &t};
    char err[16];
    TEST_EQ_INT(zp_dyn_load(&lib, "--feature", err, sizeof err), -1);
    TEST_EQ_STR(err, "--feature needs");
}

static const test_case_t tests[] = {
    {"test_loads_once_and_fills_the_typed_table",
     test_loads_once_and_fills_the_typed_table},
    {"test_missing_library_names_the_feature_and_soname",
     test_missing_library_names_the_feature_and_soname},
    {"test_missing_symbol_is_an_error_naming_it",
     test_missing_symbol_is_an_error_naming_it},
    {"test_test_env_replaces_the_soname", test_test_env_replaces_the_soname},
    {"test_long_reason_is_cut_to_the_buffer",
     test_long_reason_is_cut_to_the_buffer},
    {NULL, NULL},
};

TEST_MAIN(tests)
