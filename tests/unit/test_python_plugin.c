/* Tests for the python plugin (plugins/python): loaded with the real loader
 * into this process, called through a host table of the test's own, on a
 * Python module the test writes. Not run under valgrind: CPython's own
 * allocator and its never-finalized interpreter are not ours to check. */
#define _GNU_SOURCE
#include "test.h"
#include "zp_plugin.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char s_module[] = "import sys\n"
                               "class Retry(Exception):\n"
                               "    retryable = True\n"
                               "def echo(b):\n"
                               "    return b\n"
                               "def text(b):\n"
                               "    return b.decode() + '\\u00e9'\n"
                               "def none(b):\n"
                               "    return None\n"
                               "def number(b):\n"
                               "    return 7\n"
                               "def boom(b):\n"
                               "    raise ValueError('bad %s' % b.decode())\n"
                               "def again(b):\n"
                               "    raise Retry('later')\n"
                               "def oom(b):\n"
                               "    raise MemoryError()\n"
                               "def leave(b):\n"
                               "    sys.exit(2)\n"
                               "def deep(b, n=0):\n"
                               "    if n < 40:\n"
                               "        try:\n"
                               "            return deep(b, n + 1)\n"
                               "        except KeyError as e:\n"
                               "            raise KeyError(n) from e\n"
                               "    raise KeyError('x' * 5000)\n"
                               "def add(a, b):\n"
                               "    return a + b\n"
                               "def square(n):\n"
                               "    return {'sq': n * n}\n"
                               "CALLS = []\n"
                               "def setup():\n"
                               "    CALLS.append(1)\n"
                               "def calls(b):\n"
                               "    return str(len(CALLS))\n"
                               "def bad_setup():\n"
                               "    raise OSError('no model file')\n"
                               "def fold(acc, v):\n"
                               "    return (acc or 0) + v\n"
                               "def final(acc):\n"
                               "    return {'total': acc}\n";

static char s_dir[64];
static char s_path_setting[96];

/* What the host saw of one call. */
typedef struct {
    char out[8192];
    size_t out_len;
    char err[8192];
    char cause[64];
} s_seen_t;

static s_seen_t s_seen;

static int s_append(zpipe_call_t *call, const void *data, size_t len)
{
    (void)call;
    if (s_seen.out_len + len > sizeof s_seen.out)
        return -1;
    memcpy(s_seen.out + s_seen.out_len, data, len);
    s_seen.out_len += len;
    return 0;
}

static void s_set_error(zpipe_call_t *call, const char *message)
{
    (void)call;
    snprintf(s_seen.err, sizeof s_seen.err, "%s", message);
}

static void s_log(int level, const char *plugin, const char *message)
{
    (void)level;
    (void)plugin;
    (void)message;
}

static int s_set_cause(zpipe_call_t *call, const char *cause)
{
    (void)call;
    snprintf(s_seen.cause, sizeof s_seen.cause, "%s", cause);
    return 0;
}

static const zpipe_host_t s_host = {
    .struct_size = sizeof(zpipe_host_t),
    .abi_major = ZPIPE_ABI_MAJOR,
    .abi_minor = ZPIPE_ABI_MINOR,
    .append = s_append,
    .set_error = s_set_error,
    .log = s_log,
    .set_cause = s_set_cause,
};

static zp_plugins_t *s_set;
static const zp_plugin_t *s_base;

/* The instance for settings "K=V\nK=V" (path added); NULL with err. */
static const zp_plugin_t *s_inst(const char *settings, char *err, size_t len)
{
    char config[1024];
    snprintf(config, sizeof config, "%s\n%s", s_path_setting, settings);
    return zp_plugins_instance(s_set, s_base, config, err, len);
}

