"""ctest kubernetes_podman: the pods of deploy/kubernetes run under
`podman kube play` (Debian's podman 4.3), from the objects the validator
renders, with what a cluster would add done by k8semu.py (the Secret's
volumes, Service names, probes). Root only; exit 77 (skipped, with the
reason on a SKIP line) when podman cannot run pods here.

1. the keys Job's pod, against a fake Kubernetes API (HTTPS, its service
   account's token), makes the Secret every other pod mounts;
2. the sink and ventilator StatefulSet pods, two worker Deployment pods and
   the client pod (extras/client.yaml) start; every startup, readiness and
   liveness probe answers;
3. from the client pod, a CPU-bound job during which the ventilator's
   zpipe_job_queued_tasks (what KEDA scales on) is seen above 0, a third
   worker is added (it takes tasks), and a rolling update replaces worker 0
   (a new pod first, then SIGTERM to the old one, which exits 0): lost 0,
   duplicated 0;
4. a 10,000-task SHA-256 job, every record checked;
5. the sink and ventilator pods deleted and made again on the same claims
   and addresses: the first job's records are all still served, and a new
   job runs through them.

The image: the one tests/compose built (docker's ZPIPE_IMAGE, default
zpipe:compose-test), copied with docker save | podman load; without it,
podman builds the Dockerfile (debian:bookworm-slim from podman, docker, or
debootstrap from the host's apt source).

Not run here: NetworkPolicies (podman enforces none; the validator checks
them), the autoscalers themselves (KEDA, HPA), scheduling on requests.

  ZPIPE_KEEP=1 keeps the logs and the rendered pods; ZPIPE_K8S_IMAGE=NAME
  takes that image from podman's store instead (reruns while editing the
  manifests or this test)."""
import collections
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
import urllib.request

import k8sharness as h
import k8semu as emu
import zpmetrics
import zptest
from zptest import check

SRC = zptest.SOURCE
T0 = time.monotonic()
PREFIX = "zk%d-" % os.getpid()
NETWORK = "zpk8s-%d" % os.getpid()
DOCKER_IMAGE = os.environ.get("ZPIPE_IMAGE", "zpipe:compose-test")
IMAGE = "localhost/zpipe:k8s-test"
BASE = "debian:bookworm-slim"
N_SHA = 10000
N_SPIN, SPIN_US = 4000, 4000  # 16 s of CPU time: 8 s or so on 2 cores
N_AFTER = 1000

WORK = zptest.tmpdir()
ENV = dict(os.environ, CONTAINERS_CONF=os.path.join(WORK, "containers.conf"))
PODS = []  # podman pod names we made
VOLUMES = []  # podman volumes we made
STATE = {"network": False, "dockerd": None, "api": None}


def log(msg):
    print("kubernetes: %s" % msg, flush=True)


def skip(reason):
    print("*" * 63)
    print("SKIP kubernetes_podman: NOT RUN: %s" % reason)
    print("*" * 63, flush=True)
    sys.exit(77)


def sh(args, timeout=300, check_rc=True, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=kw.pop("env", ENV), **kw)
    if check_rc and r.returncode != 0:
        raise AssertionError("%s: exit %d: %s" % (" ".join(args[:6]), r.returncode, (r.stdout + r.stderr)[-3000:]))
    return r


def podman(*args, **kw):
    return sh(["podman"] + list(args), **kw)


_phase = [time.monotonic()]


def phase(name):
    now = time.monotonic()
    log("phase %s: %.1f s" % (name, now - _phase[0]))
    _phase[0] = now


# --- podman, a runtime that works here, the image

def apt_install(*pkgs):
    missing = [p for p in pkgs if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout != "install ok installed"]
    if not missing:
        return True
    log("installing %s" % " ".join(missing))
    r = subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                       "--no-install-recommends -o DPkg::Lock::Timeout=600 " + " ".join(missing),
                       shell=True, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        print(r.stdout[-2000:] + r.stderr[-2000:])
    return r.returncode == 0


