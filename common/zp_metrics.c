/* zp_metrics: snapshots of a daemon's counters rendered in the Prometheus
 * text exposition format (version 0.0.4), served by libmicrohttpd, loaded
 * by zp_metrics_new (zp_mhd.h). */
#include "zp_metrics.h"
#include "zp_log.h"
#include "zp_mhd.h"
#include "zp_util.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define S_CSP                                                                  \
    "default-src 'none'; script-src 'unsafe-inline'; style-src "               \
    "'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; "    \
    "form-action 'none'; frame-ancestors 'none'"

const double zp_hist_bounds[ZP_HIST_BUCKETS] = {
    1e-5,   2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2,
    2.5e-2, 5e-2,   0.1,  0.25, 0.5,    1.0,  2.5,  5.0,    10.0};

/* One served path: rendered by the owning thread (served/pending swapped
 * under the lock, like the metrics text) or fixed (borrowed bytes). */
typedef struct {
    char path[64];
    char content_type[64];
    const void *fixed; /* borrowed; NULL = rendered */
    size_t fixed_len;
    zp_buf_t served;  /* under lock */
    bool ready;       /* under lock: served holds a snapshot */
    zp_buf_t pending; /* the owning thread's render */
} s_doc_t;

struct zp_metrics {
    const zp_mhd_t *mhd; /* libmicrohttpd's functions */
    struct MHD_Daemon *httpd;
    int fd; /* the listening socket, owned */
    unsigned port;
    char host[16]; /* the bound address, dotted */
    pthread_mutex_t lock;
    s_doc_t docs[ZP_METRICS_MAX_DOCS]; /* [0] is /metrics */
    size_t n_docs;                     /* under lock */
    bool render_failed;
    uint64_t published_us;
};

void zp_histogram_observe(zp_histogram_t *h, double value, uint64_t n)
{
    size_t i = 0;
    while (i < ZP_HIST_BUCKETS && value > zp_hist_bounds[i])
        i++;
    h->counts[i] += n;
    h->count += n;
    h->sum += value * (double)n;
}

int zp_metrics_parse_addr(const char *spec, uint32_t *addr_be, uint16_t *port,
                          char *err, size_t errlen)
{
    const char *colon = spec ? strrchr(spec, ':') : NULL;
    if (!colon) {
        snprintf(err, errlen,
                 "--metrics %s: expected HOST:PORT, e.g. "
                 "127.0.0.1:9101",
                 spec ? spec : "(null)");
        return -1;
    }
    uint64_t p;
    if (zp_parse_u64(colon + 1, 0, 65535, &p) < 0) {
        snprintf(err, errlen, "--metrics %s: port must be 0-65535", spec);
        return -1;
    }
    char host[64];
    size_t hlen = (size_t)(colon - spec);
    if (hlen >= sizeof host) {
        snprintf(err, errlen, "--metrics %s: host too long", spec);
        return -1;
    }
    memcpy(host, spec, hlen);
    host[hlen] = 0;
    struct in_addr a;
    if (hlen == 0 || strcmp(host, "*") == 0)
        a.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        a.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &a) != 1) {
        snprintf(err, errlen,
                 "--metrics %s: host must be an IPv4 address, localhost or *",
                 spec);
        return -1;
    }
    *addr_be = a.s_addr;
    *port = (uint16_t)p;
    return 0;
}

/* The document at url, copied under the lock into *copy (NULL when it is
 * fixed: then *fixed); -1 when there is none, 0 when it has not been
 * rendered yet, 1 when it has (*copy NULL then means out of memory). */
static int s_lookup(zp_metrics_t *self, const char *url, char **copy,
                    const void **fixed, size_t *len, const char **ctype)
{
    int found = -1;
    *copy = NULL;
    *fixed = NULL;
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->n_docs && found < 0; i++) {
        s_doc_t *d = &self->docs[i];
        if (strcmp(url, d->path) != 0)
            continue;
        *ctype = d->content_type;
        if (d->fixed) {
            *fixed = d->fixed;
            *len = d->fixed_len;
            found = 1;
        } else if (d->ready) {
            *len = d->served.len;
            *copy = malloc(*len ? *len : 1);
            if (*copy && *len)
                memcpy(*copy, d->served.data, *len);
            found = 1;
        } else {
            found = 0;
        }
    }
    pthread_mutex_unlock(&self->lock);
    return found;
}

/* HTTP connections at once: an eighth of the process's file descriptors
 * (the daemon's own files come first), at most S_MAX_CONNECTIONS. */
