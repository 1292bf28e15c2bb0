/* plain_pipeline: the fastest plain libzmq pipeline for big payloads, the
 * second yardstick beside raw_pipeline (bench/README.md). PUSH -> PULL/PUSH
 * -> PULL, one message per line, no protobuf, no acknowledgements, but
 * without a copy in user space: the ventilator reads the input in large
 * chunks and sends each line from its chunk (zmq_msg_init_data, the chunk
 * freed when its last message is), each worker forwards the message it
 * received, and the sink writes messages straight from libzmq's buffers
 * with writev. Per payload byte: 6 copies, all by the kernel (read; send
 * and receive on each of the two hops; write).
 *
 *   plain_pipeline run --workers N --input FILE --output FILE
 *                      [--transport ipc|tcp]
 *
 * The input's lines must end with a newline. Prints "seconds=S" (spawn of the
 * first process to the sink's exit) and each process's peak RSS, as
 * raw_pipeline does. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

extern char **environ;

#define S_CHUNK (4u << 20) /* bytes read at once */
#define S_IOV   64         /* messages per writev */
#define S_NAMES 4
/* Connects with a 2 ms reconnect interval, as zpipe's daemons do
 * (zp_fast_reconnect): a peer that connects before the other end binds
 * retries at once instead of after libzmq's default 100 ms, which made
 * 1 run in 3 or so take 100-200 ms longer (its 1-line job: 0.019 to
 * 0.196 s), a start-up race, not the limit this program stands for. */
static void s_connect(void *sock, const char *ep)
{
    int ivl = 2, ivl_max = 1000;
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    zmq_connect(sock, ep);
}

static const char *s_names[S_NAMES] = {"tasks", "ready", "results", "count"};

static uint64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Endpoint for a named socket: ipc://DIR/name, or tcp://HOST:PORT+k. */
static void s_ep(char *out, size_t len, const char *base, const char *name)
{
    if (strncmp(base, "tcp://", 6) == 0) {
        const char *colon = strrchr(base, ':');
        int port = (int)strtol(colon + 1, NULL, 10), k = 0;
        for (int i = 0; i < S_NAMES; i++)
            if (!strcmp(s_names[i], name))
                k = i;
        snprintf(out, len, "%.*s:%d", (int)(colon - base), base, port + k);
    } else
        snprintf(out, len, "%s/%s", base, name);
}

/* A block of input; freed by the last message pointing into it (libzmq
 * calls s_unref from its I/O thread). */
typedef struct {
    atomic_size_t refs;
    size_t cap, len;
    char data[];
} s_chunk_t;

static s_chunk_t *s_chunk_new(size_t cap)
{
    s_chunk_t *c = malloc(sizeof *c + cap);
    if (!c)
        exit(3);
    atomic_init(&c->refs, 1); /* the reader's */
    c->cap = cap;
    c->len = 0;
    return c;
}

static void s_unref(void *data, void *hint)
{
    (void)data;
    s_chunk_t *c = hint;
    if (atomic_fetch_sub(&c->refs, 1) == 1)
        free(c);
}

/* Sends line [p, p + n) of chunk c without copying it. */
static void s_send(void *push, s_chunk_t *c, char *p, size_t n)
{
    zmq_msg_t m;
    atomic_fetch_add(&c->refs, 1);
    zmq_msg_init_data(&m, p, n, s_unref, c);
    while (zmq_msg_send(&m, push, 0) < 0 && errno == EINTR)
        ;
}

/* ventilator: waits for the workers' ready messages, sends every line,
 * then the line count to the sink (which learns when it is done without a
 * counting pass over the input). Stays up until killed, so nothing in
 * flight is lost to an early close. */
