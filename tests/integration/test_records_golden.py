"""The sink's records, byte for byte: results with awkward outputs (UTF-8,
invalid UTF-8, control bytes, quotes, backslashes, empty, large),
failures with causes and errors, odd worker ids and extreme numbers are
sent on the wire to a real zpipe-sink, and its output (JSON Lines, lines,
frames; in arrival and in task order) and its spool are compared with
what tests/integration's reference renderer below says, which was checked
against the sink before its JSON writer was rewritten for speed (the old
binary and the new gave the same bytes on these inputs, `cmp`).

ZPIPE_GOLDEN_KEEP=DIR keeps each configuration's output and spool in DIR,
to compare two builds' files with cmp."""
import base64
import os
import re
import shutil
import struct
import time

import zptest
from zptest import binary, check, start

JOB = "golden-1"
MAX_ATTEMPTS = 3


class Rand:
    """xorshift64: the same inputs on every Python."""

    def __init__(self, seed):
        self.x = seed

    def next(self):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
        self.x = x
        return x

    def below(self, n):
        return self.next() % n

    def pick(self, seq):
        return seq[self.below(len(seq))]


# ---- the reference rendering ----

def utf8_seq(s, i):
    """The length of the well-formed UTF-8 sequence at s[i], or 0."""
    c = s[i]
    if c < 0x80:
        return 1
    if c & 0xE0 == 0xC0:
        n, cp = 1, c & 0x1F
    elif c & 0xF0 == 0xE0:
        n, cp = 2, c & 0x0F
    elif c & 0xF8 == 0xF0:
        n, cp = 3, c & 0x07
    else:
        return 0
    if len(s) - i <= n:
        return 0
    for k in range(1, n + 1):
        if s[i + k] & 0xC0 != 0x80:
            return 0
        cp = cp << 6 | (s[i + k] & 0x3F)
    if ((n == 1 and cp < 0x80) or (n == 2 and cp < 0x800)
            or (n == 3 and cp < 0x10000) or cp > 0x10FFFF
            or 0xD800 <= cp <= 0xDFFF):
        return 0
    return n + 1


def valid_utf8(s):
    """Python's decoder refuses exactly what utf8_seq does (overlongs,
    surrogates, past U+10FFFF)."""
    try:
        s.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