def write_conf(runtime):
    """A containers.conf of this test's own: the runtime, and ulimits this
    machine allows (podman's defaults, nofile 1048576 and nproc 4194304,
    are above what an unprivileged container host may set)."""
    r = subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True, text=True)
    nofile = r.stdout.strip()
    nofile = "65536" if not nofile.isdigit() else str(min(int(nofile), 1048576))
    with open(ENV["CONTAINERS_CONF"], "w") as f:
        f.write('[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=4096:4096"]\n'
                '[engine]\nruntime = "%s"\n' % (nofile, nofile, runtime))


def pick_runtime():
    """crun (podman's default) or runc, whichever runs a container here."""
    reasons = []
    for rt in ("crun", "runc"):
        if not shutil.which(rt):
            reasons.append("%s: not installed" % rt)
            continue
        write_conf(rt)
        r = podman("run", "--rm", "--network", "none", IMAGE, "true", check_rc=False, timeout=120)
        if r.returncode == 0:
            return rt, reasons
        reasons.append("%s: %s" % (rt, (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]))
    skip("podman runs no container here: " + "; ".join(reasons))


def docker_up():
    """True when a docker daemon answers; starts one (stopped at the end)
    when none does."""
    if not shutil.which("docker"):
        return False
    if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return True
    if not shutil.which("dockerd"):
        return False
    logf = open(os.path.join(WORK, "dockerd.log"), "wb")
    p = subprocess.Popen(["dockerd"], stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, start_new_session=True)
    STATE["dockerd"] = p
    for _ in range(120):
        if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
            log("started dockerd (pid %d) to copy the image" % p.pid)
            return True
        if p.poll() is not None:
            break
        time.sleep(0.5)
    return False


def stop_dockerd():
    p = STATE["dockerd"]
    if p and p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    STATE["dockerd"] = None


def docker_to_podman(src, dst):
    r = subprocess.run("docker save %s | podman load" % src, shell=True, capture_output=True, text=True,
                       timeout=600, env=ENV)
    check(r.returncode == 0, "docker save %s | podman load: %s" % (src, r.stderr[-2000:]))
    loaded = re.findall(r"Loaded image(?:\(s\))?: (\S+)", r.stdout)
    check(loaded, "podman load named no image: %s" % r.stdout)
    podman("tag", loaded[0], dst)
    if loaded[0] != dst:
        # leave only our name behind: `podman untag IMAGE` alone removes
        # every name of the image, ours too; IMAGE NAME removes NAME.
        podman("untag", loaded[0], loaded[0], check_rc=False)


def apt_mirror():
    """The first bookworm `deb` source in the host's apt configuration."""
    d = "/etc/apt/sources.list.d"
    for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if not f.endswith(".sources"):
            continue
        with open(os.path.join(d, f)) as fh:
            for stanza in fh.read().split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.startswith((" ", "#")):
                        k, v = line.split(":", 1)
                        fields[k.strip()] = v.split()
                if ("deb" in fields.get("Types", []) and "bookworm" in fields.get("Suites", [])
                        and fields.get("Enabled", ["yes"]) != ["no"] and fields.get("URIs")):
                    return fields["URIs"][0]
    for f in ["/etc/apt/sources.list"] + [os.path.join(d, x) for x in sorted(os.listdir(d)) if x.endswith(".list")]:
        if not os.path.isfile(f):
            continue
        with open(f) as fh:
            for line in fh:
                w = re.sub(r"\[[^]]*\]", "", line).split()
                if len(w) >= 3 and w[0] == "deb" and w[2] == "bookworm":
                    return w[1]
    return None


