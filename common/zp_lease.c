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

#define S_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define S_ROUND(v0, v1, v2, v3)                                                \
    do {                                                                       \
        v0 += v1;                                                              \
        v1 = S_ROTL(v1, 13);                                                   \
        v1 ^= v0;                                                              \
        v0 = S_ROTL(v0, 32);                                                   \
        v2 += v3;                                                              \
        v3 = S_ROTL(v3, 16);                                                   \
        v3 ^= v2;                                                              \
        v0 += v3;                                                              \
        v3 = S_ROTL(v3, 21);                                                   \
        v3 ^= v0;                                                              \
        v2 += v1;                                                              \
        v1 = S_ROTL(v1, 17);                                                   \
        v1 ^= v2;                                                              \
        v2 = S_ROTL(v2, 32);                                                   \
    } while (0)

uint64_t zp_siphash24(const zp_lease_key_t *key, const void *data, size_t len)
{
    const uint8_t *in = data;
    uint64_t k0 = s_get64(key->b), k1 = s_get64(key->b + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    uint64_t v3 = 0x7465646279746573ULL ^ k1;
    size_t whole = len - len % 8;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = s_get64(in + i);
        v3 ^= m;
        S_ROUND(v0, v1, v2, v3);
        S_ROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < len % 8; i++)
        b |= (uint64_t)in[whole + i] << (8 * i);
    v3 ^= b;
    S_ROUND(v0, v1, v2, v3);
    S_ROUND(v0, v1, v2, v3);
    v0 ^= b;
    v2 ^= 0xff;
    for (int i = 0; i < 4; i++)
        S_ROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t zp_lease(const zp_lease_key_t *key, uint64_t task, uint32_t attempt)
{
    uint8_t m[12];
    for (int i = 0; i < 8; i++)
        m[i] = (uint8_t)(task >> (8 * i));
    for (int i = 0; i < 4; i++)
        m[8 + i] = (uint8_t)(attempt >> (8 * i));
    uint64_t h = zp_siphash24(key, m, sizeof m);
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
