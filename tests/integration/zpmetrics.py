"""Helpers for the metrics tests: a service cluster whose daemons all serve
/metrics on a free loopback port, and a strict parser of the Prometheus text
exposition format (version 0.0.4)."""
import os
import re
import time
import urllib.error
import urllib.request

import zptest
from zptest import binary, check, start

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
URL = re.compile(rb"metrics: serving (http://[0-9.]+:[0-9]+/metrics)")


def metrics_url(log_path, timeout=10.0, pattern=URL, what="metrics"):
    """The URL a daemon logged when it started serving metrics (or, with
    pattern, another URL it logs: group 1)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with open(log_path, "rb") as f:
            m = pattern.search(f.read())
        if m:
            return m.group(1).decode()
        time.sleep(0.05)
    raise AssertionError("no %s URL in %s" % (what, log_path))


def fetch(url, timeout=5.0):
    """The exposition text at url; waits out the 503 a daemon answers
    until its first render."""
    end = time.monotonic() + timeout
    while True:
        try:
            return _fetch(url)
        except urllib.error.HTTPError as e:
            if e.code != 503 or time.monotonic() > end:
                raise
        time.sleep(0.05)


def _fetch(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        check(r.status == 200, "%s: HTTP %d" % (url, r.status))
        ctype = r.headers.get("Content-Type", "")
        check(ctype.startswith("text/plain; version=0.0.4"),
              "%s: content type %r" % (url, ctype))
        return r.read().decode("utf-8")


def _label_value(s, i):
    """Parses a quoted label value starting after the quote at s[i-1];
    returns (value, index after the closing quote)."""
    out = []
    while i < len(s):
        c = s[i]
        if c == "\\":
            nxt = s[i + 1] if i + 1 < len(s) else ""
            check(nxt in ('\\', '"', 'n'), "bad escape \\%s in %r" % (nxt, s))
            out.append("\n" if nxt == "n" else nxt)
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        elif c == "\n":
            raise AssertionError("raw newline in label value %r" % s)
        else:
            out.append(c)
            i += 1
    raise AssertionError("unterminated label value in %r" % s)


def parse_sample(line):
    """name{labels} value -> (name, {label: value}, float)."""
    m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
    check(m, "bad sample name in %r" % line)
    name, i, labels = m.group(0), m.end(), {}
    if i < len(line) and line[i] == "{":
        i += 1
        while line[i] != "}":
            lm = re.match(r"[a-zA-Z_][a-zA-Z0-9_]*", line[i:])
            check(lm, "bad label name in %r" % line)
            key = lm.group(0)
            i += lm.end()
            check(line[i:i + 2] == '="', "expected =\" in %r" % line)
            value, i = _label_value(line, i + 2)
            check(key not in labels, "label %s twice in %r" % (key, line))
            labels[key] = value
            if line[i] == ",":
                i += 1
            else:
                check(line[i] == "}", "expected , or } in %r" % line)
        i += 1
    check(line[i:i + 1] == " ", "expected a space before the value in %r" % line)
    rest = line[i + 1:].split(" ")
    check(len(rest) in (1, 2), "trailing garbage in %r" % line)
    value = float(rest[0])  # accepts NaN, +Inf, -Inf as the format does
    return name, labels, value


def parse(text):
    """Strict parse: every family has HELP then TYPE before its samples,
    once; sample names belong to the family declared last (histograms:
    _bucket with le, _sum, _count); counters end in _total, gauges and
    histograms do not; no series twice. Returns {name: {labels tuple:
    value}} keyed by sample name."""
    check(text.endswith("\n"), "exposition must end with a newline")
    families, samples = {}, {}
    cur = help_for = None
    for line in text[:-1].split("\n"):
        check(line.strip() == line and line, "blank or padded line %r" % line)
        if line.startswith("# HELP "):
            name = line[7:].split(" ", 1)[0]
            check(NAME.match(name), "bad metric name %r" % name)
            check(name not in families, "family %s declared twice" % name)
            help_for, cur = name, None
            continue
        if line.startswith("# TYPE "):
            parts = line[7:].split(" ")
            check(len(parts) == 2, "bad TYPE line %r" % line)
            name, kind = parts
            check(name == help_for, "TYPE %s without its HELP first" % name)
            check(kind in ("counter", "gauge", "histogram"), "type %r" % kind)
            if kind == "counter":
                check(name.endswith("_total"), "counter %s lacks _total" % name)
            else:
                check(not name.endswith("_total"), "%s %s ends in _total"
                      % (kind, name))
            families[name] = kind
            cur = name
            continue
        check(not line.startswith("#"), "stray comment %r" % line)
        check(cur is not None, "sample before HELP/TYPE: %r" % line)
        name, labels, value = parse_sample(line)
        if families[cur] == "histogram":
            check(name in (cur + "_bucket", cur + "_sum", cur + "_count"),
                  "%s in histogram %s" % (name, cur))
            if name.endswith("_bucket"):
                check("le" in labels, "bucket without le: %r" % line)
        else:
            check(name == cur, "sample %s in family %s" % (name, cur))
        if families[cur] == "counter" or name.endswith(("_bucket", "_count")):
            check(value >= 0, "negative counter %r" % line)
        key = tuple(sorted(labels.items()))
        series = samples.setdefault(name, {})
        check(key not in series, "series twice: %r" % line)
        series[key] = value
    return families, samples


def value(samples, name, **labels):
    """The one sample of name with exactly these labels."""
    key = tuple(sorted(labels.items()))
    series = samples.get(name, {})
    check(key in series, "no %s%r in %r" % (name, labels, sorted(series)))
    return series[key]


def total(samples, name, **match):
    """The sum of the samples of name whose labels include match."""
    return sum(v for k, v in samples.get(name, {}).items()
               if all(dict(k).get(a) == b for a, b in match.items()))


class Service(zptest.Cluster):
    """Sink, a ventilator with an intake and workers, every one with
    --metrics 127.0.0.1:0; urls holds where each serves."""

    def __init__(self, workers=2, plugins=("echo",)):
        super().__init__(sink_args=("--metrics", "127.0.0.1:0"))
        self.intake = "ipc://%s/intake" % self.dir
        self.vent = start([binary("zpipe-ventilator"), "--intake", self.intake,
                           "--bind", self.dispatch, "--sink", self.control,
                           "--metrics", "127.0.0.1:0"],
                          stderr=self._log("ventilator"))
        self.urls = {"sink": metrics_url(self.logs[0]),
                     "ventilator": metrics_url(self.logs[1])}
        for i in range(workers):
            name = "w%d" % i
            self.worker(plugins=plugins, name=name,
                        args=("--metrics", "127.0.0.1:0"))
            self.urls[name] = metrics_url(self.logs[-1])

    def submit(self, plugin, payloads, chunk=1000):
        """One job through the intake with the example producer; returns
        its id once closed."""
        import sys
        sys.path.insert(0, os.path.join(zptest.SOURCE, "examples", "python"))
        import producer
        p = producer.Producer(self.intake, plugin)
        for k in range(0, len(payloads), chunk):
            p.send(payloads[k:k + chunk])
        p.close()
        return p.job_id