/* Calls p on input; returns the status, s_seen has the rest. */
static int s_call(const zp_plugin_t *p, const char *input, size_t len)
{
    memset(&s_seen, 0, sizeof s_seen);
    zpipe_call_t call = {
        .struct_size = sizeof call,
        .host = p->host,
        .input = (const uint8_t *)input,
        .input_len = len,
        .attempt = 1,
        .job_id = "j",
    };
    return p->desc.process(p->state, &call);
}

static bool s_out_is(const char *want)
{
    return s_seen.out_len == strlen(want) &&
           memcmp(s_seen.out, want, s_seen.out_len) == 0;
}

static void test_without_func_the_plugin_loads_and_says_what_is_missing(void)
{
    TEST_EQ_INT(s_call(s_base, "x", 1), ZPIPE_INVALID);
    TEST_CONTAINS(s_seen.err, "needs func=MODULE:QUALNAME");
}

static void test_raw_codec_results(void)
{
    char err[512];
    const zp_plugin_t *p = s_inst("func=pyt:echo", err, sizeof err);
    TEST_CHECK(p);
    TEST_EQ_INT(s_call(p, "a\0b", 3), ZPIPE_OK);
    TEST_CHECK(s_seen.out_len == 3 && memcmp(s_seen.out, "a\0b", 3) == 0);
    p = s_inst("func=pyt:text", err, sizeof err);
    TEST_EQ_INT(s_call(p, "caf", 3), ZPIPE_OK);
    TEST_CHECK(s_out_is("caf\xc3\xa9")); /* str out as UTF-8 */
    p = s_inst("func=pyt:none", err, sizeof err);
    TEST_EQ_INT(s_call(p, "x", 1), ZPIPE_OK);
    TEST_EQ_INT(s_seen.out_len, 0);
    p = s_inst("func=pyt:number", err, sizeof err);
    TEST_EQ_INT(s_call(p, "x", 1), ZPIPE_ERROR);
    TEST_EQ_STR(s_seen.cause, "python_exception");
    TEST_CONTAINS(s_seen.err, "TypeError: the raw codec takes bytes, str or "
                              "None, not int");
}

static void test_exceptions_become_failures(void)
{
    char err[512];
    const zp_plugin_t *p = s_inst("func=pyt:boom", err, sizeof err);
    TEST_EQ_INT(s_call(p, "zz", 2), ZPIPE_ERROR);
    TEST_EQ_STR(s_seen.cause, "python_exception");
    TEST_CHECK(strncmp(s_seen.err,
                       "ValueError: bad zz\nTraceback (most recent call "
                       "last):\n",
                       53) == 0);
    TEST_CONTAINS(s_seen.err, "pyt.py\", line 13, in boom");
    p = s_inst("func=pyt:again", err, sizeof err);
    TEST_EQ_INT(s_call(p, "x", 1), ZPIPE_RETRY);
    TEST_CHECK(strncmp(s_seen.err, "pyt.Retry: later\n", 17) == 0);
    p = s_inst("func=pyt:oom", err, sizeof err);
    TEST_EQ_INT(s_call(p, "x", 1), ZPIPE_NOMEM);
    TEST_CHECK(strncmp(s_seen.err, "MemoryError\n", 12) == 0);
    p = s_inst("func=pyt:leave", err, sizeof err);
    TEST_EQ_INT(s_call(p, "x", 1), ZPIPE_ERROR);
    TEST_CHECK(strncmp(s_seen.err, "SystemExit: 2\n", 14) == 0);
    /* The process is still here: the next call runs. */
    p = s_inst("func=pyt:echo", err, sizeof err);
    TEST_EQ_INT(s_call(p, "ok", 2), ZPIPE_OK);
}

