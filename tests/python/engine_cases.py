#!/usr/bin/python3
"""zpipe.Pool's engine at its edges, on a private cluster (each case found
by review, each hung or lost results before its fix). Prints one JSON
object:
- late: close() + join() while a callback holds the engine thread and
  the ventilator, its job done, exits: the last result still arrives
  (was: failed with "zpipe-ventilator exited 0");
- queued: the ventilator killed with calls still queued in the Pool: every
  call fails, none waits forever (was: the queued apply never returned);
- pokes: 70,000 imap items fed while a callback holds the engine thread
  (more wake-ups than the wake pipe holds): terminate() still returns
  (was: the feeder blocked writing the pipe under the engine's lock);
- sinkkill: the private cluster's sink (which keeps no journal) SIGKILLed
  1 s into a 3,000-item imap_unordered: the items that came back before
  are each right and there once, and the iteration then raises, within
  seconds, rather than hang or hand out a wrong or repeated result."""
import json
import os
import signal
import threading
import time

from zpipe import Pool


def f(x):
    if x == "late":
        time.sleep(0.5)   # its record comes after the first one's
    return x


def nap(x):
    time.sleep(0.01)
    return x


def hold(_):
    time.sleep(2)         # a callback runs on the engine thread


def late():
    p = Pool(2)
    a = p.apply_async(f, ("first",), callback=hold)
    b = p.apply_async(f, ("late",))
    p.close()
    p.join()
    try:
        return [a.get(1), b.get(1)]
    except Exception as e:
        return "%s: %s" % (type(e).__name__, str(e)[:200])


def queued():
    p = Pool(2)
    m = p.map_async(nap, range(40000), chunksize=1)
    a = p.apply_async(nap, (1,))          # queued behind the map's chunks
    time.sleep(1)
    vent = [q for q in p._local.procs if q.name == "zpipe-ventilator"][0]
    os.kill(vent.pid, signal.SIGKILL)
    out = []
    for r in (m, a):
        try:
            r.get(10)
            out.append("ok")
        except Exception as e:
            out.append("timeout" if type(e).__name__ == "TimeoutError"
                       else "failed")
    p.terminate()
    return out


def pokes():
    p = Pool(2)
    p.apply_async(f, ("x",), callback=lambda _: time.sleep(3))
    time.sleep(0.5)       # its record is back: the engine is in the callback
    it = p.imap(f, (i for i in range(70000)))
    time.sleep(3)
    done = threading.Event()

    def stop():
        p.terminate()
        done.set()
    threading.Thread(target=stop, daemon=True).start()
    ok = done.wait(15)
    return "returned" if ok else "hung", it is not None


def sinkkill():
    p = Pool(2)
    it = p.imap_unordered(nap, range(3000))   # about 15 s of naps
    got, end = [], {}

    def consume():
        try:
            for x in it:
                got.append(x)
            end["how"] = "complete"
        except Exception as e:
            end["how"] = "failed"
            end["why"] = "%s: %s" % (type(e).__name__, str(e)[:120])
    t = threading.Thread(target=consume, daemon=True)
    t.start()
    time.sleep(1)
    sink = [q for q in p._local.procs if q.name == "zpipe-sink"][0]
    os.kill(sink.pid, signal.SIGKILL)
    t.join(15)
    p.terminate()
    return {"ended": end.get("how", "hung"), "why": end.get("why", ""),
            "got": len(got), "dup": len(got) - len(set(got)),
            "wrong": sum(1 for x in got if not (isinstance(x, int) and
                                                0 <= x < 3000))}


if __name__ == "__main__":
    out = {"late": late(), "queued": queued(), "pokes": pokes()[0],
           "sinkkill": sinkkill()}
    print(json.dumps(out), flush=True)
    os._exit(0)  # a hung engine thread must not hold the exit
