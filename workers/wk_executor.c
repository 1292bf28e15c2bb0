/* wk_executor: the executor child's main: reads task batches on fd 3 (or
 * references to them in the inputs region, fd 5), runs them through the
 * runner, publishes the running task in the progress page on fd 4 and
 * writes result batches back on fd 3 (or into the results region, fd 6,
 * and a reference on fd 3). */
#define _GNU_SOURCE
#include "wk_exec.h"
#include "wk_inputs.h"
#include "wk_outbox.h"
#include "wk_progress.h"
#include "wk_results.h"
#include "wk_runner.h"
#include "wk_runq.h"
#include "wk_shm.h"
#include "wk_spawn.h"
#include "worker.h"
#include "zp_codec.h"
#include "zp_frame.h"
#include "zp_log.h"
#include "zp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

/* The executor's state, for its hooks. */
typedef struct {
    const zp_worker_config_t *cfg;
    const char *id;
    zp_wk_progress_t *progress;
    zp_wk_runner_t *runner;
    zp_wk_results_t *results;
    zp_arena_t *arena;
    zp_frame_reader_t *reader;
    zp_wk_inputs_t *inputs; /* the batch's frame, read-only while it runs */
    zp_task_view_t view;
    zp_buf_t scratch;
    /* The shared regions (wk_shm.h), NULL when the worker gave none: the
     * inputs, read-only; the results, placed here. */
    const uint8_t *in;
    size_t in_size;
    zp_wk_outbox_t *outbox;
    /* Its wait for a CPU, and that wait when the pending results began
     * (at the last flush). */
    zp_wk_runq_t runq;
    uint64_t wait_base;
} s_executor_t;

static zp_wk_progress_t *s_crash_progress;
static const zp_wk_inputs_t *s_crash_inputs;
static const uint8_t *s_crash_in;
static size_t s_crash_in_size;

/* On a fatal signal, note how much address space was in use (so the worker
 * can tell a memory-limit crash from a bug) and whether it was a write to
 * the sealed inputs, then die of the same signal. Only async-signal-safe
 * calls. */
static void s_on_fatal_signal(int sig, siginfo_t *info, void *uctx)
{
    (void)uctx;
    if ((sig == SIGSEGV || sig == SIGBUS) && s_crash_progress &&
        (zp_wk_inputs_sealed_at(s_crash_inputs, info->si_addr) ||
         zp_wk_region_holds(s_crash_in, s_crash_in_size, info->si_addr)))
        atomic_store(&s_crash_progress->input_write, 1);
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd >= 0) {
        char buf[64];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        uint64_t pages = 0;
        for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
            pages = pages * 10 + (uint64_t)(buf[i] - '0');
        if (s_crash_progress)
            atomic_store(&s_crash_progress->vm_bytes,
                         pages * (uint64_t)sysconf(_SC_PAGESIZE));
    }
    signal(sig, SIG_DFL);
    raise(sig); /* pending until we return, then fatal */
}

static void s_install_crash_handlers(const s_executor_t *e)
{
    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, NULL);
    s_crash_progress = e->progress;
    s_crash_inputs = e->inputs;
    s_crash_in = e->in;
    s_crash_in_size = e->in_size;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = s_on_fatal_signal;
    sa.sa_flags = SA_ONSTACK | SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        sigaction(sigs[i], &sa, NULL);
}

/* Writes the pending results to the worker as one ResultBatch; it goes on
 * to the sink as it is, so it carries the worker's counters. In the
 * results region when it has room (a reference on the socket), else on
 * the socket. */
static void s_flush(void *arg)
{
    s_executor_t *e = arg;
    size_t n = zp_wk_results_count(e->results);
    if (n == 0)
        return;
    zp_wk_batch_info_t info = {
        .worker_id = e->id,
        .window = (uint32_t)atomic_load(&e->progress->window),
        .max_held = (uint32_t)atomic_load(&e->progress->max_held),
        .tasks_done = atomic_load(&e->progress->completed) + n,
    };
    uint64_t released = atomic_load(&e->progress->results_released);
    /* Its wait for a CPU so far, for the worker to size its credit by
     * the tasks' own time (before the frame: the worker reads it then). */
    e->wait_base = zp_wk_runq_wait_us(&e->runq);
    atomic_store(&e->progress->runq_wait_us, e->wait_base);
    zp_wk_ref_t ref;
    uint8_t frame[ZP_WK_REF_LEN];
    if (e->outbox &&
        zp_wk_outbox_place(e->outbox, e->results, &info, released, &ref) == 0) {
        zp_wk_ref_write(&ref, frame);
        zp_frame_write(ZP_WK_EXEC_FD, frame, sizeof frame);
    } else if (zp_wk_results_encode(e->results, &info, &e->scratch) < 0)
        zp_error("out of memory sending %zu results", n);
    else
        zp_frame_write(ZP_WK_EXEC_FD, e->scratch.data, e->scratch.len);
    e->scratch.len = 0;
    zp_wk_results_clear(e->results);
    /* The next results' output goes straight into the region. */
    if (e->outbox)
        zp_wk_outbox_arm(e->outbox, e->results, released);
}

