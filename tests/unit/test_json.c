/* Tests for zp_json: numbers, and strings escaped with the fast path,
 * checked byte for byte against the byte-at-a-time escaping every record
 * had before (kept here as the reference) on crafted and random input. */
#include "failalloc.h"
#include "test.h"
#include "zp_json.h"

#include <inttypes.h>
#include <stdint.h>

/* ---- the reference: the escaping zp_util did before zp_json ---- */

static size_t ref_seq(const unsigned char *s, size_t avail)
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

static bool ref_valid(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = ref_seq(s + i, len - i);
        if (!n)
            return false;
        i += n;
    }
    return true;
}

static void ref_raw(zp_buf_t *b, const unsigned char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c >= 0x20 && c != '"' && c != '\\')
            zp_buf_append(b, &c, 1);
        else if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t') {
            e[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : c;
            zp_buf_append(b, e, 2);
        } else
            zp_buf_append(b, e, 6);
    }
}

static void ref_text(zp_buf_t *b, const unsigned char *s, size_t len)
{
    size_t i = 0, run = 0;
    while (i < len) {
        size_t n = ref_seq(s + i, len - i);
        if (n) {
            i += n;
            continue;
        }
        ref_raw(b, s + run, i - run);
        zp_buf_append(b, "\\ufffd", 6);
        run = ++i;
    }
    ref_raw(b, s + run, len - run);
}

/* ---- helpers ---- */

/* Whether every mode of zp_json gives the reference's bytes for s,
 * appended after a prefix (so offsets into the buffer are exercised). */
static bool s_same_as_reference(const unsigned char *s, size_t len)
{
    zp_buf_t got = {0}, want = {0};
    bool same = true;
    for (int mode = 0; mode < 3 && same; mode++) {
        got.len = want.len = 0;
        zp_buf_append(&got, "p:", 2);
        zp_buf_append(&want, "p:", 2);
        int rc;
        if (mode == 0) {
            rc = zp_json_raw(&got, s, len);
            ref_raw(&want, s, len);
        } else if (mode == 1) {
            rc = zp_json_text(&got, s, len);
            ref_text(&want, s, len);
        } else {
            rc = zp_json_utf8(&got, s, len);
            if (ref_valid(s, len))
                ref_raw(&want, s, len);
            same = rc == (ref_valid(s, len) ? 0 : ZP_JSON_NOT_UTF8);
        }
        same = same && (mode == 2 || rc == 0) && got.len == want.len &&
               memcmp(got.data, want.data, got.len) == 0;
        if (!same)
            fprintf(stderr, "  mode %d, %zu input bytes: got %.*s\n", mode, len,
                    (int)got.len, got.data);
    }
    zp_buf_free(&got);
    zp_buf_free(&want);
    return same;
}

static uint64_t s_rand_state = 0x9e3779b97f4a7c15ull;

static uint64_t s_rand(void)
{
    uint64_t x = s_rand_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return s_rand_state = x;
}

/* ---- tests ---- */

static void test_u64_matches_printf(void)
{
    uint64_t v[] = {
        0,   1,    9,           10,       99,         100,           101,
        999, 1000, 4294967295u, 1u << 31, UINT64_MAX, UINT64_MAX - 1};
    char got[ZP_JSON_U64_MAX + 1], want[32];
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        *zp_json_u64(got, v[i]) = '\0';
        snprintf(want, sizeof want, "%" PRIu64, v[i]);
        TEST_EQ_STR(got, want);
    }
    for (uint64_t p = 1; p && p <= UINT64_MAX / 10; p *= 10)
        for (int d = -1; d <= 1; d++) {
            *zp_json_u64(got, p + (uint64_t)d) = '\0';
            snprintf(want, sizeof want, "%" PRIu64, p + (uint64_t)d);
            TEST_EQ_STR(got, want);
        }
    /* Its digit count comes from the bit count: each bit width's ends. */
    for (int b = 0; b < 64; b++)
        for (int d = -1; d <= 1; d++) {
            uint64_t x = (1ull << b) + (uint64_t)d;
            *zp_json_u64(got, x) = '\0';
            snprintf(want, sizeof want, "%" PRIu64, x);
            TEST_EQ_STR(got, want);
        }
    *zp_json_u64(got, UINT64_MAX) = '\0';
    TEST_EQ_STR(got, "18446744073709551615");
    for (int i = 0; i < 100000; i++) {
        uint64_t x = s_rand() >> (s_rand() % 64);
        char *end = zp_json_u64(got, x);
        TEST_CHECK(end - got <= ZP_JSON_U64_MAX);
        *end = '\0';
        snprintf(want, sizeof want, "%" PRIu64, x);
        TEST_EQ_STR(got, want);
    }
}

static void test_plain_text_is_copied(void)
{
    zp_buf_t b = {0};
    const char s[] = "hello, world: this is plain text, 0123456789 ~\x7f";
    TEST_CHECK(zp_json_utf8(&b, s, sizeof s - 1) == 0);
    TEST_EQ_INT(b.len, sizeof s - 1);
    TEST_CHECK(memcmp(b.data, s, b.len) == 0);
    zp_buf_free(&b);
}

static void test_escapes_at_every_position_of_a_word(void)
{
    /* Each special byte at each offset of 8-byte words, in 1 to 40 bytes
     * of text: the fast path must hand every one to the slow one. */
    const unsigned char special[] = {'"',  '\\', '\n', '\r', '\t', 0x00, 0x01,
                                     0x08, 0x0c, 0x1f, 0x7f, 0x80, 0xc3, 0xff};
    unsigned char s[40];
    for (size_t len = 1; len <= sizeof s; len++)
        for (size_t at = 0; at < len; at++)
            for (size_t k = 0; k < sizeof special; k++) {
                memset(s, 'a' + (int)(len % 26), len);
                s[at] = special[k];
                TEST_CHECK(s_same_as_reference(s, len));
            }
}

