/* wk_spawn: executor processes (see wk_spawn.h). */
#define _GNU_SOURCE
#include "wk_spawn.h"
#include "zp_log.h"
#include "zp_spawn.h"
#include "zp_util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_EXEC_ARGS 520     /* executor argv: 256 plugins and dirs */
#define S_STOP_US   200000u /* time a stopping executor gets to end */

/* Maps a fresh progress page in shm; 0 or -1. */
static int s_map_page(zp_wk_child_t *child, int shm)
{
    if (child->progress)
        munmap(child->progress, sizeof(zp_wk_progress_t));
    child->progress = mmap(NULL, sizeof(zp_wk_progress_t),
                           PROT_READ | PROT_WRITE, MAP_SHARED, shm, 0);
    if (child->progress == MAP_FAILED) {
        child->progress = NULL;
        return -1;
    }
    return 0;
}

/* Fresh regions for the executor's batches and results (the previous
 * executor's dropped). One that cannot be made is left out: its frames
 * take the socket pair. */
static void s_regions(zp_wk_child_t *child)
{
    static uint64_t failures;
    zp_wk_region_unref(&child->in);
    zp_wk_region_unref(&child->out);
    child->in = zp_wk_region_new("zpipe-batches", ZP_WK_IN_BYTES, true);
    child->out = zp_wk_region_new("zpipe-results", ZP_WK_OUT_BYTES, false);
    zp_wk_slots_init(&child->in_slots, ZP_WK_IN_BYTES);
    child->out_seq = 0;
    child->runq_seen = 0; /* a fresh page says 0 */
    if ((!child->in || !child->out) && zp_log_sampled(++failures))
        zp_warn("executor: no shared memory for its %s (%s); they go "
                "through its socket (%llu times)",
                !child->in ? "batches" : "results", strerror(errno),
                (unsigned long long)failures);
}

/* Numbers for argv, formatted once per spawn. */
typedef struct {
    char max_out[32], max_frame[32], mem[32], parent[32];
} s_argbuf_t;

/* Fills argv (NULL-terminated) for an executor of self. */
static void s_argv(const char **argv, s_argbuf_t *b, char *self,
                   const zp_worker_config_t *cfg, const char *id,
                   const char *const *files, size_t n_files)
{
    snprintf(b->max_out, sizeof b->max_out, "%llu",
             (unsigned long long)cfg->max_output);
    snprintf(b->max_frame, sizeof b->max_frame, "%llu",
             (unsigned long long)cfg->max_frame);
    snprintf(b->mem, sizeof b->mem, "%llu",
             (unsigned long long)cfg->memory_limit);
    snprintf(b->parent, sizeof b->parent, "%ld", (long)getpid());
    size_t n = 0;
    const char *fixed[] = {self,
                           "--executor",
                           "--id",
                           id,
                           "--max-output",
                           b->max_out,
                           "--max-frame",
                           b->max_frame,
                           "--memory-limit",
                           b->mem,
                           "--parent-pid",
                           b->parent,
                           "--log-level",
                           zp_log_level_name(),
                           "--log-format",
                           zp_log_format_name()};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        argv[n++] = fixed[i];
    for (size_t i = 0; i < cfg->plugin_config.count && n < S_EXEC_ARGS - 3;
         i++) {
        argv[n++] = "--plugin-config";
        argv[n++] = cfg->plugin_config.items[i];
    }
    /* The very files this worker loaded and announced, under the same
     * directory restriction. */
    for (size_t i = 0; i < cfg->plugin_dirs.count && n < S_EXEC_ARGS - 3; i++) {
        argv[n++] = "--plugin-dir";
        argv[n++] = cfg->plugin_dirs.items[i];
    }
    for (size_t i = 0; i < n_files && n < S_EXEC_ARGS - 3; i++) {
        argv[n++] = "--plugin";
        argv[n++] = files[i];
    }
    argv[n] = NULL;
}

