"""The ventilator's journal on a full filesystem (issue 15: acknowledged
means durable). A producer is never told "taken" for a batch the journal
could not write: with the disk full its batches go unanswered (it waits
and sends again), the ventilator is SIGKILLed and restarted while they
wait, and once space returns every batch is taken exactly once. Counted
against the input: lost, duplicated, unexpected and wrong records."""
import errno
import os
import subprocess
import threading
import time

import zptest
from zptest import check

from test_vent_durable import Producer, Service, _count, _status


def _fill(path):
    """Writes path until the filesystem is full; returns bytes written."""
    n = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n += f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
            if n > 64 << 20:
                raise AssertionError("the filesystem never filled")
    return n


def test_a_full_disk_holds_answers_back_and_loses_nothing():
    if os.geteuid() != 0:
        raise zptest.Skip("needs root to mount a small tmpfs for the journal "
                          "(run the suite as root, as CI does)")
    s = Service(plugins=("sha256",))
    small = zptest.tmpdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small],
                   check=True)
    try:
        _run(s, small)
    finally:
        s.kill_ventilator()
        subprocess.run(["umount", "-l", small], check=False)


def _run(s, small):
    # The ventilator's journal on the small filesystem.
    s.kill_ventilator()
    s.vjournal = os.path.join(small, "ventilator.journal")
    s.start_ventilator()
    p = Producer(s.intake, "sha256", "full-1")
    payloads, acked, errors = {}, [], []
    batches = [[b"full %d/%d" % (k, i) for i in range(200)] for k in range(20)]
    first, _ = p.send(batches[0])  # taken while there is room
    payloads.update({first + i: d for i, d in enumerate(batches[0])})
    filler = os.path.join(small, "filler")
    filled = _fill(filler)

    def produce():
        try:
            for chunk in batches[1:]:
                f, n = p.send(chunk)
                acked.append((f, n, chunk))
            p.close(sum(len(b) for b in batches))
        except Exception as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=produce)
    t.start()
    time.sleep(1.5)
    held_back = len(acked)
    # Killed with its answers waiting for the disk, and started again on
    # the still full filesystem.
    s.kill_ventilator()
    s.start_ventilator()
    time.sleep(1.0)
    still_held = len(acked)
    os.unlink(filler)  # space comes back
    t.join(120)
    check(not t.is_alive() and not errors, "producer: %r" % errors)
    for f, n, chunk in acked:
        check(n == len(chunk), "batch accepted %d of %d" % (n, len(chunk)))
        for i, d in enumerate(chunk):
            check(f + i not in payloads, "id %d given twice" % (f + i))
            payloads[f + i] = d
    _status(s.control, "full-1")
    counts = _count(s.control, "full-1", payloads)
    print("    disk full after batch 1 (%d bytes of filler): %d batches "
          "answered while full, %d after a restart still full; then %d "
          "tasks, %s" % (filled, held_back, still_held, len(payloads), counts))
    check(held_back == 0 and still_held == 0,
          "answers given while the journal could not be written: %d, %d"
          % (held_back, still_held))
    check(len(payloads) == 20 * 200, "%d tasks taken" % len(payloads))
    check(counts == {"lost": 0, "duplicated": 0, "unexpected": 0, "wrong": 0},
          counts)


if __name__ == "__main__":
    zptest.main([test_a_full_disk_holds_answers_back_and_loses_nothing])
