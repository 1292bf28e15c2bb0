// The field names each Kubernetes and KEDA type allows, read from the
// TypeScript declarations (.d.ts) that kubernetes-models ships beside its
// JSON-schema validators. Those validators, like the OpenAPI schemas they
// come from, accept unknown fields; the API server does not (kubectl's
// default field validation is Strict), and a misspelt field such as
// `livenesProbe` would otherwise be dropped without a word.
//
// Only the subset of TypeScript those files use is read: interfaces of
// quoted fields, inline object types, index signatures, Array<T>, unions of
// literals and primitives, type aliases, imports and `export { A as B }`.
import fs from "node:fs";
import path from "node:path";

// A type: {k: "object", fields: Map(name -> type), index: type|null}
// | {k: "array", of} | {k: "union", of: [...]} | {k: "ref", name, file}
// | {k: "leaf"} (string, number, boolean, literals, any)
const LEAF = { k: "leaf" };

function tokenize(src) {
  src = src.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/\/\/[^\n]*/g, " ");
  const re = /\s*("(?:[^"\\]|\\.)*"|[A-Za-z_$][\w$.]*|\d+(?:\.\d+)?|\S)/y;
  const out = [];
  let m;
  while (re.lastIndex < src.length && (m = re.exec(src))) out.push(m[1]);
  return out;
}

class Parser {
  constructor(tokens, file) {
    this.t = tokens;
    this.i = 0;
    this.file = file;
  }
  peek(o = 0) {
    return this.t[this.i + o];
  }
  next() {
    return this.t[this.i++];
  }
  expect(tok) {
    const got = this.next();
    if (got !== tok) throw new Error(`${this.file}: expected ${tok}, got ${got} at token ${this.i}`);
  }
  type() {
    const alts = [this.primary()];
    while (this.peek() === "|" || this.peek() === "&") {
      this.next();
      alts.push(this.primary());
    }
    return alts.length === 1 ? alts[0] : { k: "union", of: alts };
  }
  primary() {
    const tok = this.next();
    if (tok === "|") return this.primary(); // a leading bar
    if (tok === "(") {
      const t = this.type();
      this.expect(")");
      return t;
    }
    if (tok === "{") return this.members();
    if (tok === "Array" && this.peek() === "<") {
      this.next();
      const of = this.type();
      this.expect(">");
      return { k: "array", of };
    }
    if (tok.startsWith('"') || /^\d/.test(tok)) return LEAF;
    if (["string", "number", "boolean", "any", "unknown", "null", "object", "true", "false"].includes(tok)) return LEAF;
    // IScaledObject["spec"]: an indexed access, not used for data shapes
    if (this.peek() === "[") {
      this.next();
      this.next();
      this.expect("]");
      return LEAF;
    }
    return { k: "ref", name: tok, file: this.file };
  }
  members() {
    const fields = new Map();
    let index = null;
    while (this.peek() !== "}") {
      if (this.peek() === "[") {
        // [key: string]: T
        this.next();
        this.next();
        this.expect(":");
        this.next();
        this.expect("]");
        this.expect(":");
        index = this.type();
      } else {
        let name = this.next();
        if (name.startsWith('"')) name = JSON.parse(name);
        if (this.peek() === "?") this.next();
        this.expect(":");
        fields.set(name, this.type());
      }
      if (this.peek() === ";" || this.peek() === ",") this.next();
    }
    this.expect("}");
    return { k: "object", fields, index, file: this.file };
  }
}