static bool s_task_done(void *arg, const zp_wk_done_t *d, size_t payload_len,
                        uint64_t end)
{
    s_executor_t *e = arg;
    (void)d;
    (void)payload_len;
    if (!zp_wk_results_due(e->results, end, 0))
        return false; /* not by the clock either: no read */
    uint64_t wait = zp_wk_runq_wait_us(&e->runq);
    uint64_t waited = wait > e->wait_base ? wait - e->wait_base : 0;
    if (!zp_wk_results_due(e->results, end, waited))
        return false;
    s_flush(e);
    return true;
}

/* The next frame from the worker: 1 with it, 0 when the worker closed us
 * between frames, -1 on a bad or cut frame. One read takes a whole frame
 * (and more) when the worker has written it. */
static int s_read_frame(s_executor_t *e, const char **frame, size_t *len)
{
    for (;;) {
        int rc = zp_frame_reader_next(e->reader, frame, len);
        if (rc != 0)
            return rc;
        char *dst;
        size_t room;
        if (zp_frame_reader_space(e->reader, 65536, &dst, &room) < 0)
            return -1;
        ssize_t n = read(ZP_WK_EXEC_FD, dst, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return zp_frame_reader_pending(e->reader) == 0 ? 0 : -1;
        zp_frame_reader_commit(e->reader, (size_t)n);
    }
}

/* A reference to a batch in the inputs region: *frame and *len become
 * the batch there, read-only already. False when frame is no such
 * reference. */
static bool s_shared_frame(const s_executor_t *e, const char **frame,
                           size_t *len)
{
    zp_wk_ref_t ref;
    if (!e->in ||
        !zp_wk_ref_parse(*frame, *len, ZP_WK_REF_TASKS, e->in_size, &ref))
        return false;
    *frame = (const char *)e->in + ref.off;
    *len = (size_t)ref.len;
    return true;
}

/* Maps the worker's regions, if it gave them (before the memory limit,
 * which they count against), and closes their fds: a plugin's children
 * need not inherit them. */
static void s_map_regions(s_executor_t *e)
{
    size_t out_size;
    e->in = zp_wk_region_map(ZP_WK_IN_FD, false, &e->in_size);
    uint8_t *out = zp_wk_region_map(ZP_WK_OUT_FD, true, &out_size);
    if (e->in)
        close(ZP_WK_IN_FD);
    if (out) {
        close(ZP_WK_OUT_FD);
        e->outbox = zp_wk_outbox_new(out, out_size);
    }
}

/* Moves the frame (*frame, len bytes) into the input region, where it
 * can be sealed; on failure it stays where it is, run unprotected, and
 * says so (rate-limited). */
static void s_place_frame(s_executor_t *e, const char **frame, size_t len)
{
    static uint64_t failures;
    const uint8_t *copy;
    if (zp_wk_inputs_load(e->inputs, *frame, len, &copy) == 0) {
        *frame = (const char *)copy;
        return;
    }
    if (zp_log_sampled(++failures))
        zp_warn("executor: cannot map %zu bytes for a batch's inputs (%s); "
                "running it unprotected (%llu times)",
                len, strerror(errno), (unsigned long long)failures);
}

/* Checks the parent, maps the page, loads the plugins, sets the limit and
 * says hello. Returns 0, -2 when the plugins cannot be loaded or
 * initialised (exit ZP_WK_EXEC_EXIT_REFUSED), or -1 (exit 3). */
static int s_executor_init(s_executor_t *e)
{
    const zp_worker_config_t *cfg = e->cfg;
    signal(SIGPIPE, SIG_IGN);
    /* Die with the worker: a killed worker must not leave us running. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* The worker may have died before the line above; it names itself, as
     * it may be pid 1 (in a container) and getppid() == 1 proves nothing. */
    if (cfg->parent_pid > 0 && getppid() != (pid_t)cfg->parent_pid)
        return -1;
    e->progress = mmap(NULL, sizeof *e->progress, PROT_READ | PROT_WRITE,
                       MAP_SHARED, ZP_WK_SHM_FD, 0);
    if (e->progress == MAP_FAILED) {
        e->progress = NULL;
        zp_error("executor: cannot map the progress page: %s", strerror(errno));
        return -1;
    }
    s_map_regions(e);
    e->runner = zp_wk_runner_new(cfg, e->id);
    e->results = zp_wk_results_new();
    e->arena = zp_arena_new();
    e->reader = zp_frame_reader_new(cfg->max_frame);
    e->inputs = zp_wk_inputs_new();
    if (!e->runner || !e->results || !e->arena || !e->reader || !e->inputs)
        return -1;
    if (e->outbox)
        zp_wk_outbox_arm(e->outbox, e->results, 0);
    if (zp_wk_runner_load(e->runner, false) < 0)
        return -2;
    s_install_crash_handlers(e);
    zp_wk_runner_mirror_refused(&e->progress->refused_appends);
    if (cfg->memory_limit) {
        struct rlimit rl = {cfg->memory_limit, cfg->memory_limit};
        if (setrlimit(RLIMIT_AS, &rl) != 0) {
            zp_error("executor: memory limit %llu: %s",
                     (unsigned long long)cfg->memory_limit, strerror(errno));
            return -1;
        }
    }
    /* Ready: a hello naming the plugins. */
    Zpipe__V1__Hello h = ZPIPE__V1__HELLO__INIT;
    h.worker_id = (char *)e->id;
    h.pid = (uint32_t)getpid();
    zp_message_t hm = ZPIPE__V1__MESSAGE__INIT;
    hm.kind_case = ZPIPE__V1__MESSAGE__KIND_HELLO;
    hm.hello = &h;
    if (zp_encode(&hm, &e->scratch) < 0 ||
        zp_frame_write(ZP_WK_EXEC_FD, e->scratch.data, e->scratch.len) < 0)
        return -1;
    return 0;
}

/* Runs batches until the worker closes us. Returns 0, or -1 on a bad
 * frame. */
static int s_executor_loop(s_executor_t *e)
{
    const zp_wk_hooks_t hooks = {s_flush, s_task_done, e};
    for (;;) {
        const char *frame = NULL;
        size_t len = 0;
        int rc = s_read_frame(e, &frame, &len);
        if (rc == 0)
            return 0; /* the worker closed us between frames: done */
        if (rc < 0) {
            zp_error("executor: bad frame of %zu bytes from the worker", len);
            return -1;
        }
        atomic_store(&e->progress->seq, atomic_load(&e->progress->seq) + 1);
        /* In the inputs region, the batch is read-only as it is; else it
         * is copied into pages sealed while it runs. */
        bool shared = s_shared_frame(e, &frame, &len);
        if (!shared)
            s_place_frame(e, &frame, len);
        /* Zero-copy: payloads are handed to the plugin from the frame. */
        const Zpipe__V1__TaskBatch *b = &e->view.batch;
        if (zp_view_task_batch(&e->view, frame, len, e->cfg->max_frame) < 0) {
            zp_arena_reset(e->arena);
            zp_message_t *m =
                zp_decode(e->arena, frame, len, e->cfg->max_frame);
            if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_TASK_BATCH) {
                zp_error("executor: the worker sent something not a task "
                         "batch");
                return -1;
            }
            b = m->task_batch;
        }
        /* Sealed while plugins run: a write to an input (or past its
         * end, into the next one's) is a SIGSEGV of that task alone. */
        bool sealed = !shared && zp_wk_inputs_seal(e->inputs) == 0;
        zp_wk_runner_run_batch(e->runner, e->results, b, e->progress, &hooks);
        if (sealed && zp_wk_inputs_unseal(e->inputs) < 0) {
            zp_error("executor: cannot unseal the input region: %s",
                     strerror(errno));
            return -1;
        }
        s_flush(e);
        if (zp_wk_runner_hit_limit(e->runner)) {
            /* A plugin ran out of memory under the limit: its heap may be
             * spent. Leave; the worker starts a fresh executor. */
            zp_info("executor: leaving after a task hit the memory limit");
            return 0;
        }
    }
}

