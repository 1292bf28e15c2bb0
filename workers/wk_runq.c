/* wk_runq: a thread's wait for a CPU (see wk_runq.h). */
#define _GNU_SOURCE
#include "wk_runq.h"

#include <fcntl.h>
#include <unistd.h>

void zp_wk_runq_open(zp_wk_runq_t *self)
{
    self->fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (self->fd < 0) /* before Linux 3.17 */
        self->fd = open("/proc/self/schedstat", O_RDONLY | O_CLOEXEC);
}

void zp_wk_runq_close(zp_wk_runq_t *self)
{
    if (self->fd >= 0)
        close(self->fd);
    self->fd = -1;
}

/* One decimal number at *p (at most 19 digits: no overflow), then the
 * byte after it. */
static bool s_number(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    uint64_t n = 0;
    int digits = 0;
    while (s < end && *s >= '0' && *s <= '9' && digits < 19) {
        n = n * 10 + (uint64_t)(*s++ - '0');
        digits++;
    }
    if (!digits || (s < end && *s >= '0' && *s <= '9'))
        return false;
    *v = n;
    *p = s;
    return true;
}

bool zp_wk_runq_parse(const char *text, size_t len, uint64_t *wait_ns)
{
    const char *p = text, *end = text + len;
    uint64_t run, wait, slices;
    if (!s_number(&p, end, &run) || p == end || *p++ != ' ' ||
        !s_number(&p, end, &wait) || p == end || *p++ != ' ' ||
        !s_number(&p, end, &slices))
        return false;
    if (p < end && *p != '\n')
        return false;
    *wait_ns = wait;
    return true;
}

uint64_t zp_wk_runq_wait_us(zp_wk_runq_t *self)
{
    if (self->fd < 0)
        return 0;
    char buf[96];
    ssize_t n = pread(self->fd, buf, sizeof buf, 0);
    uint64_t ns;
    if (n <= 0 || !zp_wk_runq_parse(buf, (size_t)n, &ns))
        return 0;
    return ns / 1000;
}