// One .d.ts file: its interfaces and aliases by exported and local name, and
// where each imported name comes from.
function parseFile(file) {
  const src = fs.readFileSync(file, "utf8");
  const decls = new Map(); // local name -> type
  const imports = new Map(); // name -> module specifier
  const exportsAs = new Map(); // exported alias -> local name
  const stmts = src.replace(/\/\*[\s\S]*?\*\//g, " ");
  for (const m of stmts.matchAll(/import\s*\{([^}]*)\}\s*from\s*"([^"]+)"/g))
    for (const part of m[1].split(",")) {
      const [orig, alias] = part.split(/\s+as\s+/).map((s) => s.trim());
      if (orig) imports.set(alias || orig, { spec: m[2], name: orig });
    }
  for (const m of stmts.matchAll(/export\s*\{([^}]*)\}\s*;/g))
    for (const part of m[1].split(",")) {
      const [orig, alias] = part.split(/\s+as\s+/).map((s) => s.trim());
      if (orig) exportsAs.set(alias || orig, orig);
    }
  const tokens = tokenize(src);
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] === "interface") {
      const name = tokens[i + 1];
      let j = i + 2;
      const bases = [];
      if (tokens[j] === "extends") {
        j++;
        while (tokens[j] !== "{") {
          if (tokens[j] !== ",") bases.push(tokens[j]);
          j++;
        }
      }
      const p = new Parser(tokens, file);
      p.i = j + 1;
      const t = p.members();
      t.bases = bases;
      decls.set(name, t);
      i = p.i - 1;
    } else if (tokens[i] === "type" && tokens[i + 2] === "=" && tokens[i - 1] !== "import") {
      const p = new Parser(tokens, file);
      p.i = i + 3;
      decls.set(tokens[i + 1], p.type());
      i = p.i - 1;
    }
  }
  return { file, decls, imports, exportsAs };
}

export class TypeIndex {
  // resolveModule(spec, fromFile) -> path of the .d.ts it names
  constructor(resolveModule) {
    this.resolveModule = resolveModule;
    this.files = new Map();
  }
  file(f) {
    if (!this.files.has(f)) this.files.set(f, parseFile(f));
    return this.files.get(f);
  }
  // The type a name stands for in a file, following imports and aliases.
  lookup(name, file, depth = 0) {
    if (depth > 20) return LEAF;
    const pf = this.file(file);
    const local = pf.exportsAs.get(name) || name;
    if (pf.decls.has(local)) return pf.decls.get(local);
    const imp = pf.imports.get(name);
    if (imp) {
      const target = this.resolveModule(imp.spec, file);
      if (target) return this.lookup(imp.name, target, depth + 1);
    }
    return LEAF; // TypeMeta, ModelData and friends: no data shape of ours
  }
  resolve(t) {
    let guard = 0;
    while (t && t.k === "ref" && guard++ < 20) t = this.lookup(t.name, t.file);
    return t || LEAF;
  }
  // The fields an object type allows, its bases' included.
  fieldsOf(t, file) {
    const fields = new Map(t.fields);
    for (const b of t.bases || []) {
      const bt = this.resolve({ k: "ref", name: b, file });
      if (bt.k === "object") for (const [n, ft] of this.fieldsOf(bt, file)) fields.set(n, ft);
    }
    return fields;
  }
  // Every field in value that its type does not declare, as JSON paths.
  unknownFields(value, t, at = "", out = []) {
    t = this.resolve(t);
    if (value === null || typeof value !== "object") return out;
    if (t.k === "union") {
      // Only unions of an object shape with leaves occur; check against the
      // first object or array shape that fits the value.
      const fit = t.of.map((x) => this.resolve(x)).find((x) => (Array.isArray(value) ? x.k === "array" : x.k === "object"));
      return fit ? this.unknownFields(value, fit, at, out) : out;
    }
    if (t.k === "array") {
      if (Array.isArray(value)) value.forEach((v, i) => this.unknownFields(v, t.of, `${at}[${i}]`, out));
      return out;
    }
    if (t.k !== "object" || Array.isArray(value)) return out;
    const fields = this.fieldsOf(t, t.file);
    for (const [k, v] of Object.entries(value)) {
      if (fields.has(k)) this.unknownFields(v, fields.get(k), `${at}.${k}`, out);
      else if (t.index) this.unknownFields(v, t.index, `${at}.${k}`, out);
      else out.push(`${at}.${k}`.replace(/^\./, ""));
    }
    return out;
  }
  // The root type of a model class: I<Kind> in <module>/<Kind>.d.ts.
  rootType(dtsFile, kind) {
    const t = this.lookup("I" + kind, dtsFile);
    if (t.k !== "object") throw new Error(`${dtsFile}: no interface I${kind}`);
    return Object.assign({}, t, { file: dtsFile });
  }
}
