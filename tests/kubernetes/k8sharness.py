"""Shared by tests/kubernetes: the validator installed under the build tree
(npm ci, pinned by deploy/kubernetes/validate/package-lock.json), the
rendered manifests it writes as JSON, and a fake Kubernetes API server
(HTTPS, bearer token, the Secrets of one namespace) for the keys Job's
script, with the service-account directory a pod would get.

Stdlib only (run with /usr/bin/python3); openssl makes the fake server's
certificate."""
import base64
import http.server
import json
import os
import shutil
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import zptest  # noqa: E402
from zptest import check  # noqa: E402

K8S_SRC = os.path.join(zptest.SOURCE, "deploy", "kubernetes")
VALIDATE_SRC = os.path.join(K8S_SRC, "validate")
NODE_DIR = os.path.join(zptest.BUILD, "tests", "kubernetes")


def tools():
    """node and npm, or a failure that says how to get them."""
    found = {t: shutil.which(t) for t in ("node", "npm")}
    missing = [t for t, p in found.items() if not p]
    check(not missing, "tests/kubernetes need %s: apt-get install nodejs npm "
          "(scripts/test.sh installs them)" % " and ".join(missing))
    return found


def install_validator():
    """npm ci of the validator's pinned packages into the build tree, once
    (again when the lock file changes). Returns the node_modules path."""
    npm = tools()["npm"]
    os.makedirs(NODE_DIR, exist_ok=True)
    lock = os.path.join(VALIDATE_SRC, "package-lock.json")
    stamp = os.path.join(NODE_DIR, ".installed-lock")
    modules = os.path.join(NODE_DIR, "node_modules")
    with open(lock, "rb") as f:
        want = f.read()
    try:
        with open(stamp, "rb") as f:
            if f.read() == want and os.path.isdir(os.path.join(modules, "kubernetes-models")):
                return modules
    except OSError:
        pass
    for name in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(VALIDATE_SRC, name), NODE_DIR)
    t0 = time.monotonic()
    r = zptest.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=NODE_DIR, capture_output=True, timeout=600)
    check(r.returncode == 0, "npm ci in %s failed (exit %d): %s" % (
        NODE_DIR, r.returncode, (r.stdout + r.stderr).decode(errors="replace")[-2000:]))
    with open(stamp, "wb") as f:
        f.write(want)
    print("    npm ci kubernetes-models, @kubernetes-models/keda, yaml into %s (%.1f s)"
          % (NODE_DIR, time.monotonic() - t0), flush=True)
    return modules


def node(script, *args, json_out=None, timeout=120):
    """Runs a validator script with the installed modules; returns the
    CompletedProcess (text)."""
    modules = install_validator()
    cmd = [tools()["node"], os.path.join(VALIDATE_SRC, script)] + list(args)
    if json_out:
        cmd[2:2] = ["--json", json_out]
    return zptest.run(cmd, capture_output=True, text=True, timeout=timeout,
                      env=dict(os.environ, ZPIPE_K8S_NODE_MODULES=modules))


_rendered = {}


def rendered(d):
    """The validator's view of deploy/kubernetes (it must pass): the
    objects kubectl apply -k would send, the extras, the metrics read."""
    if d in _rendered:
        return _rendered[d]
    out = os.path.join(d, "rendered.json")
    r = node("validate.mjs", K8S_SRC, json_out=out)
    check(r.returncode == 0, "the validator fails on deploy/kubernetes:\n%s%s" % (r.stdout, r.stderr))
    with open(out) as f:
        _rendered[d] = json.load(f)
    return _rendered[d]


def find(objects, kind, name=None):
    hits = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    check(len(hits) == 1, "expected one %s %s, found %d" % (kind, name or "", len(hits)))
    return hits[0]


def keys_script(objects):
    """The keys Job's script (from its ConfigMap) and the Job."""
    job = find(objects, "Job")
    spec = job["spec"]["template"]["spec"]
    vol = next(v for v in spec["volumes"] if "configMap" in v)
    cm = find(objects, "ConfigMap", vol["configMap"]["name"])
    c = spec["containers"][0]
    mount = next(m for m in c["volumeMounts"] if m["name"] == vol["name"])
    script = next(a for a in c.get("args", []) + c.get("command", []) if a.startswith(mount["mountPath"] + "/"))
    return cm["data"][os.path.basename(script)], job


