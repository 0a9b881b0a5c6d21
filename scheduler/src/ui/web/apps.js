// The Apps page: the tree of groups and apps with each app's status and
// instances, a search box, a label filter and a status filter. Only one
// page of rows is in the document at a time, so a thousand apps cost what
// a hundred do. Each render is timed (performance.now(), layout included)
// into window.batonPerf for the end-to-end test's report.

import { h, patch, badge, num, appHref } from "./dom.js";
import { appStatus } from "./store.js";

const PAGE_SIZE = 100;
const STATUSES = ["running", "deploying", "waiting", "delayed", "suspended", "sleeping"];
/** Names in human order: app-2 before app-10. */
const collator = new Intl.Collator("en", { numeric: true });

// Kept across visits of the page.
const view = { query: "", label: "", status: "", page: 0, collapsed: new Set() };

/** Whether an app's labels pass "key", "key=value" or "key!=value". */
function labelMatches(labels, filter) {
  if (!filter) return true;
  labels = labels || {};
  const not = filter.indexOf("!=");
  if (not > 0) return labels[filter.slice(0, not).trim()] !== filter.slice(not + 2).trim();
  const eq = filter.indexOf("=");
  if (eq > 0) return labels[filter.slice(0, eq).trim()] === filter.slice(eq + 1).trim();
  return Object.prototype.hasOwnProperty.call(labels, filter.trim());
}

/** The rows to show: groups (unless a parent is collapsed) and matching apps, depth first. */
export function buildRows(apps, queue, filter, collapsed) {
  const query = filter.query.trim().toLowerCase();
  const root = { path: "/", groups: new Map(), apps: [], count: 0, running: 0, wanted: 0, cpus: 0, mem: 0 };
  let matched = 0;
  for (const app of apps.values()) {
    if (query && !app.id.toLowerCase().includes(query)) continue;
    if (!labelMatches(app.labels, filter.label)) continue;
    const status = appStatus(app, queue.get(app.id));
    if (filter.status && status !== filter.status) continue;
    matched += 1;
    const segments = app.id.split("/").filter(Boolean);
    let node = root;
    const chain = [root];
    for (let i = 0; i < segments.length - 1; i += 1) {
      const path = "/" + segments.slice(0, i + 1).join("/");
      if (!node.groups.has(path)) {
        node.groups.set(path, { path, name: segments[i], groups: new Map(), apps: [], count: 0, running: 0, wanted: 0, cpus: 0, mem: 0 });
      }
      node = node.groups.get(path);
      chain.push(node);
    }
    node.apps.push({ app, status, name: segments[segments.length - 1] || app.id });
    for (const g of chain) {
      g.count += 1;
      g.running += app.tasksRunning || 0;
      g.wanted += app.instances || 0;
      g.cpus += (app.cpus || 0) * (app.instances || 0);
      g.mem += (app.mem || 0) * (app.instances || 0);
    }
  }
  const rows = [];
  const walk = (node, depth) => {
    for (const group of [...node.groups.values()].sort((a, b) => collator.compare(a.path, b.path))) {
      rows.push({ group, depth });
      if (!collapsed.has(group.path)) walk(group, depth + 1);
    }
    for (const item of node.apps.sort((a, b) => collator.compare(a.app.id, b.app.id))) rows.push({ item, depth });
  };
  walk(root, 0);
  return { rows, matched };
}

function appRow({ item, depth }) {
  const { app, status } = item;
  const name = h("th", { scope: "row", class: "name" },
    h("a", { href: appHref(app.id) }, item.name),
    h("span", { class: "path" }, " " + app.id));
  name.style.setProperty("--depth", depth);
  return h("tr", { class: "app-row" },
    name,
    h("td", { "data-label": "Status" }, badge(status)),
    h("td", { "data-label": "Instances" },
      h("span", { class: "count" }, `${num(app.tasksRunning || 0)} / ${num(app.instances)}`),
      h("small", {}, ` running · ${num(app.tasksHealthy || 0)} healthy · ${num(app.tasksStaged || 0)} staged` +
        (app.tasksUnhealthy ? ` · ${num(app.tasksUnhealthy)} unhealthy` : ""))),
    h("td", { "data-label": "CPUs" }, num(app.cpus)),
    h("td", { "data-label": "Memory" }, `${num(app.mem)} MiB`));
}

function groupRow({ group, depth }, onToggle) {
  const open = !view.collapsed.has(group.path);
  const name = h("th", { scope: "row", class: "name group" },
    h("button", {
      type: "button", class: "tree-toggle", id: `toggle-${group.path}`,
      "aria-expanded": String(open), on: { click: () => onToggle(group.path) },
    }, h("span", { "aria-hidden": "true" }, open ? "▾ " : "▸ "), group.name + "/"));
  name.style.setProperty("--depth", depth);
  return h("tr", { class: "group-row" },
    name,
    h("td", { "data-label": "Apps" }, `${num(group.count)} app${group.count === 1 ? "" : "s"}`),
    h("td", { "data-label": "Instances" }, `${num(group.running)} / ${num(group.wanted)}`),
    h("td", { "data-label": "CPUs" }, num(group.cpus)),
    h("td", { "data-label": "Memory" }, `${num(group.mem)} MiB`));
}

