/* failalloc: allocation-failure injection for unit tests (SQLite's
 * test_malloc.c in miniature). A test program linked with the
 * zp_failalloc library (CMake: target_link_libraries(test_x PRIVATE
 * zp_failalloc)) has malloc, calloc, realloc, strdup, strndup, asprintf
 * and vasprintf wrapped at link time (-Wl,--wrap=...), so every
 * allocation our code makes (zpipe_common and the daemons' modules, which
 * are static libraries linked into the test) can be made to fail.
 * Allocations inside other shared libraries (libzmq, protobuf-c) are not
 * counted.
 *
 * Use: a scenario function that does some work and cleans up whatever
 * happened; failalloc_sweep runs it with the 1st, 2nd, 3rd ... allocation
 * failing until a run makes no failing allocation. The test program runs
 * under valgrind (ctest -L valgrind) and ASan, which report any leak or
 * bad access on those paths. */
#ifndef ZP_FAILALLOC_H
#define ZP_FAILALLOC_H

#include <stdbool.h>

/* The nth allocation from now fails (1 = the next); 0 disarms. */
void failalloc_arm(long n);
/* Disarms; returns true if an allocation failed since arming. */
bool failalloc_disarm(void);
/* Allocations counted since the last arm (armed or not). */
long failalloc_count(void);

/* Runs scenario(arg) once with no failure, then once for each n with the
 * nth allocation failing, until a run completes without reaching n.
 * Returns the number of failing runs (0 means the scenario allocates
 * nothing we can see: a broken test). */
long failalloc_sweep(void (*scenario)(void *arg), void *arg);

#endif
