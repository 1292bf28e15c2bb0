/* Tests for zp_lease: tokens that depend on key, task and attempt and
 * never repeat, random keys, and the hex form. */
#include "test.h"
#include "zp_lease.h"

#include <stdint.h>
#include <stdio.h>

#define KNOWN_5000_1 0xb3f0c4a77feb2c7eULL
#define KNOWN_5000_2 0xdefca6a4b88c94e3ULL
#include <stdlib.h>

static zp_lease_key_t s_ref_key(void)
{
    zp_lease_key_t k;
    for (int i = 0; i < ZP_LEASE_KEY_LEN; i++)
        k.b[i] = (uint8_t)i;
    return k;
}

/* Known values: the function may not change under a journal's keys (a
 * restarted sink and ventilator must agree with what workers carry). */
static void test_known_values(void)
{
    zp_lease_key_t k = s_ref_key();
    TEST_CHECK(zp_lease(&k, 0, 1) == zp_lease(&k, 0, 1));
    uint64_t a = zp_lease(&k, 5000, 1), b = zp_lease(&k, 5000, 2);
    printf("    lease(ref, 5000, 1) = %016llx, attempt 2 = %016llx\n",
           (unsigned long long)a, (unsigned long long)b);
    TEST_CHECK(a == KNOWN_5000_1);
    TEST_CHECK(b == KNOWN_5000_2);
}

static int s_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void test_token_depends_on_everything(void)
{
    zp_lease_key_t a = s_ref_key(), b = s_ref_key();
    b.b[15] ^= 1;
    uint64_t t = zp_lease(&a, 5000, 1);
    TEST_CHECK(t != 0);
    TEST_CHECK(t == zp_lease(&a, 5000, 1));
    TEST_CHECK(t != zp_lease(&b, 5000, 1));
    TEST_CHECK(t != zp_lease(&a, 5001, 1));
    TEST_CHECK(t != zp_lease(&a, 5000, 2));
    /* No zero and no repeat over a range of ids and attempts (64-bit
     * tokens: a repeat would be a bug, not bad luck). */
    enum { N = 100000 };
    static uint64_t all[2 * N];
    int zero = 0;
    for (uint64_t i = 0; i < N; i++)
        for (uint32_t at = 1; at <= 2; at++) {
            uint64_t x = zp_lease(&a, i, at);
            zero += x == 0;
            all[2 * i + at - 1] = x;
        }
    TEST_EQ_INT(zero, 0);
    qsort(all, 2 * N, sizeof all[0], s_cmp);
    int same = 0;
    for (size_t i = 1; i < 2 * N; i++)
        same += all[i] == all[i - 1];
    TEST_EQ_INT(same, 0);
}

static void test_keys(void)
{
    zp_lease_key_t z, k1, k2;
    TEST_EQ_INT(zp_lease_key_from(&z, NULL, 0), 0);
    TEST_CHECK(!zp_lease_key_set(&z));
    zp_lease_key_new(&k1);
    zp_lease_key_new(&k2);
    TEST_CHECK(zp_lease_key_set(&k1));
    TEST_CHECK(memcmp(k1.b, k2.b, sizeof k1.b) != 0);
    uint8_t raw[17] = {0};
    TEST_EQ_INT(zp_lease_key_from(&z, raw, 17), -1);
    TEST_EQ_INT(zp_lease_key_from(&z, k1.b, 16), 0);
    TEST_CHECK(memcmp(z.b, k1.b, 16) == 0);
}

static void test_hex(void)
{
    zp_lease_key_t k = s_ref_key(), back;
    char hex[33];
    zp_lease_key_hex(&k, hex);
    TEST_EQ_STR(hex, "000102030405060708090a0b0c0d0e0f");
    TEST_EQ_INT(zp_lease_key_parse(&back, hex), 0);
    TEST_CHECK(memcmp(back.b, k.b, 16) == 0);
    TEST_EQ_INT(zp_lease_key_parse(&back, "000102"), -1);
    TEST_EQ_INT(zp_lease_key_parse(&back, "000102030405060708090a0b0c0d0e0fa"),
                -1);
    TEST_EQ_INT(zp_lease_key_parse(&back, "g00102030405060708090a0b0c0d0e0f"),
                -1);
}

static const test_case_t tests[] = {
    {"known_values", test_known_values},
    {"token_depends_on_everything", test_token_depends_on_everything},
    {"keys", test_keys},
    {"hex", test_hex},
    {NULL, NULL},
};
TEST_MAIN(tests)
