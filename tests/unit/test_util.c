/* Tests for zp_util: buffers, JSON text, UTF-8, numbers, ids. */
#include "test.h"
#include "zp_util.h"

static void test_buf_grows_and_appends(void)
{
    zp_buf_t b = {0};
    for (int i = 0; i < 1000; i++)
        TEST_CHECK(zp_buf_append(&b, "abc", 3) == 0);
    TEST_EQ_INT(b.len, 3000);
    TEST_CHECK(memcmp(b.data + 2997, "abc", 3) == 0);
    TEST_CHECK(zp_buf_printf(&b, "%d-%s", 42, "x") == 0);
    TEST_EQ_INT(b.len, 3004);
    zp_buf_free(&b);
    TEST_CHECK(b.data == NULL && b.cap == 0);
}

static void test_buf_in_borrowed_memory_moves_out_when_outgrown(void)
{
    char mem[8];
    zp_buf_t b = {0};
    TEST_CHECK(zp_buf_append(&b, "own", 3) == 0);
    zp_buf_borrow(&b, mem, sizeof mem); /* frees its own */
    TEST_CHECK(b.borrowed && b.data == mem && b.len == 0);
    TEST_CHECK(zp_buf_append(&b, "abcdefgh", 8) == 0);
    TEST_CHECK(b.data == mem && memcmp(mem, "abcdefgh", 8) == 0);
    TEST_CHECK(zp_buf_append(&b, "ij", 2) == 0); /* outgrown */
    TEST_CHECK(!b.borrowed && b.data != mem);
    TEST_CHECK(b.len == 10 && memcmp(b.data, "abcdefghij", 10) == 0);
    zp_buf_free(&b);
    zp_buf_borrow(&b, mem, sizeof mem);
    zp_buf_free(&b); /* nothing freed: not its own */
    TEST_CHECK(b.data == NULL && !b.borrowed);
}

static void test_json_escapes_quotes_controls_and_backslash(void)
{
    zp_buf_t b = {0};
    const char in[] = "a\"b\\c\n\t\x01z";
    zp_buf_append_json(&b, in, sizeof in - 1);
    zp_buf_append(&b, "", 1);
    TEST_EQ_STR(b.data, "a\\\"b\\\\c\\n\\t\\u0001z");
    zp_buf_free(&b);
}

static void test_base64_matches_rfc4648_vectors(void)
{
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                         "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        zp_buf_t b = {0};
        zp_buf_append_base64(&b, in[i], strlen(in[i]));
        zp_buf_append(&b, "", 1);
        TEST_EQ_STR(b.data, out[i]);
        zp_buf_free(&b);
    }
}

static void test_utf8_accepts_valid_rejects_invalid(void)
{
    TEST_CHECK(zp_utf8_valid("hello", 5));
    TEST_CHECK(zp_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    TEST_CHECK(!zp_utf8_valid("\xff", 1));
    TEST_CHECK(!zp_utf8_valid("\xc3", 1));             /* truncated */
    TEST_CHECK(!zp_utf8_valid("\xc0\xaf", 2));         /* overlong */
    TEST_CHECK(!zp_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    TEST_CHECK(!zp_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

static void test_json_text_replaces_what_is_not_utf8(void)
{
    zp_buf_t b = {0};
    /* Valid é and €, a stray 0xff, a truncated sequence, an overlong '/'
     * (two bytes, each replaced), a surrogate, and escapes as before. */
    const char in[] =
        "\xc3\xa9\xe2\x82\xac\xff\"\xc3\xc0\xaf\xed\xa0\x80\\\n\xe2\x82";
    TEST_CHECK(zp_buf_append_json(&b, in, sizeof in - 1) == 0);
    zp_buf_append(&b, "", 1);
    TEST_EQ_STR(b.data, "\xc3\xa9\xe2\x82\xac\\ufffd\\\"\\ufffd\\ufffd\\ufffd"
                        "\\ufffd\\ufffd\\ufffd\\\\\\n\\ufffd\\ufffd");
    b.len = 0;
    TEST_CHECK(zp_buf_append_json(&b, "plain", 5) == 0);
    TEST_CHECK(b.len == 5 && memcmp(b.data, "plain", 5) == 0);
    zp_buf_free(&b);
}

static void test_parse_u64_is_strict(void)
{
    uint64_t v = 0;
    TEST_CHECK(zp_parse_u64("42", 0, 100, &v) == 0);
    TEST_EQ_INT(v, 42);
    TEST_CHECK(zp_parse_u64("101", 0, 100, &v) < 0);
    TEST_CHECK(zp_parse_u64("4x", 0, 100, &v) < 0);
    TEST_CHECK(zp_parse_u64("-1", 0, 100, &v) < 0);
    TEST_CHECK(zp_parse_u64("", 0, 100, &v) < 0);
    TEST_CHECK(zp_parse_u64(" 4", 0, 100, &v) < 0);
    TEST_CHECK(zp_parse_u64("99999999999999999999999", 0, UINT64_MAX, &v) < 0);
}

static void test_random_ids_differ(void)
{
    char *a = zp_random_id("job-", 6), *b = zp_random_id("job-", 6);
    TEST_CHECK(a && b);
    TEST_EQ_INT(strlen(a), 16);
    TEST_CHECK(strncmp(a, "job-", 4) == 0);
    TEST_CHECK(strcmp(a, b) != 0);
    free(a);
    free(b);
}

static void test_hash_is_fnv1a(void)
{
    TEST_CHECK(zp_hash_str("") == 14695981039346656037ull);
    TEST_CHECK(zp_hash_str("a") == 0xaf63dc4c8601ec8cull);
    TEST_CHECK(zp_hash_bytes("a\0b", 3) != zp_hash_str("a"));
}

static const test_case_t tests[] = {
    {"test_hash_is_fnv1a", test_hash_is_fnv1a},
    {"test_buf_grows_and_appends", test_buf_grows_and_appends},
    {"test_buf_in_borrowed_memory_moves_out_when_outgrown",
     test_buf_in_borrowed_memory_moves_out_when_outgrown},
    {"test_json_escapes_quotes_controls_and_backslash",
     test_json_escapes_quotes_controls_and_backslash},
    {"test_base64_matches_rfc4648_vectors",
     test_base64_matches_rfc4648_vectors},
    {"test_utf8_accepts_valid_rejects_invalid",
     test_utf8_accepts_valid_rejects_invalid},
    {"test_json_text_replaces_what_is_not_utf8",
     test_json_text_replaces_what_is_not_utf8},
    {"test_parse_u64_is_strict", test_parse_u64_is_strict},
    {"test_random_ids_differ", test_random_ids_differ},
    {NULL, NULL},
};
TEST_MAIN(tests)
