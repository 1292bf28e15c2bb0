/* zp_util: helpers with no ZeroMQ or protobuf in them. */
#define _GNU_SOURCE
#include "zp_util.h"
#include "zp_json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

uint64_t zp_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t zp_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t zp_hash_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

uint64_t zp_hash_str(const char *s)
{
    return zp_hash_bytes(s, strlen(s));
}

int zp_buf_grow(zp_buf_t *buf, size_t extra)
{
    if (buf->cap - buf->len >= extra)
        return 0;
    size_t need = buf->len + extra;
    if (need < buf->len)
        return -1;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(buf->borrowed ? NULL : buf->data, cap);
    if (!p)
        return -1;
    if (buf->borrowed && buf->len)
        memcpy(p, buf->data, buf->len);
    buf->borrowed = false;
    buf->data = p;
    buf->cap = cap;
    return 0;
}

void zp_buf_borrow(zp_buf_t *buf, void *mem, size_t cap)
{
    zp_buf_free(buf);
    buf->data = mem;
    buf->cap = cap;
    buf->borrowed = true;
}

int zp_buf_append(zp_buf_t *buf, const void *data, size_t len)
{
    if (zp_buf_reserve(buf, len) < 0)
        return -1;
    if (len)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    return 0;
}

int zp_buf_append_str(zp_buf_t *buf, const char *s)
{
    return zp_buf_append(buf, s, strlen(s));
}

int zp_buf_printf(zp_buf_t *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || zp_buf_reserve(buf, (size_t)n + 1) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
    return 0;
}

int zp_buf_append_json_utf8(zp_buf_t *buf, const void *data, size_t len)
{
    return zp_json_raw(buf, data, len);
}

int zp_buf_append_base64(zp_buf_t *buf, const void *data, size_t len)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = data;
    if (zp_buf_reserve(buf, (len + 2) / 3 * 4) < 0)
        return -1;
    char *o = buf->data + buf->len;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = tbl[(v >> 6) & 63];
        *o++ = tbl[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = tbl[(v >> 6) & 63];
        *o++ = '=';
    }
    buf->len = (size_t)(o - buf->data);
    return 0;
}

void zp_buf_free(zp_buf_t *buf)
{
    if (!buf->borrowed)
        free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
    buf->borrowed = false;
}

void zp_json_escape(char *dst, size_t cap, const char *src, size_t len)
{
    zp_buf_t b = {0};
    if (cap == 0)
        return;
    if (zp_buf_append_json(&b, src, len) < 0) {
        dst[0] = '\0';
        return;
    }
    size_t n = b.len < cap - 1 ? b.len : cap - 1;
    memcpy(dst, b.data, n);
    dst[n] = '\0';
    zp_buf_free(&b);
}

bool zp_utf8_valid(const void *data, size_t len)
{
    const unsigned char *s = data;
    size_t i = 0;
    while (i < len) {
        /* ASCII eight bytes at a time. */
        uint64_t x;
        while (len - i >= 8 &&
               (memcpy(&x, s + i, 8), !(x & 0x8080808080808080ull)))
            i += 8;
        if (i == len)
            break;
        size_t n = zp_utf8_seq(s + i, len - i);
        if (!n)
            return false;
        i += n;
    }
    return true;
}

int zp_buf_append_json(zp_buf_t *buf, const void *data, size_t len)
{
    return zp_json_text(buf, data, len);
}

int zp_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

char *zp_exe_dir(void)
{
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return NULL;
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    if (slash)
        *slash = '\0';
    return strdup(path);
}

char *zp_path_join(const char *a, const char *b)
{
    char *out;
    size_t la = strlen(a);
    bool slash = la > 0 && a[la - 1] == '/';
    if (asprintf(&out, "%s%s%s", a, slash ? "" : "/", b) < 0)
        return NULL;
    return out;
}

char *zp_random_id(const char *prefix, size_t n)
{
    unsigned char raw[32];
    if (n > sizeof raw)
        n = sizeof raw;
    if (getrandom(raw, n, 0) != (ssize_t)n) {
        uint64_t t = zp_mono_us() ^ (uint64_t)getpid() << 32;
        for (size_t i = 0; i < n; i++)
            raw[i] = (unsigned char)(t >> (8 * (i % 8)));
    }
    size_t pl = strlen(prefix);
    char *out = malloc(pl + 2 * n + 1);
    if (!out)
        return NULL;
    memcpy(out, prefix, pl);
    for (size_t i = 0; i < n; i++)
        snprintf(out + pl + 2 * i, 3, "%02x", raw[i]);
    out[pl + 2 * n] = '\0';
    return out;
}

static volatile sig_atomic_t s_stop_sig = 0;
static long s_parent_pid = 0;
static int s_stop_pipe[2] = {-1, -1}; /* the self-pipe: read, write */

static void s_on_signal(int sig)
{
    s_stop_sig = sig;
    if (s_stop_pipe[1] >= 0) {
        int saved = errno;
        ssize_t w = write(s_stop_pipe[1], "", 1); /* full: already awake */
        (void)w;
        errno = saved;
    }
}

void zp_signals_install(long parent_pid)
{
    if (s_stop_pipe[0] < 0 && pipe2(s_stop_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        s_stop_pipe[0] = s_stop_pipe[1] = -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    s_parent_pid = parent_pid;
}

/* Hot loops ask zp_stopping often; a system call to see whether the
 * parent is gone is made at most every 50 ms (coarse clock, no call). */
static bool s_parent_check_due(void)
{
    static uint64_t next_ms;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (now < next_ms)
        return false;
    next_ms = now + 50;
    return true;
}

bool zp_stopping(void)
{
    if (s_stop_sig)
        return true;
    if (s_parent_pid > 0 && s_parent_check_due() &&
        getppid() != (pid_t)s_parent_pid) {
        s_stop_sig = SIGHUP;
        return true;
    }
    return false;
}

int zp_stop_signal(void)
{
    return s_stop_sig;
}

int zp_stop_fd(void)
{
    return s_stop_pipe[0];
}

void zp_stop_fd_drain(void)
{
    char buf[64];
    while (s_stop_pipe[0] >= 0 && read(s_stop_pipe[0], buf, sizeof buf) > 0)
        ;
}

int zp_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void zp_malloc_tune(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
}
