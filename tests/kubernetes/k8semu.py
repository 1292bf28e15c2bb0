"""What a Kubernetes cluster does for the pods of deploy/kubernetes and
podman kube play (4.3) does not, done here so the pods run under podman as
they would in a cluster. Each piece says what it stands in for:

- a StatefulSet's pod NAME-0 and its claims DATA-NAME-0 (podman: a named
  volume per claim, kept across the pod's deletion); a Deployment's pods;
  a Job's pod;
- Secret and ConfigMap volumes filled as kubelet fills them: the items
  under their paths, Secret data decoded, defaultMode or the item's mode,
  and with the pod's fsGroup the files group-owned and group-readable
  (podman 4.3 mounts every key of a Secret, base64 and all, and ignores
  items and modes): a host directory, mounted read-only;
- Service names resolved to the pod behind them (cluster DNS and a
  ClusterIP), as hostAliases; a pod re-created keeps its address, as a
  Service's ClusterIP outlives its pods;
- probes: taken out of the pod (podman would make the liveness probe a
  healthcheck that runs curl, which the image does not have) and run by the
  test against the pod's address, as kubelet would;
- the service account mount and KUBERNETES_SERVICE_HOST/PORT of the keys
  Job, pointing at the fake API server (k8sharness.FakeApi).

And where podman 4.3 differs from kubelet, the pod is adapted: container
ports are dropped (podman publishes each on the host; the probes resolve
them first), each emptyDir gets a volume of its pod's own (podman names
the volume as the pod does, so pods share it), and a pod with init
containers keeps them (podman removes a finished one and can find it still
running) under restart policy OnFailure (podman restarts a finished init
container under Always).

Not emulated: NetworkPolicies (podman has none; the validator checks them),
resource requests (scheduling), the autoscalers, the restricted Pod
Security admission (the validator checks it). podman applies the limits,
the security contexts, init containers, emptyDir and restart policies
itself."""
import base64
import copy
import json
import os
import time
import urllib.error
import urllib.request

from zptest import check


def pods_of(obj, replicas=None):
    """[(pod name, pod object)] for a workload, as its controller makes
    them (without the probes, which the test runs)."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    if kind == "Pod":
        tmpl = {"metadata": obj["metadata"], "spec": obj["spec"]}
        names = [name]
    else:
        tmpl = obj["spec"]["template"]
        n = replicas if replicas is not None else obj["spec"].get("replicas", 1)
        names = ["%s-%d" % (name, i) for i in range(n)] if kind != "Job" else [name]
    out = []
    for i, pname in enumerate(names):
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": pname, "namespace": obj["metadata"].get("namespace", "default"),
                            "labels": dict(tmpl["metadata"].get("labels", {})),
                            "annotations": dict(tmpl["metadata"].get("annotations") or {})},
               "spec": copy.deepcopy(tmpl["spec"])}
        if kind == "StatefulSet":
            for vct in obj["spec"].get("volumeClaimTemplates", []):
                pod["spec"].setdefault("volumes", []).append(
                    {"name": vct["metadata"]["name"],
                     "persistentVolumeClaim": {"claimName": "%s-%s" % (vct["metadata"]["name"], pname)}})
        if kind == "Job":
            pod["spec"].setdefault("restartPolicy", "Never")
        out.append((pname, pod))
    return out


def probes_of(pod):
    """[(container, kind, probe)] with the container's ports resolved."""
    out = []
    for c in pod["spec"]["containers"]:
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = c.get(kind)
            if not p:
                continue
            port = p["httpGet"]["port"]
            if isinstance(port, str):
                port = next(cp["containerPort"] for cp in c.get("ports", []) if cp.get("name") == port)
            out.append((c["name"], kind, p["httpGet"].get("path", "/"), port))
    return out