#define S_MAX_CONNECTIONS 256
/* A connection silent this long is closed. */
#define S_IDLE_S 10

static unsigned s_connection_limit(void)
{
    struct rlimit rl;
    rlim_t n = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur / 8 : 16;
    if (n > S_MAX_CONNECTIONS)
        n = S_MAX_CONNECTIONS;
    return n < 16 ? 16 : (unsigned)n;
}

static enum MHD_Result s_answer(void *cls, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                const char *version, const char *upload,
                                size_t *upload_len, void **state)
{
    (void)version;
    (void)upload;
    (void)upload_len;
    (void)state;
    zp_metrics_t *self = cls;
    const zp_mhd_t *m = self->mhd;
    unsigned status = MHD_HTTP_OK;
    struct MHD_Response *resp;
    const char *ctype = "text/plain";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        static const char msg[] = "method not allowed\n";
        resp = m->MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg,
                                                  MHD_RESPMEM_PERSISTENT);
    } else {
        char *copy;
        const void *fixed;
        size_t len = 0;
        const char *doc_type = NULL;
        int found = s_lookup(self, url, &copy, &fixed, &len, &doc_type);
        if (found < 0) {
            status = MHD_HTTP_NOT_FOUND;
            static const char msg[] = "not found: metrics are at /metrics\n";
            resp = m->MHD_create_response_from_buffer(
                sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
        } else if (found == 0) {
            /* between the bind and the daemon's first render */
            static const char msg[] = "not rendered yet\n";
            status = MHD_HTTP_SERVICE_UNAVAILABLE;
            resp = m->MHD_create_response_from_buffer(
                sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
        } else if (fixed) {
            ctype = doc_type;
            resp = m->MHD_create_response_from_buffer(len, (void *)fixed,
                                                      MHD_RESPMEM_PERSISTENT);
        } else if (!copy) {
            return MHD_NO;
        } else {
            ctype = doc_type;
            resp = m->MHD_create_response_from_buffer(len, copy,
                                                      MHD_RESPMEM_MUST_FREE);
            if (!resp) {
                free(copy);
                return MHD_NO;
            }
        }
    }
    if (!resp)
        return MHD_NO;
    m->MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    /* Snapshots change every period; a page served here may talk to this
     * origin only (no other requests, no framing). */
    m->MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    m->MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    m->MHD_add_response_header(resp, "Content-Security-Policy", S_CSP);
    enum MHD_Result r = m->MHD_queue_response(conn, status, resp);
    m->MHD_destroy_response(resp);
    return r;
}

int zp_metrics_load(const char *what, char *err, size_t errlen)
{
    return zp_mhd(what, err, errlen) ? 0 : -1;
}

zp_metrics_t *zp_metrics_new(const char *spec, char *err, size_t errlen)
{
    uint32_t addr;
    uint16_t port;
    if (zp_metrics_parse_addr(spec, &addr, &port, err, errlen) < 0)
        return NULL;
    const zp_mhd_t *mhd = zp_mhd("--metrics", err, errlen);
    if (!mhd)
        return NULL;
    zp_metrics_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "metrics: out of memory");
        return NULL;
    }
    self->mhd = mhd;
    /* Bound here rather than by libmicrohttpd, to report why it failed. */
    self->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (self->fd < 0) {
        snprintf(err, errlen, "metrics: socket: %s", strerror(errno));
        goto fail_alloc;
    }
    int one = 1;
    setsockopt(self->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(port),
                             .sin_addr.s_addr = addr};
    if (bind(self->fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(self->fd, 32) != 0) {
        snprintf(err, errlen, "metrics: cannot listen on %s: %s", spec,
                 strerror(errno));
        goto fail_socket;
    }
    socklen_t salen = sizeof sa;
    if (getsockname(self->fd, (struct sockaddr *)&sa, &salen) != 0) {
        snprintf(err, errlen, "metrics: getsockname: %s", strerror(errno));
        goto fail_socket;
    }
    self->port = ntohs(sa.sin_port);
    snprintf(self->docs[0].path, sizeof self->docs[0].path, "/metrics");
    snprintf(self->docs[0].content_type, sizeof self->docs[0].content_type,
             "%s", S_CONTENT_TYPE);
    self->n_docs = 1;
    if (pthread_mutex_init(&self->lock, NULL) != 0) {
        snprintf(err, errlen, "metrics: mutex init failed");
        goto fail_socket;
    }
    /* The HTTP thread inherits this mask: stop signals go to the daemon's
     * thread, whose poll they are meant to interrupt. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    /* epoll, not select: slow clients cost a slot each, not the thread.
     * One address may hold a quarter of the slots, so a slow or hostile
     * client leaves room for the scraper (slowloris). */
    unsigned limit = s_connection_limit();
    self->httpd = self->mhd->MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, s_answer,
        self, MHD_OPTION_LISTEN_SOCKET, self->fd, MHD_OPTION_CONNECTION_LIMIT,
        limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT, limit / 4,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)S_IDLE_S, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!self->httpd) {
        snprintf(err, errlen, "metrics: libmicrohttpd failed to start on %s",
                 spec);
        goto fail_mutex;
    }
    if (!inet_ntop(AF_INET, &sa.sin_addr, self->host, sizeof self->host))
        snprintf(self->host, sizeof self->host, "?");
    zp_info("metrics: serving http://%s:%u/metrics", self->host, self->port);
    return self;

