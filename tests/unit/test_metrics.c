/* test_metrics: the exposition zp_metrics renders, its address parsing and
 * its refusals; read as an example of a daemon's render. */
#include "test.h"
#include "zp_metrics.h"
#include "zp_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static void test_parses_addresses(void)
{
    uint32_t a;
    uint16_t p;
    char err[256];
    TEST_EQ_INT(
        zp_metrics_parse_addr("127.0.0.1:9101", &a, &p, err, sizeof err), 0);
    TEST_EQ_INT(ntohl(a), INADDR_LOOPBACK);
    TEST_EQ_INT(p, 9101);
    TEST_EQ_INT(zp_metrics_parse_addr("*:0", &a, &p, err, sizeof err), 0);
    TEST_EQ_INT(ntohl(a), INADDR_ANY);
    TEST_EQ_INT(zp_metrics_parse_addr("localhost:1", &a, &p, err, sizeof err),
                0);
    TEST_EQ_INT(ntohl(a), INADDR_LOOPBACK);
    const char *bad[] = {"garbage", "1.2.3.4:",   "1.2.3.4:65536",
                         "host:80", "1.2.3.4:-1", "1.2.3:80",
                         NULL};
    for (size_t i = 0; bad[i]; i++) {
        err[0] = 0;
        TEST_EQ_INT(zp_metrics_parse_addr(bad[i], &a, &p, err, sizeof err), -1);
        TEST_CONTAINS(err, bad[i]);
    }
}

static void test_histogram_buckets_are_upper_bounds(void)
{
    zp_histogram_t h = {0};
    zp_histogram_observe(&h, 1e-5, 1); /* le is inclusive */
    zp_histogram_observe(&h, 0.003, 4);
    zp_histogram_observe(&h, 99, 1);
    TEST_EQ_INT(h.counts[0], 1);
    TEST_EQ_INT(h.counts[8], 4); /* 0.005 */
    TEST_EQ_INT(h.counts[ZP_HIST_BUCKETS], 1);
    TEST_EQ_INT(h.count, 6);
    TEST_CHECK(h.sum > 99.011 && h.sum < 99.0121);
}

static void test_renders_escaped_families_and_serves_them(void)
{
    char err[256];
    zp_metrics_t *m = zp_metrics_new("127.0.0.1:0", err, sizeof err);
    TEST_CHECK(m);
    TEST_CHECK(zp_metrics_port(m) > 0);
    TEST_CHECK(zp_metrics_due(m, 1));
    zp_metrics_begin(m);
    zp_metrics_family(m, "zpipe_x_total", ZP_METRIC_COUNTER, "a\\b\nc");
    zp_metrics_u64(m, "zpipe_x_total",
                   (const char *const[]){"job_id", "q\"\\\n", NULL},
                   18446744073709551615ull);
    zp_histogram_t h = {0};
    zp_histogram_observe(&h, 0.5, 2);
    zp_metrics_family(m, "zpipe_t_seconds", ZP_METRIC_HISTOGRAM, "t");
    zp_metrics_histogram(m, "zpipe_t_seconds", NULL, &h);
    TEST_EQ_INT(zp_metrics_publish(m, 1000), 0);
    TEST_CHECK(!zp_metrics_due(m, 1000 + ZP_METRICS_PERIOD_US - 1));
    TEST_CHECK(zp_metrics_due(m, 1000 + ZP_METRICS_PERIOD_US));
    size_t len = 0;
    char *text = zp_metrics_snapshot(m, &len);
    TEST_CHECK(text && len == strlen(text));
    TEST_CONTAINS(text, "# HELP zpipe_x_total a\\\\b\\nc\n"
                        "# TYPE zpipe_x_total counter\n"
                        "zpipe_x_total{job_id=\"q\\\"\\\\\\n\"} "
                        "18446744073709551615\n");
    TEST_CONTAINS(text, "zpipe_t_seconds_bucket{le=\"0.25\"} 0\n"
                        "zpipe_t_seconds_bucket{le=\"0.5\"} 2\n");
    TEST_CONTAINS(text, "zpipe_t_seconds_bucket{le=\"+Inf\"} 2\n"
                        "zpipe_t_seconds_sum 1\n"
                        "zpipe_t_seconds_count 2\n");
    free(text);
    zp_metrics_destroy(&m);
    TEST_CHECK(m == NULL);
}

static void test_refuses_a_port_in_use(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    TEST_CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    TEST_CHECK(listen(fd, 1) == 0);
    TEST_CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    char spec[64], err[256];
    snprintf(spec, sizeof spec, "127.0.0.1:%u", ntohs(sa.sin_port));
    zp_metrics_t *m = zp_metrics_new(spec, err, sizeof err);
    close(fd);
    TEST_CHECK(m == NULL);
    TEST_CONTAINS(err, "cannot listen on");
    TEST_CONTAINS(err, spec);
}

static const test_case_t tests[] = {
    {"test_parses_addresses", test_parses_addresses},
    {"test_histogram_buckets_are_upper_bounds",
     test_histogram_buckets_are_upper_bounds},
    {"test_renders_escaped_families_and_serves_them",
     test_renders_escaped_families_and_serves_them},
    {"test_refuses_a_port_in_use", test_refuses_a_port_in_use},
    {NULL, NULL},
};
TEST_MAIN(tests)
