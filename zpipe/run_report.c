/* run_report: what `zpipe run` tells while and after a job runs: the
 * progress line and the exit status. */
#include "run.h"
#include "zp_util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int zp_run_exit_code(zp_run_end_t end, const Zpipe__V1__JobStatus *last,
                     bool reduce_failed, int stop_signal)
{
    if (end == ZP_RUN_INTERRUPTED)
        return 128 + stop_signal;
    if (end != ZP_RUN_DONE)
        return 3;
    bool balanced = last->total == last->succeeded + last->failed;
    return !balanced ? 3 : last->failed || reduce_failed ? 1 : 0;
}

void zp_run_progress(const Zpipe__V1__JobStatus *st, uint64_t t0_us)
{
    double secs = (double)(zp_mono_us() - t0_us) / 1e6;
    double rate = secs > 0 ? (double)st->done / secs : 0;
    char line[160];
    if (st->state >= ZPIPE__V1__JOB_STATE__JOB_CLOSED && st->total) {
        double pct = 100.0 * (double)st->done / (double)st->total;
        double eta = rate > 0 ? (double)(st->total - st->done) / rate : 0;
        int bar = (int)(pct / 5);
        char bars[21];
        for (int i = 0; i < 20; i++)
            bars[i] = i < bar ? '#' : '.';
        bars[20] = '\0';
        snprintf(line, sizeof line,
                 "\r[%s] %llu/%llu %5.1f%%  %.0f tasks/s  ETA %.0fs  failed "
                 "%llu ",
                 bars, (unsigned long long)st->done,
                 (unsigned long long)st->total, pct, rate, eta,
                 (unsigned long long)st->failed);
    } else {
        snprintf(line, sizeof line, "\r%llu done  %.0f tasks/s  failed %llu ",
                 (unsigned long long)st->done, rate,
                 (unsigned long long)st->failed);
    }
    ssize_t w = write(STDERR_FILENO, line, strlen(line));
    (void)w;
}