static void test_a_long_traceback_keeps_its_head_and_end(void)
{
    char err[512];
    const zp_plugin_t *p = s_inst("func=pyt:deep", err, sizeof err);
    TEST_EQ_INT(s_call(p, "x", 1), ZPIPE_ERROR);
    size_t n = strlen(s_seen.err);
    TEST_CHECK(n <= 2048 && n > 1500);
    /* The exception raised, "..." where the start of the chain of
     * tracebacks was cut, and the end: the line that raised it. */
    TEST_CHECK(strncmp(s_seen.err, "KeyError: 0\n...\n", 16) == 0);
    TEST_CONTAINS(s_seen.err, "in deep\n");
    const char *end = "\n    raise KeyError(n) from e";
    TEST_CHECK(n > strlen(end) &&
               strcmp(s_seen.err + n - strlen(end), end) == 0);
}

static void test_pickle_and_json_with_star(void)
{
    char err[512];
    const zp_plugin_t *p =
        s_inst("func=pyt:square\ncodec=json", err, sizeof err);
    TEST_CHECK(p);
    TEST_EQ_INT(s_call(p, "12", 2), ZPIPE_OK);
    TEST_CHECK(s_out_is("{\"sq\":144}"));
    TEST_EQ_INT(s_call(p, "{nope", 5), ZPIPE_ERROR);
    TEST_CONTAINS(s_seen.err, "cannot decode the payload: "
                              "json.decoder.JSONDecodeError");
    p = s_inst("func=pyt:add\ncodec=json\nstar=1", err, sizeof err);
    TEST_EQ_INT(s_call(p, "[2, 3]", 6), ZPIPE_OK);
    TEST_CHECK(s_out_is("5"));
    /* pickle.dumps((2, 3), 2) and pickle.dumps(5, 2) */
    static const char args[] = "\x80\x02K\x02K\x03\x86q\x00.";
    p = s_inst("func=pyt:add\ncodec=pickle\nstar=1", err, sizeof err);
    TEST_EQ_INT(s_call(p, args, sizeof args - 1), ZPIPE_OK);
    TEST_CHECK(s_seen.out_len > 2 && s_seen.out[0] == '\x80');
    TEST_CHECK(memmem(s_seen.out, s_seen.out_len, "K\x05.", 3) != NULL);
}

static void test_init_runs_once_before_the_first_task(void)
{
    char err[512];
    const zp_plugin_t *p =
        s_inst("func=pyt:calls\ninit=pyt:setup", err, sizeof err);
    TEST_CHECK(p);
    TEST_EQ_INT(s_call(p, "x", 1), ZPIPE_OK);
    TEST_CHECK(s_out_is("1"));
    TEST_EQ_INT(s_call(p, "x", 1), ZPIPE_OK);
    TEST_CHECK(s_out_is("1"));
    p = s_inst("func=pyt:calls\ninit=pyt:bad_setup", err, sizeof err);
    TEST_CHECK(p); /* refused at its first task, not at load */
    for (int i = 0; i < 2; i++) {
        TEST_EQ_INT(s_call(p, "x", 1), ZPIPE_ERROR);
        TEST_EQ_STR(s_seen.cause, "python_exception");
        TEST_CHECK(strncmp(s_seen.err, "init failed: OSError: no model file",
                           35) == 0);
    }
}

