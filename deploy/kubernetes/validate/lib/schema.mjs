// Every object against its schema: the model class kubernetes-models (or
// @kubernetes-models/keda) has for its apiVersion and kind, whose
// .validate() runs the JSON schema of the Kubernetes OpenAPI (or KEDA CRD);
// then the field names against the type declarations (lib/dts.mjs), which
// the schemas do not check. An apiVersion/kind without a model is an error:
// nothing goes unchecked.
import fs from "node:fs";
import path from "node:path";
import { TypeIndex } from "./dts.mjs";
import { modulesDir, require } from "./modules.mjs";

function packageDir(name) {
  const p = path.join(modulesDir, name);
  if (!fs.existsSync(path.join(p, "package.json")))
    throw new Error(`${name} is not installed in ${modulesDir}: run npm ci in deploy/kubernetes/validate (or set ZPIPE_K8S_NODE_MODULES)`);
  return p;
}

export function versions() {
  const v = {};
  for (const n of ["kubernetes-models", "@kubernetes-models/keda", "yaml"])
    v[n] = JSON.parse(fs.readFileSync(path.join(packageDir(n), "package.json"), "utf8")).version;
  return v;
}

// apiVersion -> [package, subpath]
function moduleFor(apiVersion) {
  if (typeof apiVersion !== "string") return null;
  if (apiVersion === "keda.sh/v1alpha1") return ["@kubernetes-models/keda", "keda.sh/v1alpha1"];
  if (/^[a-z0-9.]*\/?v\d+((alpha|beta)\d+)?$/.test(apiVersion)) return ["kubernetes-models", apiVersion];
  return null;
}

const types = new TypeIndex((spec, from) => {
  let base;
  if (spec.startsWith(".")) base = path.resolve(path.dirname(from), spec);
  else {
    const parts = spec.split("/");
    const pkg = spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
    base = path.join(modulesDir, pkg, spec.slice(pkg.length));
  }
  for (const f of [base + ".d.ts", path.join(base, "index.d.ts")]) if (fs.existsSync(f)) return f;
  return null;
});

// [] or the problems of one object, each a string.
export function checkSchema(obj) {
  const mod = moduleFor(obj.apiVersion);
  if (!mod) return [`no schema for apiVersion ${JSON.stringify(obj.apiVersion)}`];
  const [pkg, sub] = mod;
  const dir = path.join(packageDir(pkg), sub);
  if (!fs.existsSync(dir)) return [`no schema for apiVersion ${obj.apiVersion} in ${pkg}`];
  let Model;
  try {
    Model = require(`${pkg}/${sub}`)[obj.kind];
  } catch (e) {
    return [`cannot load ${pkg}/${sub}: ${e.message}`];
  }
  if (typeof Model !== "function" || !fs.existsSync(path.join(dir, `${obj.kind}.d.ts`)))
    return [`no schema for kind ${obj.kind} in ${obj.apiVersion}`];
  const problems = [];
  try {
    new Model(obj).validate();
  } catch (e) {
    const errs = e.errors || [{ instancePath: "", message: e.message }];
    for (const er of errs)
      problems.push(`schema: ${er.instancePath.replace(/^\//, "").replace(/\//g, ".") || "(object)"} ${er.message}${er.params && er.params.allowedValues ? " " + JSON.stringify(er.params.allowedValues) : ""}`);
  }
  const root = types.rootType(path.join(dir, `${obj.kind}.d.ts`), obj.kind);
  for (const f of types.unknownFields(obj, root)) problems.push(`unknown field ${f}`);
  return problems;
}
