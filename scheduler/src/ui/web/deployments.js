// The Deployments page: every deployment in progress with its steps and
// progress, why it is stuck (Baton's `failure`), and the two ways out:
// roll back (DELETE: a new deployment restores the previous versions) or
// stop (DELETE ?force=true: stop tracking it, leave things as they are).

import * as api from "./api.js";
import { h, patch, errorBox, time, appHref, act, confirmDialog } from "./dom.js";

export function mount(root, { store }) {
  const list = h("div", { id: "deployments-list" });
  const errors = h("div", {});
  const render = () => {
    const deployments = store.deployments;
    if (!deployments.length) {
      patch(list, h("p", { class: "empty" }, store.loaded ? "No deployment in progress." : "Loading…"));
      return;
    }
    patch(list, deployments.map((d) => {
      const current = d.currentStep || 0;
      return h("section", { class: "card", "aria-labelledby": `dep-${d.id}` },
        h("h2", { id: `dep-${d.id}` }, h("code", {}, d.id)),
        h("p", {}, `Step ${current} of ${d.totalSteps} · started ${time(d.version)} · apps: `,
          (d.affectedApps || []).slice(0, 20).flatMap((id, i) => [i ? ", " : "", h("a", { href: appHref(id) }, id)]),
          (d.affectedApps || []).length > 20 ? ` and ${d.affectedApps.length - 20} more` : "",
          (d.affectedPods || []).length ? ` · pods: ${d.affectedPods.join(", ")}` : ""),
        h("progress", { max: String(d.totalSteps || 1), value: String(current), "aria-label": `Step ${current} of ${d.totalSteps}` }),
        h("ol", { class: "steps" }, (d.steps || []).map((step, i) => h("li", {
          "aria-current": i + 1 === current ? "step" : undefined,
          class: i + 1 < current ? "done" : i + 1 === current ? "current" : "",
        }, summarize(step.actions || [])))),
        d.failure ? h("p", { class: "warning" }, "Stuck: ", typeof d.failure === "string" ? d.failure : JSON.stringify(d.failure)) : null,
        h("div", { class: "buttons" },
          h("button", { type: "button", class: "secondary", id: `dep-rollback-${d.id}`, on: { click: async (e) => {
            if (!(await confirmDialog("Roll back this deployment?", `A new deployment restores what ${d.id} changed.`, "Roll back"))) return;
            act(e.target, () => api.del(`/v2/deployments/${encodeURIComponent(d.id)}`), `Rolling back ${d.id}`)
              .catch((err) => patch(errors, errorBox(err)));
          } } }, "Roll back"),
          h("button", { type: "button", class: "secondary", id: `dep-stop-${d.id}`, on: { click: async (e) => {
            if (!(await confirmDialog("Stop this deployment?", "Baton stops driving it and leaves the apps as they are now.", "Stop"))) return;
            act(e.target, () => api.del(`/v2/deployments/${encodeURIComponent(d.id)}?force=true`), `Stopped ${d.id}`)
              .catch((err) => patch(errors, errorBox(err)));
          } } }, "Stop")));
    }));
  };
  root.append(h("h1", { tabindex: "-1" }, "Deployments"), errors, list);
  render();
  return { update(change) { if (change.deployments) render(); } };
}

/** "start /a, /b, … (12 apps)". */
function summarize(actions) {
  const byAction = new Map();
  for (const a of actions) byAction.set(a.action, [...(byAction.get(a.action) || []), a.app || a.pod]);
  return [...byAction].map(([action, apps]) =>
    `${action} ${apps.slice(0, 5).join(", ")}${apps.length > 5 ? `, … (${apps.length} apps)` : ""}`).join("; ");
}