def fill_volume(vol, source, d, fs_group):
    """A Secret or ConfigMap volume's files, as kubelet writes them, into d.
    source: the Secret or ConfigMap object."""
    src = vol.get("secret") or vol.get("configMap")
    secret = "secret" in vol
    data = {k: base64.b64decode(v) for k, v in source.get("data", {}).items()} if secret else \
        {k: v.encode() for k, v in source.get("data", {}).items()}
    items = src.get("items") or [{"key": k, "path": k} for k in data]
    mode = src.get("defaultMode", 0o644)
    os.makedirs(d, exist_ok=True)
    for it in items:
        check(it["key"] in data, "%s has no key %s" % (source["metadata"]["name"], it["key"]))
        path = os.path.join(d, it["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data[it["key"]])
        m = it.get("mode", mode)
        if fs_group is not None:
            m |= 0o040  # kubelet: group-readable with fsGroup
            os.chown(path, 0, fs_group)
        os.chmod(path, m & 0o7777)
    for root, dirs, _ in os.walk(d):
        for x in [root] + [os.path.join(root, y) for y in dirs]:
            os.chmod(x, 0o755)
            if fs_group is not None:
                os.chown(x, 0, fs_group)


def for_podman(pod, prefix, objects, vol_dir, hosts, sa=None):
    """The pod as podman kube play takes it: named prefix+name, its Secret
    and ConfigMap volumes as filled host directories, its claims as
    prefixed named volumes, Service names in hostAliases (hosts: {ip:
    [names]}), no probes; sa: (directory, {env}) for a service account.
    Returns (pod, [claim volume names])."""
    pod = copy.deepcopy(pod)
    name = pod["metadata"]["name"]
    pod["metadata"]["name"] = prefix + name
    spec = pod["spec"]
    fs_group = (spec.get("securityContext") or {}).get("fsGroup")
    ns = pod["metadata"]["namespace"]
    claims = []
    for v in spec.get("volumes", []):
        if "secret" in v or "configMap" in v:
            kind = "Secret" if "secret" in v else "ConfigMap"
            ref = v["secret"]["secretName"] if "secret" in v else v["configMap"]["name"]
            source = objects.get((kind, ns, ref))
            check(source is not None, "pod %s: no %s %s to fill volume %s" % (name, kind, ref, v["name"]))
            d = os.path.join(vol_dir, name, v["name"])
            fill_volume(v, source, d, fs_group)
            for k in ("secret", "configMap"):
                v.pop(k, None)
            v["hostPath"] = {"path": d, "type": "Directory"}
        elif "persistentVolumeClaim" in v:
            v["persistentVolumeClaim"]["claimName"] = prefix + v["persistentVolumeClaim"]["claimName"]
            claims.append(v["persistentVolumeClaim"]["claimName"])
        elif "emptyDir" in v:
            # podman 4.3 makes an emptyDir a volume named as the pod names
            # it, shared by every pod that uses the name: one per pod here.
            new = "%s%s-%s" % (prefix, name, v["name"])
            for c in spec.get("initContainers", []) + spec["containers"]:
                for m in c.get("volumeMounts", []):
                    if m["name"] == v["name"]:
                        m["name"] = new
            v["name"] = new
            claims.append(new)
    for c in spec.get("initContainers", []) + spec["containers"]:
        for k in ("startupProbe", "readinessProbe", "livenessProbe"):
            c.pop(k, None)
        # podman 4.3 publishes every containerPort on the host (they are
        # only documentation in Kubernetes): the probes resolved them first.
        c.pop("ports", None)
        for m in c.get("volumeMounts", []):
            v = next(x for x in spec["volumes"] if x["name"] == m["name"])
            if "hostPath" in v:
                m["readOnly"] = True
    # podman 4.3 removes a "once" init container right after it exits, and
    # fails the pod when it finds it still running: keep it instead. It also
    # gives init containers the pod's restart policy, restarting one that
    # succeeded for ever under Always (kubelet runs it once): OnFailure.
    if spec.get("initContainers"):
        pod["metadata"].setdefault("annotations", {})["io.podman.annotations.init.container.type"] = "always"
        if spec.get("restartPolicy", "Always") == "Always":
            spec["restartPolicy"] = "OnFailure"
    if hosts:
        spec["hostAliases"] = [{"ip": ip, "hostnames": names} for ip, names in sorted(hosts.items())]
    if sa:
        sa_dir, env = sa
        spec.pop("serviceAccountName", None)
        spec.setdefault("volumes", []).append(
            {"name": "kube-api-access", "hostPath": {"path": sa_dir, "type": "Directory"}})
        for c in spec.get("initContainers", []) + spec["containers"]:
            c.setdefault("volumeMounts", []).append(
                {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                 "readOnly": True})
            c.setdefault("env", []).extend({"name": k, "value": v} for k, v in sorted(env.items()))
    return pod, claims


def service_names(svc):
    n, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]
    return [n, "%s.%s" % (n, ns), "%s.%s.svc" % (n, ns), "%s.%s.svc.cluster.local" % (n, ns)]


def selects(svc, pod):
    return all(pod["metadata"]["labels"].get(k) == v for k, v in svc["spec"]["selector"].items())


def http_probe(ip, port, path, deadline):
    """Polls http://ip:port/path like kubelet until it answers 2xx or 3xx;
    returns (status, seconds waited), or fails at the deadline."""
    t0 = time.monotonic()
    last = None
    while True:
        try:
            with urllib.request.urlopen("http://%s:%d%s" % (ip, port, path), timeout=2) as r:
                if 200 <= r.status < 400:
                    return r.status, time.monotonic() - t0
                last = r.status
        except urllib.error.HTTPError as e:
            last = e.code
        except OSError as e:
            last = str(e)
        check(time.monotonic() < deadline, "probe http://%s:%d%s: %s" % (ip, port, path, last))
        time.sleep(0.2)


def dump(pod, path):
    with open(path, "w") as f:
        json.dump(pod, f, indent=1)
    return path

