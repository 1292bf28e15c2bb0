/* Tests for vent_journal's reading side: every record type through a
 * replay, torn tails cut at every byte, damage refused with its offset, a
 * visitor's refusal. Appending, syncing and compaction:
 * test_vent_journal_append.c. */
#define _GNU_SOURCE
#include "vjournal_fixture.h"

/* ---- the tests ------------------------------------------------------ */

static void test_every_record_type_round_trips(void)
{
    s_tmp_t t;
    s_tmp_new(&t);
    static s_rec_t exp, got;
    memset(&exp, 0, sizeof exp);
    memset(&got, 0, sizeof got);
    s_marks_t m = {0};
    zp_vjournal_info_t info;
    char err[256];
    zp_vjournal_t *j =
        zp_vjournal_open(t.path, NULL, NULL, &info, err, sizeof err);
    TEST_CHECK(j && info.created && info.records == 0);
    TEST_EQ_INT(s_fsize(t.path), ZP_VJ_HEADER_LEN);
    TEST_EQ_INT(s_sample(j, &exp, &m, 256), 0);
    zp_vjournal_job_t nulls = {"job-n", NULL, NULL, NULL, 1, 2, 3, {0}};
    TEST_EQ_INT(zp_vjournal_job(j, &nulls), 0);
    s_logf(&exp, "open job-n   [] 1 2 3\n");
    TEST_EQ_INT(zp_vjournal_sync(j), 0);
    TEST_EQ_INT(s_fsize(t.path), (long)zp_vjournal_size(j));
    zp_vjournal_destroy(&j);
    TEST_CHECK(j == NULL);
    TEST_EQ_INT(s_replay(t.path, &got, &info, err, sizeof err), m.n + 1);
    TEST_CHECK(!info.created && info.torn == 0);
    TEST_EQ_INT(info.bytes, s_fsize(t.path));
    TEST_EQ_STR(got.log, exp.log);
    s_tmp_done(&t);
}

/* A process killed between a write and its fdatasync leaves records the
 * next open replays but the disk may not hold: they are synced before
 * anything is answered from them. */
static void test_replayed_records_need_a_sync(void)
{
    s_tmp_t t;
    s_tmp_new(&t);
    char err[256];
    zp_vjournal_t *j =
        zp_vjournal_open(t.path, NULL, NULL, NULL, err, sizeof err);
    zp_vjournal_job_t o = {"job-1", "tok", "echo", "", 0, 0, 0, {0}};
    TEST_EQ_INT(zp_vjournal_job(j, &o), 0);
    TEST_EQ_INT(zp_vjournal_flush(j), 0); /* written, never synced */
    zp_vjournal_destroy(&j);
    zp_vjournal_info_t info;
    static s_rec_t got;
    memset(&got, 0, sizeof got);
    j = zp_vjournal_open(t.path, &s_visitor, &got, &info, err, sizeof err);
    TEST_CHECK(j && info.records == 1);
    TEST_CHECK(zp_vjournal_needs_sync(j));
    TEST_EQ_INT(zp_vjournal_sync(j), 0);
    TEST_CHECK(!zp_vjournal_needs_sync(j));
    zp_vjournal_destroy(&j);
    s_tmp_done(&t);
}

static void test_missing_or_empty_file_is_a_new_journal(void)
{
    s_tmp_t t;
    s_tmp_new(&t);
    zp_vjournal_info_t info;
    char err[256];
    s_spit(t.path, "", 0);
    zp_vjournal_t *j =
        zp_vjournal_open(t.path, &s_visitor, NULL, &info, err, sizeof err);
    TEST_CHECK(j && !info.created && info.bytes == ZP_VJ_HEADER_LEN);
    TEST_CHECK(!zp_vjournal_needs_sync(j));
    zp_vjournal_destroy(&j);
    TEST_EQ_INT(s_slurp(t.path), ZP_VJ_HEADER_LEN);
    TEST_CHECK(memcmp(s_file, "zpipe-vjournal 1\n", ZP_VJ_HEADER_LEN) == 0);
    /* A crash while the header was written leaves a prefix of it. */
    s_spit(t.path, "zpipe-vjournal 1", 16);
    j = zp_vjournal_open(t.path, &s_visitor, NULL, &info, err, sizeof err);
    TEST_CHECK(j && info.torn == 16 && info.records == 0);
    zp_vjournal_destroy(&j);
    TEST_EQ_INT(s_fsize(t.path), ZP_VJ_HEADER_LEN);
    s_tmp_done(&t);
}