fail_mutex:
    pthread_mutex_destroy(&self->lock);
fail_socket:
    close(self->fd);
fail_alloc:
    free(self);
    return NULL;
}

void zp_metrics_destroy(zp_metrics_t **self_p)
{
    zp_metrics_t *self = *self_p;
    if (!self)
        return;
    self->mhd->MHD_stop_daemon(self->httpd);
    close(self->fd);
    pthread_mutex_destroy(&self->lock);
    for (size_t i = 0; i < self->n_docs; i++) {
        zp_buf_free(&self->docs[i].served);
        zp_buf_free(&self->docs[i].pending);
    }
    free(self);
    *self_p = NULL;
}

unsigned zp_metrics_port(const zp_metrics_t *self)
{
    return self->port;
}

const char *zp_metrics_host(const zp_metrics_t *self)
{
    return self->host;
}

bool zp_metrics_due(const zp_metrics_t *self, uint64_t now_us)
{
    return self && (self->published_us == 0 ||
                    now_us - self->published_us >= ZP_METRICS_PERIOD_US);
}

void zp_metrics_begin(zp_metrics_t *self)
{
    self->docs[0].pending.len = 0;
    self->render_failed = false;
}

static void s_put(zp_metrics_t *self, const char *s, size_t len)
{
    if (zp_buf_append(&self->docs[0].pending, s, len) < 0)
        self->render_failed = true;
}

/* Escapes for HELP (backslash, newline) or label values (also '"'). */
static void s_put_escaped(zp_metrics_t *self, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = *s == '\\'           ? "\\\\"
                          : *s == '\n'         ? "\\n"
                          : quote && *s == '"' ? "\\\""
                                               : NULL;
        if (!esc)
            continue;
        s_put(self, run, (size_t)(s - run));
        s_put(self, esc, strlen(esc));
        run = s + 1;
    }
    s_put(self, run, (size_t)(s - run));
}

void zp_metrics_family(zp_metrics_t *self, const char *name,
                       zp_metric_type_t type, const char *help)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    s_put(self, "# HELP ", 7);
    s_put(self, name, strlen(name));
    s_put(self, " ", 1);
    s_put_escaped(self, help, false);
    s_put(self, "\n# TYPE ", 8);
    s_put(self, name, strlen(name));
    s_put(self, " ", 1);
    s_put(self, types[type], strlen(types[type]));
    s_put(self, "\n", 1);
}

/* name{k="v",...,extra_k="extra_v"} and a space. */
static void s_series(zp_metrics_t *self, const char *name,
                     const char *const *labels, const char *extra_k,
                     const char *extra_v)
{
    s_put(self, name, strlen(name));
    bool any = false;
    for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
        s_put(self, any ? "," : "{", 1);
        s_put(self, labels[i], strlen(labels[i]));
        s_put(self, "=\"", 2);
        s_put_escaped(self, labels[i + 1], true);
        s_put(self, "\"", 1);
        any = true;
    }
    if (extra_k) {
        s_put(self, any ? "," : "{", 1);
        s_put(self, extra_k, strlen(extra_k));
        s_put(self, "=\"", 2);
        s_put(self, extra_v, strlen(extra_v));
        s_put(self, "\"", 1);
        any = true;
    }
    s_put(self, any ? "} " : " ", any ? 2 : 1);
}

void zp_metrics_u64(zp_metrics_t *self, const char *name,
                    const char *const *labels, uint64_t value)
{
    s_series(self, name, labels, NULL, NULL);
    if (zp_buf_printf(&self->docs[0].pending, "%llu\n",
                      (unsigned long long)value) < 0)
        self->render_failed = true;
}

