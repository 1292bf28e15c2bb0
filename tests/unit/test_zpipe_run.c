/* Tests for zpipe run's set-up (zpipe/run_setup.c): the usage errors and
 * the command lines the children are started with. */
#define _GNU_SOURCE
#include "run.h"
#include "test.h"
#include "zp_log.h"

#include <unistd.h>

static const char *s_usage(zp_run_opts_t *o)
{
    static char addr[96], url[128], err[160];
    return zp_run_usage_error(o, addr, sizeof addr, url, sizeof url, err,
                              sizeof err);
}

static void test_usage_errors_in_order(void)
{
    zp_run_opts_t o;
    zp_run_opts_init(&o);
    TEST_EQ_STR(s_usage(&o), "--plugin is required");
    o.plugin = "echo";
    TEST_CHECK(s_usage(&o) == NULL);
    o.journal = "j";
    TEST_EQ_STR(s_usage(&o), "--journal needs --output FILE");
    o.output = "out";
    o.reduce = true; /* a reducing sink keeps its journal too */
    TEST_CHECK(s_usage(&o) == NULL);
    o.reduce = false;
    o.journal = NULL;
    o.resume = true;
    TEST_EQ_STR(s_usage(&o), "--resume needs --journal FILE");
    o.resume = false;
    o.job = "bad job";
    TEST_EQ_STR(s_usage(&o), "--job must be 1 to 128 of [A-Za-z0-9_.:-]");
    o.job = "job-1";
    const char *bad[] = {"=x"};
    o.config.items = bad;
    o.config.count = 1;
    TEST_EQ_STR(s_usage(&o), "--config takes KEY=VALUE");
    o.config.count = 33;
    TEST_EQ_STR(s_usage(&o), "at most 32 --config settings");
    o.config.count = 0;
    o.web = "nonsense";
    TEST_CHECK(s_usage(&o) != NULL);
    TEST_CHECK(strncmp(s_usage(&o), "--web ", 6) == 0);
}

static void test_web_port_zero_becomes_a_free_port(void)
{
    zp_run_opts_t o;
    zp_run_opts_init(&o);
    o.plugin = "echo";
    o.web = "0.0.0.0:0";
    char addr[96], url[128], err[160];
    TEST_CHECK(zp_run_usage_error(&o, addr, sizeof addr, url, sizeof url, err,
                                  sizeof err) == NULL);
    TEST_CHECK(strncmp(addr, "0.0.0.0:", 8) == 0 && strcmp(addr + 8, "0"));
    TEST_CHECK(strncmp(url, "http://127.0.0.1:", 17) == 0);
}

/* argv as one line, " "-separated. */
static const char *s_line(char *const *argv)
{
    static char line[4096];
    size_t n = 0;
    line[0] = '\0';
    for (size_t i = 0; argv[i] && n < sizeof line; i++)
        n += (size_t)snprintf(line + n, sizeof line - n, "%s%s", i ? " " : "",
                              argv[i]);
    return line;
}