def role_allows(objects, sa, verb, name):
    """Would the Roles bound to service account sa let it do verb on the
    Secret name (None: a create, which names none)?"""
    for b in objects:
        if b["kind"] != "RoleBinding" or not any(
                s["kind"] == "ServiceAccount" and s["name"] == sa for s in b.get("subjects", [])):
            continue
        role = find(objects, "Role", b["roleRef"]["name"])
        for rule in role.get("rules", []):
            if ("" in rule.get("apiGroups", []) and "secrets" in rule.get("resources", [])
                    and verb in rule.get("verbs", [])
                    and ("resourceNames" not in rule or name in rule["resourceNames"])):
                return True
    return False


class FakeApi:
    """An HTTPS server that answers the Secret requests of one namespace as
    the Kubernetes API does (GET one, POST one: 201, 404, 409), checks the
    bearer token, and records every request. sa_dir holds what a pod's
    service account mount holds: token, namespace, ca.crt. host is the
    address clients use (the certificate's), bind where it listens.

    fail: {"GET"|"POST": status} answers that status instead."""

    def __init__(self, d, host="127.0.0.1", namespace="zpipe", bind=None):
        self.namespace = namespace
        self.secrets = {}
        self.requests = []
        self.fail = {}
        self.token = base64.b64encode(os.urandom(24)).decode()
        self.sa_dir = os.path.join(d, "serviceaccount")
        os.makedirs(self.sa_dir, exist_ok=True)
        cert, key = os.path.join(d, "api.crt"), os.path.join(d, "api.key")
        r = zptest.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=kubernetes", "-addext", "subjectAltName=IP:%s" % host,
                        "-keyout", key, "-out", cert], capture_output=True, timeout=60)
        check(r.returncode == 0, "openssl req: %s" % r.stderr.decode(errors="replace"))
        shutil.copy(cert, os.path.join(self.sa_dir, "ca.crt"))
        for name, text in (("token", self.token), ("namespace", namespace)):
            with open(os.path.join(self.sa_dir, name), "w") as f:
                f.write(text)
        for f in os.listdir(self.sa_dir):
            os.chmod(os.path.join(self.sa_dir, f), 0o644)
        os.chmod(self.sa_dir, 0o755)
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                base = "/api/v1/namespaces/%s/secrets" % api.namespace
                name = self.path[len(base) + 1:] if self.path.startswith(base + "/") else None
                api.requests.append((method, self.path, name, body))
                if self.headers.get("Authorization") != "Bearer " + api.token:
                    return self._answer(401, {"kind": "Status", "code": 401})
                if method in api.fail:
                    return self._answer(api.fail[method], {"kind": "Status", "code": api.fail[method]})
                if method == "GET" and name:
                    if name in api.secrets:
                        return self._answer(200, api.secrets[name])
                    return self._answer(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                if method == "POST" and self.path == base:
                    sname = body["metadata"]["name"]
                    if sname in api.secrets:
                        return self._answer(409, {"kind": "Status", "code": 409, "reason": "AlreadyExists"})
                    api.secrets[sname] = body
                    return self._answer(201, body)
                return self._answer(404, {"kind": "Status", "code": 404})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self.server = http.server.ThreadingHTTPServer((bind or host, 0), Handler)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.host, self.port = host, self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def env(self):
        return {"KUBERNETES_SERVICE_HOST": self.host, "KUBERNETES_SERVICE_PORT": str(self.port)}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def check_keys_secret(secret, components):
    """The Secret the keys Job made: a keypair per component, each a czmq
    certificate whose public half matches, every key distinct. Returns
    {file name: bytes}."""
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    want = {"%s.%s" % (c, s) for c in components for s in ("key", "key_secret")}
    check(set(data) == want, "secret keys %s, want %s" % (sorted(data), sorted(want)))

    def field(text, name):
        for line in text.decode().splitlines():
            line = line.strip()
            if line.startswith(name) and "=" in line:
                return line.split("=", 1)[1].strip().strip('"')
        return None
    publics = set()
    for c in components:
        pub, sec = field(data[c + ".key"], "public-key"), field(data[c + ".key_secret"], "public-key")
        check(pub and len(pub) == 40 and pub == sec, "%s: public keys %r and %r" % (c, pub, sec))
        check(field(data[c + ".key"], "secret-key") is None, "%s.key holds a secret key" % c)
        s = field(data[c + ".key_secret"], "secret-key")
        check(s and len(s) == 40, "%s.key_secret: no secret key" % c)
        publics.add(pub)
    check(len(publics) == len(components), "keypairs are not distinct")
    return data