void zp_metrics_f64(zp_metrics_t *self, const char *name,
                    const char *const *labels, double value)
{
    s_series(self, name, labels, NULL, NULL);
    if (zp_buf_printf(&self->docs[0].pending, "%.17g\n", value) < 0)
        self->render_failed = true;
}

void zp_metrics_histogram(zp_metrics_t *self, const char *name,
                          const char *const *labels, const zp_histogram_t *h)
{
    char series[128], le[32];
    snprintf(series, sizeof series, "%s_bucket", name);
    uint64_t cum = 0;
    for (size_t i = 0; i <= ZP_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        if (i < ZP_HIST_BUCKETS)
            snprintf(le, sizeof le, "%g", zp_hist_bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        s_series(self, series, labels, "le", le);
        if (zp_buf_printf(&self->docs[0].pending, "%llu\n",
                          (unsigned long long)cum) < 0)
            self->render_failed = true;
    }
    snprintf(series, sizeof series, "%s_sum", name);
    zp_metrics_f64(self, series, labels, h->sum);
    snprintf(series, sizeof series, "%s_count", name);
    zp_metrics_u64(self, series, labels, h->count);
}

/* Makes doc's render the served one: a swap, so the next render reuses
 * the old snapshot's memory. */
static void s_swap(zp_metrics_t *self, s_doc_t *d)
{
    pthread_mutex_lock(&self->lock);
    zp_buf_t t = d->served;
    d->served = d->pending;
    d->pending = t;
    d->ready = true;
    pthread_mutex_unlock(&self->lock);
}

int zp_metrics_publish(zp_metrics_t *self, uint64_t now_us)
{
    self->published_us = now_us ? now_us : 1;
    if (self->render_failed)
        return -1;
    s_swap(self, &self->docs[0]);
    return 0;
}

char *zp_metrics_snapshot(zp_metrics_t *self, size_t *len)
{
    return zp_metrics_doc_snapshot(self, "/metrics", len);
}

int zp_metrics_serve(zp_metrics_t *self, const char *path,
                     const char *content_type, const void *data, size_t len)
{
    if (!path || path[0] != '/' || strlen(path) >= sizeof self->docs[0].path ||
        !content_type ||
        strlen(content_type) >= sizeof self->docs[0].content_type)
        return -1;
    int doc = -1;
    pthread_mutex_lock(&self->lock);
    bool taken = false;
    for (size_t i = 0; i < self->n_docs; i++)
        taken = taken || strcmp(self->docs[i].path, path) == 0;
    if (!taken && self->n_docs < ZP_METRICS_MAX_DOCS) {
        s_doc_t *d = &self->docs[self->n_docs];
        memset(d, 0, sizeof *d);
        snprintf(d->path, sizeof d->path, "%s", path);
        snprintf(d->content_type, sizeof d->content_type, "%s", content_type);
        d->fixed = data;
        d->fixed_len = data ? len : 0;
        doc = (int)self->n_docs++;
    }
    pthread_mutex_unlock(&self->lock);
    return doc;
}

zp_buf_t *zp_metrics_doc_begin(zp_metrics_t *self, int doc)
{
    /* The table only grows, on this thread: no lock to read it here. */
    assert(doc > 0 && (size_t)doc < self->n_docs && !self->docs[doc].fixed);
    zp_buf_t *b = &self->docs[doc].pending;
    b->len = 0;
    return b;
}

int zp_metrics_doc_publish(zp_metrics_t *self, int doc, bool complete)
{
    assert(doc > 0 && (size_t)doc < self->n_docs && !self->docs[doc].fixed);
    if (!complete)
        return -1;
    s_swap(self, &self->docs[doc]);
    return 0;
}

char *zp_metrics_doc_snapshot(zp_metrics_t *self, const char *path, size_t *len)
{
    char *copy = NULL;
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->n_docs; i++) {
        const s_doc_t *d = &self->docs[i];
        if (strcmp(d->path, path) != 0)
            continue;
        const char *data = d->fixed ? d->fixed : d->served.data;
        size_t n = d->fixed ? d->fixed_len : d->served.len;
        copy = malloc(n + 1);
        if (copy) {
            if (n)
                memcpy(copy, data, n);
            copy[n] = 0;
            *len = n;
        }
        break;
    }
    pthread_mutex_unlock(&self->lock);
    return copy;
}
