/* zp_lease: dispatch tokens (see zp_lease.h). */
#include "zp_lease.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t s_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The murmur3 64-bit finalizer: a bijection that mixes every bit. */
static uint64_t s_fmix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

uint64_t zp_lease(const zp_lease_key_t *key, uint64_t task, uint32_t attempt)
{
    uint64_t k0 = s_get64(key->b), k1 = s_get64(key->b + 8);
    uint64_t h = s_fmix(s_fmix(task ^ k0) ^ k1 ^
                        (uint64_t)attempt * 0x9E3779B97F4A7C15ULL);
    return h ? h : 1;
}

bool zp_lease_key_set(const zp_lease_key_t *key)
{
    for (size_t i = 0; i < ZP_LEASE_KEY_LEN; i++)
        if (key->b[i])
            return true;
    return false;
}

/* n random bytes into p; false when no source gave them all. */
static bool s_random(uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, GRND_NONBLOCK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got == n)
        return true;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t r = read(fd, p, n);
    close(fd);
    return r == (ssize_t)n;
}

void zp_lease_key_new(zp_lease_key_t *key)
{
    if (s_random(key->b, sizeof key->b) && zp_lease_key_set(key))
        return;
    /* No entropy source: the clock and pid still tell jobs apart. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t a = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    uint64_t b = (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)key;
    static uint64_t counter;
    b ^= ++counter;
    for (int i = 0; i < 8; i++) {
        key->b[i] = (uint8_t)(a >> (8 * i));
        key->b[8 + i] = (uint8_t)(b >> (8 * i));
    }
    key->b[0] |= 1;
}

int zp_lease_key_from(zp_lease_key_t *key, const uint8_t *data, size_t len)
{
    if (len == 0) {
        memset(key, 0, sizeof *key);
        return 0;
    }
    if (len != ZP_LEASE_KEY_LEN)
        return -1;
    memcpy(key->b, data, len);
    return 0;
}

void zp_lease_key_hex(const zp_lease_key_t *key, char out[33])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < ZP_LEASE_KEY_LEN; i++) {
        out[2 * i] = digits[key->b[i] >> 4];
        out[2 * i + 1] = digits[key->b[i] & 15];
    }
    out[32] = '\0';
}

static int s_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int zp_lease_key_parse(zp_lease_key_t *key, const char *hex)
{
    zp_lease_key_t k;
    for (size_t i = 0; i < ZP_LEASE_KEY_LEN; i++) {
        int hi = s_nibble(hex[2 * i]);
        int lo = hi < 0 ? -1 : s_nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        k.b[i] = (uint8_t)(hi << 4 | lo);
    }
    if (hex[32] != '\0')
        return -1;
    *key = k;
    return 0;
}
