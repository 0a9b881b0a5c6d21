// Small SVG line charts for the Traffic page: one or two series over
// time, a zero baseline and the top value, with a text alternative.

const NS = "http://www.w3.org/2000/svg";
const WIDTH = 240;
const HEIGHT = 64;
const PAD = 4;

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * series: [{name, points: [{t, v}], className}]; unit: "req/s" or "ms".
 * Returns an <svg role="img"> whose label states the latest values and the
 * range, so the chart says something without being seen.
 */
export function lineChart(title, series, unit) {
  const all = series.flatMap((s) => s.points);
  const values = all.map((p) => p.v).filter((v) => Number.isFinite(v));
  const max = Math.max(1e-9, ...values);
  const t0 = Math.min(...all.map((p) => p.t));
  const t1 = Math.max(...all.map((p) => p.t));
  const span = Math.max(1, t1 - t0);
  const x = (t) => PAD + ((t - t0) / span) * (WIDTH - 2 * PAD);
  const y = (v) => HEIGHT - PAD - (v / max) * (HEIGHT - 2 * PAD);
  const fmt = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  const latest = series.map((s) => {
    const last = s.points[s.points.length - 1];
    return `${s.name} ${last && Number.isFinite(last.v) ? fmt(last.v) : "none"} ${unit}`;
  }).join(", ");
  const root = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, role: "img", class: "chart",
    "aria-label": `${title}: now ${latest}; highest ${fmt(max)} ${unit} over the last ${Math.round(span / 1000)} s`,
  });
  root.appendChild(svg("line", { x1: PAD, x2: WIDTH - PAD, y1: HEIGHT - PAD, y2: HEIGHT - PAD, class: "axis" }));
  const top = svg("text", { x: PAD, y: PAD + 9, class: "label" });
  top.textContent = `${fmt(max)} ${unit}`;
  root.appendChild(top);
  for (const s of series) {
    const points = s.points.filter((p) => Number.isFinite(p.v));
    if (points.length === 0) continue;
    if (points.length === 1) {
      root.appendChild(svg("circle", { cx: x(points[0].t), cy: y(points[0].v), r: 2, class: s.className }));
      continue;
    }
    root.appendChild(svg("polyline", {
      points: points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" "),
      class: s.className, fill: "none",
    }));
  }
  return root;
}