static void test_a_file_that_is_not_a_journal_is_refused(void)
{
    s_tmp_t t;
    s_tmp_new(&t);
    const char *bad[] = {"hello world, this is not a journal\n",
                         "zpipe-journal 1\nO a 3\n", "zpipe-vjournal 2\n",
                         "z\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s_spit(t.path, bad[i], strlen(bad[i]));
        char err[256];
        zp_vjournal_info_t info;
        zp_vjournal_t *j =
            zp_vjournal_open(t.path, &s_visitor, NULL, &info, err, sizeof err);
        TEST_CHECK(j == NULL);
        TEST_CONTAINS(err, t.path);
        TEST_CONTAINS(err, "not a zpipe ventilator journal");
        TEST_EQ_INT(s_fsize(t.path), strlen(bad[i])); /* untouched */
    }
    s_tmp_done(&t);
}

/* The file cut at every length from the header's end to whole: the open
 * replays exactly the whole records, cuts the rest, and appends after. */
static void test_torn_tail_is_cut_at_every_offset(void)
{
    s_tmp_t t;
    s_tmp_new(&t);
    static s_rec_t exp, got;
    memset(&exp, 0, sizeof exp);
    s_marks_t m = {0};
    TEST_EQ_INT(s_sample_file(&t, &exp, &m, 40), 0);
    size_t whole = s_slurp(t.path);
    static uint8_t copy[sizeof s_file];
    memcpy(copy, s_file, whole);
    for (size_t cut = ZP_VJ_HEADER_LEN; cut <= whole; cut++) {
        size_t k = 0; /* records wholly inside cut bytes */
        while (k < m.n && m.bounds[k] <= cut)
            k++;
        uint64_t valid = k ? m.bounds[k - 1] : ZP_VJ_HEADER_LEN;
        s_spit(t.path, copy, cut);
        memset(&got, 0, sizeof got);
        zp_vjournal_info_t info;
        char err[256];
        zp_vjournal_t *j =
            zp_vjournal_open(t.path, &s_visitor, &got, &info, err, sizeof err);
        TEST_CHECK(j != NULL);
        TEST_EQ_INT(info.records, k);
        TEST_EQ_INT(info.torn, cut - valid);
        TEST_EQ_INT(info.bytes, valid);
        TEST_EQ_INT(s_fsize(t.path), valid);
        TEST_CHECK(got.len == (k ? m.logs[k - 1] : 0) &&
                   memcmp(got.log, exp.log, got.len) == 0);
        TEST_EQ_INT(zp_vjournal_close(j, "job-after", 9), 0);
        TEST_EQ_INT(zp_vjournal_sync(j), 0);
        zp_vjournal_destroy(&j);
        TEST_EQ_INT(s_replay(t.path, &got, &info, err, sizeof err), k + 1);
        TEST_EQ_INT(info.torn, 0);
    }
    printf("  %zu cuts, %zu records\n", whole - ZP_VJ_HEADER_LEN + 1, m.n);
    s_tmp_done(&t);
}

/* Writes bytes[0..len) to path with byte at flipped xor'ed with x, and
 * opens it: 1 if refused naming offset at, 0 if opened with `records`
 * records (torn), -1 otherwise. */
static int s_open_flipped(const char *path, const uint8_t *bytes, size_t len,
                          size_t flipped, uint8_t x, uint64_t at)
{
    static uint8_t copy[sizeof s_file];
    memcpy(copy, bytes, len);
    copy[flipped] ^= x;
    s_spit(path, copy, len);
    char err[256], want[64];
    zp_vjournal_info_t info;
    zp_vjournal_t *j =
        zp_vjournal_open(path, NULL, NULL, &info, err, sizeof err);
    if (j) {
        zp_vjournal_destroy(&j);
        return 0;
    }
    snprintf(want, sizeof want, "damaged record at offset %llu (",
             (unsigned long long)at);
    bool untouched = s_fsize(path) == (long)len;
    return strstr(err, want) && strstr(err, path) && untouched ? 1 : -1;
}

static void test_a_flipped_byte_in_a_middle_record_fails_the_open(void)
{
    s_tmp_t t;
    s_tmp_new(&t);
    static s_rec_t exp;
    memset(&exp, 0, sizeof exp);
    s_marks_t m = {0};
    TEST_EQ_INT(s_sample_file(&t, &exp, &m, 40), 0);
    static uint8_t orig[sizeof s_file];
    size_t whole = s_slurp(t.path);
    memcpy(orig, s_file, whole);
    for (size_t rec = 1; rec + 1 < m.n; rec++) /* every middle record */
        for (uint64_t b = m.bounds[rec - 1]; b < m.bounds[rec]; b++) {
            TEST_EQ_INT(
                s_open_flipped(t.path, orig, whole, b, 0x01, m.bounds[rec - 1]),
                1);
            TEST_EQ_INT(
                s_open_flipped(t.path, orig, whole, b, 0xff, m.bounds[rec - 1]),
                1);
        }
    s_tmp_done(&t);
}

