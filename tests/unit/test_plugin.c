/* Tests for zp_plugin: a good plugin loads and runs; every refusal reason
 * has a fixture plugin and a message naming the file and the reason. */
#include "test.h"
#include "zp_log.h"
#include "zp_plugin.h"
#include "zp_util.h"

#include <stdlib.h>

static zp_buf_t s_out;

static int s_append(zpipe_call_t *call, const void *data, size_t len)
{
    (void)call;
    return zp_buf_append(&s_out, data, len);
}
static void s_set_error(zpipe_call_t *call, const char *m)
{
    (void)call;
    (void)m;
}
static void s_log(int level, const char *plugin, const char *m)
{
    (void)level;
    (void)plugin;
    (void)m;
}
/* config and init_error are the set's own (zp_plugins_load fills them). */
static const zpipe_host_t s_host = {
    .struct_size = sizeof(zpipe_host_t),
    .abi_major = ZPIPE_ABI_MAJOR,
    .abi_minor = ZPIPE_ABI_MINOR,
    .append = s_append,
    .set_error = s_set_error,
    .log = s_log,
};

static const zp_plugin_t *s_load(zp_plugins_t *set, const char *fixture,
                                 char *err)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.so", ZP_FIXTURE_DIR, fixture);
    return zp_plugins_load(set, path, err, 1024);
}

/* Loading fixture is refused with a message containing path and reason. */
static int s_refused(const char *fixture, const char *reason)
{
    zp_plugins_t *set = zp_plugins_new(&s_host);
    char err[1024] = "";
    const zp_plugin_t *p = s_load(set, fixture, err);
    int ok = p == NULL && strstr(err, fixture) && strstr(err, reason) &&
             zp_plugins_count(set) == 0;
    if (!ok)
        fprintf(stderr, "  %s: got \"%s\", wanted refusal with \"%s\"\n",
                fixture, err, reason);
    zp_plugins_destroy(&set);
    return ok;
}

static void test_echo_loads_and_runs(void)
{
    zp_plugins_t *set = zp_plugins_new(&s_host);
    char err[1024];
    const zp_plugin_t *p =
        zp_plugins_load(set, ZP_PLUGIN_DIR "/echo.so", err, sizeof err);
    TEST_CHECK(p != NULL);
    TEST_EQ_STR(p->desc.name, "echo");
    TEST_CHECK(zp_plugins_find(set, "echo") == p);
    TEST_CHECK(zp_plugins_find(set, "nope") == NULL);
    s_out.len = 0;
    zpipe_call_t call = {.struct_size = sizeof call,
                         .host = &s_host,
                         .input = (const uint8_t *)"hi",
                         .input_len = 2};
    TEST_EQ_INT(p->desc.process(p->state, &call), ZPIPE_OK);
    TEST_EQ_INT(s_out.len, 2);
    TEST_CHECK(memcmp(s_out.data, "hi", 2) == 0);
    zp_plugins_destroy(&set);
    TEST_CHECK(set == NULL);
}

static void test_name_is_found_on_plugin_path(void)
{
    setenv("ZPIPE_PLUGIN_PATH", "/nonexistent:" ZP_FIXTURE_DIR, 1);
    char err[1024];
    char *path = zp_plugin_resolve("fx_frozen", err, sizeof err);
    TEST_CHECK(path != NULL);
    TEST_CONTAINS(path, ZP_FIXTURE_DIR);
    free(path);
    unsetenv("ZPIPE_PLUGIN_PATH");
}

static void test_unknown_name_says_where_it_looked(void)
{
    char err[1024];
    TEST_CHECK(zp_plugin_resolve("no_such_plugin_xyz", err, sizeof err) ==
               NULL);
    TEST_CONTAINS(err, "no_such_plugin_xyz");
    TEST_CONTAINS(err, "ZPIPE_PLUGIN_PATH");
}

static void test_missing_file_is_refused(void)
{
    zp_plugins_t *set = zp_plugins_new(&s_host);
    char err[1024];
    TEST_CHECK(zp_plugins_load(set, "/nonexistent/x.so", err, sizeof err) ==
               NULL);
    TEST_CONTAINS(err, "/nonexistent/x.so");
    zp_plugins_destroy(&set);
}

