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

/* The whole response to "GET path" from the server on port, or "" on a
 * socket error; caller frees. */
static char *s_http_get(unsigned port, const char *path)
{
    zp_buf_t b = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        char req[256];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n",
                         path);
        if (write(fd, req, (size_t)n) == n) {
            char chunk[4096];
            ssize_t got;
            while ((got = read(fd, chunk, sizeof chunk)) > 0)
                zp_buf_append(&b, chunk, (size_t)got);
        }
    }
    if (fd >= 0)
        close(fd);
    zp_buf_append(&b, "", 1);
    return b.data;
}

static void test_serves_fixed_and_rendered_documents(void)
{
    char err[256];
    zp_metrics_t *m = zp_metrics_new("127.0.0.1:0", err, sizeof err);
    TEST_CHECK(m);
    static const char page[] = "<!doctype html><p>hi</p>";
    int fixed = zp_metrics_serve(m, "/", "text/html; charset=utf-8", page, 24);
    int state = zp_metrics_serve(m, "/api/state", "application/json", NULL, 0);
    TEST_CHECK(fixed > 0 && state > 0 && fixed != state);
    TEST_EQ_INT(zp_metrics_serve(m, "/api/state", "text/plain", NULL, 0), -1);
    TEST_EQ_INT(zp_metrics_serve(m, "/metrics", "text/plain", NULL, 0), -1);
    TEST_EQ_INT(zp_metrics_serve(m, "relative", "text/plain", NULL, 0), -1);
    unsigned port = zp_metrics_port(m);

    char *r = s_http_get(port, "/api/state");
    TEST_CONTAINS(r, " 503 ");
    free(r);
    zp_buf_t *b = zp_metrics_doc_begin(m, state);
    zp_buf_append_str(b, "{\"n\":1}");
    TEST_EQ_INT(zp_metrics_doc_publish(m, state, true), 0);
    b = zp_metrics_doc_begin(m, state);
    zp_buf_append_str(b, "{\"n\":");
    TEST_EQ_INT(zp_metrics_doc_publish(m, state, false), -1);

    r = s_http_get(port, "/api/state?x=1");
    TEST_CONTAINS(r, " 200 ");
    TEST_CONTAINS(r, "Content-Type: application/json");
    TEST_CONTAINS(r, "Cache-Control: no-store");
    TEST_CONTAINS(r, "connect-src 'self'");
    TEST_CONTAINS(r, "\r\n\r\n{\"n\":1}"); /* the incomplete one was dropped */
    free(r);
    r = s_http_get(port, "/");
    TEST_CONTAINS(r, "Content-Type: text/html; charset=utf-8");
    TEST_CONTAINS(r, "\r\n\r\n<!doctype html><p>hi</p>");
    free(r);
    r = s_http_get(port, "/index.html");
    TEST_CONTAINS(r, " 404 ");
    free(r);
    r = s_http_get(port, "/metrics");
    TEST_CONTAINS(r, " 503 "); /* nothing published at /metrics yet */
    free(r);
    size_t len = 0;
    char *text = zp_metrics_doc_snapshot(m, "/api/state", &len);
    TEST_CHECK(zp_metrics_doc_snapshot(m, "/nothing", &len) == NULL);
    TEST_EQ_STR(text, "{\"n\":1}");
    free(text);
    zp_metrics_destroy(&m);
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
    {"test_serves_fixed_and_rendered_documents",
     test_serves_fixed_and_rendered_documents},
    {"test_refuses_a_port_in_use", test_refuses_a_port_in_use},
    {NULL, NULL},
};
TEST_MAIN(tests)