static void test_a_flipped_byte_in_the_last_record_is_a_torn_tail(void)
{
    s_tmp_t t;
    s_tmp_new(&t);
    static s_rec_t exp;
    memset(&exp, 0, sizeof exp);
    s_marks_t m = {0};
    TEST_EQ_INT(s_sample_file(&t, &exp, &m, 40), 0);
    static uint8_t orig[sizeof s_file];
    size_t whole = s_slurp(t.path);
    memcpy(orig, s_file, whole);
    uint64_t last = m.bounds[m.n - 2];
    for (uint64_t b = last; b < whole; b++) {
        int rc = s_open_flipped(t.path, orig, whole, b, 0x01, last);
        if (b >= last + 4) { /* checksum or body: cut */
            TEST_EQ_INT(rc, 0);
            TEST_EQ_INT(s_fsize(t.path), last);
        } else { /* its length: cut, or refused; never anything else */
            TEST_CHECK(rc == 1 || (rc == 0 && s_fsize(t.path) == (long)last));
        }
    }
    s_tmp_done(&t);
}

static void test_zeros_after_the_last_record_are_a_torn_tail(void)
{
    s_tmp_t t;
    s_tmp_new(&t);
    static s_rec_t exp;
    memset(&exp, 0, sizeof exp);
    s_marks_t m = {0};
    TEST_EQ_INT(s_sample_file(&t, &exp, &m, 40), 0);
    size_t whole = s_slurp(t.path);
    memset(s_file + whole, 0, 5000);
    s_spit(t.path, s_file, whole + 5000);
    zp_vjournal_info_t info;
    char err[256];
    static s_rec_t got;
    TEST_EQ_INT(s_replay(t.path, &got, &info, err, sizeof err), m.n);
    TEST_EQ_INT(info.torn, 5000);
    /* The last record half zeroed, zeros after it: torn as well. */
    size_t last = m.bounds[m.n - 2];
    memset(s_file + last + 12, 0, whole + 5000 - last - 12);
    s_spit(t.path, s_file, whole + 5000);
    TEST_EQ_INT(s_replay(t.path, &got, &info, err, sizeof err), m.n - 1);
    /* Zeros and then something else: damage. */
    s_file[whole + 4000] = 1;
    s_spit(t.path, s_file, whole + 5000);
    TEST_EQ_INT(s_replay(t.path, &got, &info, err, sizeof err), -1);
    TEST_CONTAINS(err, "damaged record at offset");
    s_tmp_done(&t);
}

/* A record written by hand: u32 length, u32 CRC32C, body. */
static size_t s_forge(uint8_t *out, const void *body, uint32_t len)
{
    uint32_t crc = zp_crc32c(0, body, len);
    for (int i = 0; i < 4; i++) {
        out[i] = (uint8_t)(len >> (8 * i));
        out[4 + i] = (uint8_t)(crc >> (8 * i));
    }
    memcpy(out + 8, body, len);
    return 8 + len;
}

/* Bodies whose checksum holds and which are still wrong: damage even as
 * the last record (a torn write cannot produce them). */