static int s_vent(const char *dir, const char *input, int workers)
{
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH), *ready = zmq_socket(ctx, ZMQ_PULL);
    void *sink = zmq_socket(ctx, ZMQ_PUSH);
    char ep[512], b[16];
    s_ep(ep, sizeof ep, dir, "tasks");
    zmq_bind(push, ep);
    s_ep(ep, sizeof ep, dir, "ready");
    zmq_bind(ready, ep);
    s_ep(ep, sizeof ep, dir, "count");
    s_connect(sink, ep);
    int fd = open(input, O_RDONLY);
    if (fd < 0)
        return 3;
    for (int i = 0; i < workers; i++)
        zmq_recv(ready, b, sizeof b, 0);
    uint64_t count = 0;
    ssize_t r;
    s_chunk_t *c = s_chunk_new(S_CHUNK);
    size_t start = 0;
    for (;;) {
        r = read(fd, c->data + c->len, c->cap - c->len);
        if (r <= 0)
            break;
        c->len += (size_t)r;
        char *nl;
        while ((nl = memchr(c->data + start, '\n', c->len - start))) {
            s_send(push, c, c->data + start, (size_t)(nl - c->data) - start);
            count++;
            start = (size_t)(nl - c->data) + 1;
        }
        if (c->len < c->cap)
            continue;
        /* Full: the partial line moves to a new chunk, which holds at
         * least twice it (a line longer than a chunk grows its own). */
        size_t part = c->len - start, cap = S_CHUNK;
        while (cap < 2 * part)
            cap *= 2;
        s_chunk_t *n = s_chunk_new(cap);
        memcpy(n->data, c->data + start, part);
        n->len = part;
        s_unref(NULL, c);
        c = n;
        start = 0;
    }
    s_unref(NULL, c);
    close(fd);
    zmq_send(sink, &count, sizeof count, 0);
    pause();
    return 0;
}

static int s_worker(const char *dir)
{
    void *ctx = zmq_ctx_new();
    void *pull = zmq_socket(ctx, ZMQ_PULL), *push = zmq_socket(ctx, ZMQ_PUSH);
    void *ready = zmq_socket(ctx, ZMQ_PUSH);
    char ep[512];
    s_ep(ep, sizeof ep, dir, "tasks");
    s_connect(pull, ep);
    s_ep(ep, sizeof ep, dir, "results");
    s_connect(push, ep);
    s_ep(ep, sizeof ep, dir, "ready");
    s_connect(ready, ep);
    zmq_send(ready, "r", 1, 0);
    zmq_msg_t m;
    zmq_msg_init(&m);
    for (;;) {
        if (zmq_msg_recv(&m, pull, 0) < 0)
            break;
        zmq_msg_send(&m, push, 0); /* output = payload, as echo */
    }
    return 0;
}

/* Writes the messages held, each followed by a newline, and frees them. */
static void s_flush(int fd, zmq_msg_t *msgs, struct iovec *iov, int *n)
{
    ssize_t left = 0;
    for (int i = 0; i < 2 * *n; i++)
        left += (ssize_t)iov[i].iov_len;
    struct iovec *v = iov;
    int cnt = 2 * *n;
    while (left > 0) {
        ssize_t w = writev(fd, v, cnt);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            exit(3);
        left -= w;
        while (cnt && (size_t)w >= v->iov_len) {
            w -= (ssize_t)v->iov_len;
            v++;
            cnt--;
        }
        if (cnt) {
            v->iov_base = (char *)v->iov_base + w;
            v->iov_len -= (size_t)w;
        }
    }
    for (int i = 0; i < *n; i++)
        zmq_msg_close(&msgs[i]);
    *n = 0;
}

/* sink: learns the count, writes every result as a line, exits when all
 * are in. */
