// The Pods page: every pod (/v2/pods/::status) with its status, how many
// instances are stable, its volumes, and each instance's containers with
// their state, health and endpoints; scaling a pod (its definition read
// and written back with the new count, which restarts nothing), killing an
// instance (it is relaunched; a resident one on its volume), and deleting
// a pod after a confirmation. Kept current by the store from /v2/events.

import * as api from "./api.js";
import { h, patch, errorBox, badge, time, act, confirmDialog } from "./dom.js";

/** "/shop/web" → "/v2/pods/shop/web" (each segment encoded). */
export function podUrl(id, suffix = "") {
  return "/v2/pods/" + id.split("/").filter(Boolean).map(encodeURIComponent).join("/") + suffix;
}

/**
 * A string usable in an element id, one per string: every character other
 * than a letter or digit becomes "_" and its four hex digits (UTF-16), so
 * "/a.b" and "/a/b" stay apart.
 */
export function slug(text) {
  return String(text).replace(/[^A-Za-z0-9]/g, (c) => "_" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

/** The badge of a pod status ("STABLE" → running, "DEPLOYING" → deploying, …). */
function statusBadge(status) {
  const kind = { STABLE: "running", DEPLOYING: "deploying", DEGRADED: "waiting" }[status] || "suspended";
  const b = badge(kind);
  b.textContent = (status || "unknown").toLowerCase();
  return b;
}

function health(container) {
  const c = (container.conditions || []).find((k) => k.name === "healthy");
  if (!c) return "–";
  return h("span", { class: c.value === "true" ? "ok" : "bad" }, c.value === "true" ? "healthy" : "unhealthy");
}

function volumes(spec) {
  const list = (spec.volumes || []).map((v) => v.persistent
    ? `${v.name} (persistent, ${v.persistent.size} MB)`
    : v.host ? `${v.name} (host ${v.host})` : `${v.name} (ephemeral)`);
  return list.length ? list.join(", ") : "–";
}

function podCard(status, errors) {
  const spec = status.spec || {};
  const id = status.id;
  const key = slug(id);
  const instances = status.instances || [];
  const stable = instances.filter((i) => i.status === "STABLE").length;
  const wanted = (spec.scaling && spec.scaling.instances) || 0;
  const fail = (err) => patch(errors, errorBox(err));
  const scaleInput = h("input", { type: "number", min: "0", step: "1", id: `pod-scale-${key}`, value: String(wanted),
    "aria-label": `Instances of ${id}`, class: "small" });
  const scale = (e) => act(e.target, async () => {
    const count = Number(scaleInput.value);
    if (!Number.isInteger(count) || count < 0) throw new Error("Instances must be a whole number of 0 or more");
    const pod = await api.get(podUrl(id));
    delete pod.version;
    delete pod.versionInfo;
    pod.scaling = Object.assign({ kind: "fixed" }, pod.scaling || {}, { instances: count });
    return api.put(podUrl(id), pod);
  }, `Scaling ${id} to ${scaleInput.value}`).catch(fail);
  const remove = async (e) => {
    if (!(await confirmDialog(`Delete ${id}?`, `Its ${instances.length} instance(s) are killed and its definition is gone.`, "Delete pod"))) return;
    await act(e.target, () => api.del(podUrl(id)), `Deleting ${id}`).catch(fail);
  };
  const kill = (instance) => (e) => act(e.target,
    () => api.request("DELETE", podUrl(id, "::instances"), [instance.id]),
    `Killed ${instance.id}`).catch(fail);
  const rows = instances.flatMap((i) => {
    const containers = i.containers && i.containers.length ? i.containers : [{ name: "–", status: i.status }];
    return containers.map((c, n) => h("tr", { dataset: { instance: i.id } },
      n === 0 ? h("th", { scope: "row", rowspan: String(containers.length), class: "task-id" },
        h("code", { title: i.id }, i.id.replace(/^.*instance-/, "").slice(0, 13))) : null,
      n === 0 ? h("td", { "data-label": "Status", rowspan: String(containers.length) }, i.status) : null,
      n === 0 ? h("td", { "data-label": "Host", rowspan: String(containers.length) }, i.agentHostname || "–") : null,
      h("td", { "data-label": "Container" }, c.name),
      h("td", { "data-label": "State" }, c.status || "–"),
      h("td", { "data-label": "Health" }, health(c)),
      h("td", { "data-label": "Endpoints" }, (c.endpoints || []).length
        ? c.endpoints.map((e) => h("a", { href: `http://${i.agentHostname}:${e.allocatedHostPort}/`, target: "_blank",
          rel: "noopener noreferrer", class: "address" }, `${e.name} ${i.agentHostname}:${e.allocatedHostPort}`))
        : "–"),
      n === 0 ? h("td", { "data-label": "Actions", rowspan: String(containers.length), class: "buttons" },
        h("button", { type: "button", class: "secondary small", id: `pod-kill-${slug(i.id)}`, on: { click: kill(i) } }, "Kill")) : null));
  });
  return h("section", { class: "card pod", id: `pod-${key}`, "aria-labelledby": `pod-title-${key}` },
    h("h2", { id: `pod-title-${key}` }, h("code", {}, id), " ", statusBadge(status.status)),
    h("dl", { class: "facts" },
      h("dt", {}, "Stable"), h("dd", { class: "pod-stable" }, `${stable}/${wanted}`),
      h("dt", {}, "Containers"), h("dd", {}, (spec.containers || []).map((c) =>
        `${c.name} (cpus ${(c.resources || {}).cpus}, mem ${(c.resources || {}).mem})`).join(", ") || "–"),
      h("dt", {}, "Volumes"), h("dd", {}, volumes(spec)),
      h("dt", {}, "Version"), h("dd", {}, time(spec.version))),
    h("div", { class: "buttons" },
      h("label", { for: `pod-scale-${key}` }, "Instances "), scaleInput,
      h("button", { type: "button", id: `pod-scale-button-${key}`, on: { click: scale } }, "Scale"),
      h("button", { type: "button", class: "danger", id: `pod-delete-${key}`, on: { click: remove } }, "Delete pod")),
    instances.length === 0 ? h("p", {}, "No instances.") : h("div", { class: "table-wrap" }, h("table", { class: "tasks" },
      h("thead", {}, h("tr", {}, ["Instance", "Status", "Host", "Container", "State", "Health", "Endpoints", "Actions"]
        .map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows))));
}

export function mount(root, { store }) {
  const summary = h("p", { id: "pods-summary" });
  const list = h("div", { id: "pods-list" });
  const errors = h("div", {});
  root.append(h("h1", { tabindex: "-1" }, "Pods"), summary, errors, list);
  const render = () => {
    const pods = [...store.pods].sort((a, b) => a.id.localeCompare(b.id));
    const loaded = store.podsLoaded;
    patch(summary, loaded ? `${pods.length} pod${pods.length === 1 ? "" : "s"}` : "Loading…");
    if (!pods.length) {
      patch(list, h("p", { class: "empty" }, loaded ? "No pods." : "Loading…"));
      return;
    }
    // Keep what the user is typing in a scale box across live updates.
    const typing = document.activeElement && document.activeElement.id.startsWith("pod-scale-")
      ? { id: document.activeElement.id, value: document.activeElement.value } : null;
    patch(list, pods.map((p) => podCard(p, errors)));
    if (typing) {
      const input = document.getElementById(typing.id);
      if (input) input.value = typing.value;
    }
  };
  store.markPods();
  render();
  return {
    update(change) { if (change.pods) render(); },
    // Other pages do not show pods: the store stops re-reading them, and
    // forgets them (the next visit shows them read anew, not as they were).
    unmount() {
      store.podsWanted = false;
      store.podsLoaded = false;
      store.pods = [];
    },
  };
}
