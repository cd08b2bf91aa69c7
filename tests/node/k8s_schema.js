#!/usr/bin/env node
// k8s_schema.js FILE...: Kubernetes manifests checked offline against the
// API's OpenAPI schema as kubernetes-models carries it (the version pinned
// in package-lock.json):
//   - each document by the model of its apiVersion and kind (types,
//     required fields, enums, formats: kubernetes-models' validators);
//   - pod specs (of Pods and every workload kind) as the API server checks
//     them beyond the schema: unique container names, unique port names in
//     a container, volumeMounts naming volumes of the pod, restartPolicy
//     only on init containers, probes on no init container but a sidecar;
//   - and, which those validators do not do, strictly: every field must be
//     one the schema names for that object, so a misspelled or unknown
//     field is an error, as with `kubectl apply --validate=strict`. The
//     fields of each type are read from the models' own declarations
//     (*.d.ts, generated from the same schema); a form this reader does not
//     know is an error, never a pass.
// YAML 1.1 as Kubernetes reads it (yes/no are booleans); a duplicate key is
// an error. A List's items are checked one by one.
// Prints "ok FILE: N documents" per good file; errors on stderr as
//   FILE: document N (Kind "name"): PATH: what
// Exit 0 all valid, 1 not, 2 usage.
"use strict";
const fs = require("fs");
const path = require("path");
const MODULES = path.join(__dirname, "node_modules");
const MODELS = path.join(MODULES, "kubernetes-models");
if (!fs.existsSync(path.join(MODULES, "yaml")) || !fs.existsSync(MODELS)) {
  process.stderr.write("k8s_schema.js: kubernetes-models and yaml are not installed in tests/node (bash deploy/install-deps.sh)\n");
  process.exit(2);
}
const YAML = require("yaml");

// ---- the schema, from the declarations ----

const SCALARS = new Set(["string", "number", "boolean", "null", "true", "false"]);
const ANY = new Set(["any", "unknown", "object"]);
const TOKEN = /\s*("(?:[^"\\]|\\.)*"|[A-Za-z_$][\w$]*|\d+|[<>{}[\]:;|?,()])/y;

function tokenize(text, where) {
  const out = [];
  let pos = 0;
  for (let m; (TOKEN.lastIndex = pos), (m = TOKEN.exec(text)); pos = TOKEN.lastIndex) out.push(m[1]);
  const rest = text.slice(pos);
  if (rest.trim()) throw new Error(`${where}: cannot read "${rest.trim().slice(0, 40)}"`);
  return out;
}

// A type expression from tokens |t| at |t.i|: {t: scalar|any|array|map|ref}.
function parseType(t, file) {
  const members = [parseMember(t, file)];
  while (t[t.i] === "|") {
    t.i++;
    members.push(parseMember(t, file));
  }
  if (members.length === 1) return members[0];
  if (members.every((m) => m.t === "scalar")) return { t: "scalar" };
  throw new Error(`${file}: a union of objects is not handled`);
}

function expect(t, tok, file) {
  if (t[t.i] !== tok) throw new Error(`${file}: expected ${tok}, found ${t[t.i]}`);
  t.i++;
}

function parseMember(t, file) {
  const tok = t[t.i++];
  if (tok === "Array") {
    expect(t, "<", file);
    const of = parseType(t, file);
    expect(t, ">", file);
    return { t: "array", of };
  }
  if (tok === "{" && t[t.i] === "[") { // { [key: string]: T; }
    ["[", "key", ":", "string", "]", ":"].forEach((x) => expect(t, x, file));
    const of = parseType(t, file);
    if (t[t.i] === ";") t.i++;
    expect(t, "}", file);
    return { t: "map", of };
  }
  if (tok === "{") { // an object declared in place: { "field"?: T; ... }
    const props = parseProps(t, file, "}");
    expect(t, "}", file);
    return { t: "object", props };
  }
  if (tok.startsWith('"') || /^\d+$/.test(tok) || SCALARS.has(tok)) return { t: "scalar" };
  if (ANY.has(tok)) return { t: "any" };
  if (/^[A-Za-z_$][\w$]*$/.test(tok)) return { t: "ref", file, name: tok };
  throw new Error(`${file}: cannot read the type at ${tok}`);
}

