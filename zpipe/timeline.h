/* timeline: zpipe run --trace. Turns the sink's trace log (zp_trace.h) into
 * Chrome trace-event JSON, which Perfetto (ui.perfetto.dev) and
 * chrome://tracing open, and prints where the time went. */
#ifndef ZP_TIMELINE_H
#define ZP_TIMELINE_H

#include <stdio.h>

/* Reads the trace log at log_path twice (streaming: memory grows with the
 * number of workers and dispatched batches, not with tasks) and writes the
 * JSON Object Format to out (borrowed; flushed, not closed). out_name names
 * it in messages. Prints the summary to summary, one line per figure, each
 * starting "zpipe run: timeline: " (a stable format; README.md "Task
 * timelines" defines the figures). Returns 0, or -1 with the reason
 * printed to summary. */
int zp_timeline_write(const char *log_path, FILE *out, const char *out_name,
                      FILE *summary);

#endif