static void test_refuses_other_major(void)
{
    TEST_CHECK(s_refused("fx_bad_major", "this host speaks major"));
}
static void test_refuses_newer_minor(void)
{
    TEST_CHECK(s_refused("fx_newer_minor", "newer than this host"));
}
static void test_refuses_bad_struct_size(void)
{
    TEST_CHECK(s_refused("fx_bad_size", "struct_size 8"));
}
static void test_refuses_missing_process(void)
{
    TEST_CHECK(s_refused("fx_no_process", "no process callback"));
}
static void test_refuses_missing_name(void)
{
    TEST_CHECK(s_refused("fx_no_name", "name is missing"));
}
static void test_refuses_bad_name(void)
{
    TEST_CHECK(s_refused("fx_bad_name", "name is missing or not"));
}
static void test_refuses_missing_entry(void)
{
    TEST_CHECK(s_refused("fx_no_entry", "not a zpipe plugin"));
}
static void test_refuses_null_descriptor(void)
{
    TEST_CHECK(s_refused("fx_null_desc", "returned no descriptor"));
}
static void test_refuses_unresolved_symbol(void)
{
    TEST_CHECK(s_refused("fx_undefined", "undefined symbol"));
}
static void test_refuses_failing_init(void)
{
    TEST_CHECK(s_refused("fx_init_fails", "init failed"));
}

static void test_settings_reach_init_and_a_missing_one_is_the_reason(void)
{
    char err[1024];
    zp_plugins_t *set = zp_plugins_new(&s_host);
    /* Missing: init fails, and its reason is in the refusal. */
    TEST_CHECK(s_load(set, "fx_config", err) == NULL);
    TEST_CONTAINS(err, "plugin 'fx_config' init failed: setting greeting is "
                       "required");
    /* Malformed settings are refused before any load. */
    const char *bad[] = {"greeting=hi"};
    TEST_CHECK(zp_plugins_configure(set, bad, 1, err, sizeof err) < 0);
    TEST_CONTAINS(err, "expected PLUGIN.KEY=VALUE");
    /* The environment, then the command line over it (last one wins). */
    setenv("ZPIPE_PLUGIN_FX_CONFIG_GREETING", "env:", 1);
    const zp_plugin_t *p = s_load(set, "fx_config", err);
    TEST_CHECK(p && strcmp(p->state, "env:") == 0);
    zp_plugins_destroy(&set);
    set = zp_plugins_new(&s_host);
    const char *pairs[] = {"fx_config.greeting=first", "other.greeting=no",
                           "fx_config.greeting=hi "};
    TEST_EQ_INT(zp_plugins_configure(set, pairs, 3, err, sizeof err), 0);
    p = s_load(set, "fx_config", err);
    TEST_CHECK(p && strcmp(p->state, "hi ") == 0);
    TEST_EQ_INT(p->host->abi_minor, ZPIPE_ABI_MINOR);
    unsetenv("ZPIPE_PLUGIN_FX_CONFIG_GREETING");
    zp_plugins_destroy(&set);
}

/* A set that only checks and names plugins (a worker whose executors run
 * them): no init runs, so a plugin whose init fails or lacks a setting
 * still loads, and it cannot be run from there. */
static void test_skip_init_loads_without_running_init(void)
{
    char err[1024] = "";
    zp_plugins_t *set = zp_plugins_new(&s_host);
    zp_plugins_skip_init(set);
    TEST_CHECK(s_load(set, "fx_init_fails", err) != NULL);
    TEST_CHECK(s_load(set, "fx_config", err) != NULL);
    TEST_CHECK(zp_plugins_count(set) == 2);
    /* (a load may move the set's earlier plugins) */
    const zp_plugin_t *a = zp_plugins_find(set, "fx_init_fails");
    const zp_plugin_t *b = zp_plugins_find(set, "fx_config");
    TEST_CHECK(a && !a->initialised && a->state == NULL);
    TEST_CHECK(b && !b->initialised && b->state == NULL);
    TEST_CHECK(b && zp_plugins_instance(set, b, "", err, sizeof err) == NULL);
    TEST_CONTAINS(err, "not initialised in this process");
    TEST_CHECK(b && zp_plugins_instance(set, b, "greeting=x", err,
                                        sizeof err) == NULL);
    zp_plugins_destroy(&set);
    /* Without it, the same load runs init. */
    set = zp_plugins_new(&s_host);
    TEST_CHECK(s_load(set, "fx_init_fails", err) == NULL);
    const char *pairs[] = {"fx_config.greeting=hi"};
    TEST_EQ_INT(zp_plugins_configure(set, pairs, 1, err, sizeof err), 0);
    b = s_load(set, "fx_config", err);
    TEST_CHECK(b && b->initialised && strcmp(b->state, "hi") == 0);
    zp_plugins_destroy(&set);
}