// One declaration file: its imports, exported names, interfaces and types.
const files = new Map();
function readDts(file) {
  if (files.has(file)) return files.get(file);
  if (!fs.existsSync(file)) throw new Error(`${file}: no such declaration file`);
  const text = fs.readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
  const d = { file, imports: {}, exported: {}, interfaces: {}, types: {} };
  for (const m of text.matchAll(/import \{([^}]*)\} from "([^"]+)";/g)) {
    for (const name of m[1].split(",")) d.imports[name.trim()] = m[2];
  }
  for (const m of text.matchAll(/export (?:type )?\{([^}]*)\};/g)) {
    for (const pair of m[1].split(",")) {
      const [local, as] = pair.trim().split(/\s+as\s+/);
      d.exported[as || local] = local;
    }
  }
  for (const m of text.matchAll(/export (?:declare )?type (\w+) = ([^;]+);/g)) d.types[m[1]] = m[2];
  for (const m of text.matchAll(/export interface (\w+)(?: extends ([\w, ]+))? \{/g)) {
    let depth = 1;
    let i = m.index + m[0].length;
    for (; depth && i < text.length; i++) depth += text[i] === "{" ? 1 : text[i] === "}" ? -1 : 0;
    d.interfaces[m[1]] = { body: text.slice(m.index + m[0].length, i - 1), props: null };
  }
  files.set(file, d);
  return d;
}

// Fields `"name"?: TYPE;` up to the token |end| (or the end of |t|).
function parseProps(t, file, end) {
  const props = {};
  while (t.i < t.length && t[t.i] !== end) {
    const key = t[t.i++];
    if (!key.startsWith('"')) throw new Error(`${file}: expected a quoted field name, found ${key}`);
    if (t[t.i] === "?") t.i++;
    expect(t, ":", file);
    props[JSON.parse(key)] = parseType(t, file);
    expect(t, ";", file);
  }
  return props;
}

function interfaceProps(d, name) {
  const it = d.interfaces[name];
  if (!it.props) {
    const t = tokenize(it.body, d.file);
    t.i = 0;
    it.props = parseProps(t, d.file, undefined);
  }
  return it.props;
}

function moduleFile(from, spec) {
  const base = spec.startsWith(".") ? path.join(path.dirname(from), spec) : path.join(MODULES, spec);
  return base.replace(/\.js$/, "") + ".d.ts";
}

// A ref resolved to {t: "object", props} or another type.
function resolve(ref) {
  let d = readDts(ref.file);
  let name = ref.name;
  if (!d.interfaces[name] && !d.types[name]) {
    if (d.imports[name]) {
      d = readDts(moduleFile(d.file, d.imports[name]));
      name = d.exported[name] || name;
    } else if (d.exported[name]) {
      name = d.exported[name];
    }
  }
  if (d.interfaces[name]) return { t: "object", props: interfaceProps(d, name) };
  if (d.types[name]) {
    const t = tokenize(d.types[name], d.file);
    t.i = 0;
    const ty = parseType(t, d.file);
    return ty.t === "ref" ? resolve(ty) : ty;
  }
  throw new Error(`${d.file}: no type ${name}`);
}

// ---- the checks ----

function strict(value, type, at, errors) {
  if (type.t === "ref") type = resolve(type);
  if (value === null || value === undefined) return;
  if (type.t === "object" && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (!(k in type.props)) errors.push(`${at}/${k}: unknown field "${k}"`);
      else strict(v, type.props[k], `${at}/${k}`, errors);
    }
  } else if (type.t === "array" && Array.isArray(value)) {
    value.forEach((v, i) => strict(v, type.of, `${at}/${i}`, errors));
  } else if (type.t === "map" && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) strict(v, type.of, `${at}/${k}`, errors);
  }
}

// ---- what the API server checks beyond the schema, on pod specs ----

// Where each kind keeps its pod spec.
const POD_SPEC = {
  Pod: ["spec"],
  PodTemplate: ["template", "spec"],
  Deployment: ["spec", "template", "spec"],
  StatefulSet: ["spec", "template", "spec"],
  DaemonSet: ["spec", "template", "spec"],
  ReplicaSet: ["spec", "template", "spec"],
  Job: ["spec", "template", "spec"],
  CronJob: ["spec", "jobTemplate", "spec", "template", "spec"],
};
const PROBES = ["livenessProbe", "readinessProbe", "startupProbe", "lifecycle"];

