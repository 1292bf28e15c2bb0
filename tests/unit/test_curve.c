/* Tests of zp_curve: keys in czmq's certificate format, and a guard that
 * refuses to start on any misconfiguration. */
#define _GNU_SOURCE
#include "test.h"
#include "zp_curve.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

static char s_dir[] = "/tmp/zp-test-curve-XXXXXX";

static char *s_path(const char *name)
{
    static char buf[16][256];
    static int next;
    char *p = buf[next++ % 16];
    snprintf(p, 256, "%s/%s", s_dir, name);
    return p;
}

static void s_write(const char *name, const char *text)
{
    FILE *f = fopen(s_path(name), "w");
    fputs(text, f);
    fclose(f);
}

static void test_keygen_writes_a_pair_that_reads_back(void)
{
    char err[512], pub[ZP_CURVE_KEY_LEN + 1], pub2[ZP_CURVE_KEY_LEN + 1];
    TEST_EQ_INT(zp_curve_keygen(s_path("a.key"), "a", false, err, sizeof err),
                0);
    TEST_EQ_INT(zp_curve_key(s_path("a.key"), pub, err, sizeof err), 0);
    TEST_EQ_INT(zp_curve_key(s_path("a.key_secret"), pub2, err, sizeof err), 0);
    TEST_EQ_STR(pub, pub2);
    struct stat st;
    TEST_EQ_INT(stat(s_path("a.key_secret"), &st), 0);
    TEST_EQ_INT(st.st_mode & 0777, 0600);
    /* A Z85 key is taken as it is. */
    TEST_EQ_INT(zp_curve_key(pub, pub2, err, sizeof err), 0);
    TEST_EQ_STR(pub, pub2);
    TEST_CHECK(zp_curve_keygen(s_path("a.key"), "a", false, err, sizeof err) <
               0);
    TEST_CONTAINS(err, "exists");
}

static void test_bad_keys_are_refused_with_the_reason(void)
{
    char err[512], key[ZP_CURVE_KEY_LEN + 1];
    TEST_CHECK(zp_curve_key("short", key, err, sizeof err) < 0);
    TEST_CONTAINS(err, "short");
    s_write("junk.key", "curve\n    public-key = \"not z85\"\n");
    TEST_CHECK(zp_curve_key(s_path("junk.key"), key, err, sizeof err) < 0);
    TEST_CONTAINS(err, "not a CURVE certificate");
    s_write("empty.key", "");
    TEST_CHECK(zp_curve_key(s_path("empty.key"), key, err, sizeof err) < 0);
}

static void test_guard_refuses_every_misconfiguration(void)
{
    void *ctx = zmq_ctx_new();
    char err[512];
    zp_curve_keygen(s_path("s.key"), "s", true, err, sizeof err);
    mkdir(s_path("allow"), 0755);
    mkdir(s_path("none"), 0755);
    zp_curve_keygen(s_path("allow/peer.key"), "peer", true, err, sizeof err);
    struct {
        zp_curve_config_t cfg;
        const char *why;
    } cases[] = {
        {{s_path("s.key"), s_path("allow")}, "has no secret key"},
        {{s_path("s.key_secret"), s_path("missing")}, "cannot read"},
        {{s_path("s.key_secret"), s_path("none")}, "no public certificates"},
        {{NULL, s_path("allow")}, "needs --curve-secret"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        zp_curve_t *g = zp_curve_new(ctx, &cases[i].cfg, err, sizeof err);
        TEST_CHECK(g == NULL);
        TEST_CONTAINS(err, cases[i].why);
    }
    /* A good one: serves, and only one handler can bind in a context. */
    zp_curve_config_t ok = {s_path("s.key_secret"), s_path("allow")};
    zp_curve_t *g = zp_curve_new(ctx, &ok, err, sizeof err);
    TEST_CHECK(g && zp_curve_enabled(g));
    zp_curve_t *twice = zp_curve_new(ctx, &ok, err, sizeof err);
    TEST_CHECK(twice == NULL);
    TEST_CONTAINS(err, "cannot start the CURVE authenticator");
    zp_curve_destroy(&g);
    TEST_CHECK(g == NULL);
    /* Off: a no-op guard; a server key then is a mistake. */
    zp_curve_config_t off = {NULL, NULL};
    g = zp_curve_new(ctx, &off, err, sizeof err);
    char key[ZP_CURVE_KEY_LEN + 1];
    TEST_CHECK(g && !zp_curve_enabled(g));
    TEST_CHECK(zp_curve_peer_key(g, "sink-key", s_path("s.key"), key, err,
                                 sizeof err) < 0);
    TEST_CONTAINS(err, "--sink-key needs --curve-secret");
    zp_curve_destroy(&g);
    zmq_ctx_term(ctx);
}

static void s_cleanup(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", s_dir);
}

static const test_case_t tests[] = {
    {"test_keygen_writes_a_pair_that_reads_back",
     test_keygen_writes_a_pair_that_reads_back},
    {"test_bad_keys_are_refused_with_the_reason",
     test_bad_keys_are_refused_with_the_reason},
    {"test_guard_refuses_every_misconfiguration",
     test_guard_refuses_every_misconfiguration},
    {NULL, NULL},
};

static int s_main(int argc, char **argv);
int main(int argc, char **argv)
{
    if (!mkdtemp(s_dir))
        return 1;
    int rc = s_main(argc, argv);
    s_cleanup();
    return rc;
}
#define main s_main
TEST_MAIN(tests)
