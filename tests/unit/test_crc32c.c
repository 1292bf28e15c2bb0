/* Tests for zp_crc32c: the standard check values, chaining, and the table
 * and instruction paths agreeing byte for byte. */
#include "test.h"
#include "zp_crc32c.h"

#include <stdint.h>

static void test_check_value(void)
{
    const char *s = "123456789";
    TEST_EQ_INT(zp_crc32c(0, s, 9), 0xE3069283u);
    TEST_EQ_INT(zp_crc32c_sw(0, s, 9), 0xE3069283u);
    if (zp_crc32c_hw_available())
        TEST_EQ_INT(zp_crc32c_hw(0, s, 9), 0xE3069283u);
    TEST_EQ_INT(zp_crc32c(0, "", 0), 0);
}

/* RFC 3720 (iSCSI), appendix B.4. */
static void test_iscsi_vectors(void)
{
    uint8_t buf[32];
    memset(buf, 0, sizeof buf);
    TEST_EQ_INT(zp_crc32c(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, sizeof buf);
    TEST_EQ_INT(zp_crc32c(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    TEST_EQ_INT(zp_crc32c(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    TEST_EQ_INT(zp_crc32c(0, buf, 32), 0x113FDB5Cu);
}

static void test_chaining_equals_one_pass(void)
{
    const char *s = "The quick brown fox jumps over the lazy dog";
    size_t n = strlen(s);
    uint32_t whole = zp_crc32c(0, s, n);
    for (size_t cut = 0; cut <= n; cut++) {
        TEST_EQ_INT(zp_crc32c(zp_crc32c(0, s, cut), s + cut, n - cut), whole);
        TEST_EQ_INT(zp_crc32c_sw(zp_crc32c_sw(0, s, cut), s + cut, n - cut),
                    whole);
    }
}

static uint64_t s_rng = 0x9E3779B97F4A7C15u;

static uint8_t s_rand_byte(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint8_t)s_rng;
}

/* Every length 0..300 at every start offset 0..7 (unaligned loads), from
 * a few starting values: the table, the instruction and the dispatcher
 * agree. */
static void test_table_and_instruction_agree(void)
{
    static uint8_t buf[320];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = s_rand_byte();
    bool hw = zp_crc32c_hw_available();
    const uint32_t seeds[] = {0, 0xFFFFFFFFu, 0x12345678u};
    for (size_t k = 0; k < 3; k++)
        for (size_t start = 0; start < 8; start++)
            for (size_t len = 0; len <= 300; len++) {
                uint32_t sw = zp_crc32c_sw(seeds[k], buf + start, len);
                TEST_EQ_INT(zp_crc32c(seeds[k], buf + start, len), sw);
                if (hw)
                    TEST_EQ_INT(zp_crc32c_hw(seeds[k], buf + start, len), sw);
            }
    printf("  instruction path %s\n", hw ? "checked" : "absent on this CPU");
}

/* Long enough for the instruction path's three-stream blocks (3 x 256
 * and 3 x 8,192 bytes), at their edges, from every start offset. */
static void test_long_buffers_agree(void)
{
    static uint8_t buf[3 * 3 * 8192 + 64];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = s_rand_byte();
    const size_t lens[] = {767,   768,   769,   775,   776,   1536,
                           2303,  2304,  24575, 24576, 24577, 24576 + 768,
                           25351, 49152, 49159, 73728, 73735};
    for (size_t k = 0; k < sizeof lens / sizeof *lens; k++)
        for (size_t start = 0; start < 8; start++) {
            uint32_t sw = zp_crc32c_sw(7, buf + start, lens[k]);
            TEST_EQ_INT(zp_crc32c(7, buf + start, lens[k]), sw);
            if (zp_crc32c_hw_available())
                TEST_EQ_INT(zp_crc32c_hw(7, buf + start, lens[k]), sw);
        }
}

static void test_single_bit_flips_change_the_checksum(void)
{
    uint8_t buf[64];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = s_rand_byte();
    uint32_t base = zp_crc32c(0, buf, sizeof buf);
    for (size_t bit = 0; bit < 8 * sizeof buf; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        TEST_CHECK(zp_crc32c(0, buf, sizeof buf) != base);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
}

static const test_case_t tests[] = {
    {"test_check_value", test_check_value},
    {"test_iscsi_vectors", test_iscsi_vectors},
    {"test_chaining_equals_one_pass", test_chaining_equals_one_pass},
    {"test_table_and_instruction_agree", test_table_and_instruction_agree},
    {"test_long_buffers_agree", test_long_buffers_agree},
    {"test_single_bit_flips_change_the_checksum",
     test_single_bit_flips_change_the_checksum},
    {NULL, NULL},
};
TEST_MAIN(tests)
