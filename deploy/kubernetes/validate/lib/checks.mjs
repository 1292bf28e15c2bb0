// Cross-checks between the objects of one apply: what the schemas cannot
// see because it spans objects (a Service selecting no pod, a probe on a
// port no container has, a volume naming a Secret no one makes, a worker
// the NetworkPolicies would cut off from the ventilator), and the policy
// this deployment keeps (probes, requests and limits, the restricted Pod
// Security Standard, one autoscaler per Deployment).
import { podSpecsOf, CLUSTER_SCOPED } from "./kustomize.mjs";

const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"]);
const RESTRICTED_VOLUMES = new Set(["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"]);

// Names the API server validates and the schemas do not.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_NAMES = new Set(["Service", "Namespace", "StatefulSet"]); // DNS labels, not subdomains
function nameProblems(kind, name, what) {
  if (typeof name !== "string") return [`${what} is not a string`];
  const label = what !== "metadata.name" || LABEL_NAMES.has(kind);
  if (label ? !(DNS_LABEL.test(name) && name.length <= 63) : !(DNS_SUBDOMAIN.test(name) && name.length <= 253))
    return [`${what} ${JSON.stringify(name)} is not a DNS-1123 ${label ? "label" : "subdomain"}`];
  return [];
}
function portNameProblems(name) {
  // IANA_SVC_NAME: at most 15 characters, lower-case letters, digits and
  // single inner hyphens, at least one letter
  if (name === undefined) return [];
  if (!(typeof name === "string" && name.length <= 15 && /^[a-z0-9]([a-z0-9]|-(?!-))*[a-z0-9]$|^[a-z]$/.test(name) && /[a-z]/.test(name)))
    return [`port name ${JSON.stringify(name)} is not an IANA service name (15 characters at most, a-z, 0-9, single hyphens)`];
  return [];
}

const nsOf = (o) => (CLUSTER_SCOPED.has(o.kind) ? "" : o.metadata?.namespace || "default");
const idOf = (o) => `${o.kind}/${o.metadata?.name}`;