function record(kind, ms, apps, rows) {
  const perf = (window.batonPerf = window.batonPerf || { apps: [] });
  perf.apps.push({ kind, ms: Math.round(ms * 10) / 10, apps, rows });
  if (perf.apps.length > 200) perf.apps.shift();
}

export function mount(root, { store }) {
  const search = h("input", {
    type: "search", id: "app-search", value: view.query, autocomplete: "off",
    placeholder: "part of an id  ( / )", "aria-controls": "apps-table", "aria-keyshortcuts": "/",
  });
  const label = h("input", {
    type: "text", id: "label-filter", value: view.label, autocomplete: "off",
    placeholder: "key or key=value", list: "label-keys", "aria-controls": "apps-table",
  });
  const labelKeys = h("datalist", { id: "label-keys" });
  const status = h("select", { id: "status-filter", "aria-controls": "apps-table" },
    h("option", { value: "" }, "any"),
    STATUSES.map((s) => h("option", { value: s, selected: view.status === s }, s)));
  const summary = h("p", { class: "summary", id: "apps-summary", "aria-live": "polite" });
  const tbody = h("tbody");
  const pager = h("nav", { class: "pager", "aria-label": "Pages of apps" });
  const empty = h("p", { class: "empty", hidden: true });

  let pendingKind = "render";
  const render = (kind) => {
    const started = performance.now();
    const { rows, matched } = buildRows(store.apps, store.queue, view, view.collapsed);
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    view.page = Math.min(view.page, pages - 1);
    const shown = rows.slice(view.page * PAGE_SIZE, (view.page + 1) * PAGE_SIZE);
    patch(tbody, shown.map((row) => (row.group ? groupRow(row, toggle) : appRow(row))));
    const total = store.apps.size;
    summary.textContent = !store.loaded ? "Loading apps…"
      : matched === total ? `${num(total)} apps`
      : `${num(matched)} of ${num(total)} apps match`;
    empty.hidden = !store.loaded || matched > 0;
    empty.textContent = total === 0 ? "No apps yet. Create one with “Create app”." : "No app matches these filters.";
    const first = rows.length ? view.page * PAGE_SIZE + 1 : 0;
    patch(pager,
      h("button", { type: "button", id: "page-prev", disabled: view.page === 0, on: { click: () => go(-1) } }, "Previous"),
      h("span", {}, `Rows ${num(first)}–${num(view.page * PAGE_SIZE + shown.length)} of ${num(rows.length)} · page ${view.page + 1} of ${pages}`),
      h("button", { type: "button", id: "page-next", disabled: view.page >= pages - 1, on: { click: () => go(1) } }, "Next"));
    void tbody.offsetHeight; // lay out now, so the time includes it
    record(kind || pendingKind, performance.now() - started, total, shown.length);
    pendingKind = "render";
  };
  const go = (delta) => { view.page += delta; render("page"); };
  const toggle = (path) => {
    if (view.collapsed.has(path)) view.collapsed.delete(path);
    else view.collapsed.add(path);
    render("toggle");
  };
  const refilter = () => {
    view.query = search.value;
    view.label = label.value;
    view.status = status.value;
    view.page = 0;
    render("filter");
  };
  search.addEventListener("input", refilter);
  label.addEventListener("input", refilter);
  status.addEventListener("change", refilter);

  const fillLabelKeys = () => {
    const keys = new Set();
    for (const app of store.apps.values()) {
      for (const key of Object.keys(app.labels || {})) {
        keys.add(key);
        if (keys.size >= 200) break;
      }
      if (keys.size >= 200) break;
    }
    patch(labelKeys, [...keys].sort().map((k) => h("option", { value: k })));
  };

  root.append(
    h("h1", { tabindex: "-1" }, "Apps"),
    h("form", { class: "filters", role: "search", on: { submit: (e) => e.preventDefault() } },
      h("div", { class: "field" }, h("label", { for: "app-search" }, "Search"), search),
      h("div", { class: "field" }, h("label", { for: "label-filter" }, "Label"), label, labelKeys),
      h("div", { class: "field" }, h("label", { for: "status-filter" }, "Status"), status)),
    summary,
    h("div", { class: "table-wrap" },
      h("table", { id: "apps-table", class: "apps" },
        h("caption", { class: "visually-hidden" }, "Groups and apps"),
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col" }, "Instances"), h("th", { scope: "col" }, "CPUs"),
          h("th", { scope: "col" }, "Memory"))),
        tbody)),
    empty,
    pager);
  // "/" jumps to the search box, as on many sites.
  const onKey = (e) => {
    const tag = document.activeElement ? document.activeElement.tagName : "";
    if (e.key === "/" && !["INPUT", "TEXTAREA", "SELECT"].includes(tag) && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      search.focus();
    }
  };
  document.addEventListener("keydown", onKey);
  fillLabelKeys();
  render("first");
  return {
    unmount() { document.removeEventListener("keydown", onKey); },
    update(change) {
      if (change.apps || change.queue) {
        if (change.apps === "all") fillLabelKeys();
        render("update");
      }
    },
  };
}
