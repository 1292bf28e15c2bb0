/* failalloc: the nth allocation fails; see failalloc.h. Linked with
 * -Wl,--wrap for each allocator, so __real_x is libc's (or the
 * sanitizer's) and our code's calls come here. */
#define _GNU_SOURCE
#include "failalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
int __real_vasprintf(char **out, const char *fmt, va_list ap);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_vasprintf(char **out, const char *fmt, va_list ap);
int __wrap_asprintf(char **out, const char *fmt, ...);

static long s_countdown; /* 0: disarmed */
static long s_count;
static int s_fired;

/* Counts an allocation; true when this one is to fail. */
static int s_fail(void)
{
    s_count++;
    if (s_countdown > 0 && --s_countdown == 0) {
        s_fired = 1;
        errno = ENOMEM;
        return 1;
    }
    return 0;
}

void failalloc_arm(long n)
{
    s_countdown = n > 0 ? n : 0;
    s_count = 0;
    s_fired = 0;
}

bool failalloc_disarm(void)
{
    bool fired = s_fired;
    s_countdown = 0;
    s_fired = 0;
    return fired;
}

long failalloc_count(void)
{
    return s_count;
}

long failalloc_sweep(void (*scenario)(void *arg), void *arg)
{
    failalloc_arm(0);
    scenario(arg);
    long failing = 0;
    for (long n = 1;; n++) {
        failalloc_arm(n);
        scenario(arg);
        if (!failalloc_disarm())
            break;
        failing++;
    }
    return failing;
}

void *__wrap_malloc(size_t n)
{
    return s_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return s_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return s_fail() ? NULL : __real_realloc(p, n);
}

char *__wrap_strndup(const char *s, size_t n)
{
    if (s_fail())
        return NULL;
    size_t len = strnlen(s, n);
    char *d = __real_malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

char *__wrap_strdup(const char *s)
{
    if (s_fail())
        return NULL;
    size_t len = strlen(s);
    char *d = __real_malloc(len + 1);
    if (d)
        memcpy(d, s, len + 1);
    return d;
}

int __wrap_vasprintf(char **out, const char *fmt, va_list ap)
{
    if (s_fail()) {
        *out = NULL;
        return -1;
    }
    return __real_vasprintf(out, fmt, ap);
}

int __wrap_asprintf(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = __wrap_vasprintf(out, fmt, ap);
    va_end(ap);
    return r;
}
