// The Events page: what /v2/events said lately (newest first), filtered by
// type, with each event's JSON on demand. The page keeps the last 500.

import { h, patch, time, appHref } from "./dom.js";

const SHOWN = 200;
let typeFilter = "";

function line(e) {
  const app = e.appId || e.runSpecId || (e.appDefinition && e.appDefinition.id);
  const what = [e.taskStatus, e.condition, e.alive === undefined ? null : e.alive ? "healthy" : "unhealthy",
    e.reason, e.id && e.eventType.startsWith("deployment") ? `deployment ${e.id}` : null, e.uri]
    .filter(Boolean).join(" · ");
  return h("li", {},
    h("time", { datetime: e.timestamp || "" }, time(e.timestamp)), " ",
    h("strong", {}, e.eventType), " ",
    app ? h("a", { href: appHref(app) }, app) : null,
    what ? h("span", {}, " " + what) : null,
    h("details", {}, h("summary", {}, "JSON"), h("pre", {}, JSON.stringify(e, null, 2))));
}

export function mount(root, { store }) {
  const select = h("select", { id: "event-type" });
  const paused = h("input", { type: "checkbox", id: "events-paused" });
  const list = h("ol", { class: "events", id: "event-log", role: "log", "aria-live": "polite", "aria-relevant": "additions" });
  const count = h("p", { class: "summary" });
  const fillTypes = () => {
    const types = [...new Set(store.events.map((e) => e.eventType))].sort();
    if (typeFilter && !types.includes(typeFilter)) types.push(typeFilter);
    patch(select, h("option", { value: "" }, "all types"), types.map((t) => h("option", { value: t, selected: t === typeFilter }, t)));
  };
  const render = () => {
    if (paused.checked) return;
    const shown = store.events.filter((e) => !typeFilter || e.eventType === typeFilter).slice(-SHOWN).reverse();
    count.textContent = `${shown.length} event${shown.length === 1 ? "" : "s"} shown (the last ${SHOWN} of this type, newest first)`;
    patch(list, shown.map(line));
  };
  select.addEventListener("change", () => { typeFilter = select.value; render(); });
  paused.addEventListener("change", render);
  root.append(
    h("h1", { tabindex: "-1" }, "Events"),
    h("form", { class: "filters", on: { submit: (e) => e.preventDefault() } },
      h("div", { class: "field" }, h("label", { for: "event-type" }, "Type"), select),
      h("div", { class: "field inline" }, paused, h("label", { for: "events-paused" }, "Pause"))),
    count, list);
  fillTypes();
  render();
  let typesSeen = new Set(store.events.map((e) => e.eventType)).size;
  let frame = 0;
  return {
    update(change) {
      if (!change.events || frame) return;
      // A burst of events is drawn once per frame.
      frame = requestAnimationFrame(() => {
        frame = 0;
        const seen = new Set(store.events.map((e) => e.eventType)).size;
        if (seen !== typesSeen && document.activeElement !== select) { typesSeen = seen; fillTypes(); }
        render();
      });
    },
    unmount() { cancelAnimationFrame(frame); },
  };
}