static void test_malformed_records_are_damage_even_at_the_end(void)
{
    s_tmp_t t;
    s_tmp_new(&t);
    static const struct {
        const char *body;
        uint32_t len;
        const char *why;
    } bad[] = {
        {"\x09", 1, "unknown record type 9"},
        {"\x04", 1, "malformed close record: it ends early"},
        {"\x04\x05\0\0\0job-1\x01\0\0\0\0\0\0\0\xff", 19,
         "malformed close record: bytes left over"},
        {"\x04\x05\0\0\0bad/1\x01\0\0\0\0\0\0\0", 18, "an invalid job id"},
        {"\x04\x09\0\0\0job-1", 10, "a string runs past its end"},
        {"\x06\x01\0\0\0a\x03\0\0\0t\0t\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 29,
         "a NUL inside a string"},
        {"\x02\x01\0\0\0a\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\xff\0\0\0", 26,
         "more tasks than bytes"},
        {"\x02\x01\0\0\0a\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\0\0\0\x09\0\0\0",
         30, "a task runs past its end"},
        {"\x05\x01\0\0\0a\x02\0\0\0\0\0\0\0\0\0\0\0", 18,
         "its count does not match its length"},
        {"\x03\x01\0\0\0a\x01\0\0\0", 10, "its count does not match"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t n = ZP_VJ_HEADER_LEN;
        memcpy(s_file, ZP_VJ_HEADER, n);
        n += s_forge(s_file + n, "\x04\x01\0\0\0a\x07\0\0\0\0\0\0\0", 14);
        size_t at = n;
        n += s_forge(s_file + n, bad[i].body, bad[i].len);
        s_spit(t.path, s_file, n);
        static s_rec_t got;
        memset(&got, 0, sizeof got);
        zp_vjournal_info_t info;
        char err[256], want[48];
        TEST_EQ_INT(s_replay(t.path, &got, &info, err, sizeof err), -1);
        snprintf(want, sizeof want, "damaged record at offset %zu", at);
        TEST_CONTAINS(err, want);
        TEST_CONTAINS(err, bad[i].why);
        TEST_EQ_STR(got.log, "close a 7\n"); /* what came before it */
        TEST_EQ_INT(s_fsize(t.path), n);
    }
    s_tmp_done(&t);
}

/* A length outside the checksum, running past the end: torn when it is
 * the last thing in the file, damage when a whole record follows. */
static void test_a_length_past_the_end_is_torn_only_at_the_end(void)
{
    s_tmp_t t;
    s_tmp_new(&t);
    const char *close_a = "\x04\x01\0\0\0a\x07\0\0\0\0\0\0\0";
    size_t n = ZP_VJ_HEADER_LEN;
    memcpy(s_file, ZP_VJ_HEADER, n);
    n += s_forge(s_file + n, close_a, 14);
    size_t at = n;
    n += s_forge(s_file + n, close_a, 14);
    s_file[at + 3] = 0x7f; /* length 0x7f00000e: past the end, over 1 GiB */
    s_spit(t.path, s_file, n);
    static s_rec_t got;
    zp_vjournal_info_t info;
    char err[256];
    TEST_EQ_INT(s_replay(t.path, &got, &info, err, sizeof err), 1);
    TEST_EQ_INT(info.torn, 22);
    s_file[at + 3] = 0; /* whole again; then damage its length */
    n += s_forge(s_file + n, close_a, 14);
    s_file[at] = 0xff;
    s_spit(t.path, s_file, n);
    TEST_EQ_INT(s_replay(t.path, &got, &info, err, sizeof err), -1);
    TEST_CONTAINS(err, "runs past the end of the file, yet a whole record");
    s_tmp_done(&t);
}

static void test_a_refusing_callback_stops_the_open(void)
{
    s_tmp_t t;
    s_tmp_new(&t);
    static s_rec_t exp, got;
    memset(&exp, 0, sizeof exp);
    s_marks_t m = {0};
    TEST_EQ_INT(s_sample_file(&t, &exp, &m, 40), 0);
    long size = s_fsize(t.path);
    for (int type = ZP_VJ_JOB; type <= ZP_VJ_FINISHED; type++) {
        memset(&got, 0, sizeof got);
        got.refuse = type;
        zp_vjournal_info_t info;
        char err[256], want[32];
        TEST_EQ_INT(s_replay(t.path, &got, &info, err, sizeof err), -1);
        snprintf(want, sizeof want, "refusing type %d", type);
        TEST_CONTAINS(err, want);
        TEST_CONTAINS(err, "replay stopped at offset");
        TEST_EQ_INT(s_fsize(t.path), size);
    }
    /* No visitor, or one without callbacks: every record skipped. */
    zp_vjournal_visitor_t none = {0};
    zp_vjournal_info_t info;
    char err[256];
    zp_vjournal_t *j =
        zp_vjournal_open(t.path, &none, NULL, &info, err, sizeof err);
    TEST_CHECK(j && info.records == m.n);
    zp_vjournal_destroy(&j);
    s_tmp_done(&t);
}

static const test_case_t tests[] = {
    {"test_every_record_type_round_trips", test_every_record_type_round_trips},
    {"test_replayed_records_need_a_sync", test_replayed_records_need_a_sync},
    {"test_missing_or_empty_file_is_a_new_journal",
     test_missing_or_empty_file_is_a_new_journal},
    {"test_a_file_that_is_not_a_journal_is_refused",
     test_a_file_that_is_not_a_journal_is_refused},
    {"test_torn_tail_is_cut_at_every_offset",
     test_torn_tail_is_cut_at_every_offset},
    {"test_a_flipped_byte_in_a_middle_record_fails_the_open",
     test_a_flipped_byte_in_a_middle_record_fails_the_open},
    {"test_a_flipped_byte_in_the_last_record_is_a_torn_tail",
     test_a_flipped_byte_in_the_last_record_is_a_torn_tail},
    {"test_zeros_after_the_last_record_are_a_torn_tail",
     test_zeros_after_the_last_record_are_a_torn_tail},
    {"test_malformed_records_are_damage_even_at_the_end",
     test_malformed_records_are_damage_even_at_the_end},
    {"test_a_length_past_the_end_is_torn_only_at_the_end",
     test_a_length_past_the_end_is_torn_only_at_the_end},
    {"test_a_refusing_callback_stops_the_open",
     test_a_refusing_callback_stops_the_open},
    {NULL, NULL},
};
TEST_MAIN(tests)