def base_image():
    if podman("image", "exists", BASE, check_rc=False).returncode == 0:
        return "present in podman"
    if docker_up() and subprocess.run(["docker", "image", "inspect", BASE], capture_output=True).returncode == 0:
        docker_to_podman(BASE, BASE)
        return "copied from docker"
    mirror = apt_mirror()
    if not mirror:
        skip("no %s in podman or docker, and no bookworm source in /etc/apt to debootstrap from" % BASE)
    if not apt_install("debootstrap"):
        skip("cannot install debootstrap to build %s" % BASE)
    root = os.path.join(WORK, "rootfs")
    t = time.monotonic()
    r = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", root, mirror],
                       capture_output=True, text=True, timeout=1200)
    check(r.returncode == 0, "debootstrap: %s" % (r.stdout + r.stderr)[-2000:])
    for pat in ("var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale"):
        shutil.rmtree(os.path.join(root, pat), ignore_errors=True)
    r = subprocess.run("tar -C %s -c . | podman import -c 'CMD [\"bash\"]' - %s" % (root, BASE),
                       shell=True, capture_output=True, text=True, timeout=600, env=ENV)
    shutil.rmtree(root, ignore_errors=True)
    check(r.returncode == 0, "podman import: %s" % r.stderr[-2000:])
    return "built with debootstrap from the host's apt source (%.0f s)" % (time.monotonic() - t)


def get_image():
    """The zpipe image in podman as IMAGE; says where it came from."""
    given = os.environ.get("ZPIPE_K8S_IMAGE")
    if given:
        podman("tag", given, IMAGE)
        return "ZPIPE_K8S_IMAGE=%s, from podman's store" % given
    if docker_up() and subprocess.run(["docker", "image", "inspect", DOCKER_IMAGE],
                                      capture_output=True).returncode == 0:
        docker_to_podman(DOCKER_IMAGE, IMAGE)
        how = "docker's %s (built by tests/compose), docker save | podman load" % DOCKER_IMAGE
    else:
        how = "podman build of the Dockerfile (base %s: %s)" % (BASE, base_image())
        r = sh(["podman", "build", "-t", IMAGE, SRC], timeout=1800, check_rc=False)
        if r.returncode != 0 and shutil.which("runc") and \
                "cgroups in hybrid mode" in r.stdout + r.stderr:
            # crun refuses this machine's cgroups: the build's RUN steps
            # need the runtime pick_runtime would choose, before it can.
            write_conf("runc")
            r = sh(["podman", "build", "-t", IMAGE, SRC], timeout=1800, check_rc=False)
        with open(os.path.join(WORK, "build.log"), "w") as f:
            f.write(r.stdout + r.stderr)
        check(r.returncode == 0, "podman build: %s" % (r.stdout + r.stderr)[-3000:])
    stop_dockerd()
    return how


# --- pods