static void test_command_lines(void)
{
    zp_log_set_level("warn");
    zp_run_opts_t o;
    zp_run_opts_init(&o);
    o.plugin = "echo";
    o.output = "out.jsonl";
    o.ordered = true;
    o.journal = "j.log";
    o.resume = true;
    o.trace = "t.json";
    const char *conf[] = {"a=1"};
    o.config.items = conf;
    o.config.count = 1;
    char *pconf[] = {"echo.a=1"};
    zp_run_plan_t p = {0};
    TEST_EQ_INT(zp_run_plan_endpoints(&p, "ipc", "/tmp/d"), 0);
    zp_run_names_t n = {"/b/zpipe-sink",   "/b/zpipe-ventilator",
                        "/b/zpipe-worker", "echo",
                        "job-1",           pconf,
                        "127.0.0.1:9000"};
    zp_run_plan_argv(&p, &o, &n);
    char common[128];
    snprintf(common, sizeof common,
             " --parent-pid %d --log-level warn --log-format text",
             (int)getpid());
    char expect[2048];
    snprintf(expect, sizeof expect,
             "/b/zpipe-sink --results ipc:///tmp/d/results --control "
             "ipc:///tmp/d/control --publish none --output out.jsonl --format "
             "jsonl --ordered --journal j.log --trace /tmp/d/trace.jsonl "
             "--metrics 127.0.0.1:9000%s",
             common);
    TEST_EQ_STR(s_line(p.argv[ZP_ROLE_SINK]), expect);
    snprintf(expect, sizeof expect,
             "/b/zpipe-ventilator --bind ipc:///tmp/d/dispatch --sink "
             "ipc:///tmp/d/control --input - --input-format lines --plugin "
             "echo --job job-1 "
             "--dispatch credit --batch 0 --deadline-ms 0 --max-attempts 3 "
             "--no-worker-timeout-ms 30000 --trace --resume-journal j.log%s",
             common);
    TEST_EQ_STR(s_line(p.argv[ZP_ROLE_VENTILATOR]), expect);
    snprintf(expect, sizeof expect,
             "/b/zpipe-worker --ventilator ipc:///tmp/d/dispatch --sink "
             "ipc:///tmp/d/results --plugin echo --plugin-config echo.a=1 "
             "--dispatch credit --window 4096 --isolation process "
             "--memory-limit 0%s",
             common);
    TEST_EQ_STR(s_line(p.argv[ZP_ROLE_WORKER]), expect);
}

static void test_reduce_and_tcp_command_lines(void)
{
    zp_run_opts_t o;
    zp_run_opts_init(&o);
    o.plugin = "wordcount";
    o.reduce = true;
    zp_run_plan_t p = {0};
    TEST_EQ_INT(zp_run_plan_endpoints(&p, "tcp", "/tmp/d"), 0);
    TEST_CHECK(strncmp(p.ep_disp, "tcp://127.0.0.1:", 16) == 0);
    TEST_CHECK(strcmp(p.ep_disp, p.ep_res) && strcmp(p.ep_res, p.ep_ctl) &&
               strcmp(p.ep_disp, p.ep_ctl));
    zp_run_names_t n = {"s", "v", "w", "wordcount", "job-1", NULL, ""};
    zp_run_plan_argv(&p, &o, &n);
    const char *sink = s_line(p.argv[ZP_ROLE_SINK]);
    /* A reducing sink keeps its own journal too (its folded results
     * beside it): a sink killed mid-run is restarted. */
    TEST_CONTAINS(sink, "--format jsonl --journal " /* then the path */);
    TEST_CONTAINS(sink, "sink.journal --journal-sync no --reduce wordcount "
                        "--parent-pid");
    TEST_CHECK(!strstr(sink, "--metrics"));
}

/* Without --journal the sink keeps its own in the private directory, so
 * that a sink killed mid-run is restarted and resumes. */
static void test_sink_journal_without_journal(void)
{
    zp_run_opts_t o;
    zp_run_opts_init(&o);
    o.plugin = "echo";
    zp_run_plan_t p = {0};
    TEST_EQ_INT(zp_run_plan_endpoints(&p, "ipc", "/tmp/d"), 0);
    zp_run_names_t n = {"s", "v", "w", "echo", "job-1", NULL, ""};
    zp_run_plan_argv(&p, &o, &n);
    TEST_CONTAINS(s_line(p.argv[ZP_ROLE_SINK]),
                  "--format jsonl --journal /tmp/d/sink.journal "
                  "--journal-sync no --parent-pid");
}

static const test_case_t tests[] = {
    {"test_usage_errors_in_order", test_usage_errors_in_order},
    {"test_web_port_zero_becomes_a_free_port",
     test_web_port_zero_becomes_a_free_port},
    {"test_command_lines", test_command_lines},
    {"test_reduce_and_tcp_command_lines", test_reduce_and_tcp_command_lines},
    {"test_sink_journal_without_journal", test_sink_journal_without_journal},
    {NULL, NULL},
};

TEST_MAIN(tests)
