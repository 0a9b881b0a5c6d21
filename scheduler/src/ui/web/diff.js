// The difference between two app definitions, field by field: every leaf
// of either, by its JSON path ("/container/docker/image", "/env/PORT",
// "/healthChecks/0/path"), that was added, removed or changed. Easier to
// read than a text diff of two JSON documents whose members moved.

/** Leaves of a JSON value: path → JSON text. Empty objects and arrays are leaves. */
export function flatten(value, path = "", out = new Map()) {
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
    if (entries.length === 0) out.set(path || "/", JSON.stringify(value));
    for (const [key, child] of entries) flatten(child, `${path}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`, out);
  } else {
    out.set(path || "/", JSON.stringify(value));
  }
  return out;
}

/** [{path, kind: "added" | "removed" | "changed", before, after}], by path. */
export function diff(before, after) {
  const a = flatten(before);
  const b = flatten(after);
  const paths = new Set([...a.keys(), ...b.keys()]);
  const out = [];
  for (const path of [...paths].sort()) {
    const x = a.get(path);
    const y = b.get(path);
    if (x === y) continue;
    out.push({ path, kind: x === undefined ? "added" : y === undefined ? "removed" : "changed", before: x, after: y });
  }
  return out;
}