class Cluster:
    def __init__(self, rendered):
        self.objects = rendered["objects"] + rendered["extras"]["client.yaml"]
        self.index = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
                      for o in self.objects}
        self.ips = {}  # pod name (unprefixed) -> ip
        self.macs = {}  # pod name -> MAC address
        self.pods = {}  # pod name -> pod object (Kubernetes' view)

    def hosts(self):
        """Service names of the pods running, as cluster DNS gives them."""
        out = collections.defaultdict(list)
        for svc in (o for o in self.objects if o["kind"] == "Service" and o["spec"].get("type", "ClusterIP") == "ClusterIP"):
            for name, pod in self.pods.items():
                if emu.selects(svc, pod) and name in self.ips:
                    out[self.ips[name]] += emu.service_names(svc)
        return dict(out)

    def play(self, name, pod, ip=None, mac=None, sa=None):
        p, vols = emu.for_podman(pod, PREFIX, self.index, os.path.join(WORK, "volumes"), self.hosts(), sa=sa)
        path = emu.dump(p, os.path.join(WORK, "pod-%s.json" % name))
        if PREFIX + name not in PODS:
            PODS.append(PREFIX + name)
        VOLUMES.extend(v for v in vols if v not in VOLUMES)
        args = ["kube", "play", "--network", NETWORK, "--log-driver", "k8s-file"]
        if ip:
            args += ["--ip", ip]
        if mac:
            args += ["--mac-address", mac]
        podman(*args, path, timeout=120)
        self.pods[name] = pod
        infra = podman("pod", "inspect", PREFIX + name, "--format", "{{.InfraContainerID}}").stdout.strip()
        nets = json.loads(podman("inspect", infra, "--format", "{{json .NetworkSettings.Networks}}").stdout)
        self.ips[name] = nets[NETWORK]["IPAddress"]
        self.macs[name] = nets[NETWORK]["MacAddress"]
        return self.ips[name]

    def ready(self, name, timeout=90):
        """Every probe of the pod answers, as kubelet would ask it."""
        deadline = time.monotonic() + timeout
        out = []
        for cname, kind, path, port in emu.probes_of(self.pods[name]):
            status, waited = emu.http_probe(self.ips[name], port, path, deadline)
            out.append("%s %s :%d%s %d" % (cname, kind.replace("Probe", ""), port, path, status))
        return out

    def delete(self, name, grace=30):
        """kubectl delete pod: SIGTERM, the grace period, then removal; the
        pod's emptyDir volumes go with it, its claims stay."""
        podman("pod", "stop", "-t", str(grace), PREFIX + name, timeout=grace + 60)
        codes = {}
        for c in self.pods[name]["spec"]["containers"]:
            st = podman("inspect", "%s%s-%s" % (PREFIX, name, c["name"]), "--format", "{{.State.ExitCode}}").stdout
            codes[c["name"]] = int(st.strip())
        podman("pod", "rm", "-f", PREFIX + name)
        PODS.remove(PREFIX + name)
        for v in list(VOLUMES):
            if v.startswith(PREFIX + name + "-"):
                podman("volume", "rm", "-f", v, check_rc=False)
                VOLUMES.remove(v)
        del self.ips[name]
        del self.pods[name]
        return codes

    def exec(self, pod, container, script, timeout=300):
        return sh(["podman", "exec", "%s%s-%s" % (PREFIX, pod, container), "sh", "-c", script],
                  timeout=timeout, check_rc=False)

    def logs(self, pod, container):
        return podman("logs", "%s%s-%s" % (PREFIX, pod, container), check_rc=False).stderr + \
            podman("logs", "%s%s-%s" % (PREFIX, pod, container), check_rc=False).stdout

    def metrics(self, pod):
        _, samples = zpmetrics.parse(zpmetrics.fetch("http://%s:9100/metrics" % self.ips[pod]))
        return samples


def leftovers():
    """Pods, volumes and the network of this run still in podman."""
    pods = [p for p in podman("pod", "ps", "-a", "--format", "{{.Name}}", check_rc=False).stdout.split()
            if p.startswith(PREFIX)]
    vols = [v for v in podman("volume", "ls", "--format", "{{.Name}}", check_rc=False).stdout.split()
            if v.startswith(PREFIX)]
    nets = [n for n in podman("network", "ls", "--format", "{{.Name}}", check_rc=False).stdout.split()
            if n == NETWORK]
    return pods + vols + nets


def diagnose():
    """On a failure: what the ventilator and the sink say about the jobs."""
    c = STATE.get("cluster")
    for name in (list(c.ips) if c else []):
        if not name.startswith(("zpipe-ventilator", "zpipe-sink")):
            continue
        try:
            with urllib.request.urlopen("http://%s:9100/metrics" % c.ips[name], timeout=5) as r:
                lines = [l for l in r.read().decode().splitlines()
                         if l.startswith(("zpipe_job", "zpipe_worker", "zpipe_workers"))]
            print("---- %s /metrics (jobs, workers)\n%s" % (name, "\n".join(lines[:60])))
        except OSError as e:
            print("---- %s /metrics: %s" % (name, e))
    if c and "zpipe-client" in c.ips:
        r = c.exec("zpipe-client", "client", "zpipe status --timeout-ms 3000", timeout=30)
        print("---- zpipe status\n%s%s" % (r.stdout, r.stderr))