static void test_bad_settings_are_refused_with_the_reason(void)
{
    static const struct {
        const char *settings, *why;
    } cases[] = {
        {"func=pyt:missing",
         "func=pyt:missing: AttributeError: module 'pyt' has no attribute "
         "'missing'"},
        {"func=nosuchmodule_q:f",
         "ModuleNotFoundError: No module named 'nosuchmodule_q'"},
        {"func=pyt", "expected MODULE:QUALNAME"},
        {"func=pyt:CALLS", "is a list, not callable"},
        {"func=pyt:echo\ncodec=xml", "codec must be raw, pickle or json"},
        {"func=pyt:echo\nstar=yes", "star must be 0 or 1"},
        {"func=pyt:echo\nstar=1", "star=1 needs codec=pickle or codec=json"},
        {"func=pyt:echo\ninit=pyt:nope", "init=pyt:nope: AttributeError"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[512] = "";
        TEST_CHECK(s_inst(cases[i].settings, err, sizeof err) == NULL);
        TEST_CONTAINS(err, cases[i].why);
    }
}

static void test_reducer_folds_and_finishes(void)
{
    char err[512];
    const zp_plugin_t *p = s_inst(
        "codec=json\nreduce=pyt:fold\nreduce_final=pyt:final", err, sizeof err);
    TEST_CHECK(p);
    void *acc = NULL;
    TEST_EQ_INT(p->desc.reduce_init(p->host, &acc), ZPIPE_OK);
    TEST_EQ_INT(p->desc.reduce(acc, (const uint8_t *)"4", 1), ZPIPE_OK);
    TEST_EQ_INT(p->desc.reduce(acc, (const uint8_t *)"38", 2), ZPIPE_OK);
    TEST_EQ_INT(p->desc.reduce(acc, (const uint8_t *)"[", 1), ZPIPE_ERROR);
    memset(&s_seen, 0, sizeof s_seen);
    zpipe_call_t call = {
        .struct_size = sizeof call, .host = p->host, .input = (uint8_t *)""};
    TEST_EQ_INT(p->desc.reduce_final(acc, &call), ZPIPE_OK);
    TEST_CHECK(s_out_is("{\"total\":42}"));
    p->desc.reduce_fini(acc);
    /* Without reduce: refused with the reason. */
    p = s_inst("codec=json", err, sizeof err);
    acc = NULL;
    TEST_EQ_INT(p->desc.reduce_init(p->host, &acc), ZPIPE_INVALID);
    TEST_CONTAINS(zp_plugin_init_error(p), "needs reduce=MODULE:QUALNAME");
}

static const test_case_t tests[] = {
    {"test_without_func_the_plugin_loads_and_says_what_is_missing",
     test_without_func_the_plugin_loads_and_says_what_is_missing},
    {"test_raw_codec_results", test_raw_codec_results},
    {"test_exceptions_become_failures", test_exceptions_become_failures},
    {"test_a_long_traceback_keeps_its_head_and_end",
     test_a_long_traceback_keeps_its_head_and_end},
    {"test_pickle_and_json_with_star", test_pickle_and_json_with_star},
    {"test_init_runs_once_before_the_first_task",
     test_init_runs_once_before_the_first_task},
    {"test_bad_settings_are_refused_with_the_reason",
     test_bad_settings_are_refused_with_the_reason},
    {"test_reducer_folds_and_finishes", test_reducer_folds_and_finishes},
    {NULL, NULL},
};

/* Writes the module, loads python.so once for every test, runs them. */
int main(int argc, char **argv)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/zp-test-python-XXXXXX");
    if (!mkdtemp(s_dir))
        return 2;
    char file[128];
    snprintf(file, sizeof file, "%s/pyt.py", s_dir);
    FILE *f = fopen(file, "w");
    if (!f || fputs(s_module, f) < 0 || fclose(f) != 0)
        return 2;
    snprintf(s_path_setting, sizeof s_path_setting, "path=%s", s_dir);
    s_set = zp_plugins_new(&s_host);
    char err[512];
    s_base =
        zp_plugins_load(s_set, ZP_PLUGIN_DIR "/python.so", err, sizeof err);
    if (!s_base) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    int failed = 0, ran = 0;
    for (const test_case_t *t = tests; t->name; t++) {
        if (argc > 1 && strcmp(argv[1], t->name) != 0)
            continue;
        int before = test_failures;
        t->fn();
        ran++;
        printf("%s %s\n", test_failures == before ? "ok  " : "FAIL", t->name);
        failed += test_failures != before;
    }
    zp_plugins_destroy(&s_set);
    unlink(file);
    char cache[160];
    snprintf(cache, sizeof cache, "rm -rf %s", s_dir);
    if (system(cache) != 0)
        failed++;
    printf("%d passed, %d failed\n", ran - failed, failed);
    return failed ? 1 : 0;
}
