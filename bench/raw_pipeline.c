/* raw_pipeline: the limit zpipe is measured against. A minimal libzmq
 * ventilator -> workers -> sink (the ZeroMQ Guide's divide-and-conquer
 * pattern): plain PUSH/PULL, one message per task, no framework, no
 * protobuf, no acknowledgements. Same input file and output as zpipe.
 *
 *   raw_pipeline run --workers N --input FILE --output FILE [--spin]
 *                    [--transport ipc|tcp] [--latency]
 *
 * --spin: each payload is microseconds of CPU time to burn (as zpipe's
 * spin plugin). --latency: one task in flight at a time; prints p50/p99.
 * Prints "tasks=N seconds=S" and each process's peak RSS. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

extern char **environ;

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

static uint64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t s_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void s_spin(const char *p, size_t n)
{
    uint64_t us = 0;
    for (size_t i = 0; i < n && p[i] >= '0' && p[i] <= '9'; i++)
        us = us * 10 + (uint64_t)(p[i] - '0');
    uint64_t until = s_cpu_ns() + us * 1000u;
    volatile uint64_t sink = 0;
    while (s_cpu_ns() < until)
        for (int i = 0; i < 64; i++)
            sink += (uint64_t)i;
}

/* Endpoint for a named socket: ipc://DIR/name, or tcp://HOST:PORT+k. */
static void s_ep(char *out, size_t len, const char *base, const char *name)
{
    static const char *names[] = {"tasks", "ready", "results", "done", "count"};
    if (strncmp(base, "tcp://", 6) == 0) {
        const char *colon = strrchr(base, ':');
        int port = atoi(colon + 1), k = 0;
        for (int i = 0; i < 5; i++)
            if (!strcmp(names[i], name))
                k = i;
        snprintf(out, len, "%.*s:%d", (int)(colon - base), base, port + k);
    } else
        snprintf(out, len, "%s/%s", base, name);
}

/* ventilator: waits for the workers' ready messages, sends the count to
 * the sink, then one message per input line. Stays up until killed, so
 * nothing in flight is lost to an early close. */
static int s_vent(const char *dir, const char *input, int workers, int latency)
{
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH), *ready = zmq_socket(ctx, ZMQ_PULL);
    void *sink = zmq_socket(ctx, ZMQ_PUSH), *done = zmq_socket(ctx, ZMQ_PULL);
    char ep[512];
    s_ep(ep, sizeof ep, dir, "tasks");
    zmq_bind(push, ep);
    s_ep(ep, sizeof ep, dir, "ready");
    zmq_bind(ready, ep);
    s_ep(ep, sizeof ep, dir, "count");
    s_connect(sink, ep);
    s_ep(ep, sizeof ep, dir, "done");
    zmq_bind(done, ep);
    char b[16];
    for (int i = 0; i < workers; i++)
        zmq_recv(ready, b, sizeof b, 0);
    FILE *f = fopen(input, "r");
    if (!f)
        return 3;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t count = 0;
    /* Count first: the sink must know when it is done. */
    while ((n = getline(&line, &cap, f)) > 0)
        count++;
    rewind(f);
    zmq_send(sink, &count, sizeof count, 0);
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            n--;
        zmq_send(push, line, (size_t)n, 0);
        if (latency) /* wait for the sink to see it */
            zmq_recv(done, b, sizeof b, 0);
    }
    fclose(f);
    pause();
    return 0;
}

static int s_worker(const char *dir, int spin)
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
        if (spin)
            s_spin(zmq_msg_data(&m), zmq_msg_size(&m));
        zmq_msg_send(&m, push, 0); /* output = payload, as echo/spin */
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* sink: learns the count, writes every result as a line, exits when all
 * are in. In latency mode it tells the ventilator after each one. */