int zp_wk_spawn(zp_wk_child_t *child, const zp_worker_config_t *cfg,
                const char *id, const char *const *files, size_t n)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        zp_error("socketpair: %s", strerror(errno));
        return -1;
    }
    int shm = memfd_create("zpipe-progress", MFD_CLOEXEC);
    if (shm < 0 || ftruncate(shm, sizeof(zp_wk_progress_t)) < 0) {
        zp_error("memfd: %s", strerror(errno));
        goto fail_pair;
    }
    if (s_map_page(child, shm) < 0)
        goto fail_pair;
    s_regions(child);
    /* zpipe-executor beside this binary, else this binary --executor
     * (the same program, with libzmq loaded for nothing). */
    char *self = zp_sibling("zpipe-executor");
    if (self && access(self, X_OK) != 0) {
        free(self);
        self = zp_sibling("zpipe-worker");
    }
    const char *argv[S_EXEC_ARGS];
    s_argbuf_t args;
    s_argv(argv, &args, self, cfg, id, files, n);
    /* Its own process group: a terminal's Ctrl-C reaches the worker, which
     * decides when the executor stops. */
    int from[4] = {sv[1], shm}, to[4] = {ZP_WK_EXEC_FD, ZP_WK_SHM_FD};
    size_t nfd = 2;
    if (child->in) {
        from[nfd] = zp_wk_region_fd(child->in);
        to[nfd++] = ZP_WK_IN_FD;
    }
    if (child->out) {
        from[nfd] = zp_wk_region_fd(child->out);
        to[nfd++] = ZP_WK_OUT_FD;
    }
    child->pid = self ? zp_spawn_fds((char **)argv, from, to, nfd, true) : -1;
    int rc = child->pid < 0 ? (self ? errno : ENOMEM) : 0;
    free(self);
    close(sv[1]);
    close(shm);
    if (rc != 0) {
        zp_error("cannot start an executor: %s", strerror(rc));
        close(sv[0]);
        return -1;
    }
    child->fd = sv[0]; /* blocking: reads say MSG_DONTWAIT */
    return 0;

fail_pair:
    close(sv[0]);
    close(sv[1]);
    if (shm >= 0)
        close(shm);
    return -1;
}

/* Whether pid (a child not reaped) ends within us: a poll on its pidfd
 * wakes at its exit; where pidfd_open fails, waitid every 2 ms. Leaves
 * it to be reaped. */
static bool s_ends_within(pid_t pid, uint64_t us)
{
    uint64_t until = zp_mono_us() + us;
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r;
        for (;;) {
            uint64_t now = zp_mono_us();
            r = now >= until ? 0
                             : poll(&p, 1, (int)((until - now + 999) / 1000));
            if (r >= 0 || errno != EINTR)
                break;
        }
        close(fd);
        return r > 0;
    }
#endif
    for (;;) { /* left to be reaped by the caller */
        siginfo_t info = {.si_pid = 0};
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0 &&
            errno != EINTR)
            return true; /* not ours to wait for: nothing to kill */
        if (info.si_pid == pid)
            return true;
        if (zp_mono_us() > until)
            return false;
        usleep(2000);
    }
}

void zp_wk_spawn_stop(zp_wk_child_t *child)
{
    if (child->fd >= 0) {
        close(child->fd);
        child->fd = -1;
    }
    if (child->pid > 0) {
        /* Closing its socket ends an idle executor; a busy one is killed. */
        int status;
        if (!s_ends_within(child->pid, S_STOP_US))
            kill(child->pid, SIGKILL);
        while (waitpid(child->pid, &status, 0) < 0 && errno == EINTR)
            ;
        child->pid = 0;
    }
    if (child->progress)
        munmap(child->progress, sizeof(zp_wk_progress_t));
    child->progress = NULL;
    zp_wk_region_unref(&child->in);
    zp_wk_region_unref(&child->out);
}
