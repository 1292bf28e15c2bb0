"""ResultsRequest.max_bytes against a real sink: a reply holds the whole
records that fit, and when even the first is longer, that record alone
(the .proto's promise). Walking a job with max_bytes 1 must give every
record exactly once, one per reply; lost, duplicated and wrong counted."""
import collections
import json
import os

import zptest
from zptest import check


def _fetch(s, pb, job, cursor, max_bytes):
    m = pb.Message()
    m.results_request.job_id = job
    m.results_request.cursor = cursor
    m.results_request.max_bytes = max_bytes
    s.send(m.SerializeToString())
    check(s.poll(10000), "no answer from the sink")
    return pb.Message.FromString(s.recv()).results_chunk


def test_max_bytes_smaller_than_a_record_gives_it_alone():
    import zmq
    import zpipe_pb2 as pb
    n = 400
    spool = zptest.tmpdir()
    c = zptest.Cluster(sink_args=("--spool", spool))
    job = "job-fetch-bytes"
    inp = os.path.join(c.dir, "in.txt")
    with open(inp, "w") as f:  # records of about 150 bytes each
        f.write("".join("%s%d\n" % ("x" * 60, i) for i in range(n)))
    c.worker()
    v = c.ventilator("echo", inp, ["--job", job])
    check(v.wait(timeout=120) == 0, "ventilator failed")
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.connect(c.control)
    try:
        cursor, got, replies = 0, [], 0
        while True:
            ch = _fetch(s, pb, job, cursor, 1)
            check(not ch.error, "sink said %r" % ch.error)
            lines = ch.records.decode().splitlines()
            replies += 1
            check(len(lines) == 1 or (ch.done and not lines),
                  "max_bytes 1 gave %d records in one reply" % len(lines))
            got += [json.loads(l) for l in lines]
            cursor = ch.next_cursor
            if ch.done:
                break
        count = collections.Counter(r["task"] for r in got)
        lost = sum(1 for i in range(n) if count[i] == 0)
        dup = sum(k - 1 for k in count.values() if k > 1)
        wrong = sum(1 for r in got if r["output"] != "x" * 60 + str(r["task"]))
        print("    max_bytes 1: %d replies, %d records, lost=%d duplicated=%d "
              "wrong=%d" % (replies, len(got), lost, dup, wrong))
        check(lost == 0 and dup == 0 and wrong == 0, "records lost, twice or wrong")
        # A budget of three and a half records: three whole ones.
        size = len(json.dumps(got[0], separators=(",", ":"))) + 1
        ch = _fetch(s, pb, job, 0, size * 7 // 2)
        k = len(ch.records.decode().splitlines())
        print("    max_bytes %d: %d records" % (size * 7 // 2, k))
        check(k == 3, "max_bytes of 3.5 records gave %d" % k)
    finally:
        s.close(linger=0)
        ctx.term()


if __name__ == "__main__":
    zptest.main([test_max_bytes_smaller_than_a_record_gives_it_alone])
