// The Create page: a form for the common fields of an app, plus a JSON
// editor for everything else (merged over the form's fields). Baton
// validates; a 422's details are shown next to the field whose JSON path
// they name (or under the JSON editor when no form field has that path).

import * as api from "./api.js";
import { h, patch, errorBox, announce, appHref } from "./dom.js";

/** Form fields: [id, JSON path, label, attributes, help]. */
const FIELDS = [
  ["new-id", "/id", "ID", { type: "text", required: true, placeholder: "/team/web", autocomplete: "off" }, "An absolute path: groups are the segments before the last."],
  ["new-cmd", "/cmd", "Command", { textarea: true, rows: "3", placeholder: "python3 -m http.server $PORT0" }, "Run by a shell; $PORT0… are the host ports."],
  ["new-instances", "/instances", "Instances", { type: "number", value: "1", min: "0", step: "1" }],
  ["new-cpus", "/cpus", "CPUs", { type: "number", value: "0.1", min: "0", step: "any" }],
  ["new-mem", "/mem", "Memory (MiB)", { type: "number", value: "64", min: "0", step: "any" }],
  ["new-disk", "/disk", "Disk (MiB)", { type: "number", value: "0", min: "0", step: "any" }],
  ["new-ports", "/portDefinitions", "Host ports", { type: "number", value: "1", min: "0", max: "10", step: "1" }, "How many ports to ask for ($PORT0, $PORT1…)."],
  ["new-health", "/healthChecks", "Health check", { select: ["none", "HTTP", "TCP", "MESOS_HTTP", "MESOS_TCP"] }, "Probes the first port."],
  ["new-health-path", "/healthChecks/0/path", "Health check path", { type: "text", value: "/" }],
  ["new-health-interval", "/healthChecks/0/intervalSeconds", "Check every (s)", { type: "number", value: "10", min: "1", step: "1" }],
  ["new-health-grace", "/healthChecks/0/gracePeriodSeconds", "Grace period (s)", { type: "number", value: "60", min: "0", step: "1" }],
  ["new-labels", "/labels", "Labels", { textarea: true, rows: "2", placeholder: "KEY=value, one a line" }],
  ["new-env", "/env", "Environment", { textarea: true, rows: "2", placeholder: "KEY=value, one a line" }],
  ["new-json", "/", "More fields (JSON)", { textarea: true, rows: "6", placeholder: "{\"constraints\": [[\"hostname\", \"UNIQUE\"]]}", spellcheck: "false" },
    "A JSON object merged over the fields above: constraints, upgradeStrategy, container, …"],
];

function pairs(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    const eq = trimmed.indexOf("=");
    if (eq < 0) out[trimmed] = "";
    else out[trimmed.slice(0, eq).trim()] = trimmed.slice(eq + 1).trim();
  }
  return out;
}

/** The field that shows errors for a JSON path: the longest field path it starts with. */
export function fieldFor(path, paths) {
  let best = "/";
  for (const p of paths) {
    if (p === "/") continue;
    if ((path === p || path.startsWith(p + "/")) && p.length > best.length) best = p;
  }
  return best;
}