int zp_worker_executor_main(const zp_worker_config_t *cfg)
{
    char name[64];
    snprintf(name, sizeof name, "%s", cfg->id ? cfg->id : "executor");
    s_executor_t e = {.cfg = cfg, .id = name};
    zp_wk_runq_open(&e.runq);
    e.wait_base = zp_wk_runq_wait_us(&e.runq);
    /* On failure the process exits at once, as it always has: no plugin
     * fini runs after a refused set-up or a bad frame. */
    int rc = s_executor_init(&e);
    if (rc == -1 || (rc == 0 && s_executor_loop(&e) < 0))
        return 3;
    /* Done, or the plugins refused (nothing ran: its exit status says so,
     * and what was made is freed, so a leak checker keeps that status). */
    zp_frame_reader_destroy(&e.reader);
    zp_wk_runq_close(&e.runq);
    zp_wk_inputs_destroy(&e.inputs);
    zp_task_view_free(&e.view);
    zp_wk_runner_destroy(&e.runner);
    zp_wk_results_destroy(&e.results);
    zp_wk_outbox_destroy(&e.outbox);
    zp_arena_destroy(&e.arena);
    zp_buf_free(&e.scratch);
    return rc == -2 ? ZP_WK_EXEC_EXIT_REFUSED : 0;
}
