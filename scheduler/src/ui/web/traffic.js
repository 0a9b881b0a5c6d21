// The Traffic page: each baton-router's view of each app — request rate
// and latency over time — from GET /ui/api/traffic (Baton fetches the
// routers' /_router/stats for the page). Sampled every few seconds while
// the page is open and the tab visible, never otherwise.
//
// Rates and latencies are computed between two samples from the routers'
// counters (requests, the latency histogram's buckets), so a chart shows
// the last few seconds, not the average since the router started.

import * as api from "./api.js";
import { h, patch, num, errorBox, appHref } from "./dom.js";
import { lineChart } from "./chart.js";

const SAMPLE_MS = 3000;
const KEPT = 100; // five minutes of samples

/** The bucket bound under which a share q of the observations fell. */
export function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1].count : 0;
  if (!total) return NaN;
  const wanted = Math.ceil(q * total);
  const hit = buckets.find((b) => b.count >= wanted);
  return hit && typeof hit.le === "number" ? hit.le : NaN;
}

// series key "router app" → {router, app, points: [{t, rps, mean, p99}], last}
const series = new Map();

function take(sample) {
  const t = sample.sampledAt;
  for (const router of sample.routers || []) {
    if (!router.stats) continue;
    for (const [app, stats] of Object.entries(router.stats.apps || {})) {
      const key = `${router.url} ${app}`;
      let s = series.get(key);
      if (!s) series.set(key, (s = { router: router.url, app, points: [], last: null }));
      const latency = stats.latency || {};
      const now = { t, requests: stats.requests || 0, count: latency.count || 0, sum: latency.sumSeconds || 0, buckets: latency.buckets || [] };
      const prev = s.last;
      let point;
      if (prev && t > prev.t && now.requests >= prev.requests) {
        const dt = (t - prev.t) / 1000;
        const n = now.count - prev.count;
        const delta = now.buckets.map((b, i) => ({ le: b.le, count: b.count - ((prev.buckets[i] || {}).count || 0) }));
        point = { t, rps: (now.requests - prev.requests) / dt, mean: n > 0 ? ((now.sum - prev.sum) / n) * 1000 : NaN, p99: quantile(delta, 0.99) * 1000 };
      } else {
        const rps = stats.requestsPerSecond || {};
        point = { t, rps: rps["10s"] || 0, mean: latency.count ? (latency.sumSeconds / latency.count) * 1000 : NaN, p99: (latency.p99 || NaN) * 1000 };
      }
      s.last = now;
      s.points.push(point);
      if (s.points.length > KEPT) s.points.shift();
    }
  }
}

export function mount(root) {
  const body = h("div", { id: "traffic-body", "aria-live": "polite", "aria-busy": "true" }, h("p", {}, "Sampling the routers…"));
  const note = h("p", { class: "help" }, `Sampled every ${SAMPLE_MS / 1000} s while this page is open.`);
  let timer = 0;
  let stopped = false;
  let controller = null;

  const render = (sample) => {
    body.setAttribute("aria-busy", "false");
    const routers = sample.routers || [];
    if (!routers.length) {
      patch(body, h("p", { class: "empty" }, "No router configured. Start baton with --router_url http://host:port (one per baton-router) to see traffic here."));
      return;
    }
    patch(body, routers.map((router) => {
      const apps = router.stats ? Object.keys(router.stats.apps || {}).sort() : [];
      const marathon = router.stats && router.stats.marathon;
      return h("section", { class: "card", "aria-labelledby": `router-${router.url}` },
        h("h2", { id: `router-${router.url}` }, router.url),
        router.error ? errorBox({ message: router.error }) : h("p", {},
          `${apps.length} app${apps.length === 1 ? "" : "s"} routed` +
          (marathon && marathon.eventsConnected !== undefined ? ` · event stream ${marathon.eventsConnected ? "connected" : "disconnected"}` : "") +
          ` · ${num(router.stats.unmatched)} unmatched requests`),
        apps.length ? h("div", { class: "charts" }, apps.map((app) => {
          const s = series.get(`${router.url} ${app}`);
          const points = s ? s.points : [];
          const last = points[points.length - 1] || {};
          const stats = router.stats.apps[app];
          return h("figure", { class: "chart-card" },
            h("figcaption", {}, h("a", { href: appHref(app) }, app),
              h("small", {}, ` ${num(last.rps)} req/s · mean ${Number.isFinite(last.mean) ? num(last.mean) : "–"} ms · ` +
                `${num(stats.requests)} requests · ${(stats.upstreams || []).length} instances`)),
            h("div", { class: "chart-title" }, "Requests per second"),
            lineChart(`Request rate of ${app}`, [{ name: "rate", className: "rate", points: points.map((p) => ({ t: p.t, v: p.rps })) }], "req/s"),
            h("div", { class: "chart-title" }, "Latency: ", h("span", { class: "key mean" }, "mean"), " and ",
              h("span", { class: "key p99" }, "99th percentile")),
            lineChart(`Latency of ${app}`, [
              { name: "mean", className: "mean", points: points.map((p) => ({ t: p.t, v: p.mean })) },
              { name: "p99", className: "p99", points: points.map((p) => ({ t: p.t, v: p.p99 })) },
            ], "ms"));
        })) : null);
    }));
  };

  const tick = async () => {
    timer = 0;
    if (stopped) return;
    if (document.visibilityState === "visible") {
      controller = new AbortController();
      try {
        const sample = await api.get("/ui/api/traffic", { signal: controller.signal });
        take(sample);
        if (!stopped) render(sample);
      } catch (err) {
        if (!stopped && err.name !== "AbortError") patch(body, errorBox(err));
      }
    }
    if (!stopped) timer = setTimeout(tick, SAMPLE_MS);
  };
  root.append(h("h1", { tabindex: "-1" }, "Traffic"), note, body);
  tick();
  return {
    unmount() {
      stopped = true;
      clearTimeout(timer);
      if (controller) controller.abort();
    },
  };
}