static void test_utf8_sequences_and_their_faults(void)
{
    const char *cases[] = {
        "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 done", /* valid */
        "\xff",                                            /* never a lead */
        "\xc3",                                            /* truncated */
        "abcdefg\xe2\x82",         /* truncated at the end of a word */
        "\xc0\xaf",                /* overlong '/' */
        "\xe0\x80\xaf",            /* overlong, three bytes */
        "\xed\xa0\x80",            /* a surrogate */
        "\xf4\x90\x80\x80",        /* past U+10FFFF */
        "\xf4\x8f\xbf\xbf",        /* U+10FFFF itself */
        "\xef\xbb\xbf BOM",        /* U+FEFF */
        "\x80 continuation alone", /* */
        "\xc3\xa9\xe2\x82\xac\xff\"\xc3\xc0\xaf\xed\xa0\x80\\\n\xe2\x82",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        TEST_CHECK(s_same_as_reference((const unsigned char *)cases[i],
                                       strlen(cases[i])));
    zp_buf_t b = {0};
    zp_buf_append(&b, "x", 1);
    TEST_EQ_INT(zp_json_utf8(&b, "ok \xff", 4), ZP_JSON_NOT_UTF8);
    TEST_EQ_INT(b.len, 1); /* as it was */
    TEST_CHECK(zp_json_text(&b, "\xc0\xaf", 2) == 0);
    TEST_CHECK(b.len == 13 && memcmp(b.data, "x\\ufffd\\ufffd", 13) == 0);
    zp_buf_free(&b);
}

static void test_empty_input_appends_nothing(void)
{
    zp_buf_t b = {0};
    TEST_CHECK(zp_json_text(&b, "", 0) == 0);
    TEST_CHECK(zp_json_utf8(&b, NULL, 0) == 0);
    TEST_CHECK(zp_json_raw(&b, NULL, 0) == 0);
    TEST_EQ_INT(b.len, 0);
    zp_buf_free(&b);
}

static void test_random_bytes_match_the_reference(void)
{
    /* Byte mixes from plain ASCII to all binary, lengths to 3000. */
    unsigned char s[3000];
    for (int round = 0; round < 3000; round++) {
        size_t len = (size_t)(s_rand() % (round < 2000 ? 64 : sizeof s));
        int kind = round % 4;
        for (size_t i = 0; i < len; i++) {
            uint64_t r = s_rand();
            if (kind == 0) /* ASCII, now and then a special */
                s[i] = r % 50 ? (unsigned char)(0x20 + r % 95)
                              : (unsigned char)"\"\\\n\x01"[r / 50 % 4];
            else if (kind == 1) /* UTF-8 text, sometimes broken */
                s[i] = r % 7 ? (unsigned char)(0x80 + r % 64)
                             : (unsigned char)"a\xc3\xe2\xf0\xed"[r / 7 % 5];
            else /* anything */
                s[i] = (unsigned char)r;
        }
        TEST_CHECK(s_same_as_reference(s, len));
    }
}

static void test_long_escapes_grow_the_buffer(void)
{
    /* 100,000 control bytes: six output bytes each, far past the first
     * guess of the input's length. */
    size_t n = 100000;
    unsigned char *s = malloc(n);
    TEST_CHECK(s != NULL);
    memset(s, 0x01, n);
    s[n / 2] = 'z';
    TEST_CHECK(s_same_as_reference(s, n));
    free(s);
}

static void s_oom_scenario(void *arg)
{
    bool *ok = arg;
    zp_buf_t b = {0};
    if (zp_buf_append(&b, "keep", 4) < 0) {
        zp_buf_free(&b);
        return;
    }
    static unsigned char s[5000];
    memset(s, '\n', sizeof s); /* 2 bytes each: the buffer grows twice */
    size_t before = b.len;
    int rc = zp_json_text(&b, s, sizeof s);
    if (rc == 0)
        *ok = *ok && b.len == before + 2 * sizeof s;
    else
        *ok = *ok && rc == -1 && b.len == before &&
              memcmp(b.data, "keep", 4) == 0;
    zp_buf_free(&b);
}

static void test_out_of_memory_leaves_the_buffer_as_it_was(void)
{
    bool ok = true;
    long runs = failalloc_sweep(s_oom_scenario, &ok);
    TEST_CHECK(runs >= 2);
    TEST_CHECK(ok);
}

static const test_case_t tests[] = {
    {"test_u64_matches_printf", test_u64_matches_printf},
    {"test_plain_text_is_copied", test_plain_text_is_copied},
    {"test_escapes_at_every_position_of_a_word",
     test_escapes_at_every_position_of_a_word},
    {"test_utf8_sequences_and_their_faults",
     test_utf8_sequences_and_their_faults},
    {"test_empty_input_appends_nothing", test_empty_input_appends_nothing},
    {"test_random_bytes_match_the_reference",
     test_random_bytes_match_the_reference},
    {"test_long_escapes_grow_the_buffer", test_long_escapes_grow_the_buffer},
    {"test_out_of_memory_leaves_the_buffer_as_it_was",
     test_out_of_memory_leaves_the_buffer_as_it_was},
    {NULL, NULL},
};

TEST_MAIN(tests)