SHORT = {0x22: b'\\"', 0x5C: b"\\\\", 0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t"}


def esc_byte(c):
    if c in SHORT:
        return SHORT[c]
    if c < 0x20:
        return b"\\u00%02x" % c
    return bytes([c])


SPECIAL = re.compile(rb'[\x00-\x1f"\\]')


def esc(s, lossy):
    """JSON string contents: lossy replaces each byte that begins no
    well-formed sequence with \\ufffd; else bytes from 0x80 are kept."""
    if not lossy or valid_utf8(s):
        return SPECIAL.sub(lambda m: esc_byte(m.group()[0]), s)
    out, i = [], 0
    while i < len(s):
        n = utf8_seq(s, i) if lossy and s[i] >= 0x80 else 1
        if n == 0:
            out.append(b"\\ufffd")
            i += 1
        elif n > 1:
            out.append(s[i:i + n])
            i += n
        else:
            out.append(esc_byte(s[i]))
            i += 1
    return b"".join(out)


def cause_of(r):
    return r["cause"] or b"plugin_error"


def json_record(worker, r):
    ok = r["ok"]
    out = r["output"]
    if valid_utf8(out):
        field = b'"output":"' + esc(out, False) + b'"'
    else:
        field = b'"output_b64":"' + base64.b64encode(out) + b'"'
    fail = b""
    if not ok:
        fail = (b',"cause":"' + esc(cause_of(r), True) + b'","error":"'
                + esc(r["error"], True) + b'","retryable":'
                + (b"true" if r["retryable"] else b"false"))
    return (b'{"job":"' + esc(JOB.encode(), True) + b'","task":%d,"status":"%s",'
            % (r["task"], b"ok" if ok else b"failed") + field + fail
            + b',"attempts":%d,"worker":"' % (r["attempt"] or 1)
            + esc(worker, True) + b'","elapsed_us":%d}\n' % r["elapsed"])


def line_record(r):
    out = r["output"]
    return (out[:-1] if out.endswith(b"\n") else out) + b"\n"


def frame_record(r):
    flags, cause, err = 0, b"", b""
    if not r["ok"]:
        flags = 1 | (2 if r["retryable"] else 0)
        cause, err = cause_of(r)[:255], r["error"]
    return (struct.pack(">QBBHIII", r["task"], flags, len(cause), 0,
                        len(r["output"]), len(err), r["attempt"] or 1)
            + r["output"] + cause + err)


# ---- the inputs ----

WORKERS = [b"w1", b"vm-17768-8d687f", "w\u00f6rker-\u00e9".encode(),
           b'w"q\\b', b"w\x01\x1fctl", b"w\xff\xfebad", b"w\xe2\x82", b"",
           b"ventilator", b"x" * 300]


def output_of(rnd, i):
    kind = rnd.below(12)
    n = rnd.below(40)
    if kind == 0:
        return b""
    if kind == 1:  # plain ASCII, the common case
        return b"%d" % (rnd.next() >> rnd.below(64))
    if kind == 2:  # text with quotes, backslashes, newlines, tabs, DEL
        return bytes(rnd.pick(b'ab "\\\n\r\t\x7f/') for _ in range(n))
    if kind == 3:  # control bytes
        return bytes(rnd.below(0x20) for _ in range(n))
    if kind == 4:  # UTF-8 text
        return "".join(rnd.pick("a\u00e9\u20ac\U0001F600\u0800\uFFFF\U0010FFFF\"")
                       for _ in range(n)).encode()
    if kind == 5:  # almost UTF-8: one bad byte somewhere
        s = bytearray("\u00e9t\u00e9 \u20ac".encode() * (1 + n // 8))
        s[rnd.below(len(s))] = rnd.pick([0x80, 0xFF, 0xC0, 0xED, 0xF5])
        return bytes(s)
    if kind == 6:  # anything
        return bytes(rnd.below(256) for _ in range(n))
    if kind == 7:  # a line ending in its own newline (lines drops it)
        return b"line %d\n" % i
    if kind == 8:  # long: plain, or with escapes; now and then 64 KiB
        chunk = bytes(0x61 + rnd.below(26) for _ in range(64))
        big = chunk * (1024 if rnd.below(10) == 0 else 2 + rnd.below(30))
        return big if rnd.below(2) else big.replace(b"q", b'"\n')
    if kind == 9:  # overlong, surrogate, past U+10FFFF, truncated
        return rnd.pick([b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                         b"ok\xe2\x82", b"\xf0\x9f\x98"])
    if kind == 10:  # NUL bytes (valid UTF-8)
        return b"a\x00b\x00" * (1 + n)
    return b"%d" % i


ERRORS = [b"", b"plain error", b'with "quotes" and \\ and\nnewline',
          "caf\u00e9 \u20ac".encode(), b"bad \xff\xfe utf8", b"\x01\x02\x1f",
          b"e" * 1000, b"trunc \xe2\x82"]
CAUSES = [b"", b"plugin_error", b"SIGSEGV", b"timeout", b"c\"a\\use",
          b"\xff", b"c" * 300]


def make_results(n, seed):
    """n final results of tasks 0..n-1 (shuffled), in batches, each batch
    from one worker, with a few duplicates: [(worker, [result])]."""
    rnd = Rand(seed)
    ids = list(range(n))
    for i in range(n - 1, 0, -1):  # Fisher-Yates
        j = rnd.below(i + 1)
        ids[i], ids[j] = ids[j], ids[i]
    elapsed = [0, 1, 4, 999, 1 << 32, (1 << 64) - 1]
    results = []
    for t in ids:
        ok = rnd.below(5) != 0
        retryable = not ok and rnd.below(2) == 0
        # A retryable failure is final only at its last attempt.
        attempt = (MAX_ATTEMPTS + rnd.below(3) if retryable
                   else rnd.pick([0, 1, 2, 7, (1 << 32) - 1]))
        results.append({
            "task": t, "ok": ok, "output": output_of(rnd, t),
            "cause": b"" if ok else rnd.pick(CAUSES),
            "error": b"" if ok else rnd.pick(ERRORS),
            "retryable": retryable, "attempt": attempt,
            "elapsed": rnd.pick(elapsed) if rnd.below(3) == 0 else rnd.below(100000),
        })
    batches, i = [], 0
    while i < len(results):
        k = 1 + rnd.below(60)
        batches.append((rnd.pick(WORKERS), results[i:i + k]))
        i += k
    # A few tasks again, from another worker: duplicates, never written.
    for b in range(0, len(batches), 7):
        w, rs = batches[b]
        batches.append((rnd.pick(WORKERS), [dict(r, output=b"dup") for r in rs[:3]]))
    return batches


# ---- the wire, by hand: string fields may hold any bytes ----

def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, wt, payload):
    key = varint(num << 3 | wt)
    if wt == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload


def encode_result(r):
    m = field(1, 0, r["task"])
    if not r["ok"]:
        m += field(2, 0, 1)  # STATUS_FAILED
    if r["output"]:
        m += field(3, 2, r["output"])
    if r["error"]:
        m += field(4, 2, r["error"])
    if r["cause"]:
        m += field(5, 2, r["cause"])
    if r["attempt"]:
        m += field(6, 0, r["attempt"])
    if r["elapsed"]:
        m += field(8, 0, r["elapsed"])
    if r["retryable"]:
        m += field(9, 0, 1)
    return m


def encode_batch(worker, results):
    b = field(1, 2, JOB.encode()) + field(2, 2, worker)
    for r in results:
        b += field(3, 2, encode_result(r))
    return field(2, 2, b)  # Message.result_batch


def fields(buf):
    """{field number: [value]} of a message: varints as ints, the rest
    as bytes (protobuf's Python parser refuses a JobStatus whose worker
    ids are not UTF-8)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        wt = key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(key >> 3, []).append(v)
    return out


def read_varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def check_wire_status_ok():
    """The failure status is 1 in zpipe.proto: the hand encoding above
    depends on it."""
    import zpipe_pb2 as pb
    check(pb.STATUS_FAILED == 1, "Status numbering changed")


# ---- running a sink ----

def expected(batches, ordered, render):
    seen, recs = set(), []
    for worker, rs in batches:
        for r in rs:
            if r["task"] not in seen:
                seen.add(r["task"])
                recs.append((r["task"], render(worker, r)))
    if ordered:
        recs.sort(key=lambda x: x[0])
    return b"".join(rec for _, rec in recs)


def run_sink(batches, n, args, output=True):
    """A sink with args takes batches for JOB; returns (output, spool
    bytes or None) once the job is done and the sink stopped. Without
    output, no --output: the output is what the sink wrote to stdout."""
    import zmq
    import zpipe_pb2 as pb
    d = zptest.tmpdir()
    out = os.path.join(d, "out")
    spool = os.path.join(d, "spool") if "--spool" in args else None
    args = [a if a != "--spool" else "--spool=" + spool for a in args]
    if spool:
        os.mkdir(spool)
    log = open(os.path.join(d, "sink.log"), "wb")
    stdout = None if output else open(out, "wb")
    sink = start([binary("zpipe-sink"), "--results", "ipc://%s/r" % d,
                  "--control", "ipc://%s/c" % d, "--publish", "none"]
                 + (["--output", out] if output else []) + args,
                 stdout=stdout, stderr=log)
    ctx = zmq.Context()
    try:
        ctl = ctx.socket(zmq.DEALER)
        ctl.setsockopt(zmq.LINGER, 0)
        ctl.connect("ipc://%s/c" % d)
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 5000)
        push.connect("ipc://%s/r" % d)

        def ask(m, num):
            """The answer to m: field num of the next Message that has it."""
            ctl.send(m.SerializeToString())
            while ctl.poll(30000):
                a = fields(ctl.recv())
                if num in a:
                    return fields(a[num][0])
            raise AssertionError("no answer %d from the sink" % num)

        def acked(m):
            return ask(m, 9).get(2, [0])[0] == 1  # Message.ack, Ack.ok

        m = pb.Message()
        m.job_open.job_id, m.job_open.plugin = JOB, "echo"
        m.job_open.max_attempts = MAX_ATTEMPTS
        check(acked(m), "JobOpen refused")
        for worker, rs in batches:
            push.send(encode_batch(worker, rs))
        m = pb.Message()
        m.job_close.job_id, m.job_close.total = JOB, n
        check(acked(m), "JobClose refused")
        m = pb.Message()
        m.status_request.job_id, m.status_request.wait = JOB, True
        # Message.job_status: JobStatus.state (2), done (4).
        st = ask(m, 10)
        while st.get(2, [0])[0] != pb.JOB_DONE:
            st = ask(m, 10)
        done = st.get(4, [0])[0]
        check(done == n, "%d of %d tasks done" % (done, n))
    finally:
        ctx.destroy(0)
    check(zptest.stop(sink) == 0, "the sink's exit status %r" % sink.returncode)
    with open(out, "rb") as f:
        got = f.read()
    spooled = None
    if spool:
        with open(os.path.join(spool, JOB + ".jsonl"), "rb") as f:
            spooled = f.read()
    keep = os.environ.get("ZPIPE_GOLDEN_KEEP")
    if keep:
        name = "_".join(a.strip("-").split("=")[0] for a in args) or "jsonl"
        shutil.copy(out, os.path.join(keep, name + ".out"))
        if spool:
            shutil.copy(os.path.join(spool, JOB + ".jsonl"),
                        os.path.join(keep, name + ".spool"))
    return got, spooled


def first_difference(got, want):
    i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]),
             min(len(got), len(want)))
    return "%d bytes, want %d; first difference at byte %d: got %r, want %r" % (
        len(got), len(want), i, got[max(0, i - 60):i + 60],
        want[max(0, i - 60):i + 60])


N = 3000
BATCHES = make_results(N, 0x5EED1234ABCD)
RENDER = {
    "jsonl": json_record,
    "lines": lambda w, r: line_record(r),
    "frames": lambda w, r: frame_record(r),
}


def _case(fmt, ordered=False, spool=False, output=True):
    check_wire_status_ok()
    args = ["--format", fmt] + (["--ordered"] if ordered else []) + (
        ["--spool"] if spool else [])
    t0 = time.monotonic()
    got, spooled = run_sink(BATCHES, N, args, output)
    # Without --output a sink with a spool writes nothing else.
    want = expected(BATCHES, ordered, RENDER[fmt]) if output else b""
    print("  %s: %d bytes in %.2f s" % (" ".join(args), len(got),
                                        time.monotonic() - t0))
    check(got == want, "output: " + first_difference(got, want))
    if spool:
        # The spool is JSON Lines whatever the format, in output order.
        want = expected(BATCHES, ordered, json_record)
        check(spooled == want, "spool: " + first_difference(spooled, want))


def test_json_lines_byte_for_byte():
    _case("jsonl")


def test_json_lines_in_task_order_with_a_spool():
    _case("jsonl", ordered=True, spool=True)


def test_lines_byte_for_byte():
    _case("lines")


def test_frames_with_a_json_spool_byte_for_byte():
    _case("frames", spool=True)
    # Parked for order: the frame and its JSON wait side by side.
    _case("frames", ordered=True, spool=True)


def test_spool_alone_is_the_output():
    # Each record written once, to the spool: the same bytes.
    _case("jsonl", spool=True, output=False)
    _case("frames", ordered=True, spool=True, output=False)


if __name__ == "__main__":
    zptest.main([
        test_json_lines_byte_for_byte,
        test_json_lines_in_task_order_with_a_spool,
        test_lines_byte_for_byte,
        test_frames_with_a_json_spool_byte_for_byte,
        test_spool_alone_is_the_output,
    ])