def cleanup(failed):
    if failed:
        diagnose()
        for p in PODS:
            r = podman("ps", "-a", "--filter", "pod=" + p, "--format", "{{.Names}}", check_rc=False)
            for c in r.stdout.split():
                if c.endswith("-infra"):
                    continue
                out = podman("logs", "--tail", "30", c, check_rc=False)
                print("---- %s\n%s%s" % (c, out.stdout[-3000:], out.stderr[-3000:]))
    for _ in range(3):
        t = [time.monotonic()]
        if PODS:
            # stop first: rm -f of running pods takes seconds per pod here
            podman("pod", "stop", "--ignore", "-t", "0", *PODS, check_rc=False, timeout=300)
            podman("pod", "rm", "-f", "--ignore", *PODS, check_rc=False, timeout=300)
        t.append(time.monotonic())
        if VOLUMES:
            podman("volume", "rm", "-f", *VOLUMES, check_rc=False, timeout=120)
        t.append(time.monotonic())
        if STATE["network"]:
            podman("network", "rm", "-f", NETWORK, check_rc=False)
        t.append(time.monotonic())
        log("removed %d pods (%.1f s), %d volumes (%.1f s), the network (%.1f s)"
            % (len(PODS), t[1] - t[0], len(VOLUMES), t[2] - t[1], t[3] - t[2]))
        left = leftovers()
        if not left:
            break
        time.sleep(1)
    else:
        print("FAIL kubernetes_podman: left behind in podman: %s" % " ".join(left), flush=True)
        failed = True
    if STATE["api"]:
        STATE["api"].close()
    stop_dockerd()
    if os.environ.get("ZPIPE_KEEP"):
        log("kept %s" % WORK)
    # volumes/ holds copies of the keys: never left behind
    shutil.rmtree(os.path.join(WORK, "volumes"), ignore_errors=True)
    return failed


def worker_pod(worker_id):
    """A worker's pod number: its id starts with its host name, the pod's."""
    m = re.match(r"%szpipe-worker-(\d+)-" % re.escape(PREFIX), worker_id)
    return m.group(1) if m else worker_id


