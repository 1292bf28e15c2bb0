/* zp_journal_int: what the journal's writer (zp_journal.c) and reader
 * (zp_journal_replay.c) share; not for other modules. */
#ifndef ZP_JOURNAL_INT_H
#define ZP_JOURNAL_INT_H

#include "zp_crc32c.h"
#include "zp_journal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The version this build writes, and the newest it reads. */
#define ZP_JOURNAL_VERSION 4
#define ZP_JOURNAL_HEADER  "zpipe-journal 4\n"
/* The first line's chain value: the header's checksum (without its
 * newline), so a header changed to another version fails too. */
#define ZP_JOURNAL_CHAIN0                                                      \
    zp_crc32c(0, ZP_JOURNAL_HEADER, sizeof ZP_JOURNAL_HEADER - 2)
/* The same for a version 3 journal (its lines are checked, appended to
 * in its format until a compaction rewrites it). */
#define ZP_JOURNAL_HEADER_V3 "zpipe-journal 3\n"
#define ZP_JOURNAL_CHAIN0_V3                                                   \
    zp_crc32c(0, ZP_JOURNAL_HEADER_V3, sizeof ZP_JOURNAL_HEADER_V3 - 2)
/* A version 3 line's trailer: a space and 8 hex digits. */
#define ZP_JOURNAL_TRAILER 9
/* The longest line read back (a D line with two 128-byte ids is about
 * 460 bytes). */
#define ZP_JOURNAL_LINE_MAX 1024

/* Replays what fd holds (size bytes) through visitor and cuts a torn
 * last line. Returns the length kept (*chain: its last line's checksum;
 * *version: its header's, older ones appended to in their format), or -1
 * with err set (errno EBADMSG for a damaged line or header; the file is
 * then left as it was). */
long zp_journal_read_file(int fd, const char *path, size_t size,
                          const zp_journal_visitor_t *visitor, void *ctx,
                          uint32_t *chain, unsigned *version, char *err,
                          size_t errlen);

#endif
