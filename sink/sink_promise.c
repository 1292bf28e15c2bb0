/* sink_promise: the journal the sink keeps and what it promises (see
 * sink_promise.h). */
#include "sink_promise.h"
#include "sink_store.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

zp_output_kind_t zp_promise_output_kind(const char *output)
{
    if (zp_store_output_none(output))
        return ZP_OUTPUT_NONE;
    if (strcmp(output, "-") == 0)
        return ZP_OUTPUT_STREAM;
    struct stat st;
    if (stat(output, &st) != 0)
        return ZP_OUTPUT_FILE; /* made by the sink: a regular file */
    return S_ISREG(st.st_mode) ? ZP_OUTPUT_FILE : ZP_OUTPUT_STREAM;
}

/* The path of the journal the sink keeps by itself, or "" for none. */
static int s_implicit(const zp_promise_flags_t *f, zp_promise_t *p)
{
    int n = 0;
    if (f->spool)
        n = snprintf(p->journal, sizeof p->journal, "%s/%s", f->spool,
                     ZP_PROMISE_SPOOL_JOURNAL);
    else if (f->output_kind == ZP_OUTPUT_FILE)
        n = snprintf(p->journal, sizeof p->journal, "%s%s", f->output,
                     ZP_PROMISE_OUTPUT_SUFFIX);
    if (n < 0 || (size_t)n >= sizeof p->journal)
        return -1;
    p->implicit = *p->journal != '\0';
    return 0;
}

int zp_promise_decide(const zp_promise_flags_t *flags, zp_promise_t *out,
                      char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->rewind = flags->output_kind == ZP_OUTPUT_FILE;
    if (flags->journal) {
        if (strlen(flags->journal) >= sizeof out->journal) {
            snprintf(err, errlen, "--journal: path too long");
            return -1;
        }
        snprintf(out->journal, sizeof out->journal, "%s", flags->journal);
        out->sync = flags->journal_sync;
    } else if (s_implicit(flags, out) < 0) {
        snprintf(err, errlen,
                 "path too long for the sink's own journal (pass --journal "
                 "FILE) beside %s",
                 flags->spool ? flags->spool : flags->output);
        return -1;
    }
    if (!*out->journal) {
        out->rewind = false;
        out->level = ZP_PROMISE_NONE;
    } else
        out->level = out->sync ? ZP_PROMISE_SYNCED : ZP_PROMISE_CRASH;
    if (flags->reduce && *out->journal)
        snprintf(out->folds, sizeof out->folds, "%s%s", out->journal,
                 ZP_FOLDLOG_DIR_SUFFIX);
    return 0;
}

void zp_promise_describe(const zp_promise_t *p, const zp_promise_flags_t *flags,
                         char *buf, size_t len)
{
    const char *out = flags->output_kind == ZP_OUTPUT_NONE ? "none"
                      : strcmp(flags->output, "-") == 0    ? "stdout"
                                                           : flags->output;
    int n = 0;
    switch (p->level) {
    case ZP_PROMISE_SYNCED:
        n = snprintf(buf, len,
                     "journal %s, synced before every acknowledgement: "
                     "neither a crash nor a power loss loses an "
                     "acknowledged record",
                     p->journal);
        break;
    case ZP_PROMISE_CRASH:
        n = snprintf(buf, len,
                     "journal %s%s, written at every commit but not synced: "
                     "a crash of the sink loses no acknowledged record and a "
                     "restart with the same flags resumes its jobs; a power "
                     "loss may lose the records not yet on disk (about the "
                     "last 30 s; --journal FILE syncs them)",
                     p->journal,
                     p->implicit ? " (kept while a job is unfinished)" : "");
        break;
    case ZP_PROMISE_NONE:
        snprintf(buf, len,
                 "no journal (the output is %s and there is no --spool): a "
                 "restarted sink knows none of its jobs, which then cannot "
                 "complete; --journal FILE, --output FILE or --spool DIR "
                 "make a crash recoverable",
                 out);
        return;
    }
    /* The reduced jobs' results are kept beside it. */
    if (*p->folds && n >= 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n,
                      "; reduced jobs' results in %s, as durable as it",
                      p->folds);
    /* No output: the spools are the records, written once. */
    if (flags->output_kind == ZP_OUTPUT_NONE && n >= 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n,
                 "; no --output: each record is written once, to its "
                 "job's spool");
    /* A journal whose output is a stream: the stream may repeat a few. */
    else if (!p->rewind && n >= 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n,
                 "; %s cannot be cut back after a crash, so records written "
                 "just before one may appear in it twice (%s exact)",
                 out,
                 flags->spool ? "the journal and the spools stay"
                              : "the journal stays");
}