static int s_sink(const char *dir, const char *output, int latency)
{
    void *ctx = zmq_ctx_new();
    void *pull = zmq_socket(ctx, ZMQ_PULL), *done = zmq_socket(ctx, ZMQ_PUSH);
    void *cnt = zmq_socket(ctx, ZMQ_PULL);
    char ep[512];
    s_ep(ep, sizeof ep, dir, "results");
    zmq_bind(pull, ep);
    /* The count on a socket of its own: results may overtake it. */
    s_ep(ep, sizeof ep, dir, "count");
    zmq_bind(cnt, ep);
    s_ep(ep, sizeof ep, dir, "done");
    s_connect(done, ep);
    FILE *out = fopen(output, "w");
    if (!out)
        return 3;
    setvbuf(out, NULL, _IOFBF, 1 << 20);
    uint64_t count = 0;
    zmq_recv(cnt, &count, sizeof count, 0);
    uint64_t *lat = latency ? calloc(count + 1, sizeof *lat) : NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    uint64_t last = s_now_us();
    for (uint64_t i = 0; i < count; i++) {
        if (zmq_msg_recv(&m, pull, 0) < 0)
            return 3;
        fwrite(zmq_msg_data(&m), 1, zmq_msg_size(&m), out);
        fputc('\n', out);
        if (latency) {
            uint64_t now = s_now_us();
            lat[i] = now - last;
            zmq_send(done, "d", 1, 0);
            last = s_now_us();
        }
    }
    fclose(out);
    if (latency && count) {
        qsort(lat, count, sizeof *lat, cmp_u64);
        printf("p50_us=%llu p99_us=%llu\n", (unsigned long long)lat[count / 2],
               (unsigned long long)lat[count * 99 / 100]);
    }
    free(lat);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "vent"))
        return s_vent(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
    if (!strcmp(argv[1], "worker"))
        return s_worker(argv[2], atoi(argv[3]));
    if (!strcmp(argv[1], "sink"))
        return s_sink(argv[2], argv[3], atoi(argv[4]));
    if (strcmp(argv[1], "run") != 0)
        return 2;
    int workers = 2, spin = 0, latency = 0, tcp = 0;
    const char *input = NULL, *output = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--workers") && i + 1 < argc)
            workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--input") && i + 1 < argc)
            input = argv[++i];
        else if (!strcmp(argv[i], "--output") && i + 1 < argc)
            output = argv[++i];
        else if (!strcmp(argv[i], "--spin"))
            spin = 1;
        else if (!strcmp(argv[i], "--latency"))
            latency = 1;
        else if (!strcmp(argv[i], "--transport") && i + 1 < argc)
            tcp = !strcmp(argv[++i], "tcp");
        else
            return 2;
    }
    if (!input || !output)
        return 2;
    char dir[64] = "/tmp/raw-pipeline-XXXXXX", ep[128];
    if (tcp) {
        /* four consecutive ports from a per-process base */
        snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", 20000 + getpid() % 20000);
    } else {
        if (!mkdtemp(dir))
            return 3;
        snprintf(ep, sizeof ep, "ipc://%s", dir);
    }
    char base[160];
    snprintf(base, sizeof base, "%s", ep);
    char *self = realpath("/proc/self/exe", NULL);
    char sw[8], sp[8], sl[8];
    snprintf(sw, sizeof sw, "%d", workers);
    snprintf(sp, sizeof sp, "%d", spin);
    snprintf(sl, sizeof sl, "%d", latency);
    uint64_t t0 = s_now_us();
    pid_t pids[66];
    int np = 0;
    char *sa[] = {self, "sink", base, (char *)output, sl, NULL};
    posix_spawn(&pids[np++], self, NULL, NULL, sa, environ);
    char *va[] = {self, "vent", base, (char *)input, sw, sl, NULL};
    posix_spawn(&pids[np++], self, NULL, NULL, va, environ);
    for (int i = 0; i < workers && np < 66; i++) {
        char *wa[] = {self, "worker", base, sp, NULL};
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
        const char *names[] = {"tasks", "ready", "results", "done", "count"};
        for (int i = 0; i < 5; i++) {
            char p[128];
            snprintf(p, sizeof p, "%s/%s", dir, names[i]);
            unlink(p);
        }
        rmdir(dir);
    }
    printf("seconds=%.6f\n", (double)(t1 - t0) / 1e6);
    free(self);
    return WIFEXITED(sink_status) && WEXITSTATUS(sink_status) == 0 ? 0 : 3;
}
