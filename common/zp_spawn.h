/* zp_spawn: start a zpipe binary as a child process (posix_spawn, so no
 * ZeroMQ context is ever forked). */
#ifndef ZP_SPAWN_H
#define ZP_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Starts argv[0] (a path) with argv. stdin_fd/stdout_fd are dup'ed onto the
 * child's 0 and 1 when >= 0; otherwise the child inherits ours. Returns the
 * pid, or -1 with errno. */
pid_t zp_spawn(char *const argv[], int stdin_fd, int stdout_fd);

/* The general form: dup2 from[i] onto to[i] in the child for i < n, and
 * with new_group, put the child in a process group of its own (so a
 * terminal's Ctrl-C reaches only us, and we decide when it stops). */
pid_t zp_spawn_fds(char *const argv[], const int *from, const int *to, size_t n,
                   bool new_group);

/* Path of a sibling binary (same directory as ours); caller owns. */
char *zp_sibling(const char *name);

#endif
