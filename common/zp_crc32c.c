/* zp_crc32c: CRC-32C, reflected polynomial 0x82F63B78, by table or by the
 * SSE 4.2 instruction, chosen at run time. */
#include "zp_crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define S_HAVE_X86 1
#include <nmmintrin.h>
#endif

#define S_POLY 0x82F63B78u

/* s_table[0] is the classic byte-at-a-time table; s_table[k][b] is the
 * CRC of byte b followed by k zero bytes, so eight table lookups fold in
 * eight bytes at once (slice-by-8). */
static uint32_t s_table[8][256];
/* The hardware path's blocks, and the operators that shift a CRC over
 * that many zero bytes, one table per byte of the CRC. */
#define S_LONG  8192
#define S_SHORT 256
static uint32_t s_long[4][256], s_short[4][256];
static bool s_hw;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

/* mat (32 columns over GF(2)) times vec. */
static uint32_t s_gf2_times(const uint32_t *mat, uint32_t vec)
{
    uint32_t sum = 0;
    for (; vec; vec >>= 1, mat++)
        if (vec & 1)
            sum ^= *mat;
    return sum;
}

static void s_gf2_square(uint32_t *square, const uint32_t *mat)
{
    for (int n = 0; n < 32; n++)
        square[n] = s_gf2_times(mat, mat[n]);
}

/* zeros[k][b]: byte b in position k of a CRC, shifted over len zero bytes
 * (len a power of two), so a shift is four lookups. */
static void s_zeros(uint32_t zeros[4][256], size_t len)
{
    uint32_t op[32], sq[32];
    op[0] = S_POLY; /* one zero bit */
    for (int n = 1; n < 32; n++)
        op[n] = 1u << (n - 1);
    for (size_t bits = 1; bits < 8 * len; bits *= 2) {
        s_gf2_square(sq, op);
        memcpy(op, sq, sizeof op);
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int k = 0; k < 4; k++)
            zeros[k][b] = s_gf2_times(op, b << (8 * k));
}

static uint32_t s_shift(const uint32_t zeros[4][256], uint32_t c)
{
    return zeros[0][c & 0xff] ^ zeros[1][(c >> 8) & 0xff] ^
           zeros[2][(c >> 16) & 0xff] ^ zeros[3][c >> 24];
}

static void s_init(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (S_POLY & (0u - (c & 1)));
        s_table[0][b] = c;
    }
    for (int k = 1; k < 8; k++)
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t c = s_table[k - 1][b];
            s_table[k][b] = (c >> 8) ^ s_table[0][c & 0xff];
        }
    s_zeros(s_long, S_LONG);
    s_zeros(s_short, S_SHORT);
#ifdef S_HAVE_X86
    __builtin_cpu_init();
    s_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t s_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

uint32_t zp_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&s_once, s_init);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    for (; len >= 8; len -= 8, p += 8) {
        uint32_t lo = s_le32(p) ^ c, hi = s_le32(p + 4);
        c = s_table[7][lo & 0xff] ^ s_table[6][(lo >> 8) & 0xff] ^
            s_table[5][(lo >> 16) & 0xff] ^ s_table[4][lo >> 24] ^
            s_table[3][hi & 0xff] ^ s_table[2][(hi >> 8) & 0xff] ^
            s_table[1][(hi >> 16) & 0xff] ^ s_table[0][hi >> 24];
    }
    while (len--)
        c = (c >> 8) ^ s_table[0][(c ^ *p++) & 0xff];
    return ~c;
}

#ifdef S_HAVE_X86
/* Three streams at once: the instruction's latency is three times its
 * throughput, so one stream leaves two thirds of it idle. A block of 3 x
 * len bytes is summed as three independent CRCs, which are then joined by
 * shifting the first over len bytes (table zeros) and adding the next
 * (Mark Adler's method, as in his crc32c.c). */
__attribute__((target("sse4.2"))) static uint64_t
s_hw_blocks(uint64_t c, const uint8_t **next, size_t *len, size_t block,
            const uint32_t zeros[4][256])
{
    const uint8_t *p = *next;
    while (*len >= 3 * block) {
        uint64_t c1 = 0, c2 = 0;
        for (const uint8_t *end = p + block; p < end; p += 8) {
            uint64_t v0, v1, v2;
            memcpy(&v0, p, 8);
            memcpy(&v1, p + block, 8);
            memcpy(&v2, p + 2 * block, 8);
            c = _mm_crc32_u64(c, v0);
            c1 = _mm_crc32_u64(c1, v1);
            c2 = _mm_crc32_u64(c2, v2);
        }
        c = s_shift(zeros, (uint32_t)c) ^ c1;
        c = s_shift(zeros, (uint32_t)c) ^ c2;
        p += 2 * block;
        *len -= 3 * block;
    }
    *next = p;
    return c;
}

/* Compiled for SSE 4.2 whatever the build's -march; called only after
 * s_init found the instruction. */
__attribute__((target("sse4.2"))) uint32_t
zp_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&s_once, s_init);
    const uint8_t *p = data;
    uint64_t c = ~crc;
    c = s_hw_blocks(c, &p, &len, S_LONG, s_long);
    c = s_hw_blocks(c, &p, &len, S_SHORT, s_short);
    for (; len >= 8; len -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}
#else
uint32_t zp_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
    return zp_crc32c_sw(crc, data, len);
}
#endif

bool zp_crc32c_hw_available(void)
{
    pthread_once(&s_once, s_init);
    return s_hw;
}

uint32_t zp_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&s_once, s_init);
    return s_hw ? zp_crc32c_hw(crc, data, len) : zp_crc32c_sw(crc, data, len);
}
