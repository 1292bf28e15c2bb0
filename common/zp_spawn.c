/* zp_spawn: posix_spawn wrapper for the zpipe supervisor. */
#include "zp_spawn.h"
#include "zp_util.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <unistd.h>

extern char **environ;

pid_t zp_spawn_fds(char *const argv[], const int *from, const int *to, size_t n,
                   bool new_group)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    for (size_t i = 0; i < n; i++)
        posix_spawn_file_actions_adddup2(&fa, from[i], to[i]);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    /* Children start with default signal handling. */
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none);
    sigset_t all;
    sigfillset(&all);
    posix_spawnattr_setsigdefault(&at, &all);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (new_group) {
        posix_spawnattr_setpgroup(&at, 0);
        flags |= POSIX_SPAWN_SETPGROUP;
    }
    posix_spawnattr_setflags(&at, flags);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return pid;
}

pid_t zp_spawn(char *const argv[], int stdin_fd, int stdout_fd)
{
    int from[2], to[2];
    size_t n = 0;
    if (stdin_fd >= 0) {
        from[n] = stdin_fd;
        to[n++] = STDIN_FILENO;
    }
    if (stdout_fd >= 0) {
        from[n] = stdout_fd;
        to[n++] = STDOUT_FILENO;
    }
    return zp_spawn_fds(argv, from, to, n, false);
}

char *zp_sibling(const char *name)
{
    char *dir = zp_exe_dir();
    if (!dir)
        return NULL;
    char *path = zp_path_join(dir, name);
    free(dir);
    return path;
}