export function mount(root) {
  const inputs = new Map();
  const errorLists = new Map();
  const controls = FIELDS.map(([id, path, label, attrs, help]) => {
    let input;
    if (attrs.textarea) input = h("textarea", { id, name: id, rows: attrs.rows, placeholder: attrs.placeholder, spellcheck: attrs.spellcheck });
    else if (attrs.select) input = h("select", { id, name: id }, attrs.select.map((o) => h("option", { value: o }, o)));
    else input = h("input", Object.assign({ id, name: id }, attrs));
    inputs.set(path, input);
    const error = h("ul", { class: "field-error", id: `${id}-error`, hidden: true });
    errorLists.set(path, error);
    const helpId = help ? `${id}-help` : null;
    input.setAttribute("aria-describedby", [helpId, `${id}-error`].filter(Boolean).join(" "));
    return h("div", { class: `field${attrs.textarea ? " wide" : ""}`, dataset: { path } },
      h("label", { for: id }, label), input,
      help ? h("small", { id: helpId, class: "help" }, help) : null,
      error);
  });
  const top = h("div", { id: "create-errors" });
  const preview = h("pre", { id: "create-preview" });

  const value = (path) => inputs.get(path).value.trim();
  const build = () => {
    const app = {};
    if (value("/id")) app.id = value("/id");
    if (value("/cmd")) app.cmd = inputs.get("/cmd").value;
    for (const path of ["/instances", "/cpus", "/mem", "/disk"]) {
      if (value(path) !== "") app[path.slice(1)] = Number(value(path));
    }
    if (value("/portDefinitions") !== "") {
      app.portDefinitions = Array.from({ length: Math.max(0, Number(value("/portDefinitions")) || 0) }, () => ({ port: 0 }));
    }
    const protocol = value("/healthChecks");
    if (protocol && protocol !== "none") {
      const check = { protocol, portIndex: 0 };
      if (protocol.endsWith("HTTP")) check.path = value("/healthChecks/0/path") || "/";
      if (value("/healthChecks/0/intervalSeconds") !== "") check.intervalSeconds = Number(value("/healthChecks/0/intervalSeconds"));
      if (value("/healthChecks/0/gracePeriodSeconds") !== "") check.gracePeriodSeconds = Number(value("/healthChecks/0/gracePeriodSeconds"));
      app.healthChecks = [check];
    }
    if (value("/labels")) app.labels = pairs(inputs.get("/labels").value);
    if (value("/env")) app.env = pairs(inputs.get("/env").value);
    const more = value("/");
    if (more) {
      const extra = JSON.parse(more);
      if (extra === null || typeof extra !== "object" || Array.isArray(extra)) throw new SyntaxError("More fields must be a JSON object");
      Object.assign(app, extra);
    }
    return app;
  };
  const healthFields = ["/healthChecks/0/path", "/healthChecks/0/intervalSeconds", "/healthChecks/0/gracePeriodSeconds"];
  const refresh = () => {
    const protocol = value("/healthChecks");
    for (const path of healthFields) {
      const off = protocol === "none" || (path.endsWith("/path") && !protocol.endsWith("HTTP"));
      inputs.get(path).closest(".field").hidden = off;
    }
    try { preview.textContent = JSON.stringify(build(), null, 2); } catch (err) { preview.textContent = `(${err.message})`; }
  };

  const clearErrors = () => {
    patch(top);
    for (const [path, list] of errorLists) {
      list.hidden = true;
      patch(list);
      inputs.get(path).removeAttribute("aria-invalid");
    }
  };
  const showErrors = (error) => {
    clearErrors();
    patch(top, errorBox({ status: error.status, message: error.message }));
    let first = null;
    const paths = [...inputs.keys()];
    for (const detail of error.details || []) {
      const path = fieldFor(detail.path || "/", paths);
      const list = errorLists.get(path);
      list.hidden = false;
      list.appendChild(h("li", {}, h("code", {}, detail.path || "/"), " ", (detail.errors || []).join("; ")));
      inputs.get(path).setAttribute("aria-invalid", "true");
      if (!first) first = inputs.get(path);
      if (inputs.get(path).closest(".field").hidden) inputs.get(path).closest(".field").hidden = false;
    }
    (first || top).focus();
  };

  const submit = h("button", { type: "submit", id: "create-submit" }, "Create");
  const form = h("form", { id: "create-form", novalidate: true, on: {
    input: refresh,
    change: refresh,
    submit: async (e) => {
      e.preventDefault();
      clearErrors();
      let app;
      try { app = build(); } catch (err) {
        showErrors({ message: `More fields: ${err.message}`, details: [{ path: "/", errors: [err.message] }] });
        return;
      }
      submit.disabled = true;
      try {
        const created = await api.post("/v2/apps", app);
        announce(`Created ${created.id}`);
        location.hash = appHref(created.id);
      } catch (err) {
        if (err instanceof api.ApiError) showErrors(err);
        else showErrors({ message: `Baton did not answer: ${err.message}` });
      } finally {
        submit.disabled = false;
      }
    },
  } }, top, h("div", { class: "grid" }, controls),
  h("details", {}, h("summary", {}, "JSON to send"), preview),
  h("div", { class: "buttons" }, submit));
  top.setAttribute("tabindex", "-1");

  root.append(h("h1", { tabindex: "-1" }, "Create an app"), form);
  refresh();
  return {};
}
