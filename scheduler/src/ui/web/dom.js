// DOM helpers shared by the pages. Everything from the API goes into the
// page as text (textContent, attributes), never as HTML.

/** Creates an element: h("a", {href: "#/x", class: "c", on: {click}}, "text", child). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "value") el.value = value;
    else if (key === "checked" || key === "disabled" || key === "hidden" || key === "selected") el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/**
 * Replaces an element's children, keeping keyboard focus on the element
 * with the same id (or name) when the new content has one: live updates
 * must not throw a keyboard user back to the top of the page.
 */
export function patch(container, ...children) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.id : "";
  container.replaceChildren();
  append(container, children);
  if (key) {
    const again = document.getElementById(key);
    if (again && again !== document.activeElement) again.focus({ preventScroll: true });
  }
}

/** Says something to screen readers and shows it briefly in the status line. */
let statusTimer = 0;
export function announce(message) {
  const status = document.getElementById("status");
  if (!status) return;
  status.textContent = message;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { status.textContent = ""; }, 8000);
}

/** An error as Baton sent it: status, message, and each detail's path and errors. */
export function errorBox(error, { id } = {}) {
  const details = Array.isArray(error && error.details) ? error.details : [];
  const status = error && error.status ? `${error.status}: ` : "";
  return h("div", { class: "error", role: "alert", id },
    h("strong", {}, status + ((error && error.message) || String(error))),
    details.length
      ? h("ul", {}, details.map((d) => h("li", {}, h("code", {}, d.path || "/"), " ", (d.errors || []).join("; "))))
      : null);
}

/** A modal confirmation; resolves true when the user confirms. */
export function confirmDialog(title, text, confirmLabel) {
  return new Promise((resolve) => {
    const cancel = h("button", { type: "button", class: "secondary", id: "confirm-cancel" }, "Cancel");
    const ok = h("button", { type: "submit", class: "danger", id: "confirm-ok", value: "ok" }, confirmLabel);
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-title" },
      h("form", { method: "dialog" },
        h("h2", { id: "confirm-title" }, title),
        h("p", {}, text),
        h("div", { class: "buttons" }, cancel, ok)));
    const returnTo = document.activeElement;
    cancel.addEventListener("click", () => dialog.close("cancel"));
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (returnTo && returnTo.isConnected) returnTo.focus();
      resolve(dialog.returnValue === "ok");
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** "1,234". */
export function num(n) {
  return n === undefined || n === null ? "–" : Number(n).toLocaleString("en-US", { maximumFractionDigits: 2 });
}

/** A time as "12:03:04" today, else the date too. */
export function time(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString("en-GB") : d.toLocaleString("en-GB");
}

/** Seconds as "1m 05s". */
export function seconds(s) {
  s = Math.max(0, Math.round(Number(s) || 0));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return `${m}m ${String(s % 60).padStart(2, "0")}s`;
}

/** An app id as a URL fragment: "/a/b" → "#/app/a/b". */
export function appHref(id) {
  return "#/app" + id.split("/").map(encodeURIComponent).join("/");
}

/** A status badge (text and colour, never colour alone). */
export function badge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

/** Runs fn (an async action) with the button disabled, announcing the outcome. */
export async function act(button, fn, done) {
  if (button) button.disabled = true;
  try {
    const result = await fn();
    if (done) announce(typeof done === "function" ? done(result) : done);
    return result;
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}