static void test_refuses_duplicate_name(void)
{
    zp_plugins_t *set = zp_plugins_new(&s_host);
    char err[1024];
    TEST_CHECK(zp_plugins_load(set, ZP_PLUGIN_DIR "/echo.so", err,
                               sizeof err) != NULL);
    TEST_CHECK(s_load(set, "fx_dup_echo", err) == NULL);
    TEST_CONTAINS(err, "fx_dup_echo");
    TEST_CONTAINS(err, "already loaded from");
    TEST_EQ_INT(zp_plugins_count(set), 1);
    zp_plugins_destroy(&set);
}

static void test_frozen_v1_0_plugin_still_loads(void)
{
    zp_plugins_t *set = zp_plugins_new(&s_host);
    char err[1024];
    const zp_plugin_t *p = s_load(set, "fx_frozen", err);
    TEST_CHECK(p != NULL);
    TEST_EQ_INT(p->desc.abi_major, 1);
    TEST_EQ_INT(p->desc.abi_minor, 0);
    s_out.len = 0;
    zpipe_call_t call = {.struct_size = sizeof call,
                         .host = &s_host,
                         .input = (const uint8_t *)"x",
                         .input_len = 1};
    TEST_EQ_INT(p->desc.process(p->state, &call), ZPIPE_OK);
    TEST_EQ_INT(s_out.len, 6);
    zp_plugins_destroy(&set);
}

static void test_several_plugins_in_one_set(void)
{
    zp_plugins_t *set = zp_plugins_new(&s_host);
    char err[1024];
    TEST_CHECK(zp_plugins_load(set, ZP_PLUGIN_DIR "/echo.so", err, sizeof err));
    TEST_CHECK(
        zp_plugins_load(set, ZP_PLUGIN_DIR "/sha256.so", err, sizeof err));
    TEST_CHECK(zp_plugins_load(set, ZP_PLUGIN_DIR "/spin.so", err, sizeof err));
    TEST_EQ_INT(zp_plugins_count(set), 3);
    TEST_EQ_STR(zp_plugins_at(set, 1)->desc.name, "sha256");
    TEST_CHECK(zp_plugins_at(set, 3) == NULL);
    zp_plugins_destroy(&set);
}

static const test_case_t tests[] = {
    {"test_echo_loads_and_runs", test_echo_loads_and_runs},
    {"test_name_is_found_on_plugin_path", test_name_is_found_on_plugin_path},
    {"test_unknown_name_says_where_it_looked",
     test_unknown_name_says_where_it_looked},
    {"test_missing_file_is_refused", test_missing_file_is_refused},
    {"test_refuses_other_major", test_refuses_other_major},
    {"test_refuses_newer_minor", test_refuses_newer_minor},
    {"test_refuses_bad_struct_size", test_refuses_bad_struct_size},
    {"test_refuses_missing_process", test_refuses_missing_process},
    {"test_refuses_missing_name", test_refuses_missing_name},
    {"test_refuses_bad_name", test_refuses_bad_name},
    {"test_refuses_missing_entry", test_refuses_missing_entry},
    {"test_refuses_null_descriptor", test_refuses_null_descriptor},
    {"test_refuses_unresolved_symbol", test_refuses_unresolved_symbol},
    {"test_refuses_failing_init", test_refuses_failing_init},
    {"test_settings_reach_init_and_a_missing_one_is_the_reason",
     test_settings_reach_init_and_a_missing_one_is_the_reason},
    {"test_skip_init_loads_without_running_init",
     test_skip_init_loads_without_running_init},
    {"test_refuses_duplicate_name", test_refuses_duplicate_name},
    {"test_frozen_v1_0_plugin_still_loads",
     test_frozen_v1_0_plugin_still_loads},
    {"test_several_plugins_in_one_set", test_several_plugins_in_one_set},
    {NULL, NULL},
};

int main(int argc, char **argv);
static int s_main(int argc, char **argv);
int main(int argc, char **argv)
{
    zp_log_set_level("error");
    return s_main(argc, argv);
}
#define main s_main
TEST_MAIN(tests)
