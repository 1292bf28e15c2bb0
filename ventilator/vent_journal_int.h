/* vent_journal_int.h: what the journal's writing side (vent_journal.c)
 * and reading side (vent_journal_replay.c) share; private to the module. */
#ifndef ZP_VENT_JOURNAL_INT_H
#define ZP_VENT_JOURNAL_INT_H

#include "vent_journal.h"

#define ZP_VJ_HEADER     "zpipe-vjournal 1\n"
#define ZP_VJ_HEADER_LEN (sizeof ZP_VJ_HEADER - 1)
/* The longest record body: a longer length is damage (or a torn tail). */
#define ZP_VJ_MAX_RECORD (1u << 30)

/* Record types, the body's first byte. Never renumbered. Bodies, after
 * the type (u32 and u64 little-endian, str = u32 length + bytes):
 *   JOB        str id, str token, str plugin, str config,
 *              u64 deadline_ms, u32 max_attempts, u32 priority
 *              [, 16 bytes dispatch key: absent before keys]
 *   TASKS      str job, u64 seq, u64 first, u32 n, n x (u32 len, bytes)
 *   SEQS       str job, u32 n, n x (u64 seq, u64 first, u32 n)
 *   CLOSE      str job, u64 total
 *   COMMITTED  str job, u32 n, n x u64 id
 *   FINISHED   str job, str token, u64 total, u64 when_us */
enum {
    ZP_VJ_JOB = 1,
    ZP_VJ_TASKS = 2,
    ZP_VJ_SEQS = 3,
    ZP_VJ_CLOSE = 4,
    ZP_VJ_COMMITTED = 5,
    ZP_VJ_FINISHED = 6,
};

/* What zp_vj_replay found. */
enum {
    ZP_VJ_EMPTY = 0,   /* empty, or a torn header: start the file afresh */
    ZP_VJ_RECORDS = 1, /* a journal; *end is where its valid part ends */
};

/* Replays the size bytes of fd (path names it in messages) through
 * visitor, filling info's records and torn. Returns ZP_VJ_EMPTY or
 * ZP_VJ_RECORDS (and *end: the length to cut the file to), or -1 with
 * err set: not a journal, a damaged record, the visitor's refusal, a read
 * error or no memory. Changes nothing in the file. */
int zp_vj_replay(int fd, const char *path, uint64_t size,
                 const zp_vjournal_visitor_t *visitor, void *ctx,
                 zp_vjournal_info_t *info, uint64_t *end, char *err,
                 size_t errlen);

#endif
