/* vjournal_bench: what the ventilator's journal (ventilator/vent_journal)
 * costs: appending a batch of 1,000 tasks of 16 bytes, append + sync per
 * batch (one producer, no group commit), append + sync per 8 batches
 * (group commit), and replaying the file. bench/vjournal_storage.py
 * measures SQLite (WAL) and LMDB on the same workload.
 *
 *   build/bench/vjournal_bench [DIR [BATCHES]]     (default /tmp, 2000) */
#define _GNU_SOURCE
#include "vent_journal.h"
#include "zp_crc32c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_TASKS 1000
#define S_BYTES 16

static uint8_t s_pay[S_TASKS][S_BYTES];
static const uint8_t *s_data[S_TASKS];
static uint32_t s_lens[S_TASKS];

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static zp_vjournal_t *s_open(const char *path)
{
    char err[512];
    unlink(path);
    zp_vjournal_t *j =
        zp_vjournal_open(path, NULL, NULL, NULL, err, sizeof err);
    if (!j) {
        fprintf(stderr, "vjournal_bench: %s\n", err);
        exit(1);
    }
    return j;
}

static int s_append(zp_vjournal_t *j, uint64_t b)
{
    return zp_vjournal_tasks(j, "bench-job", b + 1, b * S_TASKS, S_TASKS,
                             s_data, s_lens);
}

/* Appends only, timed apart from the writes: a flush (untimed) every 150
 * batches keeps the buffer under the 4 MiB at which appends write it. */
static void s_bench_append(const char *path, long batches)
{
    zp_vjournal_t *j = s_open(path);
    double in_buffer = 0, t0 = s_now();
    for (long b = 0; b < batches; b++) {
        double ts = s_now();
        if (s_append(j, (uint64_t)b) < 0)
            exit(1);
        in_buffer += s_now() - ts;
        if (b % 150 == 149 && zp_vjournal_flush(j) < 0)
            exit(1);
    }
    double t = s_now() - t0;
    printf("append             %8.2f us/batch into the buffer, %.2f us/batch "
           "with the writes (%.0f MB/s)\n",
           in_buffer / (double)batches * 1e6, t / (double)batches * 1e6,
           (double)zp_vjournal_size(j) / t / 1e6);
    zp_vjournal_destroy(&j);
}

/* Appends group batches, then one sync; latency of each sync. */
static void s_bench_sync(const char *path, long batches, int group)
{
    zp_vjournal_t *j = s_open(path);
    long syncs = batches / group;
    double *lat = calloc((size_t)syncs, sizeof *lat);
    double t0 = s_now();
    for (long s = 0; s < syncs; s++) {
        for (int g = 0; g < group; g++)
            if (s_append(j, (uint64_t)(s * group + g)) < 0)
                exit(1);
        double ts = s_now();
        if (zp_vjournal_sync(j) < 0) {
            perror("vjournal_bench: sync");
            exit(1);
        }
        lat[s] = s_now() - ts;
    }
    double t = s_now() - t0;
    qsort(lat, (size_t)syncs, sizeof *lat, s_cmp);
    printf("append+sync x%-4d %8.0f batches/s %9.0f tasks/s  sync p50 "
           "%.2f ms p99 %.2f ms\n",
           group, (double)(syncs * group) / t,
           (double)(syncs * group) * S_TASKS / t, lat[syncs / 2] * 1e3,
           lat[syncs * 99 / 100] * 1e3);
    free(lat);
    zp_vjournal_destroy(&j);
}

static int s_count(void *ctx, const char *job, uint64_t seq, uint64_t first,
                   size_t n, const uint8_t *const *data, const uint32_t *lens,
                   const char **why)
{
    (void)job, (void)seq, (void)first, (void)data, (void)lens, (void)why;
    *(uint64_t *)ctx += n;
    return 0;
}

static void s_bench_replay(const char *path)
{
    zp_vjournal_visitor_t v = {.on_tasks = s_count};
    uint64_t tasks = 0;
    zp_vjournal_info_t info;
    char err[512];
    double t0 = s_now();
    zp_vjournal_t *j =
        zp_vjournal_open(path, &v, &tasks, &info, err, sizeof err);
    double t = s_now() - t0;
    if (!j) {
        fprintf(stderr, "vjournal_bench: %s\n", err);
        exit(1);
    }
    printf("replay             %8.1f ms for %llu tasks, %.1f MB (%.0f MB/s)\n",
           t * 1e3, (unsigned long long)tasks, (double)info.bytes / 1e6,
           (double)info.bytes / t / 1e6);
    zp_vjournal_destroy(&j);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    long batches = argc > 2 ? strtol(argv[2], NULL, 10) : 2000;
    if (batches < 8)
        batches = 8;
    for (int i = 0; i < S_TASKS; i++) {
        for (int b = 0; b < S_BYTES; b++)
            s_pay[i][b] = (uint8_t)(i * 7 + b);
        s_data[i] = s_pay[i];
        s_lens[i] = S_BYTES;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/vjournal-bench.%ld", dir, (long)getpid());
    printf("vent_journal in %s: batches of %d tasks of %d bytes, crc32c %s\n",
           dir, S_TASKS, S_BYTES,
           zp_crc32c_hw_available() ? "sse4.2" : "table");
    s_bench_append(path, batches * 5);
    s_bench_sync(path, batches, 1);
    s_bench_sync(path, batches, 8);
    s_bench_append(path, batches * 5);
    s_bench_replay(path);
    unlink(path);
    return 0;
}