def records(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def count(recs, n, payload=None, job=None):
    """lost, duplicated, unexpected, wrong against tasks 0..n-1."""
    ids = collections.Counter(r["task"] for r in recs)
    lost = [t for t in range(n) if t not in ids]
    dups = [t for t, c in ids.items() if c > 1]
    extra = [t for t in ids if not 0 <= t < n]
    wrong = [r for r in recs if r["status"] != "ok" or (job and r["job"] != job) or
             (r["output"] != (payload(r["task"]) if callable(payload) else payload))]
    return len(lost), len(dups), len(extra), len(wrong)


def main():
    if os.geteuid() != 0:
        skip("not root (podman kube play of the pods needs root here)")
    if not shutil.which("podman") and not apt_install("podman", "runc", "crun", "netavark", "aardvark-dns",
                                                      "catatonit", "conmon", "slirp4netns", "uidmap"):
        skip("cannot install podman from apt")
    apt_install("runc", "netavark", "aardvark-dns", "catatonit", "iptables", "openssl")
    # Until pick_runtime tries them, one that is here: podman's own
    # default, crun, is not on a machine where apt took runc for it
    # (podman depends on crun | runc; podman load failed "default OCI
    # runtime crun not found").
    write_conf("crun" if shutil.which("crun") else "runc")
    log(podman("--version").stdout.strip())
    phase("install")
    how = get_image()
    log("image %s: %s" % (IMAGE, how))
    phase("image")
    rt, why = pick_runtime()
    log("runtime %s%s" % (rt, " (%s)" % "; ".join(why) if why else ""))

    # the objects, as kubectl apply -k would send them, with the image
    # this test made (kustomize edit set image zpipe=IMAGE)
    rendered = h.rendered(WORK)
    want = ["%s:%s" % (i["newName"], i["newTag"]) for i in rendered["kustomization"]["images"]]
    for o in rendered["objects"] + rendered["extras"]["client.yaml"]:
        spec = o["spec"] if o["kind"] == "Pod" else o.get("spec", {}).get("template", {}).get("spec", {})
        for ctr in spec.get("initContainers", []) + spec.get("containers", []):
            check(ctr["image"] in want, "%s/%s: image %s" % (o["kind"], o["metadata"]["name"], ctr["image"]))
            ctr["image"] = IMAGE
    podman("network", "create", NETWORK)
    STATE["network"] = True
    gateway = json.loads(podman("network", "inspect", NETWORK).stdout)[0]["subnets"][0]["gateway"]

    # 1. the keys Job
    job = h.find(rendered["objects"], "Job")
    api = STATE["api"] = h.FakeApi(WORK, host=gateway, bind="0.0.0.0", namespace=job["metadata"]["namespace"])
    # the fake API listens on every address: the bridge's gateway address
    # exists only once a pod is on the network
    c = STATE["cluster"] = Cluster(rendered)
    [(jname, jpod)] = emu.pods_of(job)
    c.play(jname, jpod, sa=(api.sa_dir, api.env()))
    cname = "%s%s-%s" % (PREFIX, jname, jpod["spec"]["containers"][0]["name"])
    rc = podman("wait", cname, timeout=120).stdout.strip()
    jlog = c.logs(jname, jpod["spec"]["containers"][0]["name"])
    check(rc == "0", "keys Job exited %s: %s" % (rc, jlog))
    secret_name = next(e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
                       if e["name"] == "ZPIPE_KEYS_SECRET")
    check(secret_name in api.secrets, "the keys Job made no Secret: %r / %s" % (api.requests, jlog))
    secret = dict(api.secrets[secret_name])
    secret["metadata"] = dict(secret["metadata"], namespace=job["metadata"]["namespace"])
    comps = next(e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
                 if e["name"] == "ZPIPE_KEYS_COMPONENTS").split()
    h.check_keys_secret(secret, comps)
    for method, path, sname, _ in api.requests:
        check(h.role_allows(rendered["objects"], job["spec"]["template"]["spec"]["serviceAccountName"],
                            {"GET": "get", "POST": "create"}[method], sname), "Role forbids %s %s" % (method, path))
    log("keys Job: %s" % jlog.strip().splitlines()[-1])
    phase("keys job")

    # 2. the cluster
    c.index[("Secret", secret["metadata"]["namespace"], secret_name)] = secret
    objs = c.objects
    sink_sts = h.find(objs, "StatefulSet", "zpipe-sink")
    vent_sts = h.find(objs, "StatefulSet", "zpipe-ventilator")
    workers = h.find(objs, "Deployment", "zpipe-worker")
    client = h.find(objs, "Pod", "zpipe-client")
    [(sink, sink_pod)] = emu.pods_of(sink_sts)
    [(vent, vent_pod)] = emu.pods_of(vent_sts)
    wpods = emu.pods_of(workers, replicas=5)  # 0, 1 now; 2 scales up; 3 replaces 0
    for name, pod in [(sink, sink_pod), (vent, vent_pod)] + wpods[:2] + emu.pods_of(client):
        c.play(name, pod)
        if name != "zpipe-client":
            log("%s at %s: %s" % (name, c.ips[name], ", ".join(c.ready(name))))
    deadline = time.monotonic() + 60
    while zpmetrics.value(c.metrics(vent), "zpipe_workers") != 2:
        check(time.monotonic() < deadline, "2 workers did not register")
        time.sleep(0.2)
    phase("pods up")

    # 3. scale up and a rolling update in the middle of a CPU-bound job, on
    # fresh workers (a worker that has just run tiny tasks grants a window
    # sized for them, and takes all of a slower job at once)
    r = c.exec("zpipe-client", "client", "yes %d | head -n %d | zpipe submit --plugin spin --job k8s-spin"
               % (SPIN_US, N_SPIN))
    check(r.returncode == 0, "spin submit: %s" % r.stderr[-2000:])
    reader = subprocess.Popen(["podman", "exec", "%szpipe-client-client" % PREFIX, "sh", "-c",
                               "zpipe wait --timeout-ms 120000 k8s-spin >&2 && zpipe results k8s-spin"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    queued, deadline = 0, time.monotonic() + 30
    while queued <= 0:
        queued = zpmetrics.total(c.metrics(vent), "zpipe_job_queued_tasks", job_id="k8s-spin")
        check(time.monotonic() < deadline, "zpipe_job_queued_tasks of k8s-spin never rose above 0")
        time.sleep(0.1)
    log("ventilator: zpipe_job_queued_tasks{job_id=\"k8s-spin\"} = %d with 2 workers (what KEDA scales on)" % queued)

    def workers_registered(n):
        deadline = time.monotonic() + 60
        while zpmetrics.value(c.metrics(vent), "zpipe_workers") != n:
            check(reader.poll() is None, "k8s-spin ended before the scale/rollout: nothing was tested")
            check(time.monotonic() < deadline, "%d workers did not register" % n)
            time.sleep(0.1)
    c.play(*wpods[2])
    c.ready(wpods[2][0])
    workers_registered(3)
    log("scaled up: %s registered mid-job" % wpods[2][0])
    c.play(*wpods[3])  # the rollout: the new pod first (maxUnavailable 0)
    c.ready(wpods[3][0])
    workers_registered(4)
    check(reader.poll() is None, "k8s-spin ended before the rollout: nothing was tested")
    t = time.monotonic()
    codes = c.delete(wpods[0][0], grace=int(workers["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)))
    check(codes == {"worker": 0}, "the old worker exited %r on SIGTERM" % codes)
    log("rolling update: %s up, then %s stopped by SIGTERM in %.1f s, exit 0"
        % (wpods[3][0], wpods[0][0], time.monotonic() - t))
    check(reader.poll() is None, "k8s-spin ended before the old worker stopped: nothing was tested")
    out, err = reader.communicate(timeout=180)
    check(reader.returncode == 0, "spin wait/results: %s" % err[-2000:])
    spin = records(out)
    bad = count(spin, N_SPIN, str(SPIN_US), "k8s-spin")
    check(bad == (0, 0, 0, 0) and len(spin) == N_SPIN,
          "spin job: lost %d, duplicated %d, unexpected %d, wrong %d" % bad)
    per = collections.Counter(worker_pod(r["worker"]) for r in spin)
    for i in (0, 2, 3):
        check(per.get(str(i), 0) > 0, "worker pod %d ran no task of k8s-spin: %r" % (i, dict(per)))
    log("spin job: %d records, lost 0, duplicated 0, unexpected 0, wrong 0; per worker pod %s "
        "(pods 2 and 3 added mid-job, 0 stopped mid-job)" % (len(spin), dict(sorted(per.items()))))
    phase("scale and rollout")

    # 4. a job from the client pod
    r = c.exec("zpipe-client", "client",
               "seq 1 %d | zpipe submit --plugin sha256 --job k8s-sha >&2 && zpipe wait k8s-sha >&2 && "
               "zpipe results k8s-sha" % N_SHA)
    check(r.returncode == 0, "sha job: %s" % r.stderr[-2000:])
    check("%d tasks, %d succeeded, 0 failed" % (N_SHA, N_SHA) in r.stderr, "sha job: %s" % r.stderr[-2000:])
    sha = records(r.stdout)
    bad = count(sha, N_SHA, lambda t: hashlib.sha256(str(t + 1).encode()).hexdigest(), "k8s-sha")
    check(bad == (0, 0, 0, 0) and len(sha) == N_SHA, "sha job: lost %d, duplicated %d, unexpected %d, wrong %d" % bad)
    per = collections.Counter(worker_pod(r["worker"]) for r in sha)
    log("sha job: %d records from the client pod, lost 0, duplicated 0, unexpected 0, wrong 0; "
        "per worker pod %s" % (len(sha), dict(sorted(per.items()))))
    phase("sha job")

    # 5. the StatefulSet pods deleted and made again, same claims
    # A Service's address outlives its pods: the pods come back on the same
    # IP and MAC address (a new MAC would leave its peers' ARP caches stale
    # for a minute or two, which a ClusterIP never shows them).
    ips = {sink: c.ips[sink], vent: c.ips[vent]}
    macs = {sink: c.macs[sink], vent: c.macs[vent]}
    for name in (vent, sink):
        t = time.monotonic()
        codes = c.delete(name)
        check(set(codes.values()) == {0}, "%s exited %r on SIGTERM" % (name, codes))
        log("%s deleted: SIGTERM, exit 0, pod removed in %.1f s" % (name, time.monotonic() - t))
    for name, pod in ((sink, sink_pod), (vent, vent_pod)):
        t = time.monotonic()
        c.play(name, pod, ip=ips[name], mac=macs[name])
        log("%s made again at %s on its claim: %s (%.1f s)" % (name, ips[name], ", ".join(c.ready(name)),
                                                              time.monotonic() - t))
    t = time.monotonic()
    r = c.exec("zpipe-client", "client", "zpipe results k8s-sha")
    check(r.returncode == 0, "results after the restart: %s" % r.stderr[-2000:])
    log("zpipe results k8s-sha after the restart: %.1f s" % (time.monotonic() - t))
    t = time.monotonic()
    again = records(r.stdout)
    check(sorted(map(json.dumps, again)) == sorted(map(json.dumps, sha)),
          "after the restart the sink serves %d records of k8s-sha, not the %d it wrote" % (len(again), len(sha)))
    r = c.exec("zpipe-client", "client",
               "seq 1 %d | zpipe submit --plugin sha256 --job k8s-after >&2 && zpipe wait k8s-after >&2 && "
               "zpipe results k8s-after" % N_AFTER)
    check(r.returncode == 0 and "%d tasks, %d succeeded, 0 failed" % (N_AFTER, N_AFTER) in r.stderr,
          "job after the restart: %s" % r.stderr[-2000:])
    bad = count(records(r.stdout), N_AFTER, lambda t: hashlib.sha256(str(t + 1).encode()).hexdigest(), "k8s-after")
    check(bad == (0, 0, 0, 0), "job after the restart: lost %d, duplicated %d, unexpected %d, wrong %d" % bad)
    log("sink and ventilator pods re-made on their claims: k8s-sha's %d records all served again; "
        "a %d-task job after: lost 0, duplicated 0 (%.1f s)" % (len(again), N_AFTER, time.monotonic() - t))
    phase("statefulset restart")


if __name__ == "__main__":
    failed = True
    try:
        main()
        failed = False
    except Exception as e:  # noqa: BLE001 - reported, then cleaned up
        if not isinstance(e, AssertionError):
            traceback.print_exc()
        print("FAIL kubernetes_podman: %s: %s" % (type(e).__name__, e), flush=True)
    finally:
        if "--no-cleanup" not in sys.argv:
            t = time.monotonic()
            failed = cleanup(failed)
            log("cleanup: %.1f s" % (time.monotonic() - t))
        log("total wall time %.1f s" % (time.monotonic() - T0))
    print("0 passed, 1 failed" if failed else "1 passed, 0 failed")
    sys.exit(1 if failed else 0)
