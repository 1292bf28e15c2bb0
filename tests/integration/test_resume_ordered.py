"""A job journaled without --ordered, killed mid-way, resumed with
--ordered: the sink replays a journal whose records are not in id order.
Every task must still have exactly one record, and the run must end (the
order must step over the ids written before the restart instead of waiting
for them, and must not drop the ones that come after)."""
import collections
import os
import signal
import subprocess
import time

import zptest
from zptest import binary, check, read_jsonl, run


SLOW = 2000  # this task spins 3 s: the kill always lands with it in flight


def _spin(i):
    return 3000000 if i == SLOW else 200 + i % 7


def _counts(recs, n):
    count = collections.Counter(r["task"] for r in recs)
    lost = sum(1 for i in range(n) if count[i] == 0)
    dup = sum(c - 1 for c in count.values() if c > 1)
    wrong = sum(1 for r in recs if not (0 <= r["task"] < n)
                or r["status"] != "ok" or r["output"] != str(_spin(r["task"])))
    return lost, dup, wrong


def test_unordered_journal_resumed_with_ordered():
    n = 12000
    for attempt in range(3):
        d = zptest.tmpdir()
        inp = os.path.join(d, "in.txt")
        with open(inp, "w") as f:  # spin: line i spins that many µs, echoes it
            f.write("".join("%d\n" % _spin(i) for i in range(n)))
        out = os.path.join(d, "out.jsonl")
        journal = os.path.join(d, "journal")
        # Three workers, so results reach the sink out of id order; task
        # SLOW holds one of them for 3 s while the others go past it.
        cmd = [binary("zpipe"), "run", "--plugin", "spin", "--workers", "3",
               "--batch", "16", "--input", inp, "--output", out,
               "--journal", journal, "--job", "resume-ordered"]
        # Its own process group, so the whole run dies at once: the worst
        # moment for the journal, whose records are in arrival order.
        p = subprocess.Popen(cmd, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        zptest._procs.append(p)
        # Kill once the journal has records well past SLOW (it is still
        # spinning), not after a fixed time: a fast or slow machine alike
        # leaves a gap below the highest id.
        deadline = time.time() + 20
        while time.time() < deadline and p.poll() is None:
            top = max((r[2] for r in zptest.journal_records(journal)),
                      default=-1)
            if top > SLOW + 500:
                break
            time.sleep(0.02)
        if p.poll() is not None:  # finished before the kill: try again
            continue
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(30)
        time.sleep(0.2)  # the children notice their parent is gone
        # What the journal says was committed (the output may end torn).
        ids = [r[2] for r in zptest.journal_records(journal)]
        before = len(ids)
        present = set(ids)
        gaps = sum(1 for i in range(max(ids) + 1) if i not in present) if ids else 0
        print("    attempt %d: %d records journaled before the kill, %d gaps "
              "below the highest id" % (attempt, before, gaps), flush=True)
        if gaps == 0 or before == 0:
            continue  # the journal happens to be a prefix: not this case
        r = run(cmd + ["--resume", "--ordered"], capture_output=True, timeout=60)
        check(r.returncode == 0, "resume --ordered exit %d: %s"
              % (r.returncode, r.stderr.decode()[-800:]))
        recs = read_jsonl(out)
        lost, dup, wrong = _counts(recs, n)
        print("    resumed: %d records, lost=%d duplicated=%d wrong=%d"
              % (len(recs), lost, dup, wrong), flush=True)
        check(lost == 0 and dup == 0 and wrong == 0, "records lost or twice")
        # What the resumed run wrote itself is in id order.
        tail = [r["task"] for r in recs[before:]]
        check(tail == sorted(tail), "the resumed run's records are not in order")
        return
    check(False, "no attempt stopped the job with a gap in its journal")


if __name__ == "__main__":
    zptest.main([test_unordered_journal_resumed_with_ordered])
