// What the pages show, kept current from /v2/events: the apps (with their
// counts and deployments), the pods (their status, once a page asked for
// them), the launch queue and the deployments.
//
// An event marks what it names as stale (an app, the queue, the
// deployments); stale things are re-read together a moment later
// (debounced), one app at a time while few changed, the whole list when
// many did. Nothing polls, but for the one thing no event announces: why
// waiting instances wait (declined offers), which the App page re-reads
// every few seconds while it shows such an app. Pages subscribe and get
// told what changed.

import * as api from "./api.js";

/** How long to gather events before re-reading what they named. */
const DEBOUNCE_MS = 150;
/** Above this many stale apps, one list read is cheaper than single reads. */
const SINGLE_READS_MAX = 20;
/** Events kept for the Events page. */
const EVENTS_KEPT = 500;

/** An app's status, as the Apps page and the App page show it. */
export function appStatus(app, queued) {
  const labels = app.labels || {};
  if (queued && queued.delay && queued.delay.timeLeftSeconds > 0) return "delayed";
  if (queued && queued.count > 0) return "waiting";
  if ((app.deployments || []).length > 0) return "deploying";
  if (Object.prototype.hasOwnProperty.call(labels, "BATON_SLEEPING") && app.instances === 0) return "sleeping";
  if (app.instances === 0) return "suspended";
  return "running";
}

/** App (or pod) ids named by an event. */
function appsOf(type, e) {
  const ids = [];
  for (const key of ["appId", "runSpecId"]) if (typeof e[key] === "string") ids.push(e[key]);
  if (e.appDefinition && typeof e.appDefinition.id === "string") ids.push(e.appDefinition.id);
  if (e.plan && Array.isArray(e.plan.steps)) {
    for (const step of e.plan.steps) for (const action of step.actions || []) if (action.app) ids.push(action.app);
  }
  return ids;
}

/** Whether an event is about a pod: a pod event, or a deployment step naming one. */
function aboutPods(type, e) {
  if (type.startsWith("pod_")) return true;
  const steps = (e.plan && Array.isArray(e.plan.steps)) ? e.plan.steps : [];
  return steps.some((step) => (step.actions || []).some((a) => a.pod));
}

export class Store {
  constructor() {
    this.apps = new Map();
    this.pods = [];
    this.podsWanted = false; // read only while a page shows pods
    this.podsLoaded = false;
    this.queue = new Map();
    this.deployments = [];
    this.events = [];
    this.loaded = false;
    this.listeners = new Set();
    this.watched = new Map(); // app id → how many pages want its tasks
    this.stale = { apps: new Set(), all: false, queue: false, deployments: false, pods: false };
    this.timer = 0;
    this.flushing = null;
    this.error = null;
  }

  /** fn(change) after each refresh: {apps: Set|"all", queue, deployments, events}. */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  notify(change) {
    for (const fn of this.listeners) {
      try { fn(change); } catch (error) { console.error(error); }
    }
  }

  /** Reads everything (at start and after every event-stream reconnection). */
  async refreshAll() {
    this.stale.all = true;
    this.stale.pods = this.podsWanted;
    this.stale.queue = true;
    this.stale.deployments = true;
    await this.flush();
  }

  /** Keeps the tasks of `id` current while a page shows them (the page reads it first). */
  watch(id) {
    this.watched.set(id, (this.watched.get(id) || 0) + 1);
    return () => {
      const n = (this.watched.get(id) || 1) - 1;
      if (n <= 0) this.watched.delete(id);
      else this.watched.set(id, n);
    };
  }

  /** Re-reads the launch queue (what offers do not say with events). */
  markQueue() {
    this.stale.queue = true;
    this.schedule();
  }

  /** Re-reads the pods, and keeps them current from now on. */
  markPods() {
    this.podsWanted = true;
    this.stale.pods = true;
    this.schedule();
  }

  markApp(id) {
    this.stale.apps.add(id);
    this.schedule();
  }

  /** Takes one event from /v2/events. */
  onEvent(type, e) {
    e.eventType = e.eventType || type;
    this.events.push(e);
    if (this.events.length > EVENTS_KEPT) this.events.splice(0, this.events.length - EVENTS_KEPT);
    const podIds = new Set(this.pods.map((p) => p.id));
    const ids = appsOf(type, e);
    for (const id of ids) if (!podIds.has(id)) this.stale.apps.add(id);
    if (this.podsWanted && (aboutPods(type, e) || ids.some((id) => podIds.has(id)) || type.startsWith("deployment_"))) {
      this.stale.pods = true;
    }
    if (type.startsWith("deployment_")) this.stale.deployments = true;
    if (ids.length || type.startsWith("deployment_")) this.stale.queue = true;
    if (type === "group_change_success") {
      this.stale.all = true;
      this.stale.pods = this.podsWanted;
    }
    this.notify({ events: true });
    this.schedule();
  }

  schedule() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = 0;
      this.flush();
    }, DEBOUNCE_MS);
  }

  /** Re-reads what is stale; one flush at a time. */
  async flush() {
    if (this.flushing) {
      await this.flushing;
      return this.flush();
    }
    const stale = this.stale;
    this.stale = { apps: new Set(), all: false, queue: false, deployments: false, pods: false };
    if (!stale.all && !stale.apps.size && !stale.queue && !stale.deployments && !stale.pods) return;
    this.flushing = this.read(stale).finally(() => { this.flushing = null; });
    return this.flushing;
  }

  async read(stale) {
    const change = { apps: new Set(), queue: stale.queue, deployments: stale.deployments, pods: stale.pods };
    const work = [];
    let singles = [...stale.apps];
    if (stale.all || singles.length > SINGLE_READS_MAX) {
      change.apps = "all";
      work.push(api.get("/v2/apps").then((body) => {
        const apps = new Map();
        for (const app of body.apps || []) {
          const old = this.apps.get(app.id);
          // Keep the tasks of watched apps until their own read below.
          if (old && old.tasks && this.watched.has(app.id)) app.tasks = old.tasks;
          apps.set(app.id, app);
        }
        this.apps = apps;
      }));
      singles = [...this.watched.keys()];
    }
    for (const id of singles) {
      if (change.apps !== "all") change.apps.add(id);
      work.push(api.get(api.appUrl(id)).then(
        (body) => { this.apps.set(body.app.id, body.app); },
        (error) => {
          if (error.status === 404 || error.status === 403) this.apps.delete(id);
          else throw error;
        }));
    }
    if (stale.queue) {
      work.push(api.get("/v2/queue").then((body) => {
        this.queue = new Map((body.queue || []).map((q) => [q.app.id, q]));
      }));
    }
    if (stale.deployments) {
      work.push(api.get("/v2/deployments").then((body) => { this.deployments = body || []; }));
    }
    if (stale.pods) {
      work.push(api.get("/v2/pods/::status").then((body) => {
        this.pods = body || [];
        this.podsLoaded = true;
      }));
    }
    const results = await Promise.allSettled(work);
    const failed = results.find((r) => r.status === "rejected");
    this.error = failed ? failed.reason : null;
    this.loaded = true;
    this.notify(change);
  }

  /** Deployments that touch `id`. */
  deploymentsOf(id) {
    return this.deployments.filter((d) => (d.affectedApps || []).includes(id));
  }
}
