/* zp_json: JSON strings and numbers written without printf and without
 * a byte-at-a-time loop over plain text (see zp_json.h). */
#include "zp_json.h"

#include <string.h>

/* Each step of the escaping loop writes at most this many bytes (eight
 * copied at once; an escape is six, a UTF-8 sequence four). */
#define S_STEP 8

/* Bytes asked for at a time beyond what is left of the input: most text
 * needs no escape, so the input's length is the first guess; escapes
 * grow the buffer as they come. */
#define S_SLACK 64

typedef enum {
    S_RAW,    /* bytes from 0x80 up copied, unchecked */
    S_STRICT, /* stop at the first ill-formed UTF-8 sequence */
    S_LOSSY,  /* each byte of one becomes \ufffd */
} s_mode_t;

static const char s_digits[201] = "00010203040506070809"
                                  "10111213141516171819"
                                  "20212223242526272829"
                                  "30313233343536373839"
                                  "40414243444546474849"
                                  "50515253545556575859"
                                  "60616263646566676869"
                                  "70717273747576777879"
                                  "80818283848586878889"
                                  "90919293949596979899";

char *zp_json_u64(char *p, uint64_t v)
{
    /* below[n]: the least number of n + 1 digits but for n = 0, where 0
     * makes 0 a number of one digit. */
    static const uint64_t below[ZP_JSON_U64_MAX] = {
        0ull,
        10ull,
        100ull,
        1000ull,
        10000ull,
        100000ull,
        1000000ull,
        10000000ull,
        100000000ull,
        1000000000ull,
        10000000000ull,
        100000000000ull,
        1000000000000ull,
        10000000000000ull,
        100000000000000ull,
        1000000000000000ull,
        10000000000000000ull,
        100000000000000000ull,
        1000000000000000000ull,
        10000000000000000000ull,
    };
    /* Its digits without a loop: bits * 1233 / 4096 is log10(2^bits)
     * rounded down (exact up to 64 bits), one short of the digits or the
     * count itself, which one comparison tells. */
    unsigned bits = 64u - (unsigned)__builtin_clzll(v | 1);
    size_t n = (bits * 1233u) >> 12;
    n += v >= below[n];
    /* Two digits at a time from the end. */
    char *end = p + n, *t = end;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        t -= 2;
        memcpy(t, s_digits + 2 * r, 2);
    }
    if (v >= 10)
        memcpy(t - 2, s_digits + 2 * v, 2);
    else
        t[-1] = (char)('0' + v);
    return end;
}

/* The length (1-4) of the well-formed UTF-8 sequence at s, of at most
 * avail bytes (avail > 0), or 0 when there is none (no overlongs,
 * surrogates or code points past U+10FFFF). */
static size_t s_utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
        n = 1;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 2;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail <= n)
        return 0;
    for (size_t k = 1; k <= n; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
        (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n + 1;
}

size_t zp_utf8_seq(const void *s, size_t avail)
{
    return avail ? s_utf8_seq(s, avail) : 0;
}

/* Whether any of the eight bytes in x is below 0x20, '"' or '\\' (or,
 * with high, from 0x80 up). Exact: a byte that needs nothing never
 * counts (the subtractions borrow only from a byte that matches). */
static inline bool s_special(uint64_t x, bool high)
{
    const uint64_t ones = 0x0101010101010101ull;
    const uint64_t top = 0x8080808080808080ull;
    uint64_t q = x ^ (ones * '"');
    uint64_t b = x ^ (ones * '\\');
    uint64_t t = ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) |
                 ((b - ones) & ~b) | (high ? x : 0);
    return (t & top) != 0;
}

/* The n bytes at s (1 to 7) as the low bytes of a word (little-endian
 * order, as memcpy to a word would put them), the others spaces: loads
 * that overlap instead of a byte loop or a call to memcpy. */
static inline uint64_t s_tail(const unsigned char *s, size_t n)
{
    uint64_t x;
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    unsigned char w[8] = "        ";
    memcpy(w, s, n);
    memcpy(&x, w, 8);
    return x;
#endif
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + n - 4, 4);
        x = (uint64_t)lo | (uint64_t)hi << (8 * (n - 4));
    } else {
        x = (uint64_t)s[0] | (uint64_t)s[n / 2] << (8 * (n / 2)) |
            (uint64_t)s[n - 1] << (8 * (n - 1));
    }
    return x | 0x2020202020202020ull << (8 * n);
}

/* Escapes s[*at..len) to o until the input ends or fewer than S_STEP
 * bytes of room are left before oend; *at says how far it got. Returns
 * the end of what it wrote, or NULL (strict) at an ill-formed sequence. */
static inline __attribute__((always_inline)) char *
s_escape(char *o, const char *oend, const unsigned char *s, size_t *at,
         size_t len, s_mode_t mode)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = *at;
    bool high = mode != S_RAW;
    while (i < len && oend - o >= S_STEP) {
        /* Runs of plain text, eight bytes at a time. */
        while (len - i >= 8 && oend - o >= 8) {
            uint64_t x;
            memcpy(&x, s + i, 8);
            if (s_special(x, high))
                break;
            memcpy(o, &x, 8);
            o += 8;
            i += 8;
        }
        if (i == len || oend - o < S_STEP)
            break;
        if (len - i < 8) {
            /* The last bytes, padded with plain ones: the room is there
             * (S_STEP), and only the input's bytes count. */
            uint64_t x = s_tail(s + i, len - i);
            if (!s_special(x, high)) {
                memcpy(o, &x, 8);
                o += len - i;
                i = len;
                break;
            }
        }
        unsigned char c = s[i];
        if (c >= 0x80 && high) {
            size_t n = s_utf8_seq(s + i, len - i);
            if (n) {
                memcpy(o, s + i, n);
                o += n;
                i += n;
            } else if (mode == S_STRICT) {
                *at = i;
                return NULL;
            } else {
                memcpy(o, "\\ufffd", 6);
                o += 6;
                i++;
            }
            continue;
        }
        i++;
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *at = i;
    return o;
}

static inline __attribute__((always_inline)) int
s_append(zp_buf_t *b, const void *data, size_t len, s_mode_t mode)
{
    const unsigned char *s = data;
    size_t start = b->len, i = 0;
    while (i < len) {
        size_t left = len - i;
        if (left > SIZE_MAX - S_SLACK || zp_buf_reserve(b, left + S_SLACK)) {
            b->len = start;
            return -1;
        }
        char *o =
            s_escape(b->data + b->len, b->data + b->cap, s, &i, len, mode);
        if (!o) {
            b->len = start;
            return ZP_JSON_NOT_UTF8;
        }
        b->len = (size_t)(o - b->data);
    }
    return 0;
}

int zp_json_text(zp_buf_t *b, const void *data, size_t len)
{
    return s_append(b, data, len, S_LOSSY);
}

int zp_json_utf8(zp_buf_t *b, const void *data, size_t len)
{
    return s_append(b, data, len, S_STRICT);
}

int zp_json_raw(zp_buf_t *b, const void *data, size_t len)
{
    return s_append(b, data, len, S_RAW);
}