static int s_sink(const char *dir, const char *output)
{
    void *ctx = zmq_ctx_new();
    void *pull = zmq_socket(ctx, ZMQ_PULL), *cnt = zmq_socket(ctx, ZMQ_PULL);
    char ep[512];
    s_ep(ep, sizeof ep, dir, "results");
    zmq_bind(pull, ep);
    s_ep(ep, sizeof ep, dir, "count");
    zmq_bind(cnt, ep);
    int fd = open(output, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return 3;
    uint64_t count = UINT64_MAX, got = 0;
    zmq_msg_t msgs[S_IOV];
    struct iovec iov[2 * S_IOV];
    int n = 0;
    size_t held = 0;
    static char nl[] = "\n";
    zmq_pollitem_t items[2] = {{pull, 0, ZMQ_POLLIN, 0},
                               {cnt, 0, ZMQ_POLLIN, 0}};
    while (got < count) {
        zmq_msg_init(&msgs[n]);
        if (zmq_msg_recv(&msgs[n], pull, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msgs[n]);
            if (errno != EAGAIN && errno != EINTR)
                return 3;
            s_flush(fd, msgs, iov, &n); /* nothing more yet */
            held = 0;
            zmq_poll(items, count == UINT64_MAX ? 2 : 1, -1);
            if (count == UINT64_MAX &&
                zmq_recv(cnt, &count, sizeof count, ZMQ_DONTWAIT) < 0)
                count = UINT64_MAX;
            continue;
        }
        iov[2 * n] =
            (struct iovec){zmq_msg_data(&msgs[n]), zmq_msg_size(&msgs[n])};
        iov[2 * n + 1] = (struct iovec){nl, 1};
        held += zmq_msg_size(&msgs[n]);
        n++;
        got++;
        /* Small messages are gathered; a big one is written at once. */
        if (n == S_IOV || held >= (1u << 20)) {
            s_flush(fd, msgs, iov, &n);
            held = 0;
        }
    }
    s_flush(fd, msgs, iov, &n);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "vent") && argc == 5)
        return s_vent(argv[2], argv[3], (int)strtol(argv[4], NULL, 10));
    if (!strcmp(argv[1], "worker") && argc == 3)
        return s_worker(argv[2]);
    if (!strcmp(argv[1], "sink") && argc == 4)
        return s_sink(argv[2], argv[3]);
    if (strcmp(argv[1], "run") != 0)
        return 2;
    int workers = 2, tcp = 0;
    const char *input = NULL, *output = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--workers") && i + 1 < argc)
            workers = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--input") && i + 1 < argc)
            input = argv[++i];
        else if (!strcmp(argv[i], "--output") && i + 1 < argc)
            output = argv[++i];
        else if (!strcmp(argv[i], "--transport") && i + 1 < argc)
            tcp = !strcmp(argv[++i], "tcp");
        else
            return 2;
    }
    if (!input || !output || workers < 1 || workers > 64)
        return 2;
    char dir[64] = "/tmp/plain-pipeline-XXXXXX", base[160];
    if (tcp)
        snprintf(base, sizeof base, "tcp://127.0.0.1:%d",
                 20000 + getpid() % 20000);
    else {
        if (!mkdtemp(dir))
            return 3;
        snprintf(base, sizeof base, "ipc://%s", dir);
    }
    char *self = realpath("/proc/self/exe", NULL);
    char sw[8];
    snprintf(sw, sizeof sw, "%d", workers);
    uint64_t t0 = s_now_us();
    pid_t pids[66];
    int np = 0;
    char *sa[] = {self, "sink", base, (char *)output, NULL};
    posix_spawn(&pids[np++], self, NULL, NULL, sa, environ);
    char *va[] = {self, "vent", base, (char *)input, sw, NULL};
    posix_spawn(&pids[np++], self, NULL, NULL, va, environ);
    for (int i = 0; i < workers; i++) {
        char *wa[] = {self, "worker", base, NULL};
        posix_spawn(&pids[np++], self, NULL, NULL, wa, environ);
    }
    int status;
    struct rusage sru;
    wait4(pids[0], &status, 0, &sru); /* the sink ends the run */
    uint64_t t1 = s_now_us();
    fprintf(stderr, "rss sink %ld\n", sru.ru_maxrss);
    int sink_status = status;
    for (int i = 1; i < np; i++) {
        kill(pids[i], SIGTERM);
        struct rusage ru;
        wait4(pids[i], &status, 0, &ru);
        fprintf(stderr, "rss %s %ld\n", i == 1 ? "ventilator" : "worker",
                ru.ru_maxrss);
    }
    if (!tcp) {
        for (int i = 0; i < S_NAMES; i++) {
            char p[128];
            snprintf(p, sizeof p, "%s/%s", dir, s_names[i]);
            unlink(p);
        }
        rmdir(dir);
    }
    printf("seconds=%.6f\n", (double)(t1 - t0) / 1e6);
    free(self);
    return WIFEXITED(sink_status) && WEXITSTATUS(sink_status) == 0 ? 0 : 3;
}
