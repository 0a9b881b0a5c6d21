// The App page: one app's status, actions (scale, restart, suspend,
// destroy), why instances wait (/v2/queue: the offer funnel, constraints,
// the launch delay), its deployment's steps, its tasks with addresses and
// health, its last failure, its configuration (edit and save = PUT), and
// its versions with a diff against the current one and a rollback.

import * as api from "./api.js";
import { h, patch, badge, num, time, seconds, errorBox, confirmDialog, announce, act } from "./dom.js";
import { appStatus } from "./store.js";
import { diff } from "./diff.js";

/** How often the queue is re-read while this app's instances wait. */
const QUEUE_REFRESH_MS = 5000;

/** Fields Baton computes; left out of the editable configuration. */
const RUNTIME = ["version", "versionInfo", "tasks", "tasksRunning", "tasksStaged", "tasksHealthy",
  "tasksUnhealthy", "deployments", "lastTaskFailure", "taskStats", "tasksStats", "readinessCheckResults"];

/** The app's definition as a PUT body (what the editor shows and diffs compare). */
export function definition(app) {
  const out = {};
  for (const [key, value] of Object.entries(app || {})) if (!RUNTIME.includes(key)) out[key] = value;
  return out;
}

function section(id, title, ...body) {
  return h("section", { class: "card", "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title` }, title), ...body);
}

function queueSection(entry, id, errors) {
  if (!entry) return [];
  const delay = entry.delay || {};
  const summary = entry.processedOffersSummary || {};
  const funnel = (summary.rejectSummaryLastOffers || []).filter((r) => r.processed > 0 || r.declined > 0);
  const reset = h("button", {
    type: "button", id: "reset-delay", class: "secondary",
    on: { click: (e) => act(e.target, () => api.del("/v2/queue" + api.appUrl(id).slice("/v2/apps".length) + "/delay"),
      "Launch delay reset").catch((err) => patch(errors, errorBox(err))) },
  }, "Reset delay");
  return section("queue", "Waiting for offers",
    h("p", {}, `${num(entry.count)} instance${entry.count === 1 ? "" : "s"} waiting since ${time(entry.since)}.`),
    delay.timeLeftSeconds > 0
      ? h("p", { class: "warning" }, `Launches are delayed after failures: ${seconds(delay.timeLeftSeconds)} left. `, reset)
      : h("p", {}, delay.overdue ? "No launch delay holds it back: offers do not fit (see below)." : "No launch delay."),
    entry.lastTaskFailure ? h("p", {}, "Last launch failure: ", h("code", {}, entry.lastTaskFailure.state || ""), " ",
      entry.lastTaskFailure.message || "") : null,
    h("p", {}, `Offers processed: ${num(summary.processedOffersCount)}, unused: ${num(summary.unusedOffersCount)}` +
      (summary.lastUnusedOfferAt ? `, last unused at ${time(summary.lastUnusedOfferAt)}` : "") + "."),
    funnel.length ? h("table", { class: "funnel" },
      h("caption", {}, "Why the last offers were declined"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Check"), h("th", { scope: "col" }, "Declined"), h("th", { scope: "col" }, "Processed"))),
      h("tbody", {}, funnel.map((r) => h("tr", { class: r.declined > 0 ? "declined" : "" },
        h("th", { scope: "row" }, r.reason), h("td", { "data-label": "Declined" }, num(r.declined)),
        h("td", { "data-label": "Processed" }, num(r.processed)))))) : null,
    (summary.rejectedByConstraint || []).length ? h("div", {},
      h("h3", {}, "Constraints that declined offers"),
      h("ul", {}, summary.rejectedByConstraint.map((c) =>
        h("li", {}, h("code", {}, typeof c.constraint === "string" ? c.constraint : JSON.stringify(c.constraint)), ` declined ${num(c.declined)} offer${c.declined === 1 ? "" : "s"}`)))) : null,
    Array.isArray(entry.lastUnusedOffers) && entry.lastUnusedOffers.length ? h("div", {},
      h("h3", {}, "Last unused offers"),
      h("ul", {}, entry.lastUnusedOffers.map((o) => h("li", {},
        (o.offer && (o.offer.hostname || o.offer.agentId)) || "offer", ": ", (o.reason || []).join(", "))))) : null);
}

function deploymentSection(deployments, errors) {
  if (!deployments.length) return [];
  return section("deployment", "Deployment", deployments.map((d) => {
    const current = d.currentStep || 0;
    return h("div", { class: "deployment" },
      h("p", {}, h("code", {}, d.id), ` — step ${current} of ${d.totalSteps}, started ${time(d.version)}`),
      h("progress", { max: String(d.totalSteps || 1), value: String(current), "aria-label": `Step ${current} of ${d.totalSteps}` }),
      h("ol", { class: "steps" }, (d.steps || []).map((step, i) => h("li", {
        "aria-current": i + 1 === current ? "step" : undefined,
        class: i + 1 < current ? "done" : i + 1 === current ? "current" : "",
      }, (step.actions || []).map((a) => `${a.action} ${a.app || a.pod}`).join(", ")))),
      (d.currentActions || []).some((a) => (a.readinessCheckResults || []).length)
        ? h("ul", {}, d.currentActions.flatMap((a) => (a.readinessCheckResults || []).map((r) =>
          h("li", {}, `readiness ${r.name} of ${r.taskId}: ${r.ready ? "ready" : "not ready"}`))))
        : null,
      d.failure ? h("p", { class: "warning" }, "Stuck: ", typeof d.failure === "string" ? d.failure : JSON.stringify(d.failure)) : null,
      h("div", { class: "buttons" },
        h("button", { type: "button", class: "secondary", id: `rollback-${d.id}`,
          on: { click: (e) => act(e.target, () => api.del(`/v2/deployments/${encodeURIComponent(d.id)}`),
            `Rolling back deployment ${d.id}`).catch((err) => patch(errors, errorBox(err))) } }, "Roll back deployment"),
        h("button", { type: "button", class: "secondary", id: `stop-${d.id}`,
          on: { click: (e) => act(e.target, () => api.del(`/v2/deployments/${encodeURIComponent(d.id)}?force=true`),
            `Stopped deployment ${d.id}`).catch((err) => patch(errors, errorBox(err))) } }, "Stop deployment")));
  }));
}

function health(task) {
  const results = task.healthCheckResults || [];
  if (!results.length) return "–";
  return results.map((r) => h("div", { class: r.alive ? "ok" : "bad" },
    r.alive ? "healthy" : `failing${r.consecutiveFailures ? ` (${r.consecutiveFailures}×)` : ""}`,
    r.lastFailureCause && !r.alive ? h("small", {}, " " + r.lastFailureCause) : null));
}

function tasksSection(app, id, errors) {
  const tasks = app.tasks || [];
  const kill = (task, scale) => (e) => act(e.target,
    () => api.del(api.appUrl(id, `/tasks/${encodeURIComponent(task.id)}${scale ? "?scale=true" : ""}`)),
    scale ? `Killed ${task.id} and scaled down` : `Killed ${task.id}`).catch((err) => patch(errors, errorBox(err)));
  return section("tasks", `Tasks (${tasks.length})`,
    tasks.length === 0 ? h("p", {}, "No tasks.") : h("div", { class: "table-wrap" }, h("table", { class: "tasks" },
      h("thead", {}, h("tr", {}, ["Task", "Address", "State", "Health", "Started", "Version", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, tasks.map((t) => h("tr", {},
        h("th", { scope: "row", class: "task-id" }, h("code", { title: t.id }, t.id.replace(/^.*instance-/, "").slice(0, 13))),
        h("td", { "data-label": "Address" }, (t.ports || []).length
          ? t.ports.map((p) => h("a", { href: `http://${t.host}:${p}/`, target: "_blank", rel: "noopener noreferrer", class: "address" }, `${t.host}:${p}`))
          : t.host || "–"),
        h("td", { "data-label": "State" }, t.state),
        h("td", { "data-label": "Health" }, health(t)),
        h("td", { "data-label": "Started" }, time(t.startedAt || t.stagedAt)),
        h("td", { "data-label": "Version" }, time(t.version)),
        h("td", { "data-label": "Actions", class: "buttons" },
          h("button", { type: "button", class: "secondary small", id: `kill-${t.id}`, on: { click: kill(t, false) } }, "Kill"),
          h("button", { type: "button", class: "secondary small", id: `killscale-${t.id}`, on: { click: kill(t, true) } }, "Kill & scale"))))))));
}

function failureSection(app) {
  const f = app.lastTaskFailure;
  if (!f) return [];
  return section("failure", "Last task failure",
    h("dl", { class: "facts" },
      h("dt", {}, "State"), h("dd", {}, f.state || "–"),
      h("dt", {}, "Message"), h("dd", {}, f.message || "–"),
      h("dt", {}, "Host"), h("dd", {}, f.host || "–"),
      h("dt", {}, "At"), h("dd", {}, time(f.timestamp)),
      h("dt", {}, "Task"), h("dd", {}, h("code", {}, f.taskId || "–"))));
}

export function mount(root, { store, params, navigate }) {
  const id = params.id;
  let loadError = null;
  let loaded = store.apps.has(id) && store.apps.get(id).tasks;
  const unwatch = store.watch(id);

  const title = h("h1", { tabindex: "-1" }, id);
  const summary = h("div", { class: "app-summary", "aria-live": "polite" });
  const errors = h("div", { class: "errors" });
  const dynamic = h("div", { class: "dynamic" });

  // Actions, built once (inputs keep what the user types across updates).
  const scaleInput = h("input", { type: "number", id: "scale-input", min: "0", step: "1", inputmode: "numeric" });
  const force = h("input", { type: "checkbox", id: "force" });
  const fail = (err) => patch(errors, errorBox(err));
  const write = (body) => api.put(api.appUrl(id) + (force.checked ? "?force=true" : ""), body).then((r) => {
    patch(errors);
    return r;
  });
  const actions = h("section", { class: "card actions", "aria-labelledby": "actions-title" },
    h("h2", { id: "actions-title", class: "visually-hidden" }, "Actions"),
    h("form", { class: "inline", on: { submit: (e) => {
      e.preventDefault();
      const n = Number(scaleInput.value);
      act(e.submitter, () => write({ instances: n }), `Scaling ${id} to ${n}`).catch(fail);
    } } },
      h("label", { for: "scale-input" }, "Instances"), scaleInput,
      h("button", { type: "submit", id: "scale-button" }, "Scale")),
    h("div", { class: "buttons" },
      h("button", { type: "button", id: "restart-button", class: "secondary", on: { click: (e) =>
        act(e.target, () => api.post(api.appUrl(id, "/restart") + (force.checked ? "?force=true" : ""), {}), `Restarting ${id}`).catch(fail) } }, "Restart"),
      h("button", { type: "button", id: "suspend-button", class: "secondary", on: { click: (e) =>
        act(e.target, () => write({ instances: 0 }), `Suspending ${id}`).catch(fail) } }, "Suspend"),
      h("button", { type: "button", id: "destroy-button", class: "danger", on: { click: async (e) => {
        if (!(await confirmDialog(`Destroy ${id}?`, `Every instance of ${id} is killed and the app is removed. This cannot be undone.`, "Destroy"))) return;
        act(e.target, () => api.del(api.appUrl(id)), `Destroying ${id}`).then(() => navigate("#/apps")).catch(fail);
      } } }, "Destroy")),
    h("div", { class: "field inline" }, force, h("label", { for: "force" }, "Force (override a deployment in progress)")));

  // The configuration editor.
  const editor = h("textarea", { id: "config-editor", rows: "18", spellcheck: "false", "aria-describedby": "config-help config-errors" });
  const editorErrors = h("div", { id: "config-errors" });
  const stale = h("p", { class: "warning", hidden: true }, "The app changed since you began editing; Reset shows the current configuration.");
  let editorDirty = false;
  let editorVersion = null;
  editor.addEventListener("input", () => { editorDirty = true; });
  const resetEditor = () => {
    const app = store.apps.get(id);
    if (!app) return;
    editor.value = JSON.stringify(definition(app), null, 2);
    editorVersion = app.version;
    editorDirty = false;
    stale.hidden = true;
    patch(editorErrors);
  };
  const config = section("config", "Configuration",
    h("p", { id: "config-help", class: "help" }, "The app's definition as JSON. Save replaces the fields given (PUT); it starts a deployment."),
    h("form", { on: { submit: (e) => {
      e.preventDefault();
      let body;
      try { body = JSON.parse(editor.value); } catch (err) {
        patch(editorErrors, errorBox({ message: `Not valid JSON: ${err.message}` }));
        editor.focus();
        return;
      }
      act(e.submitter, () => write(body), (r) => `Saved ${id}${r && r.deploymentId ? ` (deployment ${r.deploymentId})` : ""}`)
        .then(() => { editorDirty = false; patch(editorErrors); })
        .catch((err) => patch(editorErrors, errorBox(err)));
    } } },
      h("label", { for: "config-editor", class: "visually-hidden" }, "Configuration JSON"),
      editor, stale, editorErrors,
      h("div", { class: "buttons" },
        h("button", { type: "submit", id: "config-save" }, "Save"),
        h("button", { type: "button", class: "secondary", id: "config-reset", on: { click: resetEditor } }, "Reset"))));

  // Versions and the diff against the current one.
  const versionsList = h("div", {});
  const versionDiff = h("div", { id: "version-diff", "aria-live": "polite" });
  let versions = null;
  let versionsOf = null;
  let selected = null;
  let showAll = false;
  const loadVersions = () => api.get(api.appUrl(id, "/versions")).then((body) => {
    versions = body.versions || [];
    renderVersions();
  }, (err) => patch(versionsList, errorBox(err)));
  const compare = async (version) => {
    selected = version;
    renderVersions();
    try {
      const old = await api.get(api.appUrl(id, `/versions/${encodeURIComponent(version)}`));
      const current = store.apps.get(id);
      const changes = diff(definition(old), definition(current));
      patch(versionDiff,
        h("h3", {}, `Version ${version} compared with the current one`),
        changes.length === 0 ? h("p", {}, "Same configuration (only the version differs).") : h("div", { class: "table-wrap" },
          h("table", { class: "diff" },
            h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "This version"), h("th", { scope: "col" }, "Current"))),
            h("tbody", {}, changes.map((c) => h("tr", { class: c.kind },
              h("th", { scope: "row" }, h("code", {}, c.path)),
              h("td", { "data-label": "This version" }, c.before === undefined ? "—" : h("code", {}, c.before)),
              h("td", { "data-label": "Current" }, c.after === undefined ? "—" : h("code", {}, c.after))))))),
        h("button", { type: "button", id: "rollback-version", on: { click: (e) =>
          act(e.target, () => api.put(api.appUrl(id) + (force.checked ? "?force=true" : ""), { version }),
            `Rolling ${id} back to ${version}`).catch(fail) } }, "Roll back to this version"));
      versionDiff.scrollIntoView({ block: "nearest" });
    } catch (err) {
      patch(versionDiff, errorBox(err));
    }
  };
  const renderVersions = () => {
    if (!versions) return patch(versionsList, h("p", {}, "Loading versions…"));
    const current = store.apps.get(id) && store.apps.get(id).version;
    const shown = showAll ? versions : versions.slice(0, 10);
    patch(versionsList,
      h("ol", { class: "versions" }, shown.map((v) => h("li", {},
        h("time", { datetime: v }, v),
        v === current ? h("span", { class: "badge status-running" }, "current") : h("button", {
          type: "button", class: "secondary small", id: `compare-${v}`, "aria-pressed": String(selected === v),
          on: { click: () => compare(v) },
        }, "Compare")))),
      versions.length > shown.length ? h("button", { type: "button", class: "secondary", on: { click: () => { showAll = true; renderVersions(); } } },
        `Show all ${versions.length} versions`) : null);
  };
  const versionsSection = section("versions", "Versions", versionsList, versionDiff);

  const render = () => {
    const app = store.apps.get(id);
    if (!app) {
      patch(summary, loadError ? errorBox(loadError) : h("p", {}, loaded ? `App ${id} does not exist.` : "Loading…"));
      actions.hidden = config.hidden = versionsSection.hidden = true;
      patch(dynamic);
      return;
    }
    actions.hidden = config.hidden = versionsSection.hidden = false;
    const queued = store.queue.get(id);
    const status = appStatus(app, queued);
    patch(summary,
      badge(status),
      h("span", {}, ` ${num(app.tasksRunning || 0)} of ${num(app.instances)} running · ${num(app.tasksHealthy || 0)} healthy · ` +
        `${num(app.tasksStaged || 0)} staged · ${num(app.tasksUnhealthy || 0)} unhealthy · ${num(app.cpus)} CPUs · ${num(app.mem)} MiB each`));
    if (document.activeElement !== scaleInput) scaleInput.value = String(app.instances);
    if (!editorDirty) resetEditor();
    else if (editorVersion !== app.version) stale.hidden = false;
    patch(dynamic,
      queueSection(queued, id, errors),
      deploymentSection(store.deploymentsOf(id), errors),
      tasksSection(app, id, errors),
      failureSection(app));
    if (versionsOf !== app.version) {
      versionsOf = app.version;
      loadVersions();
    }
  };

  // Offers are declined without an event: while instances wait, the
  // queue (why, and the launch delay) is re-read every few seconds, and
  // only then.
  const queueTimer = setInterval(() => {
    if (store.queue.has(id) && document.visibilityState === "visible") store.markQueue();
  }, QUEUE_REFRESH_MS);

  root.append(title, summary, errors, actions, dynamic, config, versionsSection);
  render();
  api.get(api.appUrl(id)).then((body) => {
    loaded = true;
    store.apps.set(body.app.id, body.app);
    render();
  }, (err) => {
    loaded = true;
    loadError = err;
    store.apps.delete(id);
    render();
  });
  return {
    update(change) {
      if (change.apps === "all" || (change.apps && change.apps.has && change.apps.has(id)) || change.queue || change.deployments) {
        if (store.apps.has(id)) loadError = null;
        render();
      }
    },
    unmount() {
      clearInterval(queueTimer);
      unwatch();
    },
  };
}
