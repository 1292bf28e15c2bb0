/* sink_promise: what the sink can promise with the flags it was given,
 * decided once at start-up. Which journal it keeps (the one --journal
 * names; else one of its own beside the records, written at each commit
 * but not synced), whether that journal is synced, whether the output can
 * be cut back after a crash, and what the sink says at start-up about
 * what a crash or a power loss may cost.
 *
 * The rule it implements: no crash of the sink process loses a record it
 * acknowledged or leaves a job that cannot complete once the sink is
 * restarted with the same flags, unless the sink has nowhere to keep a
 * journal (its output is a stream and it has no spool); then it says so.
 * A sink that reduces keeps, beside its journal, the fold logs its
 * reducers' accumulators are rebuilt from (sink_foldlog.h). */
#ifndef ZP_SINK_PROMISE_H
#define ZP_SINK_PROMISE_H

#include "sink_foldlog.h"

#include <stdbool.h>
#include <stddef.h>

/* The implicit journal's name in a --spool directory (spools are
 * JOB.jsonl, so it cannot clash with one). */
#define ZP_PROMISE_SPOOL_JOURNAL "zpipe-sink.journal"
/* Appended to a file output's path for its implicit journal. */
#define ZP_PROMISE_OUTPUT_SUFFIX ".journal"

/* What --output is. */
typedef enum {
    ZP_OUTPUT_FILE,   /* a regular file, or none yet: it can be cut back */
    ZP_OUTPUT_STREAM, /* stdout, a pipe, a device: it cannot */
    ZP_OUTPUT_NONE,   /* --output none: no output (with --spool, the
                         spools are the output: written once) */
} zp_output_kind_t;

/* The flags that matter (strings borrowed for the call). */
typedef struct {
    const char *output;           /* "-" = stdout, "none" = none */
    zp_output_kind_t output_kind; /* zp_promise_output_kind(output) */
    const char *journal;          /* --journal; NULL = none */
    bool journal_sync;            /* --journal-sync yes (the default) */
    const char *spool;            /* --spool; NULL = none */
    bool reduce; /* --reduce: jobs folded, not written (their results kept
                    in fold logs beside the journal) */
} zp_promise_flags_t;

typedef enum {
    ZP_PROMISE_SYNCED, /* nothing acknowledged is lost, power loss included */
    ZP_PROMISE_CRASH,  /* nothing on a crash; a power loss may cost the
                          unsynced tail */
    ZP_PROMISE_NONE,   /* no journal: a restarted sink cannot resume */
} zp_promise_level_t;

typedef struct {
    zp_promise_level_t level;
    char journal[4096]; /* the journal's path; "" = none */
    char folds[4096 + sizeof ZP_FOLDLOG_DIR_SUFFIX]; /* with --reduce and a
                           journal: its fold logs' directory; "" = none */
    bool implicit; /* chosen by the sink, not --journal: removed at a
                      clean stop once every job it knows is done */
    bool sync;     /* fdatasync before acknowledging */
    bool rewind;   /* a restart cuts the output back to the journal */
} zp_promise_t;

/* What output is: "none" is NONE; a regular file or a path that does
 * not exist yet is a FILE; "-" and anything else (a pipe, /dev/null) a
 * STREAM. */
zp_output_kind_t zp_promise_output_kind(const char *output);

/* Decides from flags. Returns 0, or -1 when the implicit journal's path
 * would be too long (err says so). */
int zp_promise_decide(const zp_promise_flags_t *flags, zp_promise_t *out,
                      char *err, size_t errlen);

/* The start-up sentence: what a crash and a power loss may cost with
 * these flags (one line, no newline). */
void zp_promise_describe(const zp_promise_t *p, const zp_promise_flags_t *flags,
                         char *buf, size_t len);

#endif