export function selectorMatches(sel, labels) {
  if (!sel) return false;
  labels = labels || {};
  for (const [k, v] of Object.entries(sel.matchLabels || {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions || []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const ok = {
      In: has && (e.values || []).includes(labels[e.key]),
      NotIn: !has || !(e.values || []).includes(labels[e.key]),
      Exists: has,
      DoesNotExist: !has,
    }[e.operator];
    if (!ok) return false;
  }
  return true;
}

// Pods a set of objects would run: [{owner, ns, labels, spec, path}].
function podTemplates(objects) {
  const out = [];
  for (const o of objects)
    for (const [path, spec] of podSpecsOf(o)) {
      const labels = o.kind === "Pod" ? o.metadata?.labels : o.spec?.template?.metadata?.labels;
      out.push({ owner: o, ns: nsOf(o), labels: labels || {}, spec, path });
    }
  return out;
}

const containersOf = (spec) => [...(spec.initContainers || []), ...(spec.containers || [])];

// The container port a Service targetPort, probe or NetworkPolicy port names.
function findPort(containers, port) {
  for (const c of containers)
    for (const p of c.ports || [])
      if ((typeof port === "string" && p.name === port) || (typeof port === "number" && p.containerPort === port))
        return p;
  return null;
}

// Secrets made at run time by a Job (the keys Job: ZPIPE_KEYS_SECRET names
// the Secret, ZPIPE_KEYS_COMPONENTS the keypairs in it).
function runtimeSecrets(objects) {
  const out = new Map();
  for (const o of objects) {
    if (o.kind !== "Job") continue;
    for (const [, spec] of podSpecsOf(o))
      for (const c of spec.containers || []) {
        const env = Object.fromEntries((c.env || []).map((e) => [e.name, e.value]));
        if (!env.ZPIPE_KEYS_SECRET) continue;
        const comps = (env.ZPIPE_KEYS_COMPONENTS || "sink ventilator worker client").split(/\s+/).filter(Boolean);
        out.set(`${nsOf(o)}/${env.ZPIPE_KEYS_SECRET}`, {
          keys: new Set(comps.flatMap((n) => [`${n}.key`, `${n}.key_secret`])),
          job: o,
          serviceAccount: spec.serviceAccountName || "default",
        });
      }
  }
  return out;
}

// The files a Secret or ConfigMap volume puts under its mount path.
function volumeFiles(vol, keys) {
  const src = vol.secret || vol.configMap;
  const items = src.items;
  const files = new Set();
  for (const it of items || [...keys].map((k) => ({ key: k, path: k }))) {
    const parts = it.path.split("/");
    for (let i = 1; i <= parts.length; i++) files.add(parts.slice(0, i).join("/"));
  }
  return files;
}

// Endpoints a container connects to: tcp://HOST:PORT with a host name.
function endpointsOf(c) {
  const out = [];
  for (const e of c.env || []) {
    const m = typeof e.value === "string" && e.value.match(/^tcp:\/\/([a-z][a-z0-9.-]*):(\d+)$/);
    if (m) out.push({ env: e.name, host: m[1], port: Number(m[2]) });
  }
  return out;
}

function policyAllows(policies, target, targetPort, source) {
  // NetworkPolicy semantics: a pod no Ingress policy selects takes anything;
  // otherwise some rule of a policy that selects it must let source in.
  const selecting = policies.filter(
    (p) => nsOf(p) === target.ns && selectorMatches(p.spec.podSelector, target.labels) &&
      (p.spec.policyTypes || ["Ingress"]).includes("Ingress"));
  if (!selecting.length) return true;
  for (const p of selecting)
    for (const rule of p.spec.ingress || []) {
      const fromOk = !rule.from || rule.from.length === 0 || rule.from.some((peer) => {
        if (peer.ipBlock) return false;
        const nsOk = peer.namespaceSelector ? source === null ? false : selectorMatches(peer.namespaceSelector, source.nsLabels) : source && source.ns === target.ns;
        const podOk = peer.podSelector ? source && selectorMatches(peer.podSelector, source.labels) : true;
        return nsOk && podOk;
      });
      const portOk = !rule.ports || rule.ports.length === 0 || rule.ports.some((pp) =>
        (pp.protocol || "TCP") === "TCP" &&
        (pp.port === undefined || pp.port === targetPort.name || pp.port === targetPort.containerPort));
      if (fromOk && portOk) return true;
    }
  return false;
}

function checkPodSpec(t, ctx, err) {
  const { spec, owner } = t;
  const where = (s) => err(owner, `${t.path}: ${s}`);
  const containers = containersOf(spec);
  const names = new Set();
  for (const c of containers) {
    if (names.has(c.name)) where(`container name ${c.name} used twice`);
    names.add(c.name);
    for (const p of nameProblems("", c.name, "container name")) where(p);
    for (const p of c.ports || []) for (const q of portNameProblems(p.name)) where(`container ${c.name}: ${q}`);
  }
  for (const v of spec.volumes || []) for (const p of nameProblems("", v.name, "volume name")) where(p);
  for (const [k, v] of Object.entries(t.labels))
    if (typeof v !== "string" || v.length > 63 || !LABEL_VALUE.test(v)) where(`pod label ${k}: value ${JSON.stringify(v)} is not a valid label value`);
  // volumes: each one used, each mount names one, Secrets and ConfigMaps exist
  const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
  for (const vct of owner.kind === "StatefulSet" ? owner.spec.volumeClaimTemplates || [] : [])
    volumes.set(vct.metadata?.name, { persistentVolumeClaim: { claimName: vct.metadata?.name } });
  const used = new Set();
  const provided = []; // [mountPath, Set(files)] for Secret and ConfigMap mounts
  for (const c of containers) {
    const paths = new Set();
    for (const m of c.volumeMounts || []) {
      if (paths.has(m.mountPath)) where(`container ${c.name}: mountPath ${m.mountPath} used twice`);
      paths.add(m.mountPath);
      const v = volumes.get(m.name);
      if (!v) {
        where(`container ${c.name}: volumeMount ${m.name} names no volume`);
        continue;
      }
      used.add(m.name);
      if (v.secret || v.configMap) {
        const keys = v.secret ? ctx.secretKeys(t.ns, v.secret.secretName) : ctx.configMapKeys(t.ns, v.configMap.name);
        if (keys) provided.push([c.name, m.mountPath, volumeFiles(v, keys)]);
      }
      if (v.persistentVolumeClaim && owner.kind !== "StatefulSet" && !ctx.has("PersistentVolumeClaim", t.ns, v.persistentVolumeClaim.claimName))
        where(`volume ${m.name}: no PersistentVolumeClaim ${v.persistentVolumeClaim.claimName}`);
    }
  }
  for (const [name, v] of volumes) {
    if (!used.has(name)) where(`volume ${name} is mounted by no container`);
    const src = v.secret || v.configMap;
    if (!src) continue;
    const kind = v.secret ? "Secret" : "ConfigMap";
    const ref = v.secret ? src.secretName : src.name;
    const keys = v.secret ? ctx.secretKeys(t.ns, ref) : ctx.configMapKeys(t.ns, ref);
    if (!keys) {
      if (!src.optional) where(`volume ${name}: no ${kind} ${ref} (in the set, or made by a Job)`);
      continue;
    }
    for (const it of src.items || []) if (!keys.has(it.key)) where(`volume ${name}: ${kind} ${ref} has no key ${it.key}`);
  }
  // a file a container reads from an emptyDir an init container fills must
  // be one that init container names (it copies the key there)
  const filled = new Map(); // volume name -> the init containers' words
  for (const ic of spec.initContainers || [])
    for (const m of ic.volumeMounts || [])
      if (volumes.get(m.name)?.emptyDir && !m.readOnly)
        filled.set(m.name, (filled.get(m.name) || []).concat(ic.command || [], ic.args || []));
  for (const c of spec.containers || [])
    for (const m of c.volumeMounts || []) {
      const words = filled.get(m.name);
      if (!words) continue;
      for (const e of c.env || [])
        if (typeof e.value === "string" && e.value.startsWith(m.mountPath + "/")) {
          const file = e.value.slice(m.mountPath.length + 1).split("/").pop();
          if (!words.some((w) => typeof w === "string" && w.split(/[\s/]/).includes(file)))
            where(`container ${c.name}: ${e.name}=${e.value}: no init container puts ${file} in volume ${m.name}`);
        }
    }
  // a path under a Secret or ConfigMap mount, in a command, argument or
  // variable of the container that mounts it, must be a file the volume has
  for (const c of containers)
    for (const s of [...(c.command || []), ...(c.args || []), ...(c.env || []).map((e) => e.value)]) {
      if (typeof s !== "string") continue;
      for (const [cname, mp, files] of provided) {
        if (cname !== c.name || !s.startsWith(mp + "/")) continue;
        const rel = s.slice(mp.length + 1).replace(/\/$/, "");
        if (!files.has(rel)) where(`container ${c.name}: ${s} is not in the volume mounted at ${mp} (it has ${[...files].join(", ")})`);
      }
    }
  if (spec.serviceAccountName && spec.serviceAccountName !== "default" && !ctx.has("ServiceAccount", t.ns, spec.serviceAccountName))
    where(`no ServiceAccount ${spec.serviceAccountName}`);
  // every container: requests and limits for cpu and memory, an image
  for (const c of containers) {
    for (const kind of ["requests", "limits"])
      for (const r of ["cpu", "memory"])
        if (c.resources?.[kind]?.[r] === undefined) where(`container ${c.name}: no resources.${kind}.${r}`);
    if (!c.image) where(`container ${c.name}: no image`);
    else if (ctx.images.length && !ctx.images.includes(c.image))
      where(`container ${c.name}: image ${c.image} is not one the kustomization's images: sets (${ctx.images.join(", ")})`);
  }
  // long-running containers: liveness and readiness probes on ports they have
  for (const c of spec.containers || []) {
    const longRunning = WORKLOADS.has(owner.kind);
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      const p = c[probe];
      if (!p) {
        if (longRunning && probe !== "startupProbe") where(`container ${c.name}: no ${probe}`);
        continue;
      }
      const h = p.httpGet || p.tcpSocket || p.grpc;
      if (h && !findPort([c], h.port)) where(`container ${c.name}: ${probe} port ${h.port} is not a port of the container`);
    }
  }
  // the restricted Pod Security Standard, where the namespace enforces it
  if (ctx.restricted(t.ns)) {
    const psc = spec.securityContext || {};
    for (const k of ["hostNetwork", "hostPID", "hostIPC"]) if (spec[k]) where(`${k} is not allowed (restricted)`);
    for (const [name, v] of volumes)
      if (!Object.keys(v).some((k) => RESTRICTED_VOLUMES.has(k))) where(`volume ${name}: type not allowed (restricted)`);
    for (const c of containers) {
      const sc = c.securityContext || {};
      const pre = `container ${c.name}`;
      if (!(sc.runAsNonRoot ?? psc.runAsNonRoot)) where(`${pre}: runAsNonRoot is not true (restricted)`);
      if ((sc.runAsUser ?? psc.runAsUser) === 0) where(`${pre}: runAsUser 0 (restricted)`);
      const seccomp = (sc.seccompProfile || psc.seccompProfile || {}).type;
      if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") where(`${pre}: seccompProfile must be RuntimeDefault or Localhost (restricted)`);
      if (sc.allowPrivilegeEscalation !== false) where(`${pre}: allowPrivilegeEscalation must be false (restricted)`);
      if (sc.privileged) where(`${pre}: privileged (restricted)`);
      if (!(sc.capabilities?.drop || []).includes("ALL")) where(`${pre}: capabilities must drop ALL (restricted)`);
      for (const cap of sc.capabilities?.add || []) if (cap !== "NET_BIND_SERVICE") where(`${pre}: capability ${cap} (restricted)`);
    }
  }
  for (const k of ["app.kubernetes.io/name"])
    if (!t.labels[k]) where(`pod labels lack ${k} (the NetworkPolicies and kubectl -l select on it)`);
}

// All problems of a set of objects: [{object, message}].
export function crossCheck(objects, { images = [] } = {}) {
  const problems = [];
  const err = (o, message) => problems.push({ object: o ? `${idOf(o)}` : "(set)", message });
  const byKey = new Map();
  for (const o of objects) {
    if (!o || typeof o !== "object" || !o.kind || !o.apiVersion || !o.metadata?.name) {
      err(null, `an object without apiVersion, kind or metadata.name: ${JSON.stringify(o).slice(0, 120)}`);
      continue;
    }
    const key = `${o.kind}/${nsOf(o)}/${o.metadata.name}`;
    if (byKey.has(key)) err(o, "defined twice");
    for (const p of nameProblems(o.kind, o.metadata.name, "metadata.name")) err(o, p);
    for (const [k, v] of Object.entries(o.metadata.labels || {}))
      if (typeof v !== "string" || v.length > 63 || !LABEL_VALUE.test(v)) err(o, `label ${k}: value ${JSON.stringify(v)} is not a valid label value`);
    if (o.kind === "Service") for (const p of o.spec?.ports || []) for (const q of portNameProblems(p.name)) err(o, q);
    byKey.set(key, o);
  }
  const good = [...byKey.values()];
  const get = (kind, ns, name) => byKey.get(`${kind}/${CLUSTER_SCOPED.has(kind) ? "" : ns}/${name}`);
  const made = runtimeSecrets(good);
  const namespaces = new Map(good.filter((o) => o.kind === "Namespace").map((o) => [o.metadata.name, o]));
  const ctx = {
    images,
    has: (kind, ns, name) => !!get(kind, ns, name),
    secretKeys(ns, name) {
      const s = get("Secret", ns, name);
      if (s) return new Set([...Object.keys(s.data || {}), ...Object.keys(s.stringData || {})]);
      return made.get(`${ns}/${name}`)?.keys || null;
    },
    configMapKeys(ns, name) {
      const c = get("ConfigMap", ns, name);
      return c ? new Set([...Object.keys(c.data || {}), ...Object.keys(c.binaryData || {})]) : null;
    },
    restricted: (ns) => namespaces.get(ns)?.metadata?.labels?.["pod-security.kubernetes.io/enforce"] === "restricted",
  };
  const pods = podTemplates(good);
  const policies = good.filter((o) => o.kind === "NetworkPolicy");
  for (const t of pods) checkPodSpec(t, ctx, err);
  for (const o of good) {
    const ns = nsOf(o);
    if (WORKLOADS.has(o.kind) && !selectorMatches(o.spec?.selector, o.spec?.template?.metadata?.labels))
      err(o, "spec.selector does not match the pod template's labels");
    if (o.kind === "StatefulSet" && !get("Service", ns, o.spec.serviceName)) err(o, `serviceName ${o.spec.serviceName}: no such Service`);
    if (o.kind === "Service") {
      const sel = o.spec?.selector;
      const targets = sel ? pods.filter((t) => t.ns === ns && selectorMatches({ matchLabels: sel }, t.labels)) : [];
      if (!targets.length) err(o, `selector ${JSON.stringify(sel)} matches no pod`);
      for (const p of o.spec?.ports || []) {
        const tp = p.targetPort ?? p.port;
        for (const t of targets) {
          const cp = findPort(t.spec.containers || [], tp);
          if (!cp) err(o, `port ${p.name || p.port}: targetPort ${tp} is not a port of ${idOf(t.owner)}`);
          else if (policies.length && !policies.some((pol) => nsOf(pol) === ns && selectorMatches(pol.spec.podSelector, t.labels) &&
              (pol.spec.ingress || []).some((r) => !r.ports || r.ports.some((pp) => pp.port === cp.name || pp.port === cp.containerPort))))
            err(o, `port ${p.name || p.port}: no NetworkPolicy lets anyone reach ${idOf(t.owner)} on ${cp.name || cp.containerPort}`);
        }
      }
    }
    if (o.kind === "NetworkPolicy") {
      const sel = pods.filter((t) => t.ns === ns && selectorMatches(o.spec.podSelector, t.labels));
      if (!sel.length) err(o, "podSelector matches no pod");
      for (const r of o.spec.ingress || [])
        for (const pp of r.ports || [])
          if (typeof pp.port === "string" && !sel.some((t) => findPort(t.spec.containers || [], pp.port)))
            err(o, `ingress port ${pp.port} is a port of none of the pods it selects`);
    }
    if (o.kind === "RoleBinding") {
      if (o.roleRef?.kind === "Role" && !get("Role", ns, o.roleRef.name)) err(o, `roleRef: no Role ${o.roleRef.name}`);
      for (const s of o.subjects || [])
        if (s.kind === "ServiceAccount" && !get("ServiceAccount", s.namespace || ns, s.name)) err(o, `subject: no ServiceAccount ${s.name}`);
    }
  }
  // every tcp://service:port a container connects to: a Service with that
  // port, whose pods the NetworkPolicies let this pod reach on it
  for (const t of pods)
    for (const c of containersOf(t.spec))
      for (const ep of endpointsOf(c)) {
        const [svcName, svcNs] = ep.host.replace(/\.svc(\.cluster\.local)?$/, "").split(".");
        const svc = get("Service", svcNs || t.ns, svcName);
        const at = `${t.path}: container ${c.name}: ${ep.env}=tcp://${ep.host}:${ep.port}`;
        if (!svc) {
          err(t.owner, `${at}: no Service ${svcName}`);
          continue;
        }
        const sp = (svc.spec.ports || []).find((p) => p.port === ep.port);
        if (!sp) {
          err(t.owner, `${at}: Service ${svcName} has no port ${ep.port}`);
          continue;
        }
        // the API server labels every namespace with its name
        const source = { ns: t.ns, labels: t.labels, nsLabels: { ...namespaces.get(t.ns)?.metadata?.labels, "kubernetes.io/metadata.name": t.ns } };
        for (const target of pods.filter((p) => p.ns === nsOf(svc) && selectorMatches({ matchLabels: svc.spec.selector }, p.labels))) {
          const cp = findPort(target.spec.containers || [], sp.targetPort ?? sp.port);
          if (cp && !policyAllows(policies, target, cp, source))
            err(t.owner, `${at}: the NetworkPolicies do not let it reach ${idOf(target.owner)} on ${cp.name || cp.containerPort}`);
        }
      }
  // the keys Job's service account may do what the script does
  for (const [key, m] of made) {
    const [ns, name] = key.split("/");
    const roles = good.filter((b) => b.kind === "RoleBinding" && nsOf(b) === ns &&
      (b.subjects || []).some((s) => s.kind === "ServiceAccount" && s.name === m.serviceAccount))
      .map((b) => get("Role", ns, b.roleRef.name)).filter(Boolean);
    const can = (verb, resName) => roles.some((r) => (r.rules || []).some((rule) =>
      (rule.apiGroups || []).includes("") && (rule.resources || []).includes("secrets") && (rule.verbs || []).includes(verb) &&
      (!rule.resourceNames || (resName && rule.resourceNames.includes(resName)))));
    if (!can("get", name)) err(m.job, `service account ${m.serviceAccount} may not get secret ${name}`);
    if (!can("create", null)) err(m.job, `service account ${m.serviceAccount} may not create secrets`);
  }
  // autoscalers: an existing target, one each, and no replicas in the
  // target (every apply would reset what the autoscaler set)
  const scaled = new Map();
  const metrics = new Set();
  for (const o of good) {
    let ref;
    if (o.kind === "ScaledObject") {
      ref = o.spec.scaleTargetRef;
      for (const tr of o.spec.triggers || []) {
        if (tr.type !== "prometheus") continue;
        const md = tr.metadata || {};
        if (!/^https?:\/\/[^/\s]+/.test(md.serverAddress || "")) err(o, `trigger: serverAddress ${md.serverAddress} is not a URL`);
        if (!(Number(md.threshold) > 0)) err(o, `trigger: threshold ${md.threshold} is not a positive number`);
        for (const m of String(md.query || "").matchAll(/\b(zpipe_[a-z0-9_]+)/g)) metrics.add(m[1]);
        if (!md.query) err(o, "trigger: no query");
      }
    } else if (o.kind === "HorizontalPodAutoscaler") {
      ref = o.spec.scaleTargetRef;
      for (const m of o.spec.metrics || []) if (m.type === "External" && m.external?.metric?.name) metrics.add(m.external.metric.name);
    } else continue;
    const kind = ref?.kind || "Deployment";
    const target = get(kind, nsOf(o), ref?.name);
    if (!target) {
      err(o, `scaleTargetRef: no ${kind} ${ref?.name}`);
      continue;
    }
    const k = idOf(target);
    if (scaled.has(k)) err(o, `${k} is already scaled by ${idOf(scaled.get(k))}`);
    scaled.set(k, o);
    if (target.spec.replicas !== undefined) err(target, `spec.replicas is set, but ${idOf(o)} scales it (every apply would reset it)`);
  }
  return { problems, metrics: [...metrics].sort() };
}