// As pkg/apis/core/validation does: container names unique in the pod,
// port names unique in a container, every volumeMount naming a volume of
// the pod, restartPolicy only on init containers (Always: a sidecar), and
// probes and lifecycle hooks on no init container but a sidecar.
function podSpecErrors(spec, at) {
  const errors = [];
  if (!spec || typeof spec !== "object") return errors;
  const volumes = new Set((spec.volumes || []).map((v) => v && v.name));
  const names = new Set();
  for (const list of ["initContainers", "containers"]) {
    (spec[list] || []).forEach((c, i) => {
      if (!c || typeof c !== "object") return;
      const where = `${at}/${list}/${i}`;
      if (names.has(c.name)) errors.push(`${where}/name: duplicate container name "${c.name}"`);
      names.add(c.name);
      const ports = new Set();
      (c.ports || []).forEach((p, j) => {
        if (p && p.name && ports.has(p.name)) errors.push(`${where}/ports/${j}/name: duplicate port name "${p.name}"`);
        if (p && p.name) ports.add(p.name);
      });
      (c.volumeMounts || []).forEach((m, j) => {
        if (m && !volumes.has(m.name)) errors.push(`${where}/volumeMounts/${j}/name: no volume "${m.name}" in the pod`);
      });
      if (list === "containers" && c.restartPolicy !== undefined)
        errors.push(`${where}/restartPolicy: may not be set for non-init containers`);
      if (list === "initContainers" && c.restartPolicy !== "Always") {
        for (const k of PROBES) {
          if (c[k] !== undefined) errors.push(`${where}/${k}: may not be set for init containers without restartPolicy: Always`);
        }
      }
    });
  }
  return errors;
}

function podSpecOf(obj, at) {
  let v = obj;
  for (const k of POD_SPEC[obj.kind] || []) {
    if (!v || typeof v !== "object") return [null, at];
    v = v[k];
    at = `${at}/${k}`;
  }
  return POD_SPEC[obj.kind] ? [v, at] : [null, at];
}

const LIST_FIELDS = new Set(["apiVersion", "kind", "metadata", "items"]);

// Errors of one object (a document, or an item of a List).
function check(obj, at) {
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) return [`${at || "/"}: not an object`];
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== "string" || typeof kind !== "string") return [`${at || "/"}: no apiVersion and kind`];
  if (apiVersion === "v1" && kind === "List") {
    const errors = Object.keys(obj).filter((k) => !LIST_FIELDS.has(k)).map((k) => `${at}/${k}: unknown field "${k}"`);
    if (!Array.isArray(obj.items)) return errors.concat(`${at}/items: not a list`);
    obj.items.forEach((item, i) => errors.push(...check(item, `${at}/items/${i}`)));
    return errors;
  }
  const dts = path.join(MODELS, apiVersion, `${kind}.d.ts`);
  if (!/^[\w.]+(\/\w+)?$/.test(apiVersion) || !/^\w+$/.test(kind) || !fs.existsSync(dts))
    return [`${at || "/"}: no schema for apiVersion ${apiVersion}, kind ${kind}`];
  const errors = [];
  try {
    const Model = require(path.join(MODELS, apiVersion, kind))[kind];
    new Model(obj).validate();
  } catch (e) {
    for (const err of e.errors || [{ instancePath: "", message: e.message }]) {
      const extra = err.params && err.params.allowedValues ? ` (${err.params.allowedValues.join(", ")})` : "";
      errors.push(`${at}${err.instancePath || ""}: ${err.message}${extra}`);
    }
  }
  strict(obj, { t: "ref", file: dts, name: `I${kind}` }, at, errors);
  const [spec, specAt] = podSpecOf(obj, at);
  errors.push(...podSpecErrors(spec, specAt));
  return errors;
}

function describe(n, doc) {
  const name = doc && doc.metadata && doc.metadata.name;
  const kind = doc && doc.kind;
  return `document ${n}${kind ? ` (${kind}${name ? ` "${name}"` : ""})` : ""}`;
}

function main(argv) {
  if (!argv.length || argv[0].startsWith("-")) {
    process.stderr.write("usage: k8s_schema.js FILE...\n");
    return 2;
  }
  let bad = 0;
  for (const file of argv) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"), { version: "1.1" });
    let n = 0;
    let fileBad = 0;
    docs.forEach((doc, i) => {
      const errors = doc.errors.map((e) => e.message.split("\n")[0].replace(/:$/, ""));
      const obj = errors.length ? null : doc.toJS();
      if (obj === null && !errors.length) return; // an empty document
      n++;
      if (!errors.length) errors.push(...check(obj, ""));
      for (const e of errors) process.stderr.write(`${file}: ${describe(i + 1, obj)}: ${e}\n`);
      fileBad += errors.length;
    });
    if (!fileBad) process.stdout.write(`ok ${file}: ${n} documents\n`);
    bad += fileBad;
  }
  return bad ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
