// The UI's shell: logging in (when Baton asks for credentials), the event
// stream that keeps the store current, and hash routing between pages.
// Each page module exports mount(root, context) → {update(change), unmount()}.

import * as api from "./api.js";
import { h, patch, errorBox, announce } from "./dom.js";
import { Store } from "./store.js";
import { EventStream } from "./events.js";
import * as apps from "./apps.js";
import * as app from "./app.js";
import * as create from "./create.js";
import * as deployments from "./deployments.js";
import * as pods from "./pods.js";
import * as eventlog from "./eventlog.js";
import * as traffic from "./traffic.js";

const PAGES = { apps, pods, create, deployments, events: eventlog, traffic };

// Script errors, kept where a test (or a curious operator) can read them.
window.batonErrors = [];
window.addEventListener("error", (e) => window.batonErrors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => window.batonErrors.push(String(e.reason && e.reason.message || e.reason)));

const main = document.getElementById("main");
let store = null;
let stream = null;
let page = null;

function setLive(state, error) {
  const dot = document.getElementById("live");
  const text = document.getElementById("live-text");
  dot.dataset.state = state;
  text.textContent = state === "live" ? "live" : state === "connecting" ? "connecting…" : "offline";
  dot.title = error ? `Event stream: ${error.message}` : "Event stream";
}

/** The page for the current location.hash: "#/apps", "#/app/a/b", … */
function route() {
  const hash = decodeURIComponent(location.hash.replace(/^#/, "")) || "/apps";
  if (hash.startsWith("/app/")) return { name: "app", module: app, params: { id: hash.slice(4) } };
  const name = hash.split("/")[1] || "apps";
  return { name, module: PAGES[name] || apps, params: {} };
}

function render() {
  if (!store) return;
  if (page && page.unmount) page.unmount();
  page = null;
  const { name, module, params } = route();
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === name || (name === "app" && link.dataset.nav === "apps")) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  main.replaceChildren();
  page = module.mount(main, { store, params, navigate: (to) => { location.hash = to; } }) || {};
  const title = main.querySelector("h1");
  document.title = title ? `${title.textContent} · Baton` : "Baton";
  if (title && document.activeElement !== document.body) title.focus();
}

function updateBadges() {
  const count = document.getElementById("deployment-count");
  const n = store ? store.deployments.length : 0;
  count.textContent = n ? String(n) : "";
  count.hidden = !n;
  count.setAttribute("aria-label", `${n} in progress`);
}

function start(info) {
  const user = api.user();
  document.getElementById("user").textContent = user ? `${user}` : "";
  document.getElementById("logout").hidden = !user;
  document.getElementById("framework").textContent = info && info.name ? `${info.name} ${info.version || ""}` : "";
  store = new Store();
  store.subscribe((change) => {
    if (page && page.update) page.update(change);
    if (change.deployments) updateBadges();
    const alert = document.getElementById("alert");
    if (store.error && !(store.error.status === 401)) {
      patch(alert, errorBox(store.error));
      alert.hidden = false;
    } else if (!change.events) {
      alert.hidden = true;
    }
  });
  let connections = 0;
  stream = new EventStream((type, event) => store.onEvent(type, event), (state, error) => {
    setLive(state, error);
    // After a reconnection, re-read what the missed events may have changed.
    if (state === "live" && connections++ > 0) store.refreshAll();
    if (error && error.status === 401) showLogin("Baton refused your credentials; log in again.");
  });
  stream.start();
  store.refreshAll();
  render();
}

function stop() {
  if (stream) stream.stop();
  if (page && page.unmount) page.unmount();
  stream = null;
  store = null;
  page = null;
}

// The login form on display, if any: a second call (a late 401 from a
// request still in flight) must not rebuild it under the user's typing.
let login = null;

function showLogin(reason) {
  if (login && main.contains(login.form)) {
    if (reason) patch(login.errors, errorBox({ message: reason }));
    return;
  }
  stop();
  api.logout();
  document.getElementById("user").textContent = "";
  document.getElementById("logout").hidden = true;
  setLive("offline");
  const name = h("input", { id: "login-user", name: "username", autocomplete: "username", required: true });
  const password = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const errors = h("div", { id: "login-errors" }, reason ? errorBox({ message: reason }) : null);
  const submit = h("button", { type: "submit", id: "login-submit" }, "Log in");
  const form = h("form", { class: "card login", "aria-labelledby": "login-title", on: { submit: async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      const info = await api.login(name.value, password.value);
      announce(`Logged in as ${name.value}`);
      start(info);
    } catch (err) {
      patch(errors, errorBox(err.status === 401 ? { status: 401, message: err.message || "Wrong user or password" } : err));
      password.select();
      password.focus();
    } finally {
      submit.disabled = false;
    }
  } } },
  h("h1", { id: "login-title", tabindex: "-1" }, "Log in to Baton"),
  h("p", { class: "help" }, "Baton asks for credentials (--http_credentials). They are kept in this tab only and sent with each request."),
  errors,
  h("div", { class: "field" }, h("label", { for: "login-user" }, "User"), name),
  h("div", { class: "field" }, h("label", { for: "login-password" }, "Password"), password),
  h("div", { class: "buttons" }, submit));
  main.replaceChildren(form);
  login = { form, errors };
  document.title = "Log in · Baton";
  name.focus();
}

async function boot() {
  api.whenUnauthorized(() => showLogin("Baton refused your credentials; log in again."));
  document.getElementById("logout").addEventListener("click", () => {
    showLogin();
    announce("Logged out");
  });
  window.addEventListener("hashchange", render);
  try {
    const info = await api.get("/v2/info", { quiet: true });
    start(info);
  } catch (err) {
    if (err.status === 401) showLogin();
    else {
      main.replaceChildren(h("h1", { tabindex: "-1" }, "Baton is not reachable"), errorBox(err),
        h("button", { type: "button", id: "retry", on: { click: () => location.reload() } }, "Try again"));
    }
  }
}

boot();
